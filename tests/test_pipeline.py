"""The workflow ("10 minutes to dynamo") as resumable stages over a store."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import dynadask as dyn
from dynadask import pipeline
from dynadask.summary import RunSummary


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, pancreas_path):
    tmp = tmp_path_factory.mktemp("pipeline")
    a = dyn.read_h5ad(pancreas_path)
    idx = np.random.default_rng(0).choice(a.n_obs, 900, replace=False)
    a[np.sort(idx)].copy().write_h5ad(tmp / "small.h5ad")
    return dyn.io.convert(tmp / "small.h5ad", tmp / "small.zarr", chunk_cells=400)


FIGURES = [  # each file is named <plot function>_<name given>
    "cell_wise_vector_acceleration_umap.png",
    "cell_wise_vector_cell_wise_vectors_umap.png",
    "grid_velocity_speed_umap.png",
    "guide_vector_field.png",
    "kinetic_curves_fate_umap.png",
    "phase_portraits_phase_portraits.png",
    "scatters_umap.png",
    "scatters_vector_calculus.png",
    "streamline_plot_divergence_pca.png",
    "streamline_plot_streamline_umap.png",
]


def test_stages_run_in_dynamo_order_and_resume(small_store, tmp_path):
    names = [s.name for s in pipeline.STAGES]
    assert names == [
        "preprocess",
        "neighbors",
        "reorder",
        "moments",
        "dynamics",
        "reduceDimension",
        "cell_velocities",
        "cell_velocities_pca",
        "vectorfield",
        "topography",
        "ddhodge",
        "vector_calculus",
        "jacobian",
        "fate",
        "figures",
    ]
    lines: list[str] = []
    summary = RunSummary()
    adata = pipeline.run(small_store, figures=tmp_path / "fig", log=lines.append, summary=summary)
    assert set(pipeline.completed(adata)) >= set(names)
    assert summary.names("run") == names and not summary.names("skipped")
    assert all(o.seconds > 0 for o in summary.outcomes)
    assert {"M_s", "M_u", "velocity_S"} <= set(adata.layers)
    assert {"X_pca", "X_umap", "velocity_umap", "velocity_pca"} <= set(adata.obsm)
    v = np.asarray(adata.obsm["velocity_umap"])
    assert v.shape == (adata.n_obs, 2) and np.isfinite(v).all() and np.abs(v).sum() > 0
    _check_vector_field_stages(adata)
    _check_potential_and_fate_stages(adata, tmp_path / "fig")
    figures = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert figures == FIGURES
    assert all((tmp_path / "fig" / f).stat().st_size > 10_000 for f in figures)
    # a second run skips every stage; the store opens with the results in plain anndata
    again: list[str] = []
    summary = RunSummary()
    pipeline.run(small_store, figures=tmp_path / "fig", log=again.append, summary=summary)
    assert all("already complete" in line for line in again) and len(again) == len(names)
    assert summary.names("skipped") == names and not summary.names("run")
    import anndata as ad

    plain = ad.read_zarr(small_store)
    np.testing.assert_allclose(plain.layers["velocity_S"], np.asarray(adata.layers["velocity_S"]))
    np.testing.assert_allclose(plain.obs["speed_umap"], adata.obs["speed_umap"])


def test_figure_data_reads_what_the_figures_draw_once(small_store, monkeypatch):
    adata = dyn.io.open(small_store)
    genes = pipeline._top_genes(adata, 4)
    assert len(genes) == 4
    calls: list[int] = []
    real = pipeline.compute
    monkeypatch.setattr(pipeline, "compute", lambda *a, **k: calls.append(len(a)) or real(*a, **k))
    view = pipeline.figure_data(adata, genes)
    assert calls == [6]  # three embeddings and three layers, one compute
    assert list(view.var_names) == genes and view.n_obs == adata.n_obs
    assert view.obs is adata.obs or view.obs.equals(adata.obs)
    for key in pipeline.FIGURE_OBSM:
        np.testing.assert_array_equal(view.obsm[key], np.asarray(adata.obsm[key])[:, :2])
    cols = [adata.var_names.get_loc(g) for g in genes]
    for layer in pipeline.FIGURE_LAYERS:
        want = np.asarray(adata.layers[layer][:, cols].compute())
        assert isinstance(view.layers[layer], np.ndarray)
        np.testing.assert_array_equal(view.layers[layer], want)
    assert view.uns is adata.uns or view.uns.keys() == adata.uns.keys()


def test_each_velocity_stage_records_only_itself(small_store, tmp_path):
    # the pca velocity stage run alone must not mark the umap one complete (or refresh it)
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(small_store, copy)
    before = pipeline.completed(dyn.io.open(copy))
    assert {"cell_velocities_umap", "cell_velocities_pca"} <= set(before)
    adata = pipeline.run(copy, stages=["cell_velocities_pca"], force=True, log=lambda _: None)
    after = pipeline.completed(adata)
    assert after["cell_velocities_pca"] != before["cell_velocities_pca"]
    assert after["cell_velocities_umap"] == before["cell_velocities_umap"]


def _check_vector_field_stages(adata, genes: list[str] | None = None) -> None:
    """The new stages' keys, with invariants that tie them to the field they came from."""
    for basis in ("umap", "pca"):
        vf = adata.uns[f"VecFld_{basis}"]
        d = 2 if basis == "umap" else 30
        assert np.asarray(vf["X_ctrl"]).shape[1] == d
        field = np.asarray(adata.obsm[f"velocity_{basis}_SparseVFC"])
        velocity = np.asarray(adata.obsm[f"velocity_{basis}"])
        cos = (field * velocity).sum(1) / (
            np.linalg.norm(field, axis=1) * np.linalg.norm(velocity, axis=1)
        )
        assert np.nanmedian(cos) > 0.9  # the field follows the velocities it was fitted to
        # speed is the field's norm at each cell; acceleration's obs is its obsm's norm
        speed = adata.obs[f"speed_{basis}"].to_numpy()
        np.testing.assert_allclose(speed, np.linalg.norm(field, axis=1), rtol=1e-5)
        acc = np.asarray(adata.obsm[f"acceleration_{basis}"])
        np.testing.assert_allclose(
            adata.obs[f"acceleration_{basis}"], np.linalg.norm(acc, axis=1), rtol=1e-5
        )
        for q in pipeline.CALCULUS:
            values = adata.obs[f"{q}_{basis}"].to_numpy()
            assert np.isfinite(values).all() and np.abs(values).max() > 0, (q, basis)
    # topography: the fixed points of the umap field, where the field vanishes
    vf = adata.uns["VecFld_umap"]
    Xss = np.asarray(vf["Xss"])
    assert Xss.ndim == 2 and Xss.shape[0] >= 1 and Xss.shape[1] == 2
    f = dyn.vf.vector_field_function(Xss, vf)
    assert np.abs(f).max() < 1e-4 * np.abs(np.asarray(adata.obsm["velocity_umap_SparseVFC"])).max()
    # jacobian: the default genes, each cell's gene Jacobian, and its PCA determinant
    genes = genes or pipeline.jacobian_genes(adata)
    entry = adata.uns["jacobian_pca"]
    assert list(entry["regulators"]) == genes == list(entry["effectors"])
    J = np.asarray(entry["jacobian_gene"])
    assert J.shape == (adata.n_obs, len(genes), len(genes)) and np.isfinite(J).all()
    assert np.isfinite(adata.obs["jacobian_det_pca"]).all()


def _check_potential_and_fate_stages(adata, figures) -> None:
    """ddhodge's potential, the fates from the earliest group, the guide's 2 x 2 PNG."""
    potential = adata.obs["umap_ddhodge_potential"].to_numpy()
    assert np.isfinite(potential).all() and potential.min() == 0 and potential.max() > 0
    # the potential rises along the learned flow: its graph gradient follows the field
    X = np.asarray(adata.obsm["X_umap"])
    field = np.asarray(adata.obsm["velocity_umap_SparseVFC"])
    step = X + field / np.linalg.norm(field, axis=1, keepdims=True) * 0.5
    from scipy.spatial import cKDTree

    ahead = potential[cKDTree(X).query(step, k=5)[1]].mean(axis=1)
    assert np.mean(ahead > potential) > 0.6
    fate = adata.uns["fate_umap"]
    cells = list(fate["init_cells"])
    assert len(cells) == min(pipeline.FATE_CELLS, adata.n_obs)
    groups = adata.obs["clusters"].astype(str)
    earliest = pd.Series(potential, adata.obs_names).groupby(groups).median().idxmin()
    assert set(groups[cells]) == {earliest}
    assert cells == pipeline.fate_cells(adata)[0]  # seeded: the same draw again
    P = np.asarray(fate["prediction"])
    assert P.shape == (len(cells), 2, 500) and np.isfinite(P).all()
    rows = adata.obs_names.get_indexer(cells)
    np.testing.assert_allclose(np.asarray(fate["init_states"]), X[rows], rtol=1e-6)
    png = (figures / pipeline.GUIDE_PANEL).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (12 * 120, 10 * 120)


def test_jacobian_genes_are_the_best_held_by_the_pca(small_store):
    adata = dyn.io.open(small_store)
    genes = pipeline.jacobian_genes(adata, n=7)
    var = adata.var
    assert len(genes) == 7 and genes == [g for g in var.index if g in genes]  # var order
    eligible = var["use_for_dynamics"].astype(bool) & np.isfinite(var["gamma"])
    assert eligible[genes].all()
    pcs = var.index[var["use_for_pca"].astype(bool)]
    Q = np.asarray(adata.uns["PCs"])[:, :30]
    held = pd.Series((Q**2) @ np.asarray(adata.uns["explained_variance_ratio_"])[:30], pcs)
    held = held[eligible[pcs].to_numpy()]
    assert held[genes].min() >= held.drop(genes).max()
    with pytest.raises(dyn.MissingKeyError, match="VectorField"):
        pipeline.jacobian_genes(dyn.read_h5ad(small_store.parent / "small.h5ad"))


def test_register_places_a_stage_after_another(monkeypatch):
    monkeypatch.setattr(pipeline, "STAGES", list(pipeline.STAGES))
    pipeline.register("ddhodge_like", after="topography")(lambda adata, context: None)
    names = [s.name for s in pipeline.STAGES]
    assert names[names.index("topography") + 1] == "ddhodge_like"
    assert names[-1] == "figures"
    with pytest.raises(dyn.InputError, match="exists already"):
        pipeline.register("jacobian")
    with pytest.raises(dyn.InputError, match="no stage 'hodge'"):
        pipeline.register("x", after="hodge")


def test_forced_single_stage_and_unknown_names(small_store, tmp_path):
    # a forced stage runs again, alone; the stage is one that the store's size makes cheap
    # (3 row chunks are never reordered; the figures stage would draw all 10 figures again)
    before = pipeline.completed(dyn.io.open(small_store))["reorder"]
    lines: list[str] = []
    adata = pipeline.run(small_store, stages=["reorder"], force=True, log=lines.append)
    assert len(lines) == 1 and "reorder" in lines[0] and "done" in lines[0]
    assert pipeline.completed(adata)["reorder"] != before
    assert adata.uns["dynadask"]["reorder"]["reordered"] is False
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.run(small_store, stages=["umap_fit"])


NEW_STAGES = [
    "vectorfield",
    "topography",
    "ddhodge",
    "vector_calculus",
    "jacobian",
    "fate",
    "figures",
]


@pytest.fixture(scope="module")
def velocity_store(tmp_path_factory, reference):
    """dynamo's reference results up to the velocities, on 600 cells, as a store."""
    tmp = tmp_path_factory.mktemp("velocities")
    idx = np.sort(np.random.default_rng(1).choice(reference.n_obs, 600, replace=False))
    a = reference[idx].copy()
    for key in [k for k in a.uns if k.startswith(("VecFld", "jacobian", "fate"))]:
        del a.uns[key]
    a.write_h5ad(tmp / "velocities.h5ad")
    return tmp / "velocities.h5ad"


def test_cli_runs_vector_field_stages_from_job_file_and_resumes(
    velocity_store, tmp_path, capsys, _local_cluster
):
    from dynadask.cli import main

    # the session's cluster, named in the job file: a cluster of its own would start worker
    # processes that import and compile the numba-backed libraries again (``workers`` from a
    # job file and ``--workers`` are checked in test_cli_config and test_package)
    job = tmp_path / "job.toml"
    job.write_text(
        f'out = "out"\nchunk-cells = 250\nscheduler = "{_local_cluster.scheduler_address}"\n'
        "progress = false\n"
        'jacobian-genes = ["Pdx1", "Gcg", "Ins2"]\n'
        'stages = ["vectorfield", "topography", "ddhodge", "vector_calculus", "jacobian", '
        '"fate", "figures"]\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(velocity_store), "--config", str(job), "--force"]) == 0
    text = capsys.readouterr().out
    summary = text[text.index("summary") :]
    for name in ["convert", *NEW_STAGES]:
        assert re.search(rf"^  {name} +run +\d+\.\d s$", summary, re.M), name
    assert "preprocess" not in summary
    assert f"store    {out.resolve() / 'velocities.zarr'}" in summary
    assert f"figures  {out.resolve() / 'figures'} ({len(FIGURES)} png files)" in summary
    assert re.search(r"total +\d+\.\d s  \(8 run\)", summary)
    adata = dyn.io.open(out / "velocities.zarr")
    # var order (Ins2, Gcg, Pdx1 are var positions 1006, 1008, 1133), as dynamo
    assert list(adata.uns["jacobian_pca"]["regulators"]) == ["Ins2", "Gcg", "Pdx1"]
    _check_vector_field_stages(adata, genes=["Ins2", "Gcg", "Pdx1"])
    _check_potential_and_fate_stages(adata, out / "figures")
    # the job again (the command line's --no-force over the file): every stage is complete
    assert main(["run", str(velocity_store), "--config", str(job), "--no-force"]) == 0
    summary = capsys.readouterr().out.split("summary")[-1]
    assert len(re.findall(r"skipped +-$", summary, re.M)) == len(NEW_STAGES)
    assert re.search(r"\(7 skipped\)", summary) and "convert" not in summary


def test_cli_run_writes_store_and_figures(tmp_path, pancreas_path, capsys, _local_cluster):
    from dynadask.cli import main

    a = dyn.read_h5ad(pancreas_path)
    a[:600].copy().write_h5ad(tmp_path / "tiny.h5ad")
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "tiny.h5ad"), "--out", str(out)]
    # the computing call on the session's cluster (see the test above); the resuming call,
    # which computes nothing, starts a LocalCluster of its own (``--workers``)
    first = ["--scheduler", _local_cluster.scheduler_address]
    stages = ["--stages", "preprocess", "neighbors", "moments", "dynamics"]
    assert main([*args, *first, *stages]) == 0
    text = capsys.readouterr().out
    assert "dynamics" in text and "complete" in text and "reduceDimension" not in text
    # resuming: the next call converts nothing and runs only what is left of the workflow
    stages = ["--stages", "dynamics", "figures"]
    assert main([*args, "--workers", "1", *stages]) == 2  # figures need the UMAP
    captured = capsys.readouterr()
    assert "X_umap" in captured.err
    assert re.search(r"^  dynamics +skipped", captured.out, re.M)
    assert re.search(r"^  figures +failed +\d+\.\d s$", captured.out, re.M)
    assert (out / "tiny.zarr").is_dir()
