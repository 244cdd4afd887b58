"""The one place where the library computes Dask collections: progress and a compute counter."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from typing import Any

import dask

_state = {"computes": 0, "progress": os.environ.get("DYNADASK_PROGRESS", "") == "1"}


def compute(*collections: Any, desc: str = "") -> tuple[Any, ...]:
    """Compute Dask collections on the active scheduler, all in one pass.

    Parameters
    ----------
    *collections
        Dask arrays, delayed objects or plain values.
    desc
        A short label shown with the progress bar.

    Returns
    -------
    tuple
        The computed values, in order.
    """
    _state["computes"] += 1
    client = _distributed_client()
    if client is not None:
        futures = client.compute(list(collections))
        if _state["progress"]:
            from distributed import progress

            if desc:
                print(desc, file=sys.stderr)
            progress(futures)
        return tuple(client.gather(futures))
    with _local_progress():
        return dask.compute(*collections)


def share(values: list[Any]) -> list[Any]:
    """Hand large in-memory values to the tasks that use them, without the task graph.

    With a ``distributed`` client the values are scattered to the workers once (the graph
    then refers to their futures, so neither the graph nor the scheduler holds the bytes);
    without one they are wrapped as they are. Either way the results are delayed values,
    for arguments of delayed calls or ``da.from_delayed``. Share large values one at a time
    so that the caller never holds them all.
    """
    client = _distributed_client()
    if client is None:
        return [dask.delayed(v, traverse=False) for v in values]
    # the graph must hold the futures themselves, or their data is released at once
    return [dask.delayed(_same, pure=True)(f) for f in client.scatter(values, hash=False)]


def _same(x: Any) -> Any:
    return x


def _distributed_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _local_progress() -> Any:
    if not _state["progress"]:
        return nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(minimum=2.0)


def set_progress(show: bool) -> None:
    """Show (or hide) progress bars on long computations."""
    _state["progress"] = bool(show)


def compute_count() -> int:
    """Return how many times the library has computed (for tests that bound passes over data)."""
    return _state["computes"]
