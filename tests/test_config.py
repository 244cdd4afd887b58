"""dyn.configuration.DynamoAdataConfig: dynamo's data store modes and the switches they set."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn

SECOND = {"M_ss", "M_us", "M_uu"}


def _tiny(seed=0) -> ad.AnnData:
    """200 cells x 12 genes with moments (an identity smoothing graph) ready for dynamics."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.2, 1.0, 12)
    u = rng.poisson(5.0, (200, 12)).astype(np.float32)
    s = rng.poisson(5.0 / gamma, (200, 12)).astype(np.float32)
    a = ad.AnnData(
        obs={"clusters": ["a"] * 200},
        var={"use_for_pca": np.ones(12, dtype=bool)},
        layers={"M_s": s, "M_u": u, "M_ss": s * s, "M_us": u * s, "M_uu": u * u},
    )
    a.obs_names = [f"c{i}" for i in range(200)]
    a.var_names = [f"g{i}" for i in range(12)]
    a.uns["pp"] = {"experiment_type": "conventional", "tkey": "None"}
    a.obsp["moments_con"] = sparse.identity(200, format="csr")
    return a


def test_full_is_the_default_mode_and_the_table_follows_the_mode():
    cfg = dyn.config.DynamoAdataConfig
    assert cfg is dyn.configuration.DynamoAdataConfig  # dynamo's two names of the module
    assert cfg.data_store_mode == "full"
    assert cfg.dynamics_del_2nd_moments is False and cfg.recipe_monocle_keep_raw_layers is True
    key = cfg.DYNAMICS_DEL_2ND_MOMENTS_KEY
    assert key == "dynamics_del_2nd_moments_key"
    assert cfg.use_default_var_if_none(None, key) is False
    assert cfg.use_default_var_if_none(True, key) is True
    try:
        dyn.configuration.update_data_store_mode("succinct")
        assert cfg.data_store_mode == "succinct"
        assert cfg.use_default_var_if_none(None, key) is True
        assert cfg.config_key_to_values[cfg.RECIPE_MONOCLE_KEEP_FILTERED_CELLS_KEY] is False
        assert cfg.config_key_to_values[cfg.RECIPE_DEL_2ND_MOMENTS_KEY] is True
    finally:
        cfg.update_data_store_mode("full")
    assert cfg.config_key_to_values[cfg.RECIPE_MONOCLE_KEEP_FILTERED_CELLS_KEY] is True
    with pytest.raises(ValueError, match="'full' or 'succinct'"):
        cfg.update_data_store_mode("lean")
    with pytest.raises(KeyError, match="not a DynamoAdataConfig switch"):
        cfg.use_default_var_if_none(None, "no_such_key")


def test_succinct_mode_makes_dynamics_drop_second_moments(tmp_path):
    full = _tiny()
    assert dyn.tl.dynamics(full) is full  # dynamo returns the AnnData, copy or not
    assert SECOND <= set(full.layers)
    try:
        dyn.configuration.update_data_store_mode("succinct")
        lean = _tiny()
        dyn.tl.dynamics(lean)
        assert not SECOND & set(lean.layers)
        np.testing.assert_array_equal(lean.var["gamma"], full.var["gamma"])
        kept = _tiny()
        dyn.tl.dynamics(kept, del_2nd_moments=False)  # the argument wins over the mode
        assert SECOND <= set(kept.layers)
        _tiny().write_h5ad(tmp_path / "t.h5ad")
        store = dyn.io.open(dyn.io.convert(tmp_path / "t.h5ad", tmp_path / "t.zarr"))
        with pytest.warns(UserWarning, match="the store keeps them"):
            dyn.tl.dynamics(store)
        assert not SECOND & set(store.layers)
        assert SECOND <= set(dyn.io.open(tmp_path / "t.zarr").layers)
    finally:
        dyn.configuration.update_data_store_mode("full")
