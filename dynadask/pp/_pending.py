"""Results of preprocessing steps waiting for the one commit of their stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np

from ..io import commit

SLOTS = ("obs", "var", "layers", "obsm", "uns")


@dataclass
class Pending:
    """Keys computed by the steps of a stage, by AnnData slot, committed together."""

    obs: dict[str, Any] = field(default_factory=dict)
    var: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    obsm: dict[str, Any] = field(default_factory=dict)
    uns: dict[str, Any] = field(default_factory=dict)
    X: Any = None  # noqa: N815 - the AnnData slot's name

    def column(self, adata: ad.AnnData, slot: str, key: str) -> np.ndarray | None:
        """Return a pending obs/var column, else the AnnData's, else ``None``."""
        pending = getattr(self, slot)
        if key in pending:
            return np.asarray(pending[key])
        frame = getattr(adata, slot)
        return np.asarray(frame[key]) if key in frame else None

    def commit(self, adata: ad.AnnData, stage: str) -> None:
        """Write everything into ``adata`` (and its store) in one :func:`dynadask.io.commit`."""
        commit(adata, stage, X=self.X, **{s: getattr(self, s) for s in SLOTS})
