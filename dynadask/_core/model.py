"""The fitted-model record: what was fitted, on which cells, with which parameters and arrays.

A method that fits a model once and applies it to every row block (PCA, UMAP, the SparseVFC
vector field) leaves its results under dynamo's keys and, beside them, one small record in
``uns['dynadask_models'][<name>]`` (``name``: the key of the result, e.g. ``'X_pca'``,
``'X_umap'``, ``'VecFld_umap'``). The record holds no large array: it names the ``uns``
entries where the model's arrays are (``arrays``, paths such as ``'PCs'`` or
``'umap_fit/X_fit'``) and keeps only the small arrays dynamo has no key for (``data``, e.g.
the genes a PCA was fitted on). :func:`dynadask.graph.model.load` turns a record into a model
object and :func:`dynadask.graph.model.apply_blocks` applies that model lazily, one row block
per task.

Stored form (every value a string, a number or an array, so anndata writes it to Zarr)::

    {"version": 1, "kind": "pca", "inputs": "X", "n_obs": 3696, "n_fit": 3696,
     "cells": "all", "seed": 0,                          # seed only when one was used
     "params": {...}, "arrays": {"components": "PCs", ...}, "data": {"genes": array}}

``cells`` says which cells the model saw: ``'all'``; ``'obs:<column>'`` (a boolean obs
column, e.g. ``obs:pass_basic_filter``); ``'index:<role>'`` (positions, the array of that
role). Entries of ``params`` that are ``None`` are left out (absent means ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import keys

VERSION = 1


@dataclass(frozen=True)
class ModelRecord:
    """One fitted model: its kind, its inputs, the cells it saw, its parameters and arrays.

    Attributes
    ----------
    name
        Entry name in ``uns['dynadask_models']``: the key of the fitted result.
    kind
        Loader in :data:`dynadask.graph.model.LOADERS` (``'pca'``, ``'umap'``,
        ``'sparsevfc'``).
    inputs
        What the model was fitted on, e.g. ``'X'`` or ``'obsm/X_pca[:, :30]'``.
    n_obs, n_fit
        Cells in the data at fit time; cells the model was fitted on.
    cells
        ``'all'``, ``'obs:<column>'`` or ``'index:<role>'`` (see the module docstring).
    seed
        Seed of the cell sample or of the method, ``None`` when none was used.
    params
        Parameters the loader needs (strings, numbers, small lists).
    arrays
        Role -> ``uns`` path (``'/'``-separated) of an array kept under dynamo's key.
    data
        Role -> small array kept in the record itself.
    version
        Format version of the record.
    """

    name: str
    kind: str
    inputs: str
    n_obs: int
    n_fit: int
    cells: str = "all"
    seed: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    arrays: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    version: int = VERSION

    def to_uns(self) -> dict[str, Any]:
        """The record as a plain dict anndata can write (``None`` values left out)."""
        out: dict[str, Any] = {
            "version": int(self.version),
            "kind": str(self.kind),
            "inputs": str(self.inputs),
            "n_obs": int(self.n_obs),
            "n_fit": int(self.n_fit),
            "cells": str(self.cells),
            "params": {k: _writable(v) for k, v in self.params.items() if v is not None},
            "arrays": {k: str(v) for k, v in self.arrays.items()},
            "data": {k: np.asarray(v) for k, v in self.data.items()},
        }
        if self.seed is not None:
            out["seed"] = int(self.seed)
        return out

    @classmethod
    def from_uns(cls, name: str, entry: Mapping[str, Any]) -> ModelRecord:
        """Rebuild a record from its stored dict (as read back from a store or in memory)."""
        missing = {"kind", "inputs", "n_obs", "n_fit"} - set(entry)
        if missing:
            raise ValueError(
                f"uns[{keys.MODELS!r}][{name!r}] lacks {sorted(missing)}: refit the model "
                "(the call that wrote it) to rewrite its record"
            )
        version = int(_plain(entry.get("version", VERSION)))
        if version > VERSION:
            raise ValueError(
                f"model record {name!r} has version {version}, this dynadask reads up to "
                f"{VERSION}: upgrade dynadask"
            )
        seed = entry.get("seed")
        return cls(
            name=name,
            kind=str(entry["kind"]),
            inputs=str(entry["inputs"]),
            n_obs=int(_plain(entry["n_obs"])),
            n_fit=int(_plain(entry["n_fit"])),
            cells=str(entry.get("cells", "all")),
            seed=None if seed is None else int(_plain(seed)),
            params={k: _plain(v) for k, v in dict(entry.get("params", {})).items()},
            arrays={k: str(v) for k, v in dict(entry.get("arrays", {})).items()},
            data={k: np.asarray(v) for k, v in dict(entry.get("data", {})).items()},
            version=version,
        )

    def array(self, uns: Mapping[str, Any], role: str) -> np.ndarray:
        """The array of ``role``: from the record's ``data``, else from its ``uns`` path."""
        if role in self.data:
            return np.asarray(self.data[role])
        if role not in self.arrays:
            raise KeyError(
                f"model {self.name!r} ({self.kind}) has no array {role!r}: it has "
                f"{sorted(self.arrays) + sorted(self.data)}"
            )
        return np.asarray(uns_path(uns, self.arrays[role], self.name))

    def fit_positions(
        self, uns: Mapping[str, Any], obs: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Positions of the cells the model was fitted on (int64)."""
        if self.cells == "all":
            return np.arange(self.n_obs, dtype=np.int64)
        how, _, what = self.cells.partition(":")
        if how == "index":
            return self.array(uns, what).astype(np.int64)
        if how == "obs" and obs is not None and what in obs:
            return np.flatnonzero(np.asarray(obs[what], dtype=bool))
        raise ValueError(
            f"model {self.name!r}: cannot resolve its cells {self.cells!r} "
            "(pass obs with that column, or refit the model)"
        )


def uns_path(uns: Mapping[str, Any], path: str, name: str = "?") -> Any:
    """The value at a ``'/'``-separated path in ``uns`` (a clear error when it is gone)."""
    value: Any = uns
    for part in path.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(
                f"uns[{path!r}] (an array of model {name!r}) is missing: refit the model "
                "with the call that wrote it"
            )
        value = value[part]
    return value


def read(uns: Mapping[str, Any], name: str) -> ModelRecord | None:
    """The record of ``name`` in ``uns['dynadask_models']``, ``None`` when there is none."""
    entry = dict(uns.get(keys.MODELS, {})).get(name)
    return None if entry is None else ModelRecord.from_uns(name, entry)


def with_record(uns: Mapping[str, Any], record: ModelRecord) -> dict[str, Any]:
    """The new value of ``uns['dynadask_models']`` with ``record`` added (or replaced).

    Commit it under :data:`dynadask._core.keys.MODELS` in the same commit as the results
    and arrays it describes.
    """
    models = {k: v for k, v in dict(uns.get(keys.MODELS, {})).items() if k != record.name}
    models[record.name] = record.to_uns()
    return models


def _plain(value: Any) -> Any:
    """Return numpy scalars (as read back from a store) as Python numbers and strings."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _writable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return np.asarray(value)
    return _plain(value)
