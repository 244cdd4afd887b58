"""Execution: one way to get a Dask client, and the row-block map / reduce helpers.

Library functions never create a client; they compute on whatever scheduler is active. The
CLI and notebooks call :func:`client` once at the start.
"""

from .._core.compute import compute, compute_count, set_progress
from ..graph.blocks import as_rows, map_rows, sum_rows
from .client import client, local_cluster_kwargs

__all__ = [
    "as_rows",
    "client",
    "compute",
    "compute_count",
    "local_cluster_kwargs",
    "map_rows",
    "set_progress",
    "sum_rows",
]
