"""Bad inputs across the public API: each gets a specific dynadask error naming the fix, and the
store is byte-identical afterwards (a hash of every file beside and in it).

One small processed store (300 pancreas cells: preprocessed, kNN graph, moments, dynamics,
computed in memory and converted) serves the cases of ``pp``, ``tl``, ``io`` and the pipeline;
a second store beside it, 300 cells of dynamo's own pancreas outputs (embeddings, velocities,
the learned fields in umap and pca), serves ``vf``, ``pd``, ``ext`` and ``pl``; ``sim`` and
``est`` take arrays. Each case opens its store afresh, so a case that wrote would show in the
hashes of every file in their folder.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import zarr
from scipy import sparse

import dynadask as dyn
from dynadask import cli, pipeline
from dynadask.io import journal

N_CELLS = 300


@dataclass
class Data:
    store: Path
    raw: ad.AnnData  # the same cells as raw counts, in memory
    field: Path  # dynamo's outputs for 300 cells: embeddings, velocities, fields

    def lazy(self) -> ad.AnnData:
        return dyn.io.open(self.store)

    def vf(self) -> ad.AnnData:
        return dyn.io.open(self.field)

    def counts(self) -> ad.AnnData:
        return self.raw.copy()


# uns entries of the reference the cases do not read (smaller store, faster opens)
_UNUSED = ("dynamics", "fate_umap", "jacobian_pca", "reference_info_json", "grid_velocity_umap",
           "grid_velocity_pca", "layers_float32_mantissa_bits_kept", "neighbors", "pp")  # fmt: skip


def _field_store(folder: Path, ref: ad.AnnData) -> Path:
    keep = np.sort(np.random.default_rng(0).choice(ref.n_obs, N_CELLS, replace=False))
    sub = ref[keep].copy()
    for key in _UNUSED:
        sub.uns.pop(key, None)
    sub.write_h5ad(folder / "f.h5ad")
    return dyn.io.convert(folder / "f.h5ad", folder / "f.zarr", chunk_cells=100)


@pytest.fixture(scope="module")
def data(tmp_path_factory, pancreas_path, reference) -> Data:
    folder = tmp_path_factory.mktemp("errors")
    full = ad.read_h5ad(pancreas_path)
    keep = np.random.default_rng(0).choice(full.n_obs, N_CELLS, replace=False)
    raw = full[np.sort(keep)].copy()
    done = raw.copy()
    dyn.pp.recipe_monocle(done)
    dyn.tl.dynamics(done)  # kNN graph and moments on the way
    del done.uns["neighbors"]["indices"]  # as a store-backed run leaves it
    done.write_h5ad(folder / "p.h5ad")
    store = dyn.io.convert(folder / "p.h5ad", folder / "p.zarr", chunk_cells=100)
    return Data(store, raw, _field_store(folder, reference))


def _hashes(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.parent.rglob("*"))
        if p.is_file() and p.suffix != ".h5ad"
    }


def _dup_cells(a: ad.AnnData) -> ad.AnnData:
    a.obs_names = [a.obs_names[0], *a.obs_names[:-1]]
    return a


def _dup_genes(a: ad.AnnData) -> ad.AnnData:
    a.var_names = [a.var_names[0]] * 2 + list(a.var_names[2:])
    return a


def _spoil(a: ad.AnnData, layer: str, value: float) -> ad.AnnData:
    x = sparse.csr_matrix(a.layers[layer] if layer != "X" else a.X, dtype=np.float32)
    x.data[0] = value
    if layer == "X":
        a.X = x
    else:
        a.layers[layer] = x
    return a


def _labelled(times: list[float]) -> ad.AnnData:
    rng = np.random.default_rng(1)
    n = len(times)
    total = sparse.csr_matrix(rng.poisson(5, (n, 8)).astype(np.float32))
    a = ad.AnnData(
        X=total.copy(), layers={"new": total.multiply(0.3).ceil().tocsr(), "total": total}
    )
    a.obs["time"] = times
    return a


def _few(lazy: ad.AnnData, n: int = 20) -> ad.AnnData:
    return lazy[:n].copy()


def _locked(d: Data) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    lock = journal.lock_path(d.store)
    try:
        lock.write_text(f'{{"host": "{os.uname().nodename}", "pid": {sleeper.pid}, "time": "t"}}')
        dyn.tl.neighbors(d.lazy(), n_neighbors=10)
    finally:
        lock.unlink()
        sleeper.kill()
        sleeper.wait()


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Data], object]
    error: type[BaseException]
    match: str


E = dyn
CASES = [
    # --- pp ---
    Case(
        "pp duplicate cell names",
        lambda d: dyn.pp.recipe_monocle(_dup_cells(d.lazy())),
        E.InputError,
        "cell name.*obs_names_make_unique",
    ),
    Case(
        "pp duplicate gene names",
        lambda d: dyn.pp.recipe_monocle(_dup_genes(d.counts())),
        E.InputError,
        "gene name.*var_names_make_unique",
    ),
    Case(
        "pp NaN counts",
        lambda d: dyn.pp.recipe_monocle(_spoil(d.counts(), "spliced", np.nan)),
        E.CountsError,
        "NaN or infinite",
    ),
    Case(
        "pp infinite X",
        lambda d: dyn.pp.recipe_monocle(_spoil(d.counts(), "X", np.inf)),
        E.CountsError,
        "NaN or infinite",
    ),
    Case(
        "pp negative counts",
        lambda d: dyn.pp.recipe_monocle(_spoil(d.counts(), "unspliced", -1)),
        E.CountsError,
        "negative",
    ),
    Case(
        "pp unknown recipe",
        lambda d: dyn.pp.Preprocessor().preprocess_adata(d.lazy(), recipe="no_such_recipe"),
        E.InputError,
        "recipe 'no_such_recipe' is not available",
    ),
    Case(
        "pp no cells",
        lambda d: dyn.pp.recipe_monocle(d.counts()[:0].copy()),
        E.InputError,
        "0 cells",
    ),
    Case(
        "pp unknown experiment type",
        lambda d: dyn.pp.recipe_monocle(d.counts(), experiment_type="pulse"),
        E.InputError,
        "experiment_type",
    ),
    Case(
        "pp labelling without time column",
        lambda d: dyn.pp.recipe_monocle(_labelled([1.0] * 20), tkey="hours"),
        E.MissingKeyError,
        "tkey='hours'",
    ),
    Case(
        "pp normalize missing layer",
        lambda d: dyn.pp.normalize(d.lazy(), layers=["spliced2"]),
        E.MissingKeyError,
        "spliced2",
    ),
    Case(
        "pp size factors missing layer",
        lambda d: dyn.pp.calc_sz_factor(d.lazy(), layers=["nope"]),
        E.MissingKeyError,
        "nope",
    ),
    Case(
        "pp pca missing layer",
        lambda d: dyn.pp.pca(d.lazy(), layer="X_nope"),
        E.MissingKeyError,
        "X_nope.*normalize",
    ),
    Case(
        "pp size factor method",
        lambda d: dyn.pp.calc_sz_factor(d.lazy(), method="mode"),
        E.InputError,
        "size-factor method 'mode'",
    ),
    # --- tl.neighbors ---
    Case(
        "neighbors fewer cells than neighbours",
        lambda d: dyn.tl.neighbors(_few(d.lazy())),
        E.InputError,
        "n_neighbors=30 but the data have only 20 cells",
    ),
    Case(
        "neighbors duplicate cell names",
        lambda d: dyn.tl.neighbors(_dup_cells(d.lazy())),
        E.InputError,
        "cell name",
    ),
    Case(
        "neighbors unknown basis",
        lambda d: dyn.tl.neighbors(d.lazy(), basis="umap"),
        E.MissingKeyError,
        "X_umap",
    ),
    Case(
        "neighbors k below 2",
        lambda d: dyn.tl.neighbors(d.lazy(), n_neighbors=1),
        E.InputError,
        ">= 2",
    ),
    Case(
        "neighbors X_data rows",
        lambda d: dyn.tl.neighbors(d.lazy(), X_data=np.zeros((5, 3))),
        E.InputError,
        "X_data has 5 rows",
    ),
    Case(
        "neighbors X_data NaN",
        lambda d: dyn.tl.neighbors(d.lazy(), X_data=np.full((N_CELLS, 3), np.nan)),
        E.InputError,
        "NaN or infinite",
    ),
    Case(
        "neighbors no basis",
        lambda d: dyn.tl.neighbors(d.lazy(), basis=None),
        E.InputError,
        "basis='pca'",
    ),
    Case("store locked by another writer", _locked, E.StoreLockedError, "being written by"),
    # --- tl.moments ---
    Case(
        "moments fewer cells than neighbours",
        lambda d: dyn.tl.moments(_few(d.lazy()), group=False),
        E.InputError,
        "n_neighbors=30 but the data have only 20",
    ),
    Case(
        "moments duplicate cell names",
        lambda d: dyn.tl.moments(_dup_cells(d.lazy())),
        E.InputError,
        "cell name",
    ),
    Case(
        "moments missing layer",
        lambda d: dyn.tl.moments(d.lazy(), layers=["X_nope"]),
        E.MissingKeyError,
        "X_nope.*recipe_monocle",
    ),
    Case(
        "moments no normalised layers",
        lambda d: dyn.tl.moments(d.counts()),
        E.MissingKeyError,
        "no normalised expression layers",
    ),
    Case(
        "moments unknown group",
        lambda d: dyn.tl.moments(d.lazy(), group="batch"),
        E.MissingKeyError,
        "group 'batch'",
    ),
    Case(
        "moments conn shape",
        lambda d: dyn.tl.moments(d.lazy(), conn=sparse.eye(5)),
        E.InputError,
        "square",
    ),
    Case(
        "moments use_mnn", lambda d: dyn.tl.moments(d.lazy(), use_mnn=True), E.InputError, "use_mnn"
    ),
    Case(
        "moments unknown genes",
        lambda d: dyn.tl.moments(d.lazy(), genes=["NOT_A_GENE"]),
        E.MissingKeyError,
        "not in adata.var_names",
    ),
    # --- tl.dynamics ---
    Case(
        "dynamics duplicate cell names",
        lambda d: dyn.tl.dynamics(_dup_cells(d.lazy())),
        E.InputError,
        "cell name",
    ),
    Case(
        "dynamics unknown experiment",
        lambda d: dyn.tl.dynamics(d.lazy(), experiment_type="pulse"),
        E.InputError,
        "experiment_type 'pulse'",
    ),
    Case(
        "dynamics filter mode",
        lambda d: dyn.tl.dynamics(d.lazy(), filter_gene_mode="best"),
        E.InputError,
        "filter_gene_mode",
    ),
    Case(
        "dynamics unknown estimator",
        lambda d: dyn.tl.dynamics(d.lazy(), model="stochastic", est_method="ols"),
        E.InputError,
        "no estimator",
    ),
    Case(
        "dynamics unknown group",
        lambda d: dyn.tl.dynamics(d.lazy(), group="batch"),
        E.MissingKeyError,
        "group 'batch'",
    ),
    Case(
        "dynamics kin with one labelling time",
        lambda d: dyn.tl.dynamics(_labelled([2.0] * 30), experiment_type="kin", tkey="time"),
        E.InputError,
        "single value 2.0",
    ),
    Case(
        "dynamics labelling time NaN",
        lambda d: dyn.tl.dynamics(_labelled([1.0, np.nan] * 15), tkey="time"),
        E.InputError,
        "missing or infinite labelling times",
    ),
    Case(
        "dynamics labelling without splicing",
        lambda d: dyn.tl.dynamics(d.lazy(), experiment_type="kin"),
        E.InputError,
        "needs labelling layers",
    ),
    # --- tl.reduceDimension ---
    Case(
        "umap fewer cells than neighbours",
        lambda d: dyn.tl.reduceDimension(_few(d.lazy())),
        E.InputError,
        "n_neighbors=30 but the data have only 20",
    ),
    Case(
        "umap method",
        lambda d: dyn.tl.reduceDimension(d.lazy(), reduction_method="tSNE"),
        E.InputError,
        "tSNE",
    ),
    Case(
        "umap basis",
        lambda d: dyn.tl.reduceDimension(d.lazy(), basis="umap"),
        E.InputError,
        "unknown basis",
    ),
    Case(
        "umap option",
        lambda d: dyn.tl.reduceDimension(d.lazy(), spread_out=3),
        E.InputError,
        "unknown UMAP option",
    ),
    # --- tl.cell_velocities and confidences ---
    Case(
        "velocities unknown basis",
        lambda d: dyn.tl.cell_velocities(d.lazy(), basis="tsne"),
        E.MissingKeyError,
        "unknown basis.*X_tsne",
    ),
    Case(
        "velocities unknown method",
        lambda d: dyn.tl.cell_velocities(d.lazy(), basis="pca", method="euclid"),
        E.InputError,
        "unknown method 'euclid'",
    ),
    Case(
        "velocities before dynamics",
        lambda d: dyn.tl.cell_velocities(_drop(d.lazy(), "velocity_S"), basis="pca"),
        E.MissingKeyError,
        "dyn.tl.dynamics",
    ),
    Case(
        "velocities missing vkey",
        lambda d: dyn.tl.cell_velocities(d.lazy(), basis="pca", vkey="velocity_X"),
        E.MissingKeyError,
        "velocity_X",
    ),
    Case(
        "velocities missing ekey",
        lambda d: dyn.tl.cell_velocities(d.lazy(), basis="pca", ekey="M_x"),
        E.MissingKeyError,
        "M_x",
    ),
    Case(
        "velocities fewer cells than neighbours",
        lambda d: dyn.tl.cell_velocities(d.lazy(), basis="pca", n_neighbors=N_CELLS + 1),
        E.InputError,
        f"n_neighbors={N_CELLS + 1}",
    ),
    Case(
        "velocities X/V shapes",
        lambda d: dyn.tl.cell_velocities(
            d.lazy(), basis="pca", X=np.zeros((N_CELLS, 3)), V=np.zeros((N_CELLS, 4))
        ),
        E.InputError,
        "same shape",
    ),
    Case(
        "cell confidence method",
        lambda d: dyn.tl.cell_wise_confidence(d.lazy(), method="nope"),
        E.InputError,
        "unknown method 'nope'",
    ),
    Case(
        "cell confidence before dynamics",
        lambda d: dyn.tl.cell_wise_confidence(d.lazy(), vkey="velocity_Q"),
        E.MissingKeyError,
        "velocity_Q",
    ),
    Case(
        "gene confidence group",
        lambda d: dyn.tl.gene_wise_confidence(d.lazy(), "batch"),
        E.MissingKeyError,
        "group 'batch'",
    ),
    Case(
        "gene confidence lineage",
        lambda d: dyn.tl.gene_wise_confidence(d.lazy(), "clusters", {}),
        E.InputError,
        "lineage_dict",
    ),
    # --- vf ---
    Case(
        "vf unknown basis",
        lambda d: dyn.vf.VectorField(d.vf(), basis="tsne"),
        E.MissingKeyError,
        r"no obsm\['X_tsne'\].*reduceDimension",
    ),
    Case(
        "vf before cell_velocities",
        lambda d: dyn.vf.VectorField(_rm(d.vf(), "obsm", "velocity_umap"), basis="umap"),
        E.MissingKeyError,
        r"cell_velocities\(adata, basis='umap'\)",
    ),
    Case(
        "vf unknown method",
        lambda d: dyn.vf.VectorField(d.vf(), basis="umap", method="gp"),
        E.InputError,
        "unknown method 'gp'",
    ),
    Case(
        "vf unknown option",
        lambda d: dyn.vf.VectorField(d.vf(), basis="umap", lambdaa=3),
        E.OptionError,
        r"unknown SparseVFC option\(s\) \['lambdaa'\]",
    ),
    Case(
        "vf dims beyond the basis",
        lambda d: dyn.vf.VectorField(d.vf(), basis="umap", dims=5),
        E.InputError,
        "dims=5 asks for columns the 2-D",
    ),
    Case(
        "vf velocities all NaN",
        lambda d: dyn.vf.VectorField(_set(d.vf(), "obsm", "velocity_umap", np.nan), basis="umap"),
        E.InputError,
        f"only 0 of {N_CELLS} cells have finite velocities",
    ),
    Case(
        "vf coordinates NaN",
        lambda d: dyn.vf.VectorField(_set(d.vf(), "obsm", "X_umap", np.nan), basis="umap"),
        E.InputError,
        f"{N_CELLS} cells with NaN or infinite coordinates",
    ),
    Case(
        "vf normalize",
        lambda d: dyn.vf.VectorField(d.vf(), basis="umap", normalize=True),
        E.InputError,
        "normalize=True",
    ),
    Case(
        "vf gene space, genes not in the data",
        lambda d: dyn.vf.VectorField(d.vf(), genes=["NOTAGENE"]),
        E.InputError,
        "not in var_names",
    ),
    Case(
        "speed before VectorField",
        lambda d: dyn.vf.speed(_rm(d.vf(), "uns", "VecFld_umap"), basis="umap"),
        E.MissingKeyError,
        r"dyn.vf.VectorField\(adata, basis='umap'\)",
    ),
    Case(
        "divergence unknown basis",
        lambda d: dyn.vf.divergence(d.vf(), basis="tsne"),
        E.MissingKeyError,
        "VecFld_tsne",
    ),
    Case(
        "curl numerical method",
        lambda d: dyn.vf.curl(d.vf(), basis="umap", method="numerical"),
        E.InputError,
        "analytical",
    ),
    Case(
        "torsion of a 2-D field",
        lambda d: dyn.vf.torsion(d.vf(), basis="umap"),
        E.InputError,
        "3-D fields",
    ),
    Case(
        "acceleration before VectorField",
        lambda d: dyn.vf.acceleration(_rm(d.vf(), "uns", "VecFld_pca"), basis="pca"),
        E.MissingKeyError,
        "VecFld_pca",
    ),
    Case(
        "curvature in gene space without a gene-space field",
        lambda d: dyn.vf.curvature(d.vf(), basis=None),
        E.MissingKeyError,
        "no gene-space field",
    ),
    Case(
        "animated fates never predicted",
        lambda d: dyn.mv.animate_fates(d.vf(), basis="pca"),
        E.MissingKeyError,
        r"dyn.pd.fate\(adata, init_cells, basis='pca'\)",
    ),
    Case(
        "animation without frames",
        lambda d: dyn.mv.animate_fates(d.vf(), basis="umap", n_steps=0),
        E.InputError,
        "at least one frame",
    ),
    Case(
        "topography before VectorField",
        lambda d: dyn.vf.topography(_rm(d.vf(), "uns", "VecFld_umap"), basis="umap"),
        E.MissingKeyError,
        "learn the field first",
    ),
    Case(
        "jacobian genes not in the data",
        lambda d: dyn.vf.jacobian(d.vf(), regulators=["NOTAGENE"], effectors=["Pax4"]),
        E.InputError,
        r"regulators \['NOTAGENE'\] not in adata.var_names",
    ),
    Case(
        "jacobian before VectorField",
        lambda d: dyn.vf.jacobian(_rm(d.vf(), "uns", "VecFld_pca"), regulators=["Pax4"]),
        E.MissingKeyError,
        "VecFld_pca",
    ),
    Case(
        "sensitivity genes not in the data",
        lambda d: dyn.vf.sensitivity(d.vf(), regulators=["Pax4"], effectors=["NOPE"]),
        E.InputError,
        r"effectors \['NOPE'\]",
    ),
    Case(
        "hessian genes not in the data",
        lambda d: dyn.vf.hessian(
            d.vf(), regulators=["NOPE"], coregulators=["Pax4"], effector=["Pax4"]
        ),
        E.InputError,
        r"regulators \['NOPE'\]",
    ),
    Case(
        "laplacian unknown basis",
        lambda d: dyn.vf.laplacian(d.vf(), basis="tsne"),
        E.MissingKeyError,
        "VecFld_tsne",
    ),
    Case(
        "rank_velocity_genes unknown group",
        lambda d: dyn.vf.rank_velocity_genes(d.vf(), groups="batch"),
        E.MissingKeyError,
        "groups='batch' is not an obs column",
    ),
    Case(
        "rank_genes unknown array",
        lambda d: dyn.vf.rank_genes(d.vf(), arr_key="nope"),
        E.MissingKeyError,
        "neither a layer nor a var column",
    ),
    Case(
        "rank_acceleration_genes before acceleration",
        lambda d: dyn.vf.rank_acceleration_genes(d.vf(), groups="clusters"),
        E.MissingKeyError,
        r"dyn.vf.acceleration\(adata, basis='pca'\)",
    ),
    Case(
        "rank_jacobian_genes before jacobian",
        lambda d: dyn.vf.rank_jacobian_genes(d.vf(), groups="clusters"),
        E.MissingKeyError,
        "run dyn.vf.jacobian",
    ),
    Case(
        "SparseVFC shapes",
        lambda d: dyn.vf.SparseVFC(np.zeros((10, 2)), np.zeros((9, 2))),
        E.InputError,
        "same N x d shape",
    ),
    # --- pd ---
    Case(
        "fate init cells not in the data",
        lambda d: dyn.pd.fate(d.vf(), init_cells=["nope"], basis="umap"),
        E.InputError,
        "none of init_cells",
    ),
    Case(
        "fate init cells partly not in the data",
        lambda d: (lambda a: dyn.pd.fate(a, init_cells=[a.obs_names[0], "nope"], basis="umap"))(
            d.vf()
        ),
        E.InputError,
        r"1 of init_cells are not cells of this AnnData \(e.g. \['nope'\]\)",
    ),
    Case(
        "fate init positions out of range",
        lambda d: dyn.pd.fate(d.vf(), init_cells=[N_CELLS], basis="umap"),
        E.InputError,
        rf"positions must lie in \[0, {N_CELLS}\)",
    ),
    Case(
        "fate init states of the wrong dimension",
        lambda d: dyn.pd.fate(d.vf(), None, init_states=np.zeros((2, 3)), basis="umap"),
        E.InputError,
        "init_states has 3 columns but obsm has 2",
    ),
    Case(
        "fate init states NaN",
        lambda d: dyn.pd.fate(d.vf(), None, init_states=np.full((2, 2), np.nan), basis="umap"),
        E.InputError,
        "4 NaN/infinite",
    ),
    Case(
        "fate before VectorField",
        lambda d: dyn.pd.fate(_rm(d.vf(), "uns", "VecFld_umap"), init_cells=[0], basis="umap"),
        E.MissingKeyError,
        "VecFld_umap",
    ),
    Case(
        "fate unknown direction",
        lambda d: dyn.pd.fate(d.vf(), init_cells=[0], basis="umap", direction="up"),
        E.InputError,
        "unknown direction 'up'",
    ),
    Case(
        "fate unknown basis",
        lambda d: dyn.pd.fate(d.vf(), init_cells=[0], basis="tsne"),
        E.MissingKeyError,
        r"no obsm\['X_tsne'\]",
    ),
    Case(
        "fate_bias before fate",
        lambda d: dyn.pd.fate_bias(d.vf(), group="clusters"),
        E.MissingKeyError,
        r"dyn.pd.fate\(adata, init_cells",
    ),
    Case(
        "fate_bias unknown group",
        lambda d: dyn.pd.fate_bias(d.vf(), group="batch"),
        E.MissingKeyError,
        r"no obs\['batch'\]",
    ),
    # --- ext ---
    Case(
        "ddhodge unknown basis",
        lambda d: dyn.ext.ddhodge(d.vf(), basis="tsne"),
        E.MissingKeyError,
        "VecFld_tsne",
    ),
    Case(
        "ddhodge before VectorField",
        lambda d: dyn.ext.ddhodge(_rm(d.vf(), "uns", "VecFld_umap"), basis="umap"),
        E.MissingKeyError,
        r"dyn.vf.VectorField\(adata, basis='umap'\)",
    ),
    Case(
        "ddhodge adjmethod",
        lambda d: dyn.ext.ddhodge(d.vf(), basis="umap", adjmethod="naive"),
        E.InputError,
        "unknown adjmethod 'naive'",
    ),
    Case(
        "ddhodge sampling method",
        lambda d: dyn.ext.ddhodge(d.vf(), basis="umap", sampling_method="foo"),
        E.InputError,
        "unknown sampling_method 'foo'",
    ),
    Case(
        "ddhodge X_data rows",
        lambda d: dyn.ext.ddhodge(d.vf(), np.zeros((5, 2)), basis="umap"),
        E.InputError,
        "X_data has shape",
    ),
    # --- pl ---
    Case(
        "scatters unknown colour",
        lambda d: dyn.pl.scatters(d.vf(), color="nope"),
        E.MissingKeyError,
        "color 'nope' is neither",
    ),
    Case(
        "streamline_plot unknown basis",
        lambda d: dyn.pl.streamline_plot(d.vf(), basis="tsne"),
        E.MissingKeyError,
        r"velocity_tsne' is missing: run dyn.tl.cell_velocities\(adata, basis='tsne'\)",
    ),
    Case(
        "cell_wise_vectors before cell_velocities",
        lambda d: dyn.pl.cell_wise_vectors(_rm(d.vf(), "obsm", "velocity_umap"), basis="umap"),
        E.MissingKeyError,
        "cell_velocities",
    ),
    Case(
        "pl.topography before VectorField",
        lambda d: dyn.pl.topography(
            _rm(_rm(d.vf(), "uns", "VecFld_umap"), "uns", "topography_umap"), basis="umap"
        ),
        E.MissingKeyError,
        "VectorField",
    ),
    Case(
        "pl.jacobian before jacobian",
        lambda d: dyn.pl.jacobian(d.vf()),
        E.MissingKeyError,
        "jacobian",
    ),
    Case(
        "pl.fate before fate",
        lambda d: dyn.pl.fate(d.vf(), basis="umap"),
        E.MissingKeyError,
        "dyn.pd.fate",
    ),
    Case(
        "phase_portraits genes not in the data",
        lambda d: dyn.pl.phase_portraits(d.vf(), genes=["NOTAGENE"]),
        E.InputError,
        "not in adata.var_names",
    ),
    Case(
        "plot_energy before VectorField",
        lambda d: dyn.pl.plot_energy(_rm(d.vf(), "uns", "VecFld_umap"), basis="umap"),
        E.MissingKeyError,
        "learn the field first",
    ),
    Case(
        "loading before pca",
        lambda d: dyn.pl.loading(_rm(d.vf(), "uns", "PCs")),
        E.MissingKeyError,
        "PCA loadings",
    ),
    # --- sim ---
    Case(
        "simulate unknown model",
        lambda d: dyn.sim.simulate("nope", 100),
        E.InputError,
        "unknown model 'nope'",
    ),
    Case(
        "simulate no cells",
        lambda d: dyn.sim.simulate("independent", 0),
        E.InputError,
        "n_cells must be a positive",
    ),
    Case(
        "simulate unknown experiment",
        lambda d: dyn.sim.simulate("independent", 100, experiment_type="pulse"),
        E.InputError,
        "unknown experiment_type 'pulse'",
    ),
    Case(
        "simulate unknown method",
        lambda d: dyn.sim.simulate("independent", 100, method="euler"),
        E.InputError,
        "unknown method 'euler'",
    ),
    Case(
        "simulate negative rate",
        lambda d: dyn.sim.simulate("independent", 100, params={"gamma": [-1.0]}, n_genes=1),
        E.InputError,
        "non-negative",
    ),
    Case(
        "simulate_store onto a store",
        lambda d: dyn.sim.simulate_store(d.store, "independent", 100),
        E.StoreExistsError,
        "overwrite=True",
    ),
    # --- est ---
    Case(
        "SteadyState unknown model",
        lambda d: dyn.est.csc.SteadyState(model="x"),
        E.InputError,
        "unknown steady-state fit",
    ),
    Case(
        "SteadyState intercept with gmm",
        lambda d: dyn.est.csc.SteadyState(intercept=True),
        E.InputError,
        "intercept=True",
    ),
    Case(
        "SteadyState shapes",
        lambda d: dyn.est.csc.SteadyState().fit(np.ones((10, 3)), np.ones((9, 3))),
        E.InputError,
        r"u \(10, 3\), s \(9, 3\)",
    ),
    Case(
        "SteadyState gmm without second moments",
        lambda d: dyn.est.csc.SteadyState().fit(np.ones((10, 3)), np.ones((10, 3))),
        E.InputError,
        "second moments",
    ),
    Case(
        "Dynamical shapes",
        lambda d: dyn.est.csc.Dynamical().fit(np.ones((10, 3)), np.ones((10, 4))),
        E.InputError,
        "one shape",
    ),
    Case(
        "Labelling unknown experiment",
        lambda d: dyn.est.tsc.Labelling(experiment_type="pulse"),
        E.InputError,
        "no labelling estimator",
    ),
    # --- io ---
    Case(
        "convert onto an existing store",
        lambda d: dyn.io.convert(d.store.with_name("p.h5ad"), d.store),
        E.StoreExistsError,
        "overwrite=True",
    ),
    Case(
        "read_loom missing file",
        lambda d: dyn.io.read_loom(d.store.with_name("none.loom")),
        E.StoreNotFoundError,
        "no such file",
    ),
    # --- io and the pipeline ---
    Case(
        "open missing store",
        lambda d: dyn.io.open(d.store.with_name("none.zarr")),
        E.StoreNotFoundError,
        "no store at",
    ),
    Case(
        "open a plain zarr group",
        lambda d: dyn.io.open(_plain(d)),
        E.StoreError,
        "not an AnnData store",
    ),
    Case(
        "open unknown order",
        lambda d: dyn.io.open(d.store, order="random"),
        E.InputError,
        "order must be",
    ),
    Case(
        "convert missing input",
        lambda d: dyn.io.convert(d.store.with_name("no.h5ad"), d.store.with_name("x.zarr")),
        E.StoreNotFoundError,
        "no such file",
    ),
    Case(
        "read unknown kind",
        lambda d: dyn.io.read(_text_file(d)),
        E.InputError,
        "cannot tell the kind",
    ),
    Case(
        "reorder with a wrong order",
        lambda d: dyn.io.reorder(d.lazy(), order=np.arange(5)),
        E.InputError,
        "order has shape",
    ),
    Case(
        "commit of a wrong shape",
        lambda d: dyn.io.commit(d.lazy(), "x", layers={"y": np.zeros((3, 3))}),
        E.InputError,
        "does not describe these cells",
    ),
    Case(
        "pipeline unknown stage",
        lambda d: pipeline.run(d.store, stages=["velocity"]),
        E.InputError,
        "unknown stage",
    ),
]


def _set(a: ad.AnnData, slot: str, key: str, value: float) -> ad.AnnData:
    """``a`` with ``<slot>[key]`` filled with ``value`` (in memory: the store keeps it)."""
    getattr(a, slot)[key] = np.full(getattr(a, slot)[key].shape, value)
    return a


def _rm(a: ad.AnnData, slot: str, key: str) -> ad.AnnData:
    """``a`` without ``<slot>[key]`` (in memory: the store keeps it)."""
    del getattr(a, slot)[key]
    return a


def _drop(a: ad.AnnData, layer: str) -> ad.AnnData:
    del a.layers[layer]
    return a


def _plain(d: Data) -> Path:
    path = d.store.parent.parent / "plain" / "g.zarr"
    zarr.open_group(str(path), mode="w")
    return path


def _text_file(d: Data) -> Path:
    path = d.store.parent.parent / "plain" / "notes.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text("not data")
    return path


def _namespace(case: Case) -> str:
    """The public namespace a case calls (from the source of its lambda)."""
    import inspect

    source = inspect.getsource(case.call)
    found = [ns for ns in NAMESPACES if f"dyn.{ns}." in source]
    return found[0] if found else "other"


NAMESPACES = ("pp", "tl", "vf", "pd", "ext", "pl", "sim", "est", "io", "mv")


def test_the_battery_is_broad():
    assert len({c.name for c in CASES}) == len(CASES) >= 40
    assert all(issubclass(c.error, dyn.DynadaskError) for c in CASES)
    per = {ns: sum(_namespace(c) == ns for c in CASES) for ns in NAMESPACES}
    assert all(n >= 2 for n in per.values()), per


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_answered_and_the_store_untouched(data, case):
    before = _hashes(data.store)
    with pytest.raises(case.error, match=case.match) as info:
        case.call(data)
    assert isinstance(info.value, dyn.DynadaskError)
    assert _hashes(data.store) == before


def test_the_command_line_answers_with_one_line_and_status_2(data, capsys, monkeypatch):
    assert cli.main(["info", str(data.store.with_name("none.zarr"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dynadask info: error: no store at") and "\n" not in err
    assert cli.main(["run", "x.h5ad", "--stages", "velocity"]) == 2  # before any cluster
    err = capsys.readouterr().err.strip()
    assert "unknown stage(s) ['velocity']" in err and "\n" not in err

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(data.store))

    monkeypatch.setattr(cli, "store_info", full)
    assert cli.main(["info", str(data.store)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no space left" in err and "stages already complete are kept" in err
