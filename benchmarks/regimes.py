"""Kinetics recovery across regimes of the splicing ODE; prints the table of issue 20.

    python -m benchmarks.regimes [--cells 5000] [--genes 300] [--seed 0]

Simulated splicing data with known rates: every gene follows the closed-form mean of the
on/off splicing ODE at its cell's time, and the counts are Poisson draws of that mean
(``depth`` scales the mean: two noise levels). Regimes per gene:

- ``steady``: the gene sits at its steady state ``(alpha / beta, alpha / gamma)`` in all cells;
- ``induction``: switched on at time 0 from no RNA, never switched off;
- ``repression``: at steady state until time 0, then transcription stops;
- ``cycle``: induction from no RNA, switched off at a time inside the cells' time span;
- ``mixture``: the four regimes in equal shares over the genes.

Each cell has one time shared by its genes, uniform over the span (``--time-density
uniform``: a steady flux of cells through the process) or with a density rising threefold
from one end of the span to the other (``late``: more cells late, as where cells proliferate
along the way; ``early``: more cells early, as where cells die or leave along the way).
Besides the regime's genes, every set has ``--background`` (default 4) times as many genes
at their steady state, as real data have: without them every gene moves with time, each
cell's total follows its time and the size-factor normalisation bends the trajectories. PCA
and kNN graph use all genes; ``dynamics`` is given, and the figures score, only the
regime's genes. The data go through the guide's calls (``recipe_monocle`` keeping all
genes, ``dynamics(model=...)``; moments are taken by ``dynamics``), then per estimator:
Spearman of ``gamma / beta`` with the truth, and the median over cells of the cosine
between ``velocity_S`` and the true velocity ``(beta u - gamma s) / beta`` of the
noise-free mean (the estimators report rates in units of ``beta``). ``oracle`` is
``M_u - (gamma / beta) M_s`` with the true rates on the same smoothed data. Seconds are the
``dynamics`` call's wall time per 1,000 genes, and its CPU time (the process's, all
threads: the figure to read on a shared machine). ``auto/auto`` is ``model='auto'``, the
per-gene choice.
"""

from __future__ import annotations

import argparse
import time
import warnings

import anndata as ad
import numpy as np
from scipy import sparse
from scipy.stats import spearmanr

import dynadask as dyn

REGIMES = ("steady", "induction", "repression", "cycle", "mixture")
ESTIMATORS = (
    ("stochastic", "gmm"),
    ("deterministic", "ols"),
    ("stochastic", "negbin"),
    ("dynamical", "curve"),
    ("dynamical", "em"),
    ("auto", "auto"),
)
BACKGROUND = 4.0  # background steady-state genes per gene of the regime
SPAN = 12.0  # cells' times are uniform on [0, SPAN] (units of 1 / beta of a beta = 1 gene)


def _cross(t: np.ndarray, beta: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``(e^{-beta t} - e^{-gamma t}) / (gamma - beta)``."""
    return (np.exp(-beta * t) - np.exp(-gamma * t)) / (gamma - beta)


def means(
    t: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
    t_switch: np.ndarray,
    u0: np.ndarray,
    s0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(u, s)`` at times ``t`` (cells x 1) of genes switched off at ``t_switch``.

    From ``(u0, s0)`` at time 0 with transcription ``alpha`` until ``t_switch``, then none.
    """

    def run(t, a, u0, s0):
        u = a / beta + (u0 - a / beta) * np.exp(-beta * t)
        s_inf = a / gamma
        s = (
            s_inf
            + (s0 - s_inf) * np.exp(-gamma * t)
            + beta * (u0 - a / beta) * _cross(t, beta, gamma)
        )
        return u, s

    on_u, on_s = run(np.minimum(t, t_switch), alpha, u0, s0)
    sw_u, sw_s = run(t_switch, alpha, u0, s0)
    off_u, off_s = run(np.maximum(t - t_switch, 0.0), 0.0 * alpha, sw_u, sw_s)
    after = t > t_switch
    return np.where(after, off_u, on_u), np.where(after, off_s, on_s)


def simulate(
    n_cells: int,
    n_genes: int,
    regime: str,
    *,
    depth: float = 1.0,
    seed: int = 0,
    background: float = BACKGROUND,
    time_density: str = "uniform",
) -> ad.AnnData:
    """Poisson splicing counts of genes in one regime (or a mixture), with the truth in var.

    Besides the ``n_genes`` genes of the regime (``var['scored']``), ``background`` times as
    many genes sit at their steady state in every cell, drawn from the same rate ranges, as
    most genes of real data do: the cells' total counts then hardly follow their time, and
    the per-cell size-factor normalisation leaves the regime's trajectories in their shape.
    """
    rng = np.random.default_rng([seed, REGIMES.index(regime)])
    n_back = int(round(background * n_genes))
    n_all = n_genes + n_back
    alpha = np.exp(rng.uniform(np.log(2.0), np.log(20.0), n_all)) * depth
    beta = np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_all))
    gamma = np.exp(rng.uniform(np.log(0.1), np.log(1.0), n_all)) * beta
    kinds = (
        rng.permutation(np.arange(n_genes) % 4)
        if regime == "mixture"
        else np.full(n_genes, REGIMES.index(regime))
    )
    kinds = np.r_[kinds, np.zeros(n_back, kinds.dtype)]
    steady_u, steady_s = alpha / beta, alpha / gamma
    at_steady = (kinds == 0) | (kinds == 2)
    u0, s0 = steady_u * at_steady, steady_s * at_steady
    t_switch = np.where(
        kinds == 3, rng.uniform(0.3, 0.7, n_all) * SPAN, np.where(kinds == 2, 0.0, np.inf)
    )
    t = np.sort(SPAN * _spread(rng.uniform(0, 1, n_cells), time_density))[:, None]
    mu, ms = means(t, alpha, beta, gamma, t_switch, u0, s0)
    v = (beta * mu - gamma * ms) / beta
    u, s = rng.poisson(mu).astype(np.float32), rng.poisson(ms).astype(np.float32)
    a = ad.AnnData(
        X=sparse.csr_matrix(s),
        layers={"spliced": sparse.csr_matrix(s), "unspliced": sparse.csr_matrix(u)},
    )
    a.obs_names = [f"c{i}" for i in range(n_cells)]
    a.var_names = [f"g{j}" for j in range(n_all)]
    a.obs["true_time"] = t[:, 0]
    a.var["true_alpha"], a.var["true_beta"], a.var["true_gamma"] = alpha, beta, gamma
    a.var["true_t_switch"] = t_switch
    a.var["regime"] = np.asarray(REGIMES[:4])[kinds]
    a.var["scored"] = np.arange(n_all) < n_genes
    a.layers["velocity_S_true"] = v.astype(np.float32)
    return a


def _spread(x: np.ndarray, density: str) -> np.ndarray:
    """Uniform draws on [0, 1] mapped to ``density`` (see the module's text)."""
    if density == "uniform":
        return x

    def late(y: np.ndarray) -> np.ndarray:  # inverse of the CDF (y + y^2) / 2: density 1/2 to 3/2
        return (np.sqrt(1 + 8 * y) - 1) / 2

    if density == "late":
        return late(x)
    if density == "early":
        return 1 - late(1 - x)
    raise ValueError(f"time_density must be 'uniform', 'late' or 'early', not {density!r}")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.median(num[den > 0] / den[den > 0]))


def _dense(x) -> np.ndarray:
    x = x.toarray() if sparse.issparse(x) else np.asarray(x)
    return np.asarray(x, dtype=np.float64)


def preprocess(sim: ad.AnnData) -> ad.AnnData:
    """``recipe_monocle`` keeping every gene (PCA and kNN graph on all).

    The regime's genes (``var['scored']``) are the ones given to dynamics.
    """
    a = sim.copy()
    dyn.pp.recipe_monocle(a, n_top_genes=a.n_vars, num_dim=30, keep_filtered_cells=True)
    a.var["use_for_pca"] = a.var["scored"].to_numpy()
    return a


def score(a: ad.AnnData, gamma: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Spearman of gamma / beta with the truth and median cell cosine of the velocity.

    Over the regime's genes (``gamma`` and ``v`` are given for every gene).
    """
    on = a.var["scored"].to_numpy()
    truth = (a.var["true_gamma"] / a.var["true_beta"]).to_numpy()[on]
    gamma = np.asarray(gamma)[on]
    ok = np.isfinite(gamma)
    rho = spearmanr(gamma[ok], truth[ok])[0] if ok.sum() > 2 else np.nan
    want = _dense(a.layers["velocity_S_true"])[:, on]
    return float(rho), _cosine(np.nan_to_num(np.asarray(v)[:, on]), want)


def run_regime(
    n_cells: int,
    n_genes: int,
    regime: str,
    depth: float,
    seed: int,
    estimators: list[str] | None = None,
    background: float = BACKGROUND,
    time_density: str = "uniform",
) -> list[dict]:
    """Every estimator (or the named ``model/est_method`` ones) and the oracle on one data set."""
    sim = simulate(
        n_cells, n_genes, regime, depth=depth, seed=seed, background=background,
        time_density=time_density,
    )  # fmt: skip
    base = preprocess(sim)
    rows = []
    chosen = [tuple(e.split("/")) for e in estimators] if estimators else ESTIMATORS
    for model, method in chosen:
        a = base.copy()
        start, cpu = time.perf_counter(), time.process_time()
        dyn.tl.dynamics(a, model=model, est_method=method)
        sec, cpu = time.perf_counter() - start, time.process_time() - cpu
        rho, cos = score(a, a.var["gamma"].to_numpy(), _dense(a.layers["velocity_S"]))
        rows.append(
            {"estimator": f"{model}/{method}", "rho": rho, "cos": cos, "sec": sec, "cpu": cpu}
        )
    truth = (a.var["true_gamma"] / a.var["true_beta"]).to_numpy()
    oracle = _dense(a.layers["M_u"]) - truth * _dense(a.layers["M_s"])
    cos = score(a, truth, oracle)[1]
    rows.append({"estimator": "oracle", "rho": 1.0, "cos": cos, "sec": 0.0, "cpu": 0.0})
    for r in rows:
        r.update(regime=regime, depth=depth, sec_per_1000_genes=r["sec"] * 1000 / n_genes)
        r["cpu_per_1000_genes"] = r["cpu"] * 1000 / n_genes
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--genes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regimes", nargs="*", default=list(REGIMES))
    parser.add_argument("--depths", nargs="*", type=float, default=[1.0, 0.2])
    parser.add_argument("--estimators", nargs="*", default=None, help="model/est_method names")
    parser.add_argument(
        "--background", type=float, default=BACKGROUND, help="steady genes per regime gene"
    )
    parser.add_argument("--time-density", default="uniform", choices=("uniform", "late", "early"))
    args = parser.parse_args(argv)
    head = f"{'regime':<11}{'depth':>6}  {'estimator':<22}{'rho':>7}{'cos':>7}"
    print(head + f"{'s/1000g':>9}{'cpu/1000g':>10}")
    for depth in args.depths:
        for regime in args.regimes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows = run_regime(
                    args.cells, args.genes, regime, depth, args.seed, args.estimators,
                    background=args.background, time_density=args.time_density,
                )  # fmt: skip
            for r in rows:
                print(
                    f"{regime:<11}{depth:>6.1f}  {r['estimator']:<22}{r['rho']:>7.3f}"
                    f"{r['cos']:>7.3f}{r['sec_per_1000_genes']:>9.1f}"
                    f"{r['cpu_per_1000_genes']:>10.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
