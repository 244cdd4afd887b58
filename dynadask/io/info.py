"""Describe a store: shape, matrices with their encoding and chunking, completed stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad

from .._core import keys
from .format import check_store, open_group

_SLOTS = ("X", "layers", "obsm", "varm", "obsp", "varp")


def store_info(store: str | Path) -> dict[str, Any]:
    """Return a summary of a store without reading its matrices.

    Parameters
    ----------
    store
        Path of an AnnData Zarr store.

    Returns
    -------
    dict
        ``path``, ``n_obs``, ``n_vars``, ``chunk_cells``, ``matrices`` (key -> encoding, dtype,
        shape, stored values, chunk), ``obs``/``var`` column names, ``stages`` (name ->
        completion time) and ``reorder`` (the last :func:`dynadask.io.reorder`'s record:
        method and neighbourhood chunk spread before/after; empty if never reordered).
    """
    path = check_store(store)
    root = open_group(path)
    obs, var = root["obs"], root["var"]
    info: dict[str, Any] = {
        "path": str(path),
        "n_obs": int(obs[obs.attrs["_index"]].shape[0]),
        "n_vars": int(var[var.attrs["_index"]].shape[0]),
        "chunk_cells": root.attrs.get("dynadask", {}).get("chunk_cells"),
        "obs": list(obs.attrs.get("column-order", [])),
        "var": list(var.attrs.get("column-order", [])),
        "matrices": {},
        "stages": {},
        "reorder": {},
    }
    for slot in _SLOTS:
        if slot not in root:
            continue
        elem = root[slot]
        if slot == "X":
            info["matrices"]["X"] = _describe(elem)
            continue
        for key in elem.keys():
            info["matrices"][f"{slot}/{key}"] = _describe(elem[key])
    if "uns" in root and keys.DYNADASK in root["uns"]:
        record = ad.io.read_elem(root["uns"][keys.DYNADASK])
        info["stages"] = dict(record.get(keys.STAGES, {}))
        info["reorder"] = dict(record.get(keys.REORDER, {}))
    return info


def _describe(elem: Any) -> dict[str, Any]:
    encoding = elem.attrs.get("encoding-type", "?")
    if encoding in ("csr_matrix", "csc_matrix"):
        data = elem["data"]
        return {
            "encoding": encoding,
            "dtype": str(data.dtype),
            "shape": tuple(elem.attrs["shape"]),
            "stored": int(data.shape[0]),
            "chunk": data.chunks[0],
        }
    if hasattr(elem, "dtype"):
        return {
            "encoding": encoding,
            "dtype": str(elem.dtype),
            "shape": tuple(elem.shape),
            "stored": int(elem.size),
            "chunk": elem.chunks[0] if elem.chunks else None,
        }
    return {"encoding": encoding, "dtype": "", "shape": (), "stored": 0, "chunk": None}


def format_info(info: dict[str, Any]) -> str:
    """Return :func:`store_info`'s summary as readable text."""
    lines = [
        f"store       {info['path']}",
        f"shape       {info['n_obs']:,} cells x {info['n_vars']:,} genes",
        f"row chunks  {info['chunk_cells']} cells",
        "matrices",
    ]
    for key, m in info["matrices"].items():
        shape = " x ".join(f"{s:,}" for s in m["shape"])
        lines.append(
            f"  {key:<28} {m['encoding']:<11} {m['dtype']:<8} {shape:<22} "
            f"{m['stored']:>14,} values  chunk {m['chunk']}"
        )
    lines.append("obs columns " + (", ".join(info["obs"]) or "-"))
    lines.append("var columns " + (", ".join(info["var"]) or "-"))
    lines.append("row order   " + _row_order(info.get("reorder", {})))
    lines.append("stages      " + ("" if info["stages"] else "none complete"))
    for stage, when in info["stages"].items():
        lines.append(f"  {stage:<20} complete {when}")
    return "\n".join(lines)


def _row_order(record: dict[str, Any]) -> str:
    if not record:
        return "as written"
    spread = (
        f"kNN neighbourhoods span {record.get('spread_before', float('nan')):.2f} -> "
        f"{record.get('spread_after', float('nan')):.2f} of {record.get('n_chunks', '?')} chunks"
    )
    if record.get("reordered", True):
        return f"locality ({record.get('method', '?')}); {spread}"
    return f"as written (local enough); {spread}"
