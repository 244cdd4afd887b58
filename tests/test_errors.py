"""Bad inputs across the public API: each gets a specific dynadask error naming the fix, and the
store is byte-identical afterwards (a hash of every file beside and in it).

One small processed store (300 pancreas cells: preprocessed, kNN graph, moments, dynamics,
computed in memory and converted) serves every case; each case opens it afresh, so a case
that wrote would show in the hashes.
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

    def lazy(self) -> ad.AnnData:
        return dyn.io.open(self.store)

    def counts(self) -> ad.AnnData:
        return self.raw.copy()


@pytest.fixture(scope="module")
def data(tmp_path_factory, pancreas_path) -> Data:
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
    return Data(store, raw)


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
        lambda d: dyn.pp.Preprocessor().preprocess_adata(d.lazy(), recipe="seurat"),
        E.InputError,
        "recipe 'seurat' is not available",
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


def test_the_battery_is_broad():
    assert len({c.name for c in CASES}) == len(CASES) >= 40
    assert all(issubclass(c.error, dyn.DynadaskError) for c in CASES)


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
