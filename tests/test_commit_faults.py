"""The commit protocol under faults: every step of the switch fails or the process dies there.

A store gets a first commit; a second commit (a replaced layer, a new layer, a new obsm key,
an obs column, an uns entry and the stage record) is then broken at each step of its switch:
the journal write, each rename, each parent group made, the consolidation. After an error the
store must be byte-identical to before; after a simulated death it must open with all of the
old or all of the new values and record the stage exactly when it holds the new ones.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.io import journal

N_OBS, N_VARS = 120, 12


class _Crash(BaseException):
    """The process dies here (nothing after it runs, not even the rollback)."""


def _hashes(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.parent.rglob("*"))
        if p.is_file()
    }


def _base(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    counts = sparse.random(N_OBS, N_VARS, density=0.4, random_state=0, format="csr") * 10
    counts.data = np.round(counts.data).astype(np.float32)
    adata = ad.AnnData(
        X=counts.copy(),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(N_VARS)]),
    )
    adata.layers["spliced"] = counts.copy()
    adata.obsm["X_fake"] = rng.random((N_OBS, 2))
    src = tmp_path / "src.h5ad"
    adata.write_h5ad(src)
    folder = tmp_path / "base"
    folder.mkdir()
    store = dyn.io.convert(src, folder / "s.zarr", chunk_cells=50)
    shutil.rmtree(store / "varm")  # a store without a varm group: the commit must make one
    dyn.io.format.consolidate(store)
    lazy = dyn.io.open(store)
    dyn.io.commit(
        lazy,
        "first",
        layers={"a": da.from_array(np.full((N_OBS, N_VARS), 1.0, np.float32), chunks=(50, -1))},
        obs={"col": np.zeros(N_OBS)},
        uns={"entry": {"value": 1}},
    )
    return store


def _second(lazy: ad.AnnData) -> None:
    new = da.from_array(np.full((N_OBS, N_VARS), 2.0, np.float32), chunks=(50, -1))
    dyn.io.commit(
        lazy,
        "second",
        layers={"a": new, "b": new + 1},
        obsm={"X_new": np.ones((N_OBS, 2))},
        varm={"loadings": np.ones((N_VARS, 3))},
        obs={"col": np.ones(N_OBS)},
        uns={"entry": {"value": 2}},
    )


def _settle(path: Path, quiet: float = 1.0, limit: float = 60.0) -> None:
    """Wait until nothing under ``path`` has changed for ``quiet`` seconds; remove nothing."""

    def snapshot() -> set:
        return {(str(f), f.stat().st_size) for f in path.rglob("*") if f.is_file()}

    start = time.monotonic()
    last, since = snapshot(), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() - start < limit:
        time.sleep(0.05)
        now = snapshot()
        if now != last:
            last, since = now, time.monotonic()


def _state(store: Path) -> str:
    """``'old'`` or ``'new'`` after checking every key agrees (and the stage record)."""
    back = dyn.io.open(store)
    a = float(np.unique(np.asarray(back.layers["a"]))[0])
    state = {1.0: "old", 2.0: "new"}[a]
    new = state == "new"
    assert ("b" in back.layers) is new
    assert ("X_new" in back.obsm) is new
    assert ("loadings" in back.varm) is new
    assert set(np.unique(back.obs["col"])) == {1.0 if new else 0.0}
    assert back.uns["entry"]["value"] == (2 if new else 1)
    assert ("second" in back.uns["dynadask"]["stages"]) is new
    assert "first" in back.uns["dynadask"]["stages"]
    assert "X_fake" in back.obsm
    eager = ad.read_zarr(store)  # anndata's own reader agrees
    assert ("b" in eager.layers) is new
    assert not journal.staging_folders(store)
    return state


def _events(monkeypatch: pytest.MonkeyPatch, fail_at: int | None, fault: BaseException):
    """Wrap the switch's steps; the ``fail_at``-th raises ``fault`` (a crash: all later too)."""
    seen: list[str] = []
    dead = [False]

    def wrap(name: str, fn):
        def step(*args, **kwargs):
            if dead[0]:
                raise _Crash(name)
            target = {"rename": args[-1], "write": args[0]}.get(name, "")
            seen.append(f"{name} {Path(target).name}".strip())
            if fail_at is not None and len(seen) - 1 == fail_at:
                dead[0] = isinstance(fault, _Crash)
                raise fault
            return fn(*args, **kwargs)

        return step

    monkeypatch.setattr(journal, "_rename", wrap("rename", os.replace))
    monkeypatch.setattr(journal, "_write_atomic", wrap("write", journal._write_atomic))
    monkeypatch.setattr(journal, "consolidate", wrap("consolidate", journal.consolidate))
    return seen


def _steps(tmp_path: Path, base: Path) -> list[str]:
    store = tmp_path / "dry" / "s.zarr"
    shutil.copytree(base.parent, store.parent)
    with pytest.MonkeyPatch.context() as mp:
        seen = _events(mp, None, _Crash())
        _second(dyn.io.open(store))
    assert _state(store) == "new"
    return seen


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return _base(tmp_path_factory.mktemp("faults"))


def test_the_switch_has_the_steps_it_should(tmp_path, base):
    seen = _steps(tmp_path, base)
    # the journal, the missing varm group, 7 keys moved in (4 of them replacing an old value
    # first: layers/a, obs, uns/entry, uns/dynadask), one consolidation
    assert seen[:2] == ["write journal.json", "write zarr.json"]
    assert sum(s.startswith("rename") for s in seen) == 11
    assert seen[-1] == "consolidate"
    assert len(seen) == 14, seen


def test_an_error_at_any_step_leaves_the_store_as_it_was(tmp_path, base):
    n = len(_steps(tmp_path, base))
    for i in range(n):
        store = tmp_path / f"e{i}" / "s.zarr"
        shutil.copytree(base.parent, store.parent)
        before = _hashes(store)
        lazy = dyn.io.open(store)
        with pytest.MonkeyPatch.context() as mp:
            _events(mp, i, OSError(errno.ENOSPC, "No space left on device"))
            with pytest.raises(OSError, match="No space left"):
                _second(lazy)
        assert _hashes(store) == before, f"step {i}"
        assert _state(store) == "old"
        assert "second" not in lazy.uns["dynadask"]["stages"]


def test_a_death_at_any_step_opens_all_old_or_all_new(tmp_path, base):
    n = len(_steps(tmp_path, base))
    outcomes = []
    for i in range(n):
        store = tmp_path / f"d{i}" / "s.zarr"
        shutil.copytree(base.parent, store.parent)
        lazy = dyn.io.open(store)
        with pytest.MonkeyPatch.context() as mp:
            _events(mp, i, _Crash())
            with pytest.raises(_Crash):
                _second(lazy)
        # a commit dead after its journal leaves its folder for the next open
        assert bool(journal.staging_folders(store)) is (i > 0)
        outcomes.append(_state(store))
    # the journal is the commit point: dead before it, the store is old; after it, new
    assert outcomes == ["old"] + ["new"] * (n - 1)


def test_a_death_during_the_rollback_is_finished_at_open(tmp_path, base):
    n = len(_steps(tmp_path, base))
    for fail in (3, n - 1):
        for die in range(6):
            store = tmp_path / f"r{fail}-{die}" / "s.zarr"
            shutil.copytree(base.parent, store.parent)
            lazy = dyn.io.open(store)
            with pytest.MonkeyPatch.context() as mp:
                _events(mp, fail, OSError(errno.EIO, "I/O error"))
                back = journal._back

                def dying(*args, _back=back, _die=die, **kwargs):
                    with pytest.MonkeyPatch.context() as inner:
                        _events(inner, _die, _Crash())
                        _back(*args, **kwargs)

                mp.setattr(journal, "_back", dying)
                with pytest.raises(BaseException):  # noqa: B017 - an error, or the death
                    _second(lazy)
            # died while undoing: the journal said 'back', so the open finishes the undo
            assert _state(store) == "old", (fail, die)


def test_an_interrupted_staging_is_removed_at_open(tmp_path, base):
    store = tmp_path / "i" / "s.zarr"
    shutil.copytree(base.parent, store.parent)
    before = _hashes(store)
    staging = store.with_name(f"{store.name}.staging-moments-deadbeef")
    (staging / "layers" / "M_s").mkdir(parents=True)
    (staging / "layers" / "M_s" / "zarr.json").write_text("{}")
    assert _state(store) == "old"
    assert not staging.exists()
    assert _hashes(store) == before


_KILL = textwrap.dedent(
    """
    import os, sys
    import dynadask as dyn
    from dynadask.io import journal
    sys.path.insert(0, {tests!r})
    from test_commit_faults import _second
    n, at = [0], int(sys.argv[2])
    real = os.replace
    def rename(a, b):
        if n[0] == at:
            os._exit(9)  # the process is killed between two renames
        n[0] += 1
        real(a, b)
    journal._rename = rename
    _second(dyn.io.open(sys.argv[1]))
    """
)


@pytest.mark.parametrize("at", [0, 5, 10])
def test_a_killed_process_leaves_a_store_that_opens_consistent(tmp_path, base, at):
    store = tmp_path / "k" / "s.zarr"
    shutil.copytree(base.parent, store.parent)
    code = _KILL.format(tests=str(Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(store), str(at)], capture_output=True, timeout=300
    )
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    assert journal.lock_path(store).exists()  # the dead process's lock is left ...
    with pytest.warns(UserWarning, match="stale lock"):
        assert _state(store) == "new"  # ... found stale, and the switch completed at open
    assert not journal.lock_path(store).exists()


def test_a_second_writer_gets_a_clear_error(tmp_path, base):
    store = tmp_path / "w" / "s.zarr"
    shutil.copytree(base.parent, store.parent)
    before = _hashes(store)
    lazy = dyn.io.open(store)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"host": os.uname().nodename, "pid": sleeper.pid, "time": "2026-01-01T00:00:00"}
        journal.lock_path(store).write_text(json.dumps(owner))
        with pytest.raises(dyn.StoreLockedError, match=f"process {sleeper.pid}"):
            _second(lazy)
        assert _hashes(store) == {**before, "s.zarr.lock": _hashes(store)["s.zarr.lock"]}
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(UserWarning, match="stale lock"):
        _second(lazy)  # the owner is gone: its lock is stale and taken over
    assert _state(store) == "new"
    assert not journal.lock_path(store).exists()


class _Disk:
    """A write hook on Zarr's local store: counts the writes into staging folders and raises
    ``ENOSPC`` (a full disk) or dies at the ``fail_at``-th of them."""

    def __init__(self, fail_at: int | None = None, fault: BaseException | None = None) -> None:
        self.fail_at, self.fault, self.writes = fail_at, fault, 0

    def install(self, mp: pytest.MonkeyPatch) -> None:
        import zarr.storage

        real = zarr.storage.LocalStore.set
        disk = self

        async def set(store, key, value):  # noqa: A001 - the store's method name
            if ".staging-" in str(store.root):
                disk.writes += 1
                if disk.fail_at is not None and disk.writes - 1 >= disk.fail_at:
                    raise disk.fault or OSError(errno.ENOSPC, "No space left on device", key)
            return await real(store, key, value)

        mp.setattr(zarr.storage.LocalStore, "set", set)


def _staging_writes(tmp_path: Path, base: Path) -> int:
    store = tmp_path / "dry" / "s.zarr"
    shutil.copytree(base.parent, store.parent)
    disk = _Disk()
    with pytest.MonkeyPatch.context() as mp:
        disk.install(mp)
        _second(dyn.io.open(store))
    assert _state(store) == "new"
    return disk.writes


def _spread(n: int, k: int = 12) -> list[int]:
    """``k`` injection points over ``n`` writes: the first, the last and evenly between."""
    return sorted({0, n - 1, *np.linspace(0, n - 1, k).round().astype(int).tolist()})


def test_a_full_disk_while_staging_leaves_the_store_as_it_was(tmp_path, base):
    """ENOSPC at writes spread over the staging of the commit (chunks the workers write,
    obs/var frames, uns entries, the stage record): a clear error, the store and its earlier
    stage byte-identical, no staging folder left; with space again the commit succeeds."""
    n = _staging_writes(tmp_path, base)
    assert n >= 15, n  # chunks of two layers, the obsm/varm arrays, frames, uns, metadata
    for i in _spread(n):
        store = tmp_path / f"full{i}" / "s.zarr"
        shutil.copytree(base.parent, store.parent)
        before = _hashes(store)
        lazy = dyn.io.open(store)
        with pytest.MonkeyPatch.context() as mp:
            _Disk(i).install(mp)
            with pytest.raises(OSError, match="No space left on device") as info:
                _second(lazy)
        assert info.value.errno == errno.ENOSPC, i
        assert _hashes(store) == before, f"write {i}"
        assert _state(store) == "old"
        assert "first" in dyn.io.open(store).uns["dynadask"]["stages"]
    _second(lazy)  # space freed: the same call completes
    assert _state(store) == "new"


def test_a_death_while_staging_opens_old(tmp_path, base):
    """A process dying at a staging write leaves a staging folder without a journal: the next
    open removes it and the store holds all of its old values, the stage not recorded."""
    n = _staging_writes(tmp_path, base)
    for i in _spread(n, 6):
        store = tmp_path / f"ds{i}" / "s.zarr"
        shutil.copytree(base.parent, store.parent)
        before = _hashes(store)
        lazy = dyn.io.open(store)
        with pytest.MonkeyPatch.context() as mp:
            _Disk(i, _Crash()).install(mp)
            # the commit's cleanup runs on a BaseException too; a real death skips it. Other
            # threads of the failed compute may still be writing (a dead process has none):
            # let them finish, then leave the folder as they left it
            mp.setattr(sys.modules["dynadask.io.commit"], "remove_settled", _settle)
            with pytest.raises(_Crash):
                _second(lazy)
        # what the dead process left (nothing when it died at the write that makes the folder)
        assert bool(journal.staging_folders(store)) is (i > 0), i
        assert _state(store) == "old"
        assert {k: v for k, v in _hashes(store).items() if ".lock" not in k} == before
