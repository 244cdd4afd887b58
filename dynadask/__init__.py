"""dynadask: dynamo's RNA-velocity workflow, out of core and in parallel on Dask.

Use it as dynamo::

    import dynadask as dyn
    adata = dyn.sample_data.pancreas()
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import configuration, est, ext, io, mv, parallel, pd, pl, pp, sample_data, sim, tl, vf
from ._core.errors import (
    CountsError,
    DynadaskError,
    InputError,
    MissingKeyError,
    OptionError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StoreNotFoundError,
)
from .io import read, read_h5ad, read_loom, read_zarr

config = configuration  # dynamo's short name

try:
    __version__ = version("dynadask")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "CountsError",
    "DynadaskError",
    "InputError",
    "MissingKeyError",
    "OptionError",
    "StoreError",
    "StoreExistsError",
    "StoreLockedError",
    "StoreNotFoundError",
    "config",
    "configuration",
    "est",
    "ext",
    "io",
    "mv",
    "parallel",
    "pd",
    "pl",
    "pp",
    "read",
    "read_h5ad",
    "read_loom",
    "read_zarr",
    "sample_data",
    "sim",
    "tl",
    "vf",
]
