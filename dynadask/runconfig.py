"""The options of ``dynadask run``: their defaults, and a job's TOML file of them.

A job file sets any option of ``dynadask run`` by its long name, written with ``-`` or
``_`` (``chunk-cells`` or ``chunk_cells``), plus ``src`` for the input file. Options given on
the command line override the file; the file overrides the defaults. Relative paths in the
file (``src``, ``out``) are relative to the file's folder, so a job runs the same from
anywhere; ``src`` may also be a store's URL (``s3://bucket/atlas.zarr``), whose
``storage_options`` are a table (or a JSON string).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._core.errors import InputError, StoreNotFoundError
from .io.location import is_url


@dataclass(frozen=True)
class Option:
    """One option of ``dynadask run``: its default, TOML type and help text."""

    default: Any
    kind: str  # "str", "int", "bool", "list"
    help: str
    path: bool = False


RUN_OPTIONS: dict[str, Option] = {
    "src": Option(None, "str", "input file (default: the bundled pancreas data)", path=True),
    "out": Option("dynadask_run", "str", "output folder (store and figures)", path=True),
    "chunk_cells": Option(None, "int", "cells per row chunk of the store"),
    "stages": Option(None, "list", "run only these stages (default: all)"),
    "force": Option(
        False, "bool", "redo stages already complete (with no stages named: from a new store)"
    ),
    "jacobian_genes": Option(
        None, "list", "genes of the jacobian stage (default: the 10 best held by the PCA)"
    ),
    "scheduler": Option(None, "str", "Dask scheduler address (default: start a LocalCluster)"),
    "workers": Option(None, "int", "LocalCluster worker processes"),
    "progress": Option(None, "bool", "progress bars (default: on when stdout is a terminal)"),
    "storage_options": Option(
        None,
        "table",
        "fsspec options of an object-store URL as JSON (endpoint_url, key, secret, ...; "
        "default: AWS_ENDPOINT_URL and the credential variables)",
    ),
}
"""Every option of ``dynadask run`` (``config`` aside), by its name in a job file."""

_TYPES = {"str": (str,), "int": (int,), "bool": (bool,), "list": (list,), "table": (dict, str)}


def run_defaults() -> dict[str, Any]:
    """The default value of every option of ``dynadask run``."""
    return {name: opt.default for name, opt in RUN_OPTIONS.items()}


def load_run_config(path: str | Path) -> dict[str, Any]:
    """Read a job file (TOML) of ``dynadask run`` options.

    Parameters
    ----------
    path
        The TOML file.

    Returns
    -------
    dict
        The options it sets, by their names in :data:`RUN_OPTIONS`, with ``src`` and
        ``out`` resolved against the file's folder.

    Raises
    ------
    dynadask.StoreNotFoundError
        If there is no such file.
    dynadask.InputError
        If it is not valid TOML, names keys that are no option (all of them are named), sets
        one twice (``chunk-cells`` and ``chunk_cells``) or sets a value of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreNotFoundError(f"no job file {str(path)!r}: pass the path of a TOML file")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not valid TOML ({err}): fix the file") from err
    return _checked(raw, path)


def _checked(raw: Mapping[str, Any], path: Path) -> dict[str, Any]:
    names: dict[str, str] = {}
    for key in raw:
        name = key.replace("-", "_")
        if name in names:
            raise InputError(f"{path}: {names[name]!r} and {key!r} set the same option: keep one")
        names[name] = key
    unknown = sorted(key for name, key in names.items() if name not in RUN_OPTIONS)
    if unknown:
        known = ", ".join(n.replace("_", "-") for n in RUN_OPTIONS)
        raise InputError(f"{path}: unknown key(s) {unknown}: the options are {known}")
    out: dict[str, Any] = {}
    for name, key in names.items():
        opt, value = RUN_OPTIONS[name], raw[key]
        _check_type(path, key, value, opt)
        if opt.path and not is_url(value):
            value = str((path.parent / Path(value).expanduser()).resolve())
        out[name] = list(value) if opt.kind == "list" else value
    return out


def _check_type(path: Path, key: str, value: Any, opt: Option) -> None:
    ok = isinstance(value, _TYPES[opt.kind]) and not (opt.kind == "int" and isinstance(value, bool))
    if ok and opt.kind == "list":
        ok = all(isinstance(v, str) for v in value)
    if not ok:
        want = {
            "str": "a string",
            "int": "an integer",
            "bool": "true or false",
            "table": "a table or a JSON string",
        }.get(opt.kind, "a list of strings")
        raise InputError(f"{path}: {key} = {value!r} must be {want}")
    if opt.kind == "int" and value < 1:
        raise InputError(f"{path}: {key} = {value!r} must be at least 1")
