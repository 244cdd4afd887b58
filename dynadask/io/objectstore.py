"""The switch of a commit on an object store (S3 and the like), where nothing can be renamed.

An object store offers whole-object writes, server-side copies, deletes and listings, but no
rename: a key cannot be moved in one step. The switch therefore keeps **both** versions of
every key in the staging prefix until it is over, and makes each key of the store equal to
one of them by copies and deletes that can be repeated at will:

1. Staging (before anything is recorded): the new values are written under
   ``<store>.staging-<stage>-<hex>/<key>``; then the store's current objects of each key
   are copied to ``<staging>/_trash/<key>``. The store is untouched.
2. The journal ``<staging>/journal.json`` (keys, the parent groups the store lacks,
   direction ``forward``) is written in one PUT, which an object store applies whole or not
   at all: the one recorded step. Before it the commit did not happen; after it, it did.
3. ``forward``: the missing parent groups' ``zarr.json`` are written; per key every staged
   object is copied into the store and the store's objects of that key that the new value
   lacks (chunks of an old value, which must not survive a smaller or emptier new one) are
   deleted; the metadata are consolidated.
4. The journal is deleted, then the staging prefix.

When a step of 3 raises, the journal is rewritten with direction ``back`` and every key is
made equal to its copy in ``_trash`` the same way (copy, then delete what the old value
lacked), the parent groups the commit made are removed, the metadata consolidated and the
error re-raised. When the process dies, :func:`recover` (run on open) repeats the journal's
direction from the start: since each step only makes a key equal to a version kept in the
staging prefix, repeating it is harmless and the result is all-old or all-new. A staging
prefix without a journal is an interrupted staging and is deleted.

Every object-store operation of the protocol goes through :data:`_op` (tests inject faults
there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zarr

from .location import Remote

JOURNAL = "journal.json"
TRASH = "_trash"
STAGING = ".staging-"
GROUP_META = "zarr.json"
DICT_ATTRS = {"encoding-type": "dict", "encoding-version": "0.1.0"}
_GROUP = json.dumps({"zarr_format": 3, "node_type": "group", "attributes": DICT_ATTRS}).encode()


def _perform(kind: str, fs: Any, *args: Any) -> None:
    """Do one step of the protocol.

    ``copy`` (src, dst), ``delete`` (key), ``put`` (key, bytes) or ``consolidate`` (store).
    """
    if kind == "copy":
        fs.copy(args[0], args[1])
    elif kind == "delete":
        fs.rm_file(args[0])
    elif kind == "put":
        fs.pipe_file(args[0], args[1])
    else:
        zarr.consolidate_metadata(args[0].zarr_store(read_only=False))


_op: Callable[..., None] = _perform


def files(fs: Any, prefix: str) -> list[str]:
    """The objects under ``prefix/`` as names relative to it (a fresh listing, sorted)."""
    fs.invalidate_cache()
    try:
        found = fs.find(prefix)
    except FileNotFoundError:
        return []
    head = prefix.rstrip("/") + "/"
    return sorted(p[len(head) :] for p in found if p.startswith(head))


def staging_prefixes(store: Remote) -> list[Remote]:
    """The staging prefixes beside ``store`` (left by commits in progress or killed)."""
    fs = store.fs
    fs.invalidate_cache()
    parent = store.key.rsplit("/", 1)[0]
    try:
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(parent, detail=False)}
    except FileNotFoundError:
        return []
    return [store.with_name(n) for n in sorted(names) if n.startswith(store.name + STAGING)]


def remove_prefix(where: Path | Remote) -> None:
    """Delete everything under an object-store prefix (or a local folder) if it exists."""
    if not isinstance(where, Remote):
        from .writers import remove

        remove(Path(where))
        return
    fs = where.fs
    keys = files(fs, where.key)
    if keys:
        fs.rm([where.child(k) for k in keys])
    fs.invalidate_cache()


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def publish(store: Remote, staging: Remote, names: list[str], stage: str) -> None:
    """Switch the staged keys ``names`` into ``store``, all or none (see the module text).

    Raises
    ------
    Exception
        Whatever a step raised, after every key was given its old value back.
    """
    fs = store.fs
    names = list(dict.fromkeys(names))
    fs.invalidate_cache()
    created = sorted(
        {p for n in names for p in _parents(n) if not fs.exists(store.child(f"{p}/{GROUP_META}"))},
        key=lambda p: p.count("/"),
    )
    for name in names:  # the old values, kept until the switch is over
        for rel in files(fs, store.child(name)):
            _op("copy", fs, store.child(f"{name}/{rel}"), staging.child(f"{TRASH}/{name}/{rel}"))
    journal = {"stage": stage, "keys": names, "created": created, "direction": "forward"}
    _op("put", fs, staging.child(JOURNAL), json.dumps(journal).encode())
    try:
        complete(store, staging, journal)
    except BaseException:
        back = {**journal, "direction": "back"}
        _op("put", fs, staging.child(JOURNAL), json.dumps(back).encode())
        complete(store, staging, back)
        finish(staging)
        raise
    finish(staging)


def read_journal(staging: Remote) -> dict | None:
    """The journal of a staging prefix, ``None`` when the switch never started."""
    fs = staging.fs
    try:
        return json.loads(fs.cat_file(staging.child(JOURNAL)))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def complete(store: Remote, staging: Remote, journal: dict) -> None:
    """Give every key of the journal its new (``forward``) or old (``back``) value.

    Then the store's metadata are consolidated.
    """
    fs = store.fs
    forward = journal["direction"] == "forward"
    if forward:
        for parent in journal["created"]:
            _op("put", fs, store.child(f"{parent}/{GROUP_META}"), _GROUP)
    for name in journal["keys"] if forward else reversed(journal["keys"]):
        source = staging.child(name if forward else f"{TRASH}/{name}")
        want = files(fs, source)
        for rel in want:
            _op("copy", fs, f"{source}/{rel}", store.child(f"{name}/{rel}"))
        for rel in sorted(set(files(fs, store.child(name))) - set(want)):
            _op("delete", fs, store.child(f"{name}/{rel}"))
    if not forward:
        for parent in reversed(journal["created"]):
            if set(files(fs, store.child(parent))) <= {GROUP_META}:
                if fs.exists(store.child(f"{parent}/{GROUP_META}")):
                    _op("delete", fs, store.child(f"{parent}/{GROUP_META}"))
    _op("consolidate", fs, store)


def finish(staging: Remote) -> None:
    """Delete the journal (the switch is over), then the rest of the staging prefix."""
    _op("delete", staging.fs, staging.child(JOURNAL))
    remove_prefix(staging)


def recover(store: Remote, folders: list[Remote]) -> list[str]:
    """Complete the switches of killed commits in their journals' directions.

    Staging prefixes without a journal are deleted. The caller holds the store's lock.
    """
    done = []
    for staging in folders:
        journal = read_journal(staging)
        if journal is None:
            remove_prefix(staging)
            done.append(f"removed {staging.name} (interrupted before its switch)")
            continue
        complete(store, staging, journal)
        finish(staging)
        done.append(f"{journal['direction']}: {journal['stage']} ({staging.name})")
    return done


def lock_of(store: Remote) -> Remote:
    """The lock object of ``store`` (``<store>.lock``)."""
    return store.with_name(f"{store.name}.lock")


def read_lock(store: Remote) -> dict | None:
    """The owner recorded in the store's lock object (``{}`` if unreadable), or ``None``."""
    fs = store.fs
    try:
        return json.loads(fs.cat_file(lock_of(store).key))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return {}


def write_lock(store: Remote, owner: dict) -> bool:
    """Write the lock object; return whether it names ``owner`` when read back.

    Object stores without conditional writes cannot create an object exclusively: the lock
    is written, then read back, and a writer that finds another owner there lost the race.
    """
    fs = store.fs
    fs.pipe_file(lock_of(store).key, json.dumps(owner).encode())
    return read_lock(store) == owner


def delete_lock(store: Remote) -> None:
    """Delete the store's lock object if it exists."""
    fs = store.fs
    try:
        fs.rm_file(lock_of(store).key)
    except FileNotFoundError:
        pass
