"""Simulate one row block of cells and shape it as count layers and truth (one block).

Species counts come from a simulation kernel (exact SSA, chemical Langevin or mean ODE +
Poisson); counts are returned as float32 CSR matrices under the names real pipelines use,
the truth (velocities, per-cell transcription rates) as dense float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit
from scipy import sparse

from .._core.errors import InputError
from .gillespie import mix_seed, ssa_cells
from .ode_sim import fast_cells
from .sim_network import alpha_rows

# species columns of (uu, ul, su, sl) summed into each count layer
COUNT_LAYERS = {
    "uu": (0,), "ul": (1,), "su": (2,), "sl": (3,), "unspliced": (0, 1), "spliced": (2, 3),
    "new": (1, 3), "old": (0, 2), "total": (0, 1, 2, 3),
}  # fmt: skip
TRUTH_LAYERS = ("velocity_U_true", "velocity_S_true", "alpha_true")
METHODS = ("ssa", "langevin", "ode")


@njit(cache=True)
def cell_seeds(seed, start, n):
    """Return the seeds of cells ``start .. start + n - 1`` of a run seeded by ``seed``."""
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = mix_seed(seed, start + i)
    return out


def run_kernel(method: str, net: dict, cells: dict, seeds: np.ndarray, dt: float) -> np.ndarray:
    """Return species counts (cells, genes, 4) of ``cells`` simulated with ``method``."""
    tables = (net["gene"], net["kind"], net["inputs"], net["par"])
    args = (
        net["x0"],
        cells["traj"],
        cells["t_end"],
        cells["windows"],
        seeds,
        tables,
        net["beta"],
        net["gamma"],
        bool(net["coupled"]),
    )
    if method == "ssa":
        return ssa_cells(*args)
    if method in ("langevin", "ode"):
        return fast_cells(*args, float(dt), method == "langevin")
    raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")


def _truth(st: np.ndarray, net: dict, names: Sequence[str]) -> dict[str, np.ndarray]:
    u, s = st[:, :, 0] + st[:, :, 1], st[:, :, 2] + st[:, :, 3]
    alpha = alpha_rows(s, net["gene"], net["kind"], net["inputs"], net["par"])
    values = {
        "velocity_U_true": alpha - net["beta"] * u,
        "velocity_S_true": net["beta"] * u - net["gamma"] * s,
        "alpha_true": alpha,
    }
    return {k: values[k].astype(np.float32) for k in names}


def _counts(st: np.ndarray, names: Sequence[str]) -> dict[str, sparse.csr_matrix]:
    out = {}
    for name in names:
        dense = st[:, :, list(COUNT_LAYERS[name])].sum(axis=2).astype(np.float32)
        out[name] = sparse.csr_matrix(dense)
    return out


def simulate_block(
    net: dict,
    cells: dict,
    *,
    start: int,
    seed: int,
    method: str,
    dt: float,
    layers: Sequence[str],
    truth: Sequence[str],
    batch: int = 1024,
) -> dict[str, np.ndarray | sparse.csr_matrix]:
    """Simulate a block of cells and return its count layers (CSR) and truth layers (dense).

    Parameters
    ----------
    net
        Network arrays (``gene, kind, inputs, par, beta, gamma, x0, coupled``).
    cells
        Per-cell arrays of the block: ``traj``, ``t_end``, ``windows`` (label on / off).
    start
        Index of the block's first cell in the whole run (seeds each cell).
    seed
        The run's seed.
    method
        ``"ssa"``, ``"langevin"`` or ``"ode"``.
    dt
        Largest time step of the Langevin / ODE paths.
    layers, truth
        Names of the count layers (keys of ``COUNT_LAYERS``) and truth layers to return.
    batch
        Cells simulated at a time (bounds the memory of the species array).
    """
    n = len(cells["traj"])
    parts: dict[str, list] = {k: [] for k in (*layers, *truth)}
    for lo in range(0, max(n, 1), batch):
        hi = min(lo + batch, n)
        part = {k: v[lo:hi] for k, v in cells.items()}
        st = run_kernel(method, net, part, cell_seeds(seed, start + lo, hi - lo), dt)
        for k, v in {**_counts(st, layers), **_truth(st, net, truth)}.items():
            parts[k].append(v)
    return {
        k: sparse.vstack(v, format="csr") if k in layers else np.vstack(v) for k, v in parts.items()
    }
