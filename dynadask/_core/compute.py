"""The one place where the library computes Dask collections.

Progress bars, a compute counter, and the hand-over of large in-memory task inputs to the
workers (:func:`share`).
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dask
import numpy as np
from dask.diagnostics import ProgressBar
from scipy import sparse

log = logging.getLogger(__name__)

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
    start = time.perf_counter()
    order = grouped_by_kind(collections)
    collections = tuple(collections[i] for i in order)
    client = _distributed_client()
    if client is not None:
        futures = client.compute(list(collections))
        _show_progress(futures, desc)
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
    log.debug("compute %s: %.1f s", desc or "(no label)", time.perf_counter() - start)
    return tuple(out)


def persist(*collections: Any, desc: str = "") -> tuple[Any, ...]:
    """Compute Dask collections and keep the results where they were computed.

    With a ``distributed`` client the results stay in the workers' memory (a lost one is
    recomputed from its graph like any other task); without one they are held in this
    process. The returned collections stand for those results in later graphs, so a value
    needed by two passes is computed once. Counted as a compute.

    Parameters
    ----------
    *collections
        Dask arrays or delayed objects.
    desc
        A short label shown with the progress bar.

    Returns
    -------
    tuple
        The persisted collections, in order.
    """
    _state["computes"] += 1
    client = _distributed_client()
    if client is not None:
        out = client.persist(list(collections))
        _show_progress(out, desc)
        return tuple(out)
    with _local_progress():
        return dask.persist(*collections)


def _show_progress(futures: list[Any], desc: str) -> None:
    """A distributed progress bar for ``futures`` when progress is on (``desc`` above it)."""
    if _state["progress"]:
        if desc:
            print(desc, file=sys.stderr)
        from distributed import progress  # see _distributed_client

        progress(futures)


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


SCRATCH_ENV = "DYNADASK_SCRATCH"
"""Environment variable naming a folder every worker can read, for :func:`share`'s files."""

INLINE_BYTES = 2**18
"""numpy/scipy values up to this size go inside the task graph instead of into a file."""

_scratch: dict[str, Any] = {"near": None, "local": {}, "live": {}, "atexit": set()}
_SESSION = uuid.uuid4().hex[:8]


def share(values: list[Any]) -> list[Any]:
    """Hand large in-memory values to the tasks that use them, without the task graph.

    Without a ``distributed`` client the values are wrapped as they are (the in-process
    scheduler shares memory with the caller). With one, each value is written once to a
    file in a scratch folder that every worker can read, and the graph gets a small task
    that loads it: neither the graph nor the scheduler holds the bytes, and when a worker
    dies (killed, or restarted by its nanny past its memory limit) Dask re-runs the load on
    another worker like any other lost task. ``client.scatter`` cannot offer that: scattered
    data is gone for good with its worker, and every task depending on it is cancelled.

    Files: dense numpy arrays as ``.npy`` (loaded memory-mapped, copy-on-write, so a task
    reads only the pages it touches and never writes back), scipy sparse matrices as
    uncompressed ``.npz``, anything else pickled. numpy/scipy values of at most
    :data:`INLINE_BYTES` go inside the graph instead (recomputable as well). Each file is
    removed as soon as the client no longer holds a graph that loads it (a finaliser on the
    handle in the client's graph, so a lazy result kept for a later compute keeps its
    files), and whatever is left, e.g. after an exception, when the process exits.

    The folder is, in order: ``$DYNADASK_SCRATCH``; ``<store>.scratch/`` beside the store
    of the running stage (see :func:`scratch_beside`; the workers read the store, so they
    can read beside it); the system's temporary folder when every worker runs on this
    machine. With remote workers and no such folder the values are scattered as before
    (fast, but not recoverable when a worker is lost).

    Share large values one at a time so that the caller never holds them all.

    Parameters
    ----------
    values
        The values to hand over.

    Returns
    -------
    list
        One delayed value each, for arguments of delayed calls or ``da.from_delayed``.
    """
    client = _distributed_client()
    if client is None:
        return [dask.delayed(v, traverse=False) for v in values]
    out = []
    for v in values:
        if _nbytes(v) <= INLINE_BYTES:
            out.append(dask.delayed(v, traverse=False))
            continue
        root = _scratch_root(client)
        if root is None:
            # the graph must hold the future itself, or its data is released at once
            (future,) = client.scatter([v], hash=False)
            out.append(dask.delayed(_same, pure=True)(future))
            continue
        out.append(dask.delayed(_load, pure=True)(ScratchFile.write(v, root)))
    return out


def _same(x: Any) -> Any:
    return x


def _nbytes(v: Any) -> float:
    if isinstance(v, np.ndarray) and v.dtype != object:
        return v.nbytes
    if sparse.issparse(v):
        return sum(a.nbytes for a in _sparse_arrays(v).values())
    return float("inf")


def _sparse_arrays(v: Any) -> dict[str, np.ndarray]:
    v = v.tocsr()
    return {"data": v.data, "indices": v.indices, "indptr": v.indptr}


class ScratchFile:
    """A value written to a scratch file; tasks load it with :func:`_load`.

    The client's instance removes the file when it is garbage-collected; copies made by
    pickling (the scheduler's and the workers' copies of the graph) only name the path.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def write(cls, value: Any, folder: Path) -> ScratchFile:
        """Write ``value`` into a new file under ``folder`` and return its owning handle."""
        name = uuid.uuid4().hex
        if isinstance(value, np.ndarray) and value.dtype != object:
            path = folder / f"{name}.npy"
            np.save(path, value, allow_pickle=False)
        elif sparse.issparse(value):
            path = folder / f"{name}.npz"
            sparse.save_npz(path, value, compressed=False)
        else:
            path = folder / f"{name}.pkl"
            with open(path, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        handle = cls(str(path))
        _scratch["live"][handle.path] = weakref.finalize(handle, _remove, handle.path)
        return handle

    @classmethod
    def reserve(cls, folder: Path, suffix: str) -> ScratchFile:
        """A handle on a new file name under ``folder`` that a task fills (:meth:`save`).

        The client's handle removes the file, once written, when it is garbage-collected,
        as for :meth:`write`; ``suffix`` (``'.npy'``, ``'.npz'`` or ``'.pkl'``) says how
        :meth:`save` writes the value and :func:`_load` reads it.
        """
        if suffix not in (".npy", ".npz", ".pkl"):
            raise ValueError(f"unknown scratch file suffix {suffix!r}: use .npy, .npz or .pkl")
        handle = cls(str(folder / f"{uuid.uuid4().hex}{suffix}"))
        _scratch["live"][handle.path] = weakref.finalize(handle, _remove, handle.path)
        return handle

    def save(self, value: Any) -> None:
        """Write ``value`` to this handle's file (run by a task; atomic, so rewritable)."""
        tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as f:
            if self.path.endswith(".npy"):
                np.save(f, value, allow_pickle=False)
            elif self.path.endswith(".npz"):
                sparse.save_npz(f, value, compressed=False)
            else:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path)

    def load(self) -> Any:
        """The value written to this handle's file."""
        return _load(self)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return ScratchFile, (self.path,)

    def __dask_tokenize__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"ScratchFile({self.path!r})"


def _load(handle: ScratchFile) -> Any:
    path = handle.path
    if path.endswith(".npy"):
        return np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))
    if path.endswith(".npz"):
        return sparse.load_npz(path)
    with open(path, "rb") as f:
        return pickle.load(f)


def _remove(path: str) -> None:
    _scratch["live"].pop(path, None)
    with suppress(FileNotFoundError):
        os.remove(path)


def scratch_files() -> list[str]:
    """Return the scratch files this process has written and not yet removed."""
    return sorted(_scratch["live"])


@contextmanager
def scratch_beside(store: str | Path | None) -> Iterator[None]:
    """Write :func:`share`'s files under ``<store>.scratch/`` while the block runs.

    On leaving the block, this process's folder there is removed unless a file in it is
    still in use (then at exit), and ``<store>.scratch/`` too when nothing else is in it.
    """
    if store is None:
        yield
        return
    base = Path(f"{store}.scratch")
    before = _scratch["near"]
    _scratch["near"] = base
    try:
        yield
    finally:
        _scratch["near"] = before
        own = _own_folder(base)
        if own.is_dir() and not any(str(p) in _scratch["live"] for p in own.iterdir()):
            _remove_folder(own)


def scratch_folder() -> Path | None:
    """Return the scratch folder for files that every task of the active scheduler can read.

    With a ``distributed`` client: the folder of :func:`share` (``None`` when the workers
    are remote and no shared folder is known: keep such values in memory then). Without
    one: ``$DYNADASK_SCRATCH``, else ``<store>.scratch/`` inside :func:`scratch_beside`,
    else the system's temporary folder. Tasks write their large intermediate results there
    (:meth:`ScratchFile.reserve`) instead of holding them in memory between two passes.
    """
    return _scratch_root(_distributed_client())


def _own_folder(base: Path) -> Path:
    return base / f"dynadask-{os.getpid()}-{_SESSION}"


def _scratch_root(client: Any) -> Path | None:
    env = os.environ.get(SCRATCH_ENV)
    if env:
        base = Path(env)
    elif _scratch["near"] is not None:
        base = _scratch["near"]
    elif client is None or _workers_are_local(client):
        base = Path(tempfile.gettempdir())
    else:
        return None
    folder = _own_folder(base)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        if folder not in _scratch["atexit"]:
            _scratch["atexit"].add(folder)
            atexit.register(_remove_folder, folder)
    return folder


def _remove_folder(folder: Path) -> None:
    """Remove this process's scratch ``folder``, and its ``*.scratch`` parent once empty."""
    shutil.rmtree(folder, ignore_errors=True)
    if folder.parent.name.endswith(".scratch"):
        with suppress(OSError):
            folder.parent.rmdir()  # only when empty: other processes may use it


def _workers_are_local(client: Any) -> bool:
    key = id(client)
    if key not in _scratch["local"]:
        here = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
        with suppress(OSError):
            here.add(socket.gethostbyname(socket.gethostname()))
        with suppress(Exception):
            from distributed.utils import get_ip

            here.add(get_ip())
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        hosts = {urlsplit(a).hostname for a in workers if not a.startswith("inproc")}
        _scratch["local"][key] = bool(workers) and hosts <= here
    return _scratch["local"][key]


def _distributed_client() -> Any:
    # distributed is imported on first compute, not with dynadask: it sets up its logging
    # when imported (a full test run imported at module level logged to closed streams)
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _local_progress() -> Any:
    if not _state["progress"]:
        return nullcontext()
    return ProgressBar(minimum=2.0)


def set_progress(show: bool) -> None:
    """Show (or hide) progress bars on long computations."""
    _state["progress"] = bool(show)


def task_slots() -> int:
    """Return how many tasks the active scheduler runs at once (its workers' threads)."""
    client = _distributed_client()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return max(1, int(dask.config.get("num_workers", None) or os.cpu_count() or 1))


def compute_count() -> int:
    """Return how many times the library has computed (for tests that bound passes over data)."""
    return _state["computes"]
