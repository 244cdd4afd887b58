"""dynamo's ``Gillespie`` designs as exact stochastic paths.

The designs: promoter switching with labelling, a toggle switch with splicing, and
labelling experiments on two-gene motifs with protein.
``Gillespie(method=...)`` returns ``(adata, adata_no_splicing)`` as dynamo does; the second
is ``None`` for the designs without labelling. Every path is exact (the direct method,
:mod:`dynadask.kernels.gillespie_designs` and :mod:`dynadask.kernels.sim_path`), one Dask
task per batch of paths, each path on its own seeded stream.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import dask
import numpy as np
import pandas as pd
from scipy import sparse

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.sim import path_tasks
from ..kernels.gillespie_designs import (
    DIFFERENTIATION,
    KIN_CHECKPOINTS,
    OSCILLATION,
    labelling_design,
    promoter_paths,
)
from .models import build_network

log = logging.getLogger(__name__)

METHODS = ("basic", "simulate_2bifurgenes", "differentiation", "oscillation")
BASIC_PARAMS = ("a", "b", "la", "aa", "ai", "si", "be", "ga")
# the toggle switch of method='simulate_2bifurgenes' (dynamo's fixed values, not scaled)
BIFUR_PARAMS = {
    "a": [20.0, 20.0], "b": [20.0, 20.0], "S": [20.0, 20.0], "K": [20.0, 20.0],
    "m": [3, 3], "n": [3, 3], "beta": [1, 1], "gamma": [1, 1],
}  # fmt: skip
T_CHECKPOINTS = (0, 5, 10, 40, 100, 200, 300, 400)
T_LABEL = (0.0, 0.1, 0.2, 0.4, 0.8)
T_CHASE = (0, 1, 2, 4, 8)
EXPERIMENTS = ("kin_t_5", "kin_t_40", "kin_t_200", "kin_t_300", "one_shot", "deg_beign", "deg_end")


def _seeds(seed: int, tag: int, n: int) -> np.ndarray:
    return np.random.default_rng([int(seed), tag]).integers(0, 2**31 - 1, n)


def Gillespie(  # noqa: N802 - dynamo's name
    a: float | Sequence[float] | None = None,
    b: float | Sequence[float] | None = None,
    la: float | Sequence[float] | None = None,
    *,
    aa: float | Sequence[float] | None = None,
    ai: float | Sequence[float] | None = None,
    si: float | Sequence[float] | None = None,
    be: float | Sequence[float] | None = None,
    ga: float | Sequence[float] | None = None,
    C0: np.ndarray | None = None,  # noqa: N803 - dynamo's name
    t_span: Sequence[float] = (0, 50),
    n_traj: int = 1,
    t_eval: Sequence[float] | None = None,
    dt: float = 1,
    method: str = "basic",
    verbose: bool = False,
    n_lineages: int = 50,
    batch: int = 10,
    seed: int = 0,
) -> tuple[ad.AnnData, ad.AnnData | None]:
    """Simulate one of dynamo's Gillespie designs and return its cells as AnnData.

    Parameters
    ----------
    a, b
        ``method='basic'``: per-gene rates at which the promoter turns off (active to
        inactive) and on; the promoter is active a share ``b / (a + b)`` of the time.
    la
        ``'basic'``: share of the transcripts that are labelled.
    aa, ai
        ``'basic'``: transcription rates with the promoter active and inactive.
    si
        ``'basic'``: share of the spliced labelled unspliced RNA that becomes unlabelled.
    be, ga
        ``'basic'``: splicing and degradation rates. One value or one per gene; the
        number of genes is the longest of these.
    C0
        ``'basic'``: initial counts, (5, genes) or (5,) as ``[promoter, ul, uu, sl, su]``;
        default all zero (promoter inactive).
    t_span
        ``'basic'``: start and end of the recorded time (the paths start at
        ``t_span[0]``); ``'simulate_2bifurgenes'``: the simulated time.
    n_traj
        ``'basic'`` and ``'simulate_2bifurgenes'``: number of paths (each path's cells
        follow the previous path's).
    t_eval
        ``'basic'``: record times; default ``(t_span[1] - t_span[0]) // dt`` times evenly
        from ``t_span[0]`` to ``t_span[1]``.
    dt
        ``'basic'``: spacing that sets the default number of record times.
    method
        ``'basic'`` (promoter switching, labelling and splicing of independent genes,
        recorded at ``t_eval``), ``'simulate_2bifurgenes'`` (the two-gene toggle switch
        with splicing, every reaction a cell), ``'oscillation'`` or ``'differentiation'``
        (dynamo's labelling design on a two-gene motif with protein: a lineage run to
        steady state, a treatment run checkpointed at 0, 5, 10, 40, 100, 200, 300, 400,
        kinetics labelling from checkpoints 5, 40, 200, 300 recorded at 0, 0.1, 0.2, 0.4,
        0.8, one-shot labelling for one time unit from every checkpoint, and degradation
        chases from checkpoints 0 and 400 after 10 time units of labelling, recorded at
        0, 1, 2, 4, 8).
    verbose
        Log the number of cells.
    n_lineages
        ``'oscillation'`` and ``'differentiation'``: lineages per design row (dynamo: 50).
    batch
        Paths (or lineages) per Dask task.
    seed
        Seeds every path; the result does not depend on ``batch`` or the scheduler.

    Returns
    -------
    adata : anndata.AnnData
        The cells with RNA (cells without any are dropped, as dynamo does), in memory;
        write it with ``write_h5ad`` and ``dyn.io.convert`` for a store.
    adata_no_splicing : anndata.AnnData or None
        ``'oscillation'`` and ``'differentiation'``: the same cells with ``new`` and
        ``total`` layers; ``None`` otherwise.

    Writes
    ------
    X
        Total RNA per cell and gene (int64, CSR).
    layers
        ``'basic'``: ``uu, ul, su, sl, spliced, unspliced``; ``'simulate_2bifurgenes'``:
        ``spliced, unspliced`` and ``ambiguous`` (their sum, as dynamo writes it); the
        labelling designs: ``uu, ul, su, sl`` and, in the second AnnData, ``new, total``.
    obs
        ``'basic'`` and ``'simulate_2bifurgenes'``: ``Trajectory``, ``Step`` (index
        ``Cell_name``); the labelling designs: ``trajectory``, ``time`` (label, checkpoint
        or chase time), ``experiment_type`` (index ``cell_name``).
    obsm
        ``protein`` (labelling designs); ``promoter`` (``'basic'``: 1 where the gene's
        promoter is active).
    var
        ``true_beta, true_gamma, true_eta, true_delta`` (NaN where the design has no
        protein); index ``gene_short_name`` (``gene_0, gene_1 ...``).
    uns
        ``gillespie``: ``method`` and, for ``'basic'``, ``t_eval`` and
        ``promoter_on_time`` (paths x genes, active time up to the last record time).

    Notes
    -----
    dynamo 1.5.3 differs in these points, which are faults of its code rather than of the
    designs: 'basic' names the labelled unspliced RNA ``uu`` (and ``ul``, ``su``, ``sl``
    likewise swapped) and runs one path from zero whatever ``n_traj``, ``C0`` and
    ``t_span``; 'simulate_2bifurgenes' puts ``(u1, s1)`` in ``unspliced`` and ``(u2, s2)``
    in ``spliced`` and keeps only its first path; every design interpolates the paths
    linearly between events and stops a path after 100,000 events (the differentiation
    design's treatment run reaches that near t = 394, so its last checkpoint repeats an
    earlier state). Here the species carry their names, the paths of 'basic' and of the
    labelling designs run to their end and are read at the record times exactly, and
    'simulate_2bifurgenes' keeps, as dynamo, at most 100,000 reactions a path. Cell names
    carry the experiment so they are unique.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if int(batch) < 1:
        raise InputError(f"batch must be at least 1, got {batch}")
    if method == "basic":
        params = dict(zip(BASIC_PARAMS, (a, b, la, aa, ai, si, be, ga), strict=True))
        out = _basic(params, C0, t_span, int(n_traj), t_eval, dt, int(batch), int(seed))
    elif method == "simulate_2bifurgenes":
        out = _bifurcation(t_span, int(n_traj), int(seed)), None
    else:
        if int(n_lineages) < 1:
            raise InputError(f"n_lineages must be at least 1, got {n_lineages}")
        out = _labelling(method, int(n_lineages), int(batch), int(seed))
    if verbose:
        log.info("Gillespie(%s): %d cells x %d genes", method, *out[0].shape)
    return out


# ------------------------------------------------------------------ shared pieces
def _var(n_genes: int, beta, gamma, eta=np.nan, delta=np.nan) -> pd.DataFrame:
    per_gene = {
        "true_beta": beta,
        "true_gamma": gamma,
        "true_eta": eta,
        "true_delta": delta,
    }
    cols = {k: np.broadcast_to(np.asarray(v), (n_genes,)).copy() for k, v in per_gene.items()}
    names = pd.Index([f"gene_{i}" for i in range(n_genes)], name="gene_short_name")
    return pd.DataFrame(cols, index=names)


def _csr(x: np.ndarray) -> sparse.csr_matrix:
    return sparse.csr_matrix(np.rint(x).astype(np.int64))


def _anndata(
    total: np.ndarray, layers: dict, obs: pd.DataFrame, var: pd.DataFrame, obsm: dict, uns: dict
) -> ad.AnnData:
    keep = total.sum(axis=1) > 0
    adata = ad.AnnData(
        _csr(total[keep]),
        obs=obs.iloc[np.flatnonzero(keep)].copy(),
        var=var.copy(),
        layers={k: _csr(v[keep]) for k, v in layers.items()},
        obsm={k: np.asarray(v)[keep] for k, v in obsm.items()},
        uns=uns,
    )
    return adata


def _per_gene(values: dict) -> dict[str, np.ndarray]:
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise MissingKeyError(
            f"method='basic' needs {', '.join(BASIC_PARAMS)}; missing: {', '.join(missing)}"
        )
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in values.items()}
    n_genes = max(x.size for x in arrays.values())
    for k, x in arrays.items():
        if x.ndim != 1 or x.size not in (1, n_genes):
            raise InputError(f"{k} must be one value or one per gene ({n_genes}), got {x.shape}")
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise InputError(f"{k} must be finite and non-negative, got {x}")
    for k in ("la", "si"):
        if np.any(arrays[k] > 1):
            raise InputError(f"{k} is a share and must lie in [0, 1], got {arrays[k]}")
    return {k: np.broadcast_to(x, (n_genes,)).copy() for k, x in arrays.items()}


# ------------------------------------------------------------------ method='basic'
def _basic(values, c0, t_span, n_traj, t_eval, dt, batch, seed):
    p = _per_gene(values)
    n_genes = p["a"].size
    t0, t1 = (float(v) for v in t_span)
    if t_eval is None:
        if not dt > 0 or not t1 > t0:
            raise InputError(f"t_span must be [start, end] with end > start and dt > 0: {t_span}")
        t_eval = np.linspace(t0, t1, int((t1 - t0) // dt))
    t_eval = np.asarray(t_eval, dtype=np.float64)
    if t_eval.ndim != 1 or t_eval.size == 0 or np.any(np.diff(t_eval) < 0) or t_eval[0] < t0:
        raise InputError("t_eval must be non-empty, increasing and not before t_span[0]")
    if n_traj < 1:
        raise InputError(f"n_traj must be at least 1, got {n_traj}")
    c0 = np.zeros((5, n_genes)) if c0 is None else np.asarray(c0, dtype=np.float64)
    if c0.ndim == 1:
        c0 = c0[:, None]
    if c0.shape[0] != 5 or c0.shape[1] not in (1, n_genes) or np.any(c0 < 0):
        raise InputError(
            f"C0 must be non-negative counts, (5, genes) as [promoter, ul, uu, sl, su], got "
            f"shape {c0.shape}"
        )
    init = np.array(np.broadcast_to(np.rint(c0), (5, n_genes)).T, order="C")
    init[:, 0] = init[:, 0] > 0
    table = np.vstack([p[k] for k in BASIC_PARAMS])
    seeds = _seeds(seed, 23, n_traj)
    tasks = [
        dask.delayed(promoter_paths, pure=True)(init, t0, t_eval, table, seeds[i : i + batch])
        for i in range(0, n_traj, batch)
    ]
    (parts,) = compute(tasks, desc="Gillespie paths")
    states = np.concatenate([s for s, _ in parts]).reshape(-1, n_genes, 5)
    on_time = np.concatenate([o for _, o in parts])
    ul, uu, sl, su = (states[:, :, k] for k in (1, 2, 3, 4))
    steps = t_eval.size
    obs = pd.DataFrame(
        {
            "Trajectory": np.repeat(np.arange(n_traj), steps),
            "Step": np.tile(np.arange(steps), n_traj),
        },
        index=pd.Index(
            [f"traj_{i}_step_{j}" for i in range(n_traj) for j in range(steps)],
            name="Cell_name",
        ),
    )
    layers = {"uu": uu, "ul": ul, "su": su, "sl": sl, "spliced": su + sl, "unspliced": uu + ul}
    uns = {"gillespie": {"method": "basic", "t_eval": t_eval, "promoter_on_time": on_time}}
    adata = _anndata(
        uu + ul + su + sl,
        layers,
        obs,
        _var(n_genes, p["be"], p["ga"]),
        {"promoter": states[:, :, 0].astype(np.int64)},
        uns,
    )
    return adata, None


# ------------------------------------------------------------------ 'simulate_2bifurgenes'
def _bifurcation(t_span, n_traj, seed):
    t0, t1 = (float(v) for v in t_span)
    if not t1 > t0 or n_traj < 1:
        raise InputError(f"t_span must be [start, end] with end > start and n_traj >= 1: {t_span}")
    net = build_network("bifurcation", BIFUR_PARAMS, r_aug=1.0, tau=1.0)
    tasks = path_tasks(
        net.kernel_net(),
        np.zeros((n_traj, 4)),
        (t0, t1),
        beta=net.beta,
        gamma=net.gamma,
        splicing=True,
        seeds=_seeds(seed, 29, n_traj),
        skip=0,
        max_len=100_001,
    )
    (paths,) = compute(tasks, desc="Gillespie paths")
    # a cell per reaction: the state after it (the initial state is not a cell)
    states = np.vstack([c[1:] for _, c in paths])
    lengths = [len(t) - 1 for t, _ in paths]
    u, s = states[:, :2], states[:, 2:]
    obs = pd.DataFrame(
        {
            "Trajectory": np.repeat(np.arange(n_traj), lengths),
            "Step": np.concatenate([np.arange(n) for n in lengths]),
        },
        index=pd.Index(
            [f"traj_{i}_step_{j}" for i, n in enumerate(lengths) for j in range(n)],
            name="Cell_name",
        ),
    )
    layers = {"spliced": s, "unspliced": u, "ambiguous": u + s}
    var = _var(2, np.ones(2, dtype=np.int64), np.ones(2, dtype=np.int64))
    uns = {"gillespie": {"method": "simulate_2bifurgenes"}}
    return _anndata(u + s, layers, obs, var, {}, uns)


# ------------------------------------------------------------------ labelling designs
def _labelling_params(method: str) -> tuple[dict, np.ndarray, float, dict]:
    """Return the model parameters (pre, treated, labelled), c0, pre-run time and truth."""
    names = ("a1", "b1", "c1", "a2", "b2", "c2")
    if method == "differentiation":
        r, tau = 15.0, 0.7
        b, c, k, n = 0.5 * r / tau, 0.3 * r, 35 * r, 5.0
        beta, gamma, eta, delta = 0.5 / tau, 0.2 / tau, 0.5 / tau, 0.05 / tau
        untreated, treated = (a * r / tau for a in (1.0, 0.5))
        rates = {
            "pre": (untreated, b, c, untreated, b, c),
            "unlab": (treated, b, c, treated, b, c),
        }
        c0 = np.array([40, 100, 40, 100, 0, 0, 0, 0, 1000, 1000], dtype=np.float64)
        t_pre = 200.0
    else:
        r, tau = 20.0, 3.0
        beta, gamma, eta, delta = 0.5 / tau, 0.2 / tau, 0.5 / tau, 0.05 / tau
        k, n = 2.5 * r, 10.0
        a1, b1, a2, b2 = 1.5 * r / tau, 1.0 * r / tau, 0.5 * r / tau, 2.5 * r / tau
        rates = {"pre": (a1, b1, 0.0, a2, b2, 0.0), "unlab": (a1, b1, 0.0, a2, b2, 0.0)}
        zeta = eta * beta / (delta * gamma)
        x = 70 * beta / gamma
        c0 = np.array([70, x, 70, x, 0, 0, 0, 0, 70 * zeta, 70 * zeta], dtype=np.float64)
        t_pre = 100.0
    tail = (k, n, beta, gamma, eta, delta, beta, gamma, eta, delta)

    def vector(unlabelled, labelled):
        return np.array([*unlabelled, *labelled, *tail], dtype=np.float64)

    zero = (0.0,) * len(names)
    models = {
        "pre": vector(rates["pre"], zero),
        "unlab": vector(rates["unlab"], zero),
        "lab": vector(zero, rates["unlab"]),
    }
    truth = {"beta": beta, "gamma": gamma, "eta": eta, "delta": delta}
    return models, c0, t_pre, truth


def _labelling(method, n_lineages, batch, seed):
    models, c0, t_pre, truth = _labelling_params(method)
    kind = DIFFERENTIATION if method == "differentiation" else OSCILLATION
    seeds = _seeds(seed, 31 + kind, n_lineages)
    tasks = [
        dask.delayed(labelling_design, pure=True)(
            c0, seeds[i : i + batch], models["pre"], models["unlab"], models["lab"], kind, t_pre
        )
        for i in range(0, n_lineages, batch)
    ]
    (parts,) = compute(tasks, desc="Gillespie lineages")
    rows = np.concatenate(parts)  # (lineages, 38, 10)
    n_kin = len(KIN_CHECKPOINTS) * len(T_LABEL)
    blocks = [rows[:, j * 5 : (j + 1) * 5] for j in range(len(KIN_CHECKPOINTS))]
    blocks += [rows[:, n_kin : n_kin + 8], rows[:, n_kin + 8 : n_kin + 13], rows[:, n_kin + 13 :]]
    times = [T_LABEL] * 4 + [T_CHECKPOINTS, T_CHASE, T_CHASE]
    # within a block: time-major, then lineage (dynamo's order)
    cells = np.vstack([blk.transpose(1, 0, 2).reshape(-1, blk.shape[2]) for blk in blocks])
    names, traj, when, exp = [], [], [], []
    for label, ts in zip(EXPERIMENTS, times, strict=True):
        for t in ts:
            for i in range(n_lineages):
                stamp = f"{t:f}" if label.startswith("kin") else f"{t:d}"
                names.append(f"{label}_traj_{i}_time_{stamp}")
                traj.append(i)
                when.append(float(t))
                exp.append(label)
    obs = pd.DataFrame(
        {"trajectory": traj, "time": when, "experiment_type": exp},
        index=pd.Index(names, name="cell_name"),
    )
    uu, su, ul, sl = (cells[:, [k, k + 2]] for k in (0, 1, 4, 5))
    protein = cells[:, 8:10].copy()
    total, new = uu + ul + su + sl, ul + sl
    var = _var(2, truth["beta"], truth["gamma"], truth["eta"], truth["delta"])
    layers = {"uu": uu, "ul": ul, "su": su, "sl": sl}
    uns = {"gillespie": {"method": method}}
    adata = _anndata(total, layers, obs, var, {"protein": protein}, uns)
    nosp = _anndata(
        total,
        {"new": new, "total": total},
        obs,
        var,
        {"protein": protein},
        {"gillespie": {"method": method}},
    )
    return adata, nosp
