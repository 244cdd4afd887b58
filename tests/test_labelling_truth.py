"""Labelling rates in absolute units through the documented path (recipe_monocle, dynamics).

Cells at steady state, library size varying from cell to cell (sd of log size 0.5),
labelling times spanning 8x; nothing is normalised by hand.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn

SIZE_SD = 0.5
# design: labelling (kin, one-shot), chase (deg) or stimulation (mix_std_stm) times, bound
DESIGNS = {
    "one-shot": ((2.0,), 0.1),
    "kin": ((1.0, 2.0, 4.0, 8.0), 0.1),
    "deg": ((0.0, 1.0, 2.0, 4.0, 8.0), 0.1),
    # the unlabelled RNA left after the longest time carries gamma: 4 h keeps enough of it
    "mix_std_stm": ((0.0, 0.5, 1.0, 2.0, 4.0), 0.05),  # tests/test_est_mixed.py's bound
}


def _cells(design, splicing=False, n=1500, genes=40, seed=0):
    a = dyn.sim.simulate_steady_labelling(
        design,
        n,
        n_genes=genes,
        times=DESIGNS[design][0],
        splicing=splicing,
        size_sd=SIZE_SD,
        seed=seed,
    )
    assert np.std(np.log(a.obs["library_size"])) >= SIZE_SD * 0.9
    return a


def _run(a, design, **pp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.pp.recipe_monocle(a, tkey="time", experiment_type=design, **pp)
        dyn.tl.dynamics(a, model="deterministic", tkey="time", experiment_type=design)
    return np.abs(a.var["gamma"].to_numpy() / a.var["true_gamma"].to_numpy() - 1)


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("splicing", [False, True], ids=["new_total", "uu_ul_su_sl"])
def test_gamma_in_absolute_units_through_recipe_and_dynamics(design, splicing):
    a = _cells(design, splicing)
    err = _run(a, design)
    assert a.uns["dynamics"]["experiment_type"] == design
    assert np.median(err) <= DESIGNS[design][1], np.median(err)
    used = a.uns["pp"]["size_factors"]
    assert {used[k] for k in used if k != "X"} == {"total_Size_Factor"}


def test_per_layer_size_factors_bias_kin_and_are_kept_on_request():
    # dynamo's per-layer factors: the new RNA's own library size grows with labelling time
    err = _run(_cells("kin"), "kin", size_factor_per_layer=True)
    assert np.median(err) > 1


def test_normalised_layers_keep_new_over_total():
    a = _cells("kin", n=400, genes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.pp.recipe_monocle(a, tkey="time", experiment_type="kin")
    sf = a.obs["total_Size_Factor"].to_numpy()[:, None]
    for name in ("new", "total"):
        np.testing.assert_allclose(
            a.layers[f"X_{name}"].toarray(), a.layers[name].toarray() / sf, rtol=1e-6
        )
    total_cells = a.layers["total"].sum(1).A1
    np.testing.assert_allclose(sf.ravel(), total_cells / np.median(total_cells), rtol=1e-6)
    old = _cells("kin", n=400, genes=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dyn.pp.recipe_monocle(old, tkey="time", experiment_type="kin", size_factor_per_layer=True)
    own = old.obs["new_Size_Factor"].to_numpy()[:, None]
    np.testing.assert_allclose(old.layers["X_new"].toarray(), old.layers["new"].toarray() / own)
    assert old.uns["pp"]["size_factors"]["new"] == "new_Size_Factor"


def test_normalize_applies_the_same_rule():
    a = _cells("deg", splicing=True, n=300, genes=8)
    for k in ("uu", "ul", "su", "sl"):
        a.layers["spliced" if k == "su" else "unspliced" if k == "uu" else k] = a.layers[k]
    a.layers["spliced"] = a.layers["su"] + a.layers["sl"]
    a.layers["unspliced"] = a.layers["uu"] + a.layers["ul"]
    dyn.pp.normalize(a)
    sf = a.obs["total_Size_Factor"].to_numpy()[:, None]
    for name in ("uu", "ul", "su", "sl", "spliced", "unspliced"):
        np.testing.assert_allclose(
            a.layers[f"X_{name}"].toarray(), a.layers[name].toarray() / sf, rtol=1e-6
        )
    b = a.copy()
    dyn.pp.normalize(b, size_factor_per_layer=True)
    for name in ("ul", "spliced"):
        own = b.obs[f"{name}_Size_Factor"].to_numpy()[:, None]
        np.testing.assert_allclose(
            b.layers[f"X_{name}"].toarray(), b.layers[name].toarray() / own, rtol=1e-6
        )
    # conventional data keep their own factors
    c = a.copy()
    for k in ("uu", "ul", "su", "sl"):
        del c.layers[k]
    dyn.pp.normalize(c)
    own = c.obs["spliced_Size_Factor"].to_numpy()[:, None]
    np.testing.assert_allclose(
        c.layers["X_spliced"].toarray(), c.layers["spliced"].toarray() / own, rtol=1e-6
    )


def test_store_backed_gives_the_in_memory_numbers(tmp_path):
    memory = _cells("kin", n=1200, genes=30, seed=3)
    path = tmp_path / "kin.h5ad"
    memory.copy().write_h5ad(path)
    err = _run(memory, "kin")
    assert np.median(err) <= 0.1
    dyn.io.convert(path, tmp_path / "kin.zarr", chunk_cells=500)
    store = dyn.io.open(tmp_path / "kin.zarr")
    _run(store, "kin")
    store = dyn.io.open(tmp_path / "kin.zarr")
    np.testing.assert_allclose(
        store.obs["total_Size_Factor"], memory.obs["total_Size_Factor"], rtol=1e-6
    )
    x_new = store.layers["X_new"][:].compute()
    x_new = x_new.toarray() if sparse.issparse(x_new) else np.asarray(x_new)
    np.testing.assert_allclose(x_new, memory.layers["X_new"].toarray(), rtol=1e-5)
    np.testing.assert_allclose(store.var["gamma"], memory.var["gamma"], rtol=1e-5)


def test_simulator_library_size_and_errors():
    a = dyn.sim.simulate_steady_labelling("kin", 200, n_genes=5, size_sd=0.0)
    np.testing.assert_allclose(a.obs["library_size"], 1.0)
    assert set(a.layers) == {"new", "total"}
    assert (a.layers["new"].toarray() <= a.layers["total"].toarray()).all()
    np.testing.assert_allclose(a.X.toarray(), a.layers["total"].toarray())
    b = dyn.sim.simulate_steady_labelling("deg", 200, n_genes=5, splicing=True)
    assert set(b.layers) == {"uu", "ul", "su", "sl"}
    with pytest.raises(ValueError, match="experiment_type"):
        dyn.sim.simulate_steady_labelling("pulse", 10)
    with pytest.raises(ValueError, match="times"):
        dyn.sim.simulate_steady_labelling("kin", 10, times=[-1.0])
