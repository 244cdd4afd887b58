"""Recovery of known kinetics from dyn.sim data, for every estimator; prints a table.

    python -m benchmarks.truth [--cells 3000] [--genes 40]

Conventional data (independent genes simulated from zero, so some never reach steady
state): the workflow's moments are taken on the simulated counts, then each estimator's
``gamma / beta`` and velocity are compared with the truth (Spearman over genes; median
over genes of the per-gene Spearman of velocity with ``velocity_S_true``). Labelling data
(one-shot, kin, deg from steady state): median relative error of ``gamma`` in absolute
units.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from scipy.stats import spearmanr

import dynadask as dyn

CONVENTIONAL = [
    ("deterministic", "ols"),
    ("stochastic", "gmm"),
    ("stochastic", "negbin"),
    ("dynamical", "em"),
]


def _smoothed(sim):
    """Preprocess (size factors, all genes kept), kNN graph and moments of simulated cells."""
    a = sim.copy()
    dyn.pp.recipe_monocle(
        a, n_top_genes=a.n_vars, num_dim=min(30, a.n_vars - 1), keep_filtered_cells=True
    )
    a.var["use_for_pca"] = True
    dyn.tl.moments(a)
    return a


def conventional(n_cells: int, n_genes: int, seed: int) -> list[tuple[str, str, str]]:
    """One row per conventional estimator."""
    sim = dyn.sim.simulate(
        "independent", n_cells, n_genes=n_genes, seed=seed, method="ode", start="zero"
    )
    truth = (sim.var["true_gamma"] / sim.var["true_beta"]).to_numpy()
    true_v = np.asarray(sim.layers["velocity_S_true"], dtype=np.float64)
    base = _smoothed(sim)
    rows = []
    for model, method in CONVENTIONAL:
        a = base.copy()
        dyn.tl.dynamics(a, model=model, est_method=method, experiment_type="conventional")
        g = a.var["gamma"].to_numpy()
        ok = np.isfinite(g)
        v = np.asarray(a.layers["velocity_S"], dtype=np.float64)
        rho_v = [spearmanr(v[:, j], true_v[:, j])[0] for j in np.flatnonzero(ok)]
        rows.append(
            (
                f"conventional {model}/{method}",
                f"gamma/beta Spearman {spearmanr(g[ok], truth[ok])[0]:.3f}",
                f"velocity Spearman (median gene) {np.nanmedian(rho_v):.3f}",
            )
        )
    return rows


def labelling(n_cells: int, seed: int) -> list[tuple[str, str, str]]:
    """One row per labelling experiment."""
    rows = []
    for exp in ("one-shot", "kin", "deg"):
        sim = dyn.sim.simulate(
            "independent",
            n_cells,
            experiment_type=exp,
            n_genes=20,
            seed=seed,
            method="ode",
            start="steady",
        )
        a = sim.copy()
        for k in ("uu", "ul", "su", "sl"):
            a.layers[f"X_{k}"] = a.layers[k]
        dyn.tl.dynamics(a, use_smoothed=False, tkey="time", experiment_type=exp)
        err = np.abs(a.var["gamma"] / a.var["true_gamma"] - 1)
        rows.append(
            (
                f"labelling {exp}",
                f"gamma median relative error {np.median(err):.3f}",
                "target <= 0.20",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--genes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = conventional(args.cells, args.genes, args.seed) + labelling(args.cells, args.seed)
    width = max(len(r[0]) for r in rows)
    for name, first, second in rows:
        print(f"{name:<{width}}  {first:<34} {second}")


if __name__ == "__main__":
    main()
