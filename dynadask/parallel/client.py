"""Find or start the Dask client: current client, a scheduler address, or a LocalCluster."""

from __future__ import annotations

import logging
import os
from typing import Any

import dask
import psutil

SCHEDULER_ENV = "DYNADASK_SCHEDULER"
log = logging.getLogger(__name__)


def client(address: str | None = None, **cluster_kwargs: Any):
    """Return a ``distributed.Client`` to compute on, creating one only when needed.

    The order is: the client already active in this process; else a connection to
    ``address``, the ``DYNADASK_SCHEDULER`` environment variable or dask's
    ``scheduler-address`` setting; else a new ``LocalCluster`` sized to the machine.

    Parameters
    ----------
    address
        A scheduler address (``tcp://host:8786``) to connect to.
    **cluster_kwargs
        Overrides for the ``LocalCluster`` (``n_workers``, ``threads_per_worker``,
        ``memory_limit``, …); see :func:`local_cluster_kwargs` for the defaults.

    Returns
    -------
    distributed.Client
        The client; it is also the default scheduler for every Dask computation.
    """
    from distributed import Client, LocalCluster, default_client  # see _core.compute

    if address is None and not cluster_kwargs:
        try:
            return default_client()
        except ValueError:
            pass
    address = address or os.environ.get(SCHEDULER_ENV) or dask.config.get("scheduler-address", None)
    if address:
        log.info("connecting to the Dask scheduler at %s", address)
        return Client(address)
    kwargs = {**local_cluster_kwargs(), **cluster_kwargs}
    log.info("starting a LocalCluster: %s", kwargs)
    return Client(LocalCluster(**kwargs))


def local_cluster_kwargs() -> dict[str, Any]:
    """Return the default ``LocalCluster`` settings for this machine.

    One single-threaded worker process a core (the numerical kernels release the GIL only in
    parts, and processes keep each worker's memory separate), each with an equal share of
    80% of the machine's memory, and the dashboard on a random port of localhost only (it is
    plain HTTP and shows the data's structure: reach it from elsewhere through an ssh tunnel).
    """
    n = max(1, os.cpu_count() or 1)
    total = psutil.virtual_memory().total
    return {
        "n_workers": n,
        "threads_per_worker": 1,
        "processes": True,
        "memory_limit": int(0.8 * total / n),
        "dashboard_address": "127.0.0.1:0",
    }
