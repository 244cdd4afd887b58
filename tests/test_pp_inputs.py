"""pp/_inputs: which counts, layers and cells preprocessing reads; the experiment record."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.pp import _inputs
from dynadask.pp._pending import Pending


def _counts(n=40, g=5, seed=0):
    rng = np.random.default_rng(seed)
    return sparse.csr_matrix(rng.poisson(2.0, (n, g)).astype(np.float32))


def _adata(layers, n=40, g=5, x=True, obs=None):
    mats = {name: _counts(n, g, seed) for seed, name in enumerate(layers, start=1)}
    return ad.AnnData(
        X=_counts(n, g) if x else None,
        layers=mats,
        obs=obs if obs is not None else pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )


def test_x_counts_falls_back_to_spliced_then_total():
    a = _adata(["spliced", "total"])
    assert _inputs.x_counts(a) is a.X
    a = _adata(["unspliced", "spliced", "total"], x=False)
    assert _inputs.x_counts(a) is a.layers["spliced"]
    a = _adata(["new", "total"], x=False)
    assert _inputs.x_counts(a) is a.layers["total"]
    with pytest.raises(ValueError, match="no X and no 'spliced' or 'total'"):
        _inputs.x_counts(_adata(["unspliced"], x=False))


def test_raw_layers_order_selection_and_errors():
    a = _adata(["sl", "total", "unspliced", "new", "spliced", "ambiguous"])
    assert list(_inputs.raw_layers(a)) == ["X", "spliced", "unspliced", "new", "total", "sl"]
    assert list(_inputs.raw_layers(a, "new")) == ["new"]
    got = _inputs.raw_layers(a, ["total", "X"])
    assert list(got) == ["X", "total"] and got["total"] is a.layers["total"]
    no_x = _adata(["spliced"], x=False)
    assert _inputs.raw_layers(no_x, ["X"])["X"] is no_x.layers["spliced"]
    with pytest.raises(KeyError, match=r"\['uu'\] not in adata.layers"):
        _inputs.raw_layers(a, ["X", "uu"])


def test_total_layers_per_labelling_design():
    assert _inputs.total_layers(_adata(["uu", "ul", "su", "sl", "new", "total"])) == [
        "uu",
        "ul",
        "su",
        "sl",
    ]
    assert _inputs.total_layers(_adata(["new", "total", "spliced"])) == ["total"]
    assert _inputs.total_layers(_adata(["new", "spliced", "unspliced"])) is None


def _labelled(times, rate, n_per=30, g=8, seed=0, split=False):
    """new/total (or uu/ul/su/sl) counts whose labelled fraction is 1 - exp(-rate t)."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.asarray(times, dtype=float), n_per)
    total = rng.poisson(20.0, (t.size, g))
    new = rng.binomial(total, (1 - np.exp(-rate * t))[:, None])
    obs = pd.DataFrame({"hours": t}, index=[f"c{i}" for i in range(t.size)])
    if not split:
        layers = {"new": new, "total": total}
    else:
        ul = rng.binomial(new, 0.4)
        uu = rng.binomial(total - new, 0.4)
        layers = {"uu": uu, "ul": ul, "su": total - new - uu, "sl": new - ul}
    out = ad.AnnData(X=sparse.csr_matrix(total.astype(np.float32)), obs=obs)
    for k, v in layers.items():
        out.layers[k] = sparse.csr_matrix(v.astype(np.float32))
    return out


def test_experiment_info_conventional():
    info = _inputs.experiment_info(_adata(["spliced", "unspliced", "ambiguous"]))
    assert info == {
        "tkey": None,
        "has_splicing": True,
        "has_labeling": False,
        "has_protein": False,
        "splicing_labeling": False,
        "experiment_type": "conventional",
        "experiment_layers": ["X", "spliced", "unspliced"],
        "experiment_total_layers": None,
    }


@pytest.mark.parametrize("split", [False, True])
def test_experiment_info_labelling_types(split):
    kin = _inputs.experiment_info(_labelled([1, 2, 4], 0.3, split=split), tkey="hours")
    assert kin["experiment_type"] == "kin" and kin["tkey"] == "hours"
    assert kin["has_labeling"] and kin["splicing_labeling"] == split == kin["has_splicing"]
    # a falling labelled fraction (a chase): deg
    chase = _labelled([1, 2, 4], 0.3, split=split)
    chase.obs["hours"] = 5 - chase.obs["hours"]
    assert _inputs.experiment_info(chase, tkey="hours")["experiment_type"] == "deg"
    one = _labelled([2], 0.3, split=split)
    assert _inputs.experiment_info(one, tkey="hours")["experiment_type"] == "one-shot"
    given = _inputs.experiment_info(one, tkey="hours", experiment_type="mix_std_stm")
    assert given["experiment_type"] == "mix_std_stm"
    expected = ["uu", "ul", "su", "sl"] if split else ["total"]
    assert kin["experiment_total_layers"] == expected


def test_experiment_info_time_column_checks():
    a = _labelled([1, 2], 0.3)
    a.obs["time"] = a.obs.pop("hours")
    with pytest.warns(UserWarning, match=r"using obs\['time'\]"):
        assert _inputs.experiment_info(a)["tkey"] == "time"
    with pytest.raises(ValueError, match="tkey='nope' is not an obs column"):
        _inputs.experiment_info(a, tkey="nope")
    minutes = _labelled([30, 120], 0.01)
    with pytest.warns(UserWarning, match="above 60"):
        _inputs.experiment_info(minutes, tkey="hours")
    with pytest.raises(ValueError, match="unknown experiment_type 'pulse'"):
        _inputs.experiment_info(_adata(["spliced", "unspliced"]), experiment_type="pulse")


def test_labelled_fraction_reads_dask_layers():
    a = _labelled([1, 2, 4], 0.3)
    for k in ("new", "total"):
        a.layers[k] = da.from_array(a.layers[k], chunks=(25, -1))
    assert _inputs.experiment_info(a, tkey="hours")["experiment_type"] == "kin"


@pytest.fixture
def store(tmp_path):
    a = _adata(["spliced", "unspliced"], n=30)
    a.write_h5ad(tmp_path / "a.h5ad")
    dyn.io.convert(tmp_path / "a.h5ad", tmp_path / "a.zarr")
    return dyn.io.open(tmp_path / "a.zarr")


def test_fit_cells_in_memory_and_on_a_store(store):
    memory = _adata(["spliced"], n=30)
    memory.obs["pass_basic_filter"] = np.arange(30) % 3 > 0
    assert _inputs.fit_cells(memory) is None  # in memory the failing cells are dropped
    assert _inputs.fit_cells(store) is None  # no flags yet: every cell
    flags = np.arange(30) % 3 > 0
    store.obs["pass_basic_filter"] = flags
    np.testing.assert_array_equal(_inputs.fit_cells(store), flags)
    assert _inputs.fit_cells(store, keep_filtered=True) is None
    # a pending column (this stage's filter) wins over the stored one
    pending = Pending(obs={"pass_basic_filter": np.arange(30) < 20})
    np.testing.assert_array_equal(_inputs.fit_cells(store, pending), np.arange(30) < 20)
    assert _inputs.fit_cells(store, Pending(obs={"pass_basic_filter": np.ones(30, bool)})) is None
    with pytest.raises(ValueError, match="no cell passes the basic filter"):
        _inputs.fit_cells(store, Pending(obs={"pass_basic_filter": np.zeros(30, bool)}))


def test_subset_cells_drops_in_memory_and_flags_on_a_store(store):
    memory = _adata(["spliced"], n=30)
    mask = np.arange(30) % 4 != 0
    assert not _inputs.subset_cells(memory, mask, keep_filtered=True)
    assert not _inputs.subset_cells(memory, np.ones(30, bool), keep_filtered=False)
    assert memory.n_obs == 30
    assert _inputs.subset_cells(memory, mask, keep_filtered=False)
    assert list(memory.obs_names) == [f"c{i}" for i in range(30) if i % 4]
    with pytest.warns(UserWarning, match="8 cells fail the basic filter"):
        assert not _inputs.subset_cells(store, mask, keep_filtered=False)
    assert store.n_obs == 30
    with pytest.raises(ValueError, match="no cell passes the cell filter"):
        _inputs.subset_cells(memory, np.zeros(memory.n_obs, bool), keep_filtered=False)
