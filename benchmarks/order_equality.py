"""Do results depend on the store's row order? The same cells in random and locality order.

    python -m benchmarks.order_equality --cells 100000

Takes the cached random-order continuous atlas of ``--cells`` cells (made with
``benchmarks.make_atlas`` when missing), writes the same rows sorted into the template's
locality order with plain anndata (in memory: sized for up to a few hundred thousand cells),
converts both as ``dynadask run`` does and runs the workflow's stages on each (the random one
is reordered by the ``reorder`` stage, the locality one is left as it is). Every result is then
read back in the random store's original row order (``dyn.io.open(..., order='original')``
and, for the locality copy, the inverse of its permutation) and compared: the table gives,
per key, the largest absolute difference, the largest value, and the Pearson correlation
over all values (per-gene parameters: over genes). Results that depend only on
floating-point summation order differ by about 1e-6 of their scale; the kNN search
(NN-descent from a seeded random start) may pick a few different neighbours when the rows
come in another order, which shows as larger but rare differences.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse

import dynadask as dyn
from dynadask import pipeline

from .make_atlas import load_template, make_atlas

STAGES = ["preprocess", "neighbors", "reorder", "moments", "dynamics", "cell_velocities_pca"]
LAYERS = ("M_s", "M_u", "velocity_S")
OBSM = ("X_pca", "velocity_pca")
VAR = ("gamma", "gamma_b", "use_for_pca")


def _dense(x) -> np.ndarray:
    x = x.compute() if hasattr(x, "compute") else x
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def locality_copy(random_store: Path, out: Path) -> np.ndarray:
    """Write the random store's rows in the template's locality order; return the permutation."""
    a = ad.read_zarr(random_store)
    rank = load_template("simple").rank
    perm = np.argsort(rank[a.obs["template_i"].to_numpy()], kind="stable")
    shutil.rmtree(out, ignore_errors=True)
    a[perm].copy().write_zarr(out)
    return perm


def run(store: Path, work: Path, chunk: int) -> float:
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    dyn.io.convert(store, work, chunk_cells=chunk)
    pipeline.run(work, stages=STAGES, log=lambda s: None)
    return time.perf_counter() - start


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    r = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else 1.0
    return float(np.abs(a - b).max()), float(np.abs(a).max()), r


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--chunk-cells", type=int, default=20_000)
    p.add_argument("--data-dir", type=Path, default=Path("benchmarks/data"))
    args = p.parse_args(argv)
    d = args.data_dir
    d.mkdir(parents=True, exist_ok=True)
    chunk = min(args.chunk_cells, args.cells)
    with dyn.parallel.client(None, n_workers=2) as client:
        rnd = d / f"atlas_{args.cells}_{chunk}_continuous_random.zarr"
        if not rnd.exists():
            make_atlas(
                rnd,
                args.cells,
                kind="continuous",
                order="random",
                chunk_cells=chunk,
                client=client,
                overwrite=True,
            )
        loc = d / f"atlas_{args.cells}_random_as_locality.zarr"
        perm = locality_copy(rnd, loc)
        works = {
            "random": d / "order_eq_random.work.zarr",
            "locality": d / "order_eq_loc.work.zarr",
        }
        secs = {k: run(s, works[k], chunk) for k, s in (("random", rnd), ("locality", loc))}
        r = dyn.io.open(works["random"], order="original")
        store_loc = dyn.io.open(works["locality"])
        back = np.argsort(perm)  # locality row of each original row
        loc_rows = dyn.io.open(works["locality"], order="original")  # locality copy's own order
        assert list(loc_rows.obs_names[back]) == list(r.obs_names)
        rows = []
        for key in LAYERS:
            rows.append(
                (
                    f"layers[{key}]",
                    *compare(_dense(r.layers[key]), _dense(loc_rows.layers[key])[back]),
                )
            )
        for key in OBSM:
            a, b = _dense(r.obsm[key]), _dense(loc_rows.obsm[key])[back]
            if key == "X_pca" or key == "velocity_pca":  # a component's sign is arbitrary
                a = a * np.sign(np.sum(a * b, axis=0))
            rows.append((f"obsm[{key}]", *compare(a, b)))
        for key in VAR:
            rows.append(
                (
                    f"var[{key}]",
                    *compare(r.var[key].to_numpy(float), store_loc.var[key].to_numpy(float)),
                )
            )
    print(f"{args.cells:,} cells; stages {', '.join(STAGES)}")
    print(f"wall: random order {secs['random']:.0f} s (with reorder), ", end="")
    print(f"locality order {secs['locality']:.0f} s")
    print(f"{'result':<24}{'max |diff|':>14}{'max |value|':>14}{'pearson':>10}")
    for name, diff, scale, r_ in rows:
        print(f"{name:<24}{diff:>14.3g}{scale:>14.3g}{r_:>10.6f}")
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
