"""The "10 minutes to dynamo" calls exactly as the guide writes them, in memory and on a store.

No call is added between the guide's calls: whatever a step needs (the kNN graph, moments)
it makes on demand, as dynamo does. After each call the keys that dynamo 1.5.3 leaves for
that step (checked against its reference outputs) must be there.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import dynadask as dyn

# what each of the guide's calls leaves, by slot; every key is in dynamo's reference file
AFTER = {
    "preprocess": {
        "obs": [
            "nGenes",
            "nCounts",
            "pass_basic_filter",
            "Size_Factor",
            "initial_cell_size",
            "spliced_Size_Factor",
            "unspliced_Size_Factor",
            "ntr",
        ],
        "var": ["nCells", "nCounts", "pass_basic_filter", "frac", "use_for_pca", "ntr"],
        "obsm": ["X_pca"],
        "uns": ["pp", "PCs", "pca_mean", "explained_variance_ratio_"],
    },
    "dynamics": {
        "var": [
            "use_for_dynamics",
            "beta",
            "gamma",
            "half_life",
            "gamma_b",
            "gamma_r2",
            "gamma_logLL",
        ],
        "layers": ["M_s", "M_u", "velocity_S"],
        "obsp": ["moments_con"],
        "uns": ["dynamics", "vel_params_names"],
    },
    "reduceDimension": {
        "obsm": ["X_umap"],
        "obsp": ["connectivities", "distances"],
        "uns": ["neighbors"],
    },
    "cell_velocities": {
        "obsm": ["velocity_umap"],
        "var": ["use_for_transition"],
        "uns": ["grid_velocity_umap"],
    },
}


def _keys(adata, slot: str) -> set[str]:
    return set(getattr(adata, slot).keys())


def _check_step(adata, step: str) -> None:
    for slot, wanted in AFTER[step].items():
        missing = sorted(set(wanted) - _keys(adata, slot))
        assert not missing, f"after {step}: {slot} lacks {missing}"


def test_expected_keys_are_dynamos(reference):
    for step, slots in AFTER.items():
        for slot, wanted in slots.items():
            assert set(wanted) <= _keys(reference, slot), (step, slot)


def _guide(adata, preprocess) -> dict:
    """The guide's calls, in its order, with a check of dynamo's keys after each.

    Returns what preprocessing left (feature genes, PCA), read before the next call.
    """
    preprocess(adata)
    _check_step(adata, "preprocess")
    preprocessed = _preprocessed(adata)
    dyn.tl.dynamics(adata)
    _check_step(adata, "dynamics")
    dyn.tl.reduceDimension(adata)
    _check_step(adata, "reduceDimension")
    dyn.tl.cell_velocities(adata)
    _check_step(adata, "cell_velocities")
    return preprocessed


def _preprocessed(adata) -> dict:
    return {
        "use_for_pca": adata.var["use_for_pca"].to_numpy().copy(),
        "X_pca": np.array(adata.obsm["X_pca"]),
    }


def _recipe(adata) -> None:
    dyn.pp.recipe_monocle(adata)


def _preprocessor(adata) -> None:
    dyn.pp.Preprocessor().preprocess_adata(adata, recipe="monocle")


def _check_parity(adata, reference) -> None:
    gamma = adata.var["gamma"].to_numpy(float)
    ref = reference.var["gamma"].to_numpy(float)
    both = np.isfinite(gamma) & np.isfinite(ref)
    assert both.sum() == np.isfinite(ref).sum() == 1456
    assert stats.spearmanr(gamma[both], ref[both])[0] > 0.9999
    v = np.asarray(adata.obsm["velocity_umap"])
    assert v.shape == (adata.n_obs, 2) and np.isfinite(v).all()
    assert np.median(np.linalg.norm(v, axis=1)) > 0


# The guide runs once per form and place; its results are only read by the tests below (the
# comparison of both preprocessing forms reuses what the guide's preprocessing left).
@pytest.fixture(scope="module")
def guide_in_memory():
    """``recipe_monocle`` and the guide's other calls on the in-memory pancreas data."""
    adata = dyn.sample_data.pancreas()
    preprocessed = _guide(adata, _recipe)
    return adata, preprocessed


@pytest.fixture(scope="module")
def guide_on_a_store(local_client, pancreas_path, tmp_path_factory):
    """``Preprocessor().preprocess_adata`` and the guide's other calls on a store."""
    path = tmp_path_factory.mktemp("guide") / "pancreas.zarr"
    dyn.io.convert(pancreas_path, path)
    adata = dyn.io.open(path)
    preprocessed = _guide(adata, _preprocessor)
    return adata, preprocessed, path


def test_guide_in_memory(guide_in_memory, reference):
    adata, _ = guide_in_memory
    _check_parity(adata, reference)


def test_guide_on_a_store(guide_on_a_store, reference):
    adata, _, path = guide_on_a_store
    _check_parity(adata, reference)
    stages = dyn.io.open(path).uns["dynadask"]["stages"]
    assert {
        "preprocess",
        "neighbors",
        "moments",
        "dynamics",
        "reduceDimension",
        "cell_velocities",
    } <= set(stages)


@pytest.mark.parametrize("where", ["memory", "store"])
def test_both_preprocessing_forms_agree(where, request, pancreas_path, tmp_path):
    """``recipe_monocle(adata)`` and ``Preprocessor().preprocess_adata`` leave the same data.

    The guide ran ``recipe_monocle`` in memory and ``Preprocessor`` on a store; the other form
    runs here on the same input.
    """
    if where == "memory":
        adata = dyn.sample_data.pancreas()
        form, guide = _preprocessor, request.getfixturevalue("guide_in_memory")[1]
    else:
        dyn.io.convert(pancreas_path, tmp_path / "p.zarr")
        adata = dyn.io.open(tmp_path / "p.zarr")
        form, guide = _recipe, request.getfixturevalue("guide_on_a_store")[1]
    form(adata)
    _check_step(adata, "preprocess")
    a, b = guide, _preprocessed(adata)
    np.testing.assert_array_equal(a["use_for_pca"], b["use_for_pca"])
    np.testing.assert_allclose(a["X_pca"], b["X_pca"], rtol=1e-5, atol=1e-5)


def test_notebook_follows_the_guide():
    """The 10-minute notebook makes the guide's calls, not a longer version of them."""
    import json
    import re
    from pathlib import Path

    book = Path(__file__).parent.parent / "notebooks" / "10_minutes_to_dynadask.ipynb"
    cells = json.loads(book.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    steps = re.findall(r"dyn\.(?:pp|tl)\.(\w+)\(", code)
    assert steps == [
        "Preprocessor",
        "dynamics",
        "reduceDimension",
        "cell_velocities",
        "cell_velocities",
    ]
