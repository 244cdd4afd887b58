"""tl.gene_wise_confidence on a hand-made example: exact numbers, gene choice, errors."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest

import dynadask as dyn

GROUPS = np.repeat(["A", "B", "C"], 4)


def _adata(lazy: bool) -> ad.AnnData:
    # g0: up from A (1) to B (3), down from A to C (0); g1 has a NaN velocity; g2 is not scored
    x = np.zeros((12, 3))
    x[:, 0] = np.repeat([1.0, 3.0, 0.0], 4)
    x[:, 1] = np.repeat([2.0, 1.0, 5.0], 4)
    x[:, 2] = 1.0
    v = np.zeros((12, 3))
    v[:, 0] = [0.5, -0.5, 1.0, 2.0, 1.0, 1.0, -1.0, 3.0, 0, 0, 0, 0]
    v[:, 1] = np.linspace(-1, 1, 12)
    v[3, 1] = np.nan
    v[:, 2] = 1.0
    layers = {"M_s": x, "velocity_S": v}
    if lazy:
        layers = {k: da.from_array(a, chunks=(5, 3)) for k, a in layers.items()}
    obs = pd.DataFrame({"state": GROUPS}, index=[f"c{i}" for i in range(12)])
    return ad.AnnData(obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]), layers=layers)


@pytest.mark.parametrize("lazy", [False, True])
def test_hand_computed_confidence(lazy):
    a = _adata(lazy)
    dyn.tl.gene_wise_confidence(a, "state", {"A": ["B", "C"]}, genes=["g0", "g1"], V_threshold=50)
    # threshold of g0: median of |v| over all cells = (0.5 + 1) / 2 = 0.75
    # A -> B (induced): cells with v < 0.75 contradict it: A 2 of 4, B 1 of 4
    # A -> C (repressed): cells with v > -0.75 contradict it: A 4 of 4, C 4 of 4
    prog = a.var["avg_prog_confidence"].to_numpy()
    mature = a.var["avg_mature_confidence"].to_numpy()
    np.testing.assert_allclose(prog[0], ((1 - 2 / 4) + (1 - 4 / 4)) / 2)
    np.testing.assert_allclose(mature[0], ((1 - 1 / 4) + (1 - 4 / 4)) / 2)
    # a gene with a NaN velocity has no threshold: nothing contradicts it (dynamo's counts)
    assert prog[1] == 1.0 and mature[1] == 1.0
    assert np.isnan(prog[2]) and np.isnan(mature[2])
    table = a.uns["gene_wise_confidence"]
    assert list(table["gene"]) == ["g0", "g1", "g0", "g1"]
    assert list(table["progenitor"]) == ["A"] * 4
    assert list(table["mature"]) == ["B", "B", "C", "C"]
    np.testing.assert_allclose(table["prog_confidence"], [0.5, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(table["mature_confidence"], [0.75, 1.0, 0.0, 1.0])


def test_default_genes_use_for_dynamics_else_all():
    a = _adata(False)
    a.var["use_for_dynamics"] = [True, False, False]
    dyn.tl.gene_wise_confidence(a, "state", {"A": "B"}, V_threshold=50)
    assert list(a.uns["gene_wise_confidence"]["gene"]) == ["g0"]
    assert np.isnan(a.var["avg_prog_confidence"].to_numpy()[1:]).all()
    np.testing.assert_allclose(a.var["avg_prog_confidence"].to_numpy()[0], 0.5)
    b = _adata(False)
    dyn.tl.gene_wise_confidence(b, "state", {"A": "B"}, V_threshold=50)
    assert list(b.uns["gene_wise_confidence"]["gene"]) == ["g0", "g1", "g2"]
    # g2: same expression in A and B (not repressed -> induced), v = 1 >= threshold 1 everywhere
    assert b.var["avg_prog_confidence"].to_numpy()[2] == 1.0


def test_errors_name_the_fix():
    a = _adata(False)
    with pytest.raises(ValueError, match="'cluster' is not a column"):
        dyn.tl.gene_wise_confidence(a, "cluster", {"A": "B"})
    with pytest.raises(ValueError, match="lineage_dict is required"):
        dyn.tl.gene_wise_confidence(a, "state")
    with pytest.raises(ValueError, match="'D' is not a value"):
        dyn.tl.gene_wise_confidence(a, "state", {"A": ["B", "D"]})
    with pytest.raises(ValueError, match="none of the given genes"):
        dyn.tl.gene_wise_confidence(a, "state", {"A": "B"}, genes=["Gcg"])
    with pytest.raises(ValueError, match="'velocity_T' is missing: run dyn.tl.dynamics"):
        dyn.tl.gene_wise_confidence(a, "state", {"A": "B"}, vkey="velocity_T")
    assert "avg_prog_confidence" not in a.var
