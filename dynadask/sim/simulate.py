"""Simulated splicing and labelling experiments with known truth, in memory or into a store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import dask
import numpy as np
import pandas as pd
from scipy import sparse

from .._core.compute import compute
from .._core.errors import InputError
from .._core.settings import get_chunk_policy
from ..graph.blocks import map_rows
from ..graph.sim import simulation_blocks, simulation_layers
from ..io.commit import commit
from ..io.create import create_store
from ..io.open import open as open_store
from ..kernels.sim_block import COUNT_LAYERS, METHODS, TRUTH_LAYERS
from ..kernels.sim_network import nearest_point
from .designs import experiment_name, schedule
from .models import Network, build_network
from .truth import field_grid, fixed_points

DEFAULT_LAYERS = {
    "conventional": ("spliced", "unspliced"),
    "labelling": ("uu", "ul", "su", "sl", "new", "total"),
}


@dataclass(frozen=True)
class _Plan:
    obs: pd.DataFrame
    var: pd.DataFrame
    uns: dict[str, Any]
    blocks: list
    sizes: list[int]
    layers: tuple[str, ...]
    truth: tuple[str, ...]
    x_layer: str
    typed_by: tuple[str, ...]  # layers whose sum places cells at their nearest fixed point

    def lazy(self) -> dict:
        return simulation_layers(
            self.blocks, self.sizes, len(self.var), layers=self.layers, truth=self.truth
        )


def _check_counts(n_cells: int, seed: int, method: str, layers: Sequence[str]) -> None:
    if int(n_cells) < 1:
        raise InputError(f"n_cells must be a positive number of cells, got {n_cells}")
    if int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    unknown = sorted(set(layers) - set(COUNT_LAYERS))
    if unknown or not layers:
        raise InputError(f"unknown layers {unknown}: choose from {', '.join(COUNT_LAYERS)}")


def _spliced_keys(layers: Sequence[str]) -> tuple[str, ...]:
    if "spliced" in layers:
        return ("spliced",)
    return ("su", "sl") if {"su", "sl"} <= set(layers) else ()


def _cell_type(rec: dict, codes: np.ndarray) -> pd.Categorical:
    names = [f"fixed_point_{k}" for k in range(len(rec["fixed_points"]))]
    return pd.Categorical.from_codes(codes, categories=names)


def _nearest_kwargs(rec: dict) -> dict:
    pts = rec["fixed_points"]
    return {"points": pts, "scale": np.maximum(pts.max(axis=0), 1.0)}


def _record(net: Network, exp: str, method: str, seed: int, t_span, sched) -> dict:
    pts, stable = fixed_points(net, seed=seed)
    rec = {
        "model": net.name, "experiment_type": exp, "method": method, "seed": int(seed),
        "t_span": np.asarray(t_span, dtype=np.float64),
        "label_time": np.unique(sched["label_time"].to_numpy()),
        "chase_time": np.unique(sched["chase_time"].to_numpy()),
        "network": {**net.as_dict(), "x0": net.x0},
        "fixed_points": pts, "fixed_point_stable": stable,
    }  # fmt: skip
    if net.n_genes == 2:
        rec["grid"], rec["grid_velocity"] = field_grid(net.as_dict())
    return rec


def _frames(net: Network, sched: pd.DataFrame, traj: np.ndarray) -> tuple:
    obs = sched.copy()
    obs["trajectory"] = traj
    obs.index = pd.Index([f"cell_{i}" for i in range(len(obs))])
    var = pd.DataFrame(net.var, index=pd.Index(list(net.gene_names)))
    return obs, var


def _default_rows(n_cells: int, n_cols: int) -> int:
    # simulating costs far more than writing: aim for >= 8 tasks so every worker is busy
    policy = get_chunk_policy()
    rows = min(policy.rows_per_block(n_cols, n_cells), -(-n_cells // 8))
    return max(rows, min(policy.min_rows, n_cells))


def _plan(
    model,
    n_cells,
    params,
    *,
    experiment_type="conventional",
    label_time=None,
    chase_time=None,
    pulse_time=None,
    method="ssa",
    t_span=None,
    n_genes=20,
    start="zero",
    n_traj=10,
    r_aug=20.0,
    tau=3.0,
    dt=None,
    layers=None,
    true_velocity=True,
    seed=0,
    chunk_cells=None,
) -> _Plan:
    exp = experiment_name(experiment_type)
    layers = tuple(
        layers or DEFAULT_LAYERS["conventional" if exp == "conventional" else "labelling"]
    )
    _check_counts(n_cells, seed, method, layers)
    net = build_network(
        model, params, n_genes=n_genes, start=start, n_traj=n_traj, r_aug=r_aug, tau=tau, seed=seed
    )
    span = tuple(t_span) if t_span is not None else net.t_span
    sched = schedule(
        exp,
        int(n_cells),
        span,
        label_time=label_time,
        chase_time=chase_time,
        pulse_time=pulse_time,
        seed=seed,
    )
    traj = np.random.default_rng([seed, 5]).integers(0, net.x0.shape[0], int(n_cells))
    on = sched["state_time"].to_numpy()
    cells = {
        "traj": traj,
        "t_end": sched["sim_time"].to_numpy(),
        "windows": np.stack([on, on + sched["label_time"].to_numpy()], axis=1),
    }
    dt = dt or 0.05 / float(max(net.beta.max(), net.gamma.max()))
    truth = TRUTH_LAYERS[:2] * bool(true_velocity)
    truth += TRUTH_LAYERS[2:] if true_velocity and net.coupled else ()
    n_cols = net.n_genes * (len(layers) + len(truth))
    rows = int(chunk_cells or _default_rows(int(n_cells), n_cols))
    kernel_net = {**net.as_dict(), "x0": net.x0, "coupled": net.coupled}
    blocks = simulation_blocks(
        kernel_net,
        cells,
        rows=rows,
        seed=int(seed),
        method=method,
        dt=float(dt),
        layers=layers,
        truth=truth,
    )
    sizes = [min(rows, n_cells - i) for i in range(0, int(n_cells), rows)]
    rec = _record(net, exp, method, seed, span, sched)
    obs, var = _frames(net, sched, traj)
    x_layer = next((k for k in ("spliced", "total") if k in layers), layers[0])
    typed = _spliced_keys(layers) if net.coupled and len(rec["fixed_points"]) else ()
    return _Plan(obs, var, {"sim": rec}, blocks, sizes, layers, truth, x_layer, typed)


def simulate(
    model: str | Network = "independent",
    n_cells: int = 1000,
    params: Mapping | None = None,
    **options: Any,
) -> ad.AnnData:
    """Simulate a splicing or metabolic-labelling experiment with known truth, in memory.

    Parameters
    ----------
    model
        ``"independent"`` (genes with constant transcription; alias ``"kinetic"``),
        ``"bifurcation"`` (two-gene toggle switch with self-activation and mutual inhibition;
        aliases ``"bifur2genes"``, ``"toggle"``), ``"oscillation"`` (two-gene oscillator;
        ``"osc2genes"``), ``"neurogenesis"`` (the 12-gene motif; ``"neurongenesis"``), or a
        :class:`~dynadask.sim.models.Network`.
    n_cells
        Number of cells.
    params
        Model parameters: for ``independent`` per-gene ``alpha, beta, gamma`` (missing ones
        drawn at random); for the motifs dynamo's dictionaries (``bifur2genes_params`` …,
        unscaled; ``beta`` defaults to 1).
    **options
        Keyword-only options:

        ``experiment_type`` (``"conventional"``, ``"one-shot"``, ``"kin"``, ``"deg"``,
        ``"mix_pulse_chase"``); ``label_time``, ``chase_time``, ``pulse_time`` (durations,
        see :mod:`dynadask.sim.designs`); ``method`` (``"ssa"`` exact Gillespie,
        ``"langevin"`` chemical Langevin, ``"ode"`` mean ODE + Poisson counts, exact for
        independent genes); ``t_span`` (range of the cells' state times); ``n_genes`` and
        ``start`` (``"zero"`` or ``"steady"``) for ``independent``; ``n_traj``, ``r_aug``,
        ``tau`` for the motifs (dynamo's scaling); ``dt`` (Langevin / ODE step);
        ``layers`` (count layers to make); ``true_velocity`` (write the truth layers);
        ``seed``; ``chunk_cells`` (cells simulated per task).

    Returns
    -------
    anndata.AnnData
        The simulated cells.

    Writes
    ------
    layers
        Counts (float32 CSR): ``spliced``, ``unspliced`` (conventional) or ``uu, ul, su,
        sl, new, total`` (labelling), or those named in ``layers``; truth (dense float32):
        ``velocity_U_true`` (alpha - beta u), ``velocity_S_true`` (beta u - gamma s) and
        for motifs ``alpha_true`` (each cell's transcription rate).
    X
        A copy of ``spliced`` (conventional) or ``total`` (labelling).
    obs
        ``time`` (dynamo's time key: simulated time, label duration, or chase duration),
        ``sim_time``, ``state_time``, ``label_time``, ``chase_time``, ``experiment``,
        ``trajectory``, and for motifs ``cell_type`` (nearest fixed point of the cell's
        noise-free trajectory).
    var
        ``true_alpha, true_beta, true_gamma`` (independent) or the motif's scaled
        parameters ``true_a, true_b, true_S, true_K, true_m, true_n, true_beta, true_gamma``.
    uns['sim']
        ``model``, ``experiment_type``, ``method``, ``seed``, ``network`` (the term tables,
        rates and initial means), ``fixed_points`` and ``fixed_point_stable``, and for two
        genes ``grid`` / ``grid_velocity`` of the vector field (:func:`vector_field`).
    """
    plan = _plan(model, n_cells, params, **options)
    (results,) = compute(plan.blocks, desc="simulate")
    data = {
        k: sparse.vstack([r[k] for r in results], format="csr") if k in plan.layers
        else np.vstack([r[k] for r in results])
        for k in (*plan.layers, *plan.truth)
    }  # fmt: skip
    adata = ad.AnnData(
        X=data[plan.x_layer].copy(), obs=plan.obs, var=plan.var, layers=data, uns=plan.uns
    )
    if plan.typed_by:
        rec = plan.uns["sim"]
        codes = nearest_point(*(data[k] for k in plan.typed_by), **_nearest_kwargs(rec))
        adata.obs["cell_type"] = _cell_type(rec, codes)
    return adata


def simulate_store(
    path: str | Path,
    model: str | Network = "independent",
    n_cells: int = 1000,
    *,
    params: Mapping | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Simulate an experiment straight into a Zarr store, block by block on the workers.

    Takes the options of :func:`simulate`; for the same options and seed the store holds
    exactly the cells :func:`simulate` returns, whatever ``chunk_cells`` and the scheduler.
    Only per-cell annotations (a few vectors of length ``n_cells``) are held by the caller.

    Parameters
    ----------
    path
        The store to create (appears only once complete).
    model, n_cells, params
        As in :func:`simulate`.
    overwrite
        Replace an existing store.
    **options
        As in :func:`simulate`.

    Returns
    -------
    pathlib.Path
        The store; open it with ``dyn.io.open(path)``.

    Writes
    ------
    store
        The layers, X, obs, var and ``uns['sim']`` listed in :func:`simulate`.
    """
    plan = _plan(model, n_cells, params, **options)
    lazy = plan.lazy()
    # without low-level fusion every layer's writer shares its block's one simulation task
    # (fused, each layer would carry, and run, its own copy of the simulation)
    with dask.config.set({"optimization.fuse.active": False}):
        path = create_store(
            path,
            plan.obs,
            plan.var,
            lazy,
            X=lazy[plan.x_layer],
            uns=plan.uns,
            chunk_cells=plan.sizes[0],
            overwrite=overwrite,
        )
    if plan.typed_by:
        adata = open_store(path)
        rec = plan.uns["sim"]
        lazy_codes = map_rows(
            nearest_point,
            *(adata.layers[k] for k in plan.typed_by),
            dtype=np.int64,
            **_nearest_kwargs(rec),
        )
        (codes,) = compute(lazy_codes, desc="cell types")
        commit(adata, "sim_cell_type", obs={"cell_type": _cell_type(rec, codes)})
    return path
