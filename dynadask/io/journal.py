"""The switch of a commit: staged keys replace the store's, all or none, and a writer's lock.

A commit stages every new value in a folder beside the store (``<store>.staging-…``, same key
layout as the store). :func:`publish` then switches them in:

1. The journal ``<staging>/journal.json`` is written (a temporary file, flushed to disk and
   renamed): it lists the keys, the parent groups the store lacks and the direction
   ``forward``. Writing it is the one recorded step of the switch: before it the store is
   untouched; after it the commit is decided.
2. Per key, the store's old value (if any) is renamed into ``<staging>/_trash/<key>`` and the
   staged value renamed to its place; then the metadata are consolidated.
3. The journal is removed, then the staging folder (the old values with it).

When a step of 2 raises, the journal's direction is set to ``back`` and every key is put back
(new value to staging, old value from the trash), the parent groups the commit created are
removed, the metadata consolidated again and the error re-raised: the store holds all of its
old values. When the process dies instead, :func:`recover` (run by :func:`dynadask.io.open`)
finds the journal and completes it in its direction, so the store holds all of the old or all
of the new values. A staging folder without a journal is an interrupted staging: it is
removed, the store was never touched.

Each step is idempotent and decided from what exists on disk, because a rename is atomic:
a key whose staged value is still in staging has not been switched; its old value is in the
store or in the trash.

:func:`store_lock` makes one process at a time the writer of a store, with a lock file
``<store>.lock`` that names the owner (host, process id) and the time.

A store in an object store (a :class:`~dynadask.io.location.Remote`) has no rename; its
switch, recovery and lock are :mod:`dynadask.io.objectstore`'s, chosen here by location.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._core.errors import StoreLockedError
from . import objectstore
from .format import DICT_ATTRS, consolidate
from .location import Remote, location
from .writers import remove

JOURNAL = "journal.json"
TRASH = "_trash"
STAGING = ".staging-"
GROUP_META = "zarr.json"
_GROUP = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": DICT_ATTRS}).encode()

_held: dict[Path | str, int] = {}
_rename = os.replace  # the switch's one kind of move (tests inject faults through it)


def staging_folders(path: Path | Remote) -> list[Any]:
    """The staging folders of the store at ``path`` (left by commits in progress or killed)."""
    if isinstance(path, Remote):
        return objectstore.staging_prefixes(path)
    return sorted(path.parent.glob(f"{path.name}{STAGING}*"))


def publish(path: Path | Remote, staging: Any, names: list[str], stage: str) -> None:
    """Switch the staged keys ``names`` into the store at ``path``, all or none.

    Parameters
    ----------
    path
        The store.
    staging
        The staging folder holding the new values under the store's key layout.
    names
        The keys to switch (``'layers/M_s'``, ``'obs'``, ``'uns/dynadask'``, …).
    stage
        The stage committing (recorded in the journal).

    Raises
    ------
    Exception
        Whatever a step raised, after every key was put back.
    """
    if isinstance(path, Remote):
        objectstore.publish(path, staging, names, stage)
        return
    names = list(dict.fromkeys(names))
    created = sorted(
        {p for n in names for p in _parents(n) if not (path / p / GROUP_META).exists()},
        key=lambda p: p.count("/"),
    )
    journal = {"stage": stage, "keys": names, "created": created, "direction": "forward"}
    _write_journal(staging, journal)
    try:
        _forward(path, staging, journal)
        consolidate(path)
    except BaseException:
        _write_journal(staging, {**journal, "direction": "back"})
        _back(path, staging, journal)
        consolidate(path)
        _finish(staging)
        raise
    _finish(staging)


def recover(path: Path | Remote) -> list[str]:
    """Complete or undo what killed commits left beside the store; return what was done.

    A staging folder with a journal is switched in its direction (``forward``: the commit
    completes; ``back``: the store gets its old values); one without a journal is removed.
    Nothing is done while another live process holds the store's lock.
    """
    folders = staging_folders(path)
    if not folders or _other_owner(path) is not None:
        return []
    if isinstance(path, Remote):
        with store_lock(path):
            return objectstore.recover(path, folders)
    done = []
    with store_lock(path):
        for staging in folders:
            journal = _read_journal(staging)
            if journal is None:
                remove(staging)
                done.append(f"removed {staging.name} (interrupted before its switch)")
                continue
            if journal["direction"] == "forward":
                _forward(path, staging, journal)
            else:
                _back(path, staging, journal)
            consolidate(path)
            _finish(staging)
            done.append(f"{journal['direction']}: {journal['stage']} ({staging.name})")
    return done


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _forward(path: Path, staging: Path, journal: dict) -> None:
    for parent in journal["created"]:
        (path / parent).mkdir(parents=True, exist_ok=True)
        meta = path / parent / GROUP_META
        if not meta.exists():
            _write_atomic(meta, _GROUP)
    for name in journal["keys"]:
        new, target, old = staging / name, path / name, staging / TRASH / name
        if not new.exists():
            continue  # switched already
        if target.exists():
            old.parent.mkdir(parents=True, exist_ok=True)
            _rename(target, old)
        _rename(new, target)


def _back(path: Path, staging: Path, journal: dict) -> None:
    for name in reversed(journal["keys"]):
        new, target, old = staging / name, path / name, staging / TRASH / name
        if not new.exists() and target.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            _rename(target, new)
        if old.exists():
            _rename(old, target)
    for parent in reversed(journal["created"]):
        folder = path / parent
        if folder.is_dir() and {p.name for p in folder.iterdir()} <= {GROUP_META}:
            remove(folder)


def _finish(staging: Path) -> None:
    (staging / JOURNAL).unlink(missing_ok=True)
    remove(staging)


def _write_journal(staging: Path, journal: dict) -> None:
    _write_atomic(staging / JOURNAL, json.dumps(journal).encode())


def _read_journal(staging: Path) -> dict | None:
    try:
        return json.loads((staging / JOURNAL).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        # no journal, or one cut short (it is renamed into place whole, so only a
        # temporary file can be partial): the switch never started
        return None


def _write_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a flushed temporary file and one rename."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _key(path: Path | Remote) -> Path | str:
    return path.url if isinstance(path, Remote) else path


def lock_path(path: Path) -> Path:
    """The lock file of the store at ``path``."""
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def store_lock(path: str | Path | Remote) -> Iterator[None]:
    """Hold the store's writer lock for the block (re-entrant within one process).

    Raises
    ------
    StoreLockedError
        If another live process holds it.
    """
    path = location(path)
    path = path if isinstance(path, Remote) else path.resolve()
    key = _key(path)
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    _acquire(path)
    _held[key] = 1
    try:
        yield
    finally:
        _held.pop(key, None)
        if isinstance(path, Remote):
            objectstore.delete_lock(path)
        else:
            lock_path(path).unlink(missing_ok=True)


def _owner() -> dict:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _locked(path: Any, holder: dict, lock: Any) -> StoreLockedError:
    return StoreLockedError(
        f"{path} is being written by process {holder.get('pid')} on "
        f"{holder.get('host')} since {holder.get('time')} (lock file {lock}): wait for "
        "it to finish, or delete the lock file if you know that process is gone"
    )


def _acquire_remote(path: Remote) -> None:
    lock = objectstore.lock_of(path)
    for _ in range(3):
        holder = _other_owner(path)  # None: no lock, or a stale one (removed)
        if holder is not None:
            raise _locked(path, holder, lock)
        if objectstore.write_lock(path, _owner()):
            return
    raise StoreLockedError(f"could not take the lock {lock}: other processes keep taking it")


def _acquire(path: Path | Remote) -> None:
    if isinstance(path, Remote):
        _acquire_remote(path)
        return
    lock = lock_path(path)
    owner = _owner()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _other_owner(path)
            if holder is None:
                continue  # a stale lock was removed: try again
            raise _locked(path, holder, lock) from None
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
        return
    raise StoreLockedError(f"could not take the lock {lock}: other processes keep taking it")


def _read_holder(path: Path | Remote) -> dict | None:
    if isinstance(path, Remote):
        return objectstore.read_lock(path)
    try:
        return json.loads(lock_path(path).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {}


def _other_owner(path: Path | Remote) -> dict | None:
    """The owner of the store's lock when it is another live process, else ``None``.

    A lock of a dead process on this host (or an unreadable one) is stale: it is removed
    with a warning.
    """
    holder = _read_holder(path)
    if holder is None:
        return None
    lock = objectstore.lock_of(path) if isinstance(path, Remote) else lock_path(path)
    here = holder.get("host") == socket.gethostname()
    if here and holder.get("pid") == os.getpid() and _held.get(_key(path)):
        return None
    if here and holder.get("pid") != os.getpid() and _alive(holder.get("pid")):
        return holder
    if holder.get("host") not in (None, socket.gethostname()):
        return holder  # another machine's process: cannot tell whether it lives
    warnings.warn(f"removing the stale lock {lock} (its process is gone)", stacklevel=3)
    if isinstance(path, Remote):
        objectstore.delete_lock(path)
    else:
        lock.unlink(missing_ok=True)
    return None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
