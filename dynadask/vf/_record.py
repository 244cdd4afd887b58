"""The vector field's fitted-model record (kind ``'sparsevfc'``) and its loading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.errors import MissingKeyError
from .._core.model import ModelRecord, read
from ..graph import model as gm


def field_record(name: str, vf: Mapping[str, Any], n_obs: int, basis: str) -> ModelRecord:
    """The record of the field stored in ``uns[name]`` (dynadask's or dynamo's dict).

    The arrays stay in ``uns[name]`` (``X_ctrl``, ``C``, ``beta``); the record keeps the fit
    cells when the EM ran on a sample (``valid_ind[fit_idx]``), else points at
    ``valid_ind``.
    """
    dims = vf.get("dims")
    columns = None
    if dims is not None:
        columns = np.arange(int(dims)) if np.ndim(dims) == 0 else np.asarray(dims, np.int64)
    arrays = {k: f"{name}/{k}" for k in ("X_ctrl", "C", "beta")}
    data = {}
    if "valid_ind" in vf and "fit_idx" in vf:
        data["fit_cells"] = np.asarray(vf["valid_ind"])[np.asarray(vf["fit_idx"])]
    elif "valid_ind" in vf:
        arrays["fit_cells"] = f"{name}/valid_ind"
    if "ctrl_cells" in vf:
        arrays["ctrl_cells"] = f"{name}/ctrl_cells"
    fit_cells = data.get("fit_cells", vf.get("valid_ind"))
    params = dict(vf.get("parameters", {}))
    seed = params.get("seed")
    return ModelRecord(
        name=name,
        kind="sparsevfc",
        inputs=f"obsm/{keys.basis_key(basis)}, obsm/{keys.velocity_key(basis)}",
        n_obs=n_obs,
        n_fit=n_obs if fit_cells is None else int(np.size(fit_cells)),
        cells="all" if fit_cells is None else "index:fit_cells",
        seed=None if seed is None else int(seed),
        params={"columns": columns, "M": int(np.shape(vf["X_ctrl"])[0])},
        arrays=arrays,
        data=data,
    )


def load_field(adata: ad.AnnData, basis: str, prefix: str = "VecFld") -> gm.FieldModel:
    """The field learned in ``basis``: from its record, or from ``uns['<prefix>_<basis>']``.

    A dict without a record (e.g. dynamo's own) gets one built from its keys.

    Raises
    ------
    ValueError
        When no field was learned in ``basis``.
    """
    name = f"{prefix}_{basis}"
    if name not in adata.uns:
        raise MissingKeyError(
            f"no uns[{name!r}]: learn the field first with dyn.vf.VectorField(adata, "
            f"basis={basis!r})"
        )
    record = read(adata.uns, name) or field_record(name, adata.uns[name], adata.n_obs, basis)
    model = gm.load(record, adata.uns)
    assert isinstance(model, gm.FieldModel)
    return model
