"""The workflow ("10 minutes to dynamo") as resumable stages over a store."""

from __future__ import annotations

import numpy as np
import pytest

import dynadask as dyn
from dynadask import pipeline


@pytest.fixture(scope="module")
def small_store(tmp_path_factory, pancreas_path):
    tmp = tmp_path_factory.mktemp("pipeline")
    a = dyn.read_h5ad(pancreas_path)
    idx = np.random.default_rng(0).choice(a.n_obs, 900, replace=False)
    a[np.sort(idx)].copy().write_h5ad(tmp / "small.h5ad")
    return dyn.io.convert(tmp / "small.h5ad", tmp / "small.zarr", chunk_cells=400)


def test_stages_run_in_dynamo_order_and_resume(small_store, tmp_path):
    names = [s.name for s in pipeline.STAGES]
    assert names[:7] == [
        "preprocess",
        "neighbors",
        "reorder",
        "moments",
        "dynamics",
        "reduceDimension",
        "cell_velocities",
    ]
    lines: list[str] = []
    adata = pipeline.run(small_store, figures=tmp_path / "fig", log=lines.append)
    assert set(pipeline.completed(adata)) >= set(names)
    assert {"M_s", "M_u", "velocity_S"} <= set(adata.layers)
    assert {"X_pca", "X_umap", "velocity_umap", "velocity_pca"} <= set(adata.obsm)
    v = np.asarray(adata.obsm["velocity_umap"])
    assert v.shape == (adata.n_obs, 2) and np.isfinite(v).all() and np.abs(v).sum() > 0
    figures = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert len(figures) == 4 and all(f.endswith(".png") for f in figures)
    assert all((tmp_path / "fig" / f).stat().st_size > 10_000 for f in figures)
    # a second run skips every stage; the store opens with the results in plain anndata
    again: list[str] = []
    pipeline.run(small_store, figures=tmp_path / "fig", log=again.append)
    assert all("already complete" in line for line in again) and len(again) == len(names)
    import anndata as ad

    plain = ad.read_zarr(small_store)
    np.testing.assert_allclose(plain.layers["velocity_S"], np.asarray(adata.layers["velocity_S"]))


def test_forced_single_stage_and_unknown_names(small_store, tmp_path):
    lines: list[str] = []
    pipeline.run(
        small_store, stages=["figures"], force=True, figures=tmp_path / "f2", log=lines.append
    )
    assert len(lines) == 1 and "figures" in lines[0] and "done" in lines[0]
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.run(small_store, stages=["umap_fit"])


def test_cli_run_writes_store_and_figures(tmp_path, pancreas_path, capsys):
    from dynadask.cli import main

    a = dyn.read_h5ad(pancreas_path)
    a[:600].copy().write_h5ad(tmp_path / "tiny.h5ad")
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "tiny.h5ad"), "--out", str(out), "--workers", "1"]
    assert main([*args, "--stages", "preprocess", "neighbors", "moments", "dynamics"]) == 0
    text = capsys.readouterr().out
    assert "dynamics" in text and "complete" in text and "reduceDimension" not in text
    # resuming: the next call converts nothing and runs only what is left of the workflow
    assert main([*args, "--stages", "dynamics", "figures"]) == 2  # figures need the UMAP
    assert "X_umap" in capsys.readouterr().err
    assert (out / "tiny.zarr").is_dir()
