"""Labelling rates through the documented path, total-RNA vs per-layer size factors; a table.

    python -m benchmarks.labelling_truth [--cells 2000] [--genes 50] [--size-sd 0.5]

For each design (one-shot, kin, deg, mix_std_stm), cells at steady state with a library size
varying from cell to cell (log-normal, sd ``--size-sd``; ``dyn.sim.simulate_steady_labelling``)
go through ``dyn.pp.recipe_monocle(adata, tkey="time", experiment_type=...)`` then
``dyn.tl.dynamics(adata, model=..., tkey="time", experiment_type=...)``, as a user runs them.
The table gives the median over genes of ``|gamma / true gamma - 1|`` with the default
normalisation (parts of total RNA divided by the total-RNA size factor) and with dynamo's
per-layer size factors (``size_factor_per_layer=True``), for ``new``/``total`` layers and for
``uu, ul, su, sl`` layers.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import dynadask as dyn

DESIGNS = {  # design: (labelling times in hours, dynamics model)
    "one-shot": ((2.0,), "deterministic"),
    "kin": ((1.0, 2.0, 4.0, 8.0), "deterministic"),
    "deg": ((0.0, 1.0, 2.0, 4.0, 8.0), "deterministic"),
    "mix_std_stm": ((0.0, 0.5, 1.0, 2.0, 4.0), "deterministic"),
}


def gamma_error(
    design: str,
    *,
    per_layer: bool,
    splicing: bool,
    n_cells: int,
    n_genes: int,
    size_sd: float,
    seed: int,
) -> float:
    """Median relative error of gamma for one design and one normalisation."""
    times, model = DESIGNS[design]
    a = dyn.sim.simulate_steady_labelling(
        design,
        n_cells,
        n_genes=n_genes,
        times=times,
        splicing=splicing,
        size_sd=size_sd,
        seed=seed,
    )
    dyn.pp.recipe_monocle(
        a,
        tkey="time",
        experiment_type=design,
        size_factor_per_layer=per_layer,
        num_dim=min(30, n_genes - 1),
    )
    dyn.tl.dynamics(a, model=model, tkey="time", experiment_type=design)
    return float(np.median(np.abs(a.var["gamma"] / a.var["true_gamma"] - 1)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=50)
    parser.add_argument("--size-sd", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    opts = {"n_cells": args.cells, "n_genes": args.genes, "size_sd": args.size_sd}
    print(
        f"gamma median relative error; {args.cells} cells, {args.genes} genes, "
        f"sd of log library size {args.size_sd}, seed {args.seed}"
    )
    print(f"{'design':<12} {'layers':<16} {'total-RNA factor (default)':>27} {'per-layer':>10}")
    for design in DESIGNS:
        for splicing in (False, True):
            errs = []
            for per_layer in (False, True):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    errs.append(
                        gamma_error(
                            design, per_layer=per_layer, splicing=splicing, seed=args.seed, **opts
                        )
                    )
            layers = "uu/ul/su/sl" if splicing else "new/total"
            print(f"{design:<12} {layers:<16} {errs[0]:>27.3f} {errs[1]:>10.3f}")


if __name__ == "__main__":
    main()
