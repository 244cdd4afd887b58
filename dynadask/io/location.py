"""Where a store lives: a local folder (a ``Path``) or an object-store prefix (:class:`Remote`).

A store is named by a path (``atlas.zarr``) or by a URL that fsspec reaches
(``s3://bucket/atlas.zarr``, ``gs://…``, ``memory://…``). A URL's storage options
(``endpoint_url``, ``key``, ``secret``, …) come, in order, from the call
(``storage_options=``), from an earlier call in this process for the same bucket
(:func:`register_options`; kept in memory only, never written into a store), and from the
environment (``AWS_ENDPOINT_URL`` for ``s3://``; s3fs reads the credentials' own variables).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._core.errors import InputError

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
"""An S3 endpoint (MinIO, Ceph, a loopback server) used when the options name none."""

_LOCAL = ("", "file", "local")
_options: dict[str, dict[str, Any]] = {}


def is_url(store: object) -> bool:
    """Return whether ``store`` names an object-store location (``scheme://…``, not a file)."""
    if isinstance(store, Remote):
        return True
    if not isinstance(store, str) or "://" not in store:
        return False
    return urlsplit(store).scheme not in _LOCAL


@dataclass(frozen=True)
class Remote:
    """A store's prefix in an object store, with the options that reach it (picklable).

    Attributes
    ----------
    url
        ``scheme://bucket/key/prefix`` without a trailing slash.
    options
        The storage options as a JSON text (hashable, so a ``Remote`` can key a dict).
    """

    url: str
    options: str = "{}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec storage options of this location."""
        return json.loads(self.options)

    @property
    def scheme(self) -> str:
        """The URL's scheme (``'s3'``, …)."""
        return urlsplit(self.url).scheme

    @property
    def key(self) -> str:
        """The prefix as the filesystem names it (``bucket/key/prefix``)."""
        return self.url.split("://", 1)[1]

    @property
    def name(self) -> str:
        """The last part of the prefix (``'atlas.zarr'``)."""
        return self.key.rsplit("/", 1)[-1]

    @property
    def fs(self) -> Any:
        """The (synchronous) fsspec filesystem of this location."""
        import fsspec

        return fsspec.filesystem(self.scheme, **self.storage_options)

    def with_name(self, name: str) -> Remote:
        """The sibling prefix called ``name`` (same options)."""
        parent = self.url.rsplit("/", 1)[0]
        return Remote(f"{parent}/{name}", self.options)

    def child(self, key: str) -> str:
        """The filesystem name of ``key`` under this prefix."""
        return f"{self.key}/{key}" if key else self.key

    def exists(self) -> bool:
        """Whether anything is stored under this prefix."""
        fs = self.fs
        fs.invalidate_cache()
        return bool(fs.exists(self.child("zarr.json")) or fs.exists(self.key))

    def zarr_store(self, read_only: bool = True) -> Any:
        """A Zarr store over this prefix."""
        from zarr.storage import FsspecStore

        # no listing cache: the switch and other processes change the prefix under it
        options = {**self.storage_options, "use_listings_cache": False}
        return FsspecStore.from_url(self.url, storage_options=options, read_only=read_only)

    def __str__(self) -> str:
        return self.url


def register_options(url: str, options: dict[str, Any]) -> None:
    """Remember ``options`` for every store of ``url``'s bucket in this process."""
    _options[_bucket(url)] = dict(options)


def _bucket(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def storage_options(url: str, given: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """The storage options for ``url``: given, else registered, else from the environment.

    ``given`` may be a JSON text (the command line's ``--storage-options``).

    Raises
    ------
    dynadask.InputError
        If ``given`` is text that is not a JSON object.
    """
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except json.JSONDecodeError as err:
            raise InputError(
                f"storage options {given!r} are not JSON ({err.msg}): pass an object such as "
                '\'{"endpoint_url": "http://127.0.0.1:9000"}\''
            ) from None
        if not isinstance(given, dict):
            raise InputError("storage options must be a JSON object of fsspec options")
    if given is not None:
        return dict(given)
    found = _options.get(_bucket(url))
    if found is not None:
        return dict(found)
    options: dict[str, Any] = {}
    if urlsplit(url).scheme in ("s3", "s3a") and os.environ.get(ENDPOINT_ENV):
        options["endpoint_url"] = os.environ[ENDPOINT_ENV]
    return options


def location(store: str | Path | Remote, options: dict[str, Any] | str | None = None) -> Any:
    """The location of ``store``: a :class:`Remote` for a URL, else a ``Path``.

    Parameters
    ----------
    store
        A path, a ``file://`` URL, an object-store URL, or a location already.
    options
        Storage options for a URL (see :func:`storage_options`); registered for its bucket.

    Returns
    -------
    pathlib.Path or Remote
        The location (a path as given, not resolved).
    """
    if isinstance(store, Remote):
        return store
    if isinstance(store, str) and is_url(store):
        url = store.rstrip("/")
        opts = storage_options(url, options)
        if options is not None:
            register_options(url, opts)
        return Remote(url, json.dumps(opts, sort_keys=True))
    if isinstance(store, str) and store.startswith("file://"):
        return Path(store[len("file://") :])
    return Path(store)


def location_of_store(zarr_store: Any) -> Any:
    """The location a Zarr store object reads (``Path`` or :class:`Remote`)."""
    root = getattr(zarr_store, "root", None)
    if root is not None:
        return Path(root)
    fs = zarr_store.fs
    scheme = fs.protocol[0] if isinstance(fs.protocol, tuple | list) else fs.protocol
    options = dict(getattr(fs, "storage_options", {}))
    options.pop("asynchronous", None)
    options.pop("loop", None)
    return Remote(f"{scheme}://{zarr_store.path.rstrip('/')}", json.dumps(options, sort_keys=True))
