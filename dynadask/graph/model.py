"""Fitted models rebuilt from their records and applied one row block per task.

The conventions (the record itself is :class:`dynadask._core.model.ModelRecord`):

- **fit**: the API function fits the model, writes its arrays under dynamo's keys and its
  record with :func:`dynadask._core.model.with_record`, in the same commit;
- **load**: :func:`load` turns a record (and the ``uns`` holding its arrays) into a model
  object of the record's ``kind`` (:data:`LOADERS`);
- **apply**: ``model.apply(block)`` on one in-memory block and :func:`apply_blocks` lazily
  over the row blocks of any array give the same numbers.

Every model object has ``n_out`` (columns of its output), ``apply`` and ``apply_blocks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dask.array as da
import numpy as np

from .._core.errors import InputError
from .._core.model import ModelRecord
from ..kernels import pca as kpca
from ..kernels import vectorfield as kv
from . import embedding as ge
from . import pca as gpca
from .blocks import ArrayLike, map_rows, take_columns


class FittedModel(Protocol):
    """What :func:`load` returns."""

    n_out: int

    def apply(self, block: Any, **per_row: Any) -> np.ndarray: ...  # noqa: D102

    def apply_blocks(self, x: ArrayLike, **per_row: Any) -> da.Array: ...  # noqa: D102


@dataclass(frozen=True)
class PCAModel:
    """Exact PCA: ``(log1p(x / s)[:, genes] - mean) @ components``.

    ``size_factors`` names the obs column the input is divided by (``None``: not divided);
    the caller passes that column's values to ``apply``/``apply_blocks``.
    """

    mean: np.ndarray
    components: np.ndarray
    genes: np.ndarray | None
    log: bool
    size_factors: str | None

    @property
    def n_out(self) -> int:  # noqa: D102
        return int(self.components.shape[1])

    def apply(self, block: Any, size_factors: np.ndarray | None = None) -> np.ndarray:
        """Scores of one in-memory block (float32)."""
        return kpca.project(
            block, self._sf(size_factors), self.genes, self.mean, self.components, self.log
        )

    def apply_blocks(self, x: ArrayLike, size_factors: np.ndarray | None = None) -> da.Array:
        """Lazy scores over the row blocks of ``x`` (float32)."""
        sf = self._sf(size_factors)
        return gpca.project(x, sf, self.genes, self.mean, self.components, log=self.log)

    def _sf(self, size_factors: np.ndarray | None) -> np.ndarray | None:
        if self.size_factors is not None and size_factors is None:
            raise InputError(
                f"this PCA divides its input by obs[{self.size_factors!r}]: pass "
                "size_factors=adata.obs[...].to_numpy()"
            )
        return None if size_factors is None else np.asarray(size_factors, dtype=np.float64)


@dataclass(frozen=True)
class UMAPModel:
    """A fitted umap-learn model and the fit cells' coordinates.

    ``apply_blocks`` places every row with ``transform`` in fixed blocks of
    :data:`dynadask.graph.embedding.TRANSFORM_ROWS` rows counted from the first one, so its
    result does not depend on the input's chunks; rows given as ``fitted`` (positions of the
    fit cells, in fit order) keep their fitted coordinates.
    """

    model: Any

    @property
    def n_out(self) -> int:  # noqa: D102
        return int(self.model.embedding_.shape[1])

    def apply(self, block: Any) -> np.ndarray:
        """UMAP ``transform`` of one in-memory block (float32)."""
        x = block.toarray() if hasattr(block, "toarray") else block
        return ge.transform_block(
            x, np.full(x.shape[0], -1), self.model, np.asarray(self.model.embedding_)
        )

    def apply_blocks(self, x: ArrayLike, fitted: np.ndarray | None = None) -> da.Array:
        """Lazy embedding of the rows of ``x`` (float32)."""
        fitted = np.zeros(0, dtype=np.int64) if fitted is None else np.asarray(fitted)
        return ge.transform_rows(x, self.model, fitted)


@dataclass(frozen=True)
class FieldModel:
    """A SparseVFC field ``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)``.

    ``columns`` are the input coordinates the field was learned on (all when ``None``).
    """

    X_ctrl: np.ndarray
    C: np.ndarray
    beta: float
    columns: np.ndarray | None = None

    @property
    def n_out(self) -> int:  # noqa: D102
        return int(self.C.shape[1])

    def inputs(self, x: ArrayLike) -> ArrayLike:
        """The columns of ``x`` the field reads."""
        return x if self.columns is None else take_columns(x, self.columns)

    def apply(self, block: Any) -> np.ndarray:
        """The field at the rows of one in-memory block (float64)."""
        x = np.asarray(block, dtype=np.float64)
        x = x if self.columns is None else x[:, self.columns]
        return kv.evaluate(x, self.X_ctrl, self.C, self.beta)

    def apply_blocks(self, x: ArrayLike) -> da.Array:
        """Lazy field at the rows of ``x`` (float64)."""
        return map_rows(
            kv.evaluate,
            self.inputs(x),
            n_cols=self.n_out,
            dtype=np.float64,
            ctrl=self.X_ctrl,
            C=self.C,
            beta=self.beta,
        )


def _load_pca(record: ModelRecord, uns: Mapping[str, Any]) -> PCAModel:
    genes = record.array(uns, "genes") if "genes" in {*record.arrays, *record.data} else None
    sf = record.params.get("size_factors")
    return PCAModel(
        mean=record.array(uns, "mean").astype(np.float64),
        components=record.array(uns, "components").astype(np.float64),
        genes=None if genes is None else genes.astype(np.int64),
        log=bool(record.params.get("log", True)),
        size_factors=None if sf is None else str(sf),
    )


UMAP_INT_PARAMS = (
    "n_components",
    "n_neighbors",
    "negative_sample_rate",
    "random_state",
    "transform_seed",
    "n_epochs",
)


def _load_umap(record: ModelRecord, uns: Mapping[str, Any]) -> UMAPModel:
    args = dict(record.params)
    for k in UMAP_INT_PARAMS:
        if k in args:
            args[k] = int(args[k])
    x_fit = record.array(uns, "X_fit")
    return UMAPModel(ge.load_umap(args, x_fit, record.array(uns, "embedding")))


def _load_field(record: ModelRecord, uns: Mapping[str, Any]) -> FieldModel:
    cols = record.params.get("columns")
    return FieldModel(
        X_ctrl=record.array(uns, "X_ctrl").astype(np.float64),
        C=record.array(uns, "C").astype(np.float64),
        beta=float(np.asarray(record.array(uns, "beta"))),
        columns=None if cols is None else np.atleast_1d(np.asarray(cols, dtype=np.int64)),
    )


LOADERS: dict[str, Callable[[ModelRecord, Mapping[str, Any]], FittedModel]] = {
    "pca": _load_pca,
    "umap": _load_umap,
    "sparsevfc": _load_field,
}
"""Record kind -> loader ``(record, uns) -> model``."""


def load(record: ModelRecord, uns: Mapping[str, Any]) -> FittedModel:
    """The model object of ``record``, its arrays read from ``uns``.

    Raises
    ------
    ValueError
        For a kind this version does not know.
    """
    if record.kind not in LOADERS:
        raise InputError(
            f"model {record.name!r} has kind {record.kind!r}; known kinds: {sorted(LOADERS)}"
        )
    return LOADERS[record.kind](record, uns)


def apply_blocks(model: FittedModel, x: ArrayLike, **per_row: Any) -> da.Array:
    """Apply a loaded model lazily, one task per row block of ``x``.

    ``per_row`` are the model's per-cell inputs (a PCA's ``size_factors``, a UMAP's
    ``fitted`` positions).
    """
    return model.apply_blocks(x, **per_row)
