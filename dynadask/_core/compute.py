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
    order = grouped_by_kind(collections)
    collections = tuple(collections[i] for i in order)
    client = _distributed_client()
    if client is not None:
        futures = client.compute(list(collections))
        if _state["progress"]:
            from distributed import progress

            if desc:
                print(desc, file=sys.stderr)
            progress(futures)
        try:
            values = tuple(client.gather(futures))
        except BaseException:
            # let the tasks still running finish before the caller cleans up after them
            from distributed import wait

            wait(futures)
            raise
    else:
        with _local_progress():
            values = dask.compute(*collections)
    out: list[Any] = [None] * len(values)
    for position, value in zip(order, values, strict=True):
        out[position] = value
    return tuple(out)


def grouped_by_kind(collections: tuple[Any, ...]) -> list[int]:
    """Positions of ``collections`` with each kind of collection together (stable).

    dask 2026.8 (``dask.compute`` and ``Client.compute``) hands back the results of a
    compute that mixes kinds (Dask arrays and delayed values) grouped by each kind's graph
    optimizer, in the order the kinds first appear, instead of in the order given:
    ``compute(delayed_a, array_x, delayed_b)`` returns ``(a, b, x)``. Computing the
    collections already grouped makes that regrouping do nothing, whichever way dask
    orders them; :func:`compute` then puts the values back in place.
    """
    kinds: dict[Any, int] = {}
    rank = [kinds.setdefault(_kind(c), len(kinds)) for c in collections]
    return sorted(range(len(collections)), key=rank.__getitem__)


def _kind(x: Any) -> Any:
    if not dask.is_dask_collection(x):
        return None
    return getattr(type(x), "__dask_optimize__", type(x))


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
