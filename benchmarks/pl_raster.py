"""Mean value per pixel of millions of points: dynadask's raster kernel against datashader.

python benchmarks/pl_raster.py [--sizes 1000000 5000000] [--repeat 3]

Random 2-D points (standard normal) with a float value each, aggregated into an 800 x 800
image of the mean value per pixel, once by ``dynadask.kernels.raster.mean_per_pixel`` (numpy
``bincount``) and once by ``datashader.Canvas.points(..., agg=ds.mean('v'))`` on a pandas
frame (the first datashader call, which compiles its numba code, is timed apart). The two
images are compared. datashader is optional: without it only the kernel is timed. The kernel
is imported from the package or, when this runs in a venv without dynadask (as datashader's
throwaway venv), from ``dynadask/kernels/raster.py`` by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

SHAPE = (800, 800)


def _kernel():
    try:
        from dynadask.kernels import raster
    except ImportError:
        path = Path(__file__).resolve().parents[1] / "dynadask" / "kernels" / "raster.py"
        spec = importlib.util.spec_from_file_location("raster", path)
        raster = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(raster)
    return raster


def _best(fn, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    """Time both aggregations at each size and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raster = _kernel()
    try:
        import datashader as ds
        import pandas as pd
    except ImportError:
        ds = None
    print(
        "| points | dynadask kernel (s) | datashader (s) | datashader first call (s) | max diff |"
    )
    print("|---|---|---|---|---|")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        xy = rng.standard_normal((n, 2))
        v = rng.standard_normal(n)
        extent = (-4.0, 4.0, -4.0, 4.0)
        inside = (np.abs(xy) < 4).all(axis=1)
        xy, v = xy[inside], v[inside]
        t_ours, ours = _best(lambda: raster.mean_per_pixel(xy, v, extent, SHAPE), args.repeat)  # noqa: B023
        row = [f"{xy.shape[0]:,}", f"{t_ours:.3f}", "-", "-", "-"]
        if ds is not None:
            frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "v": v})
            canvas = ds.Canvas(
                plot_width=SHAPE[1], plot_height=SHAPE[0], x_range=extent[:2], y_range=extent[2:]
            )

            def shade(canvas=canvas, frame=frame):
                return canvas.points(frame, "x", "y", agg=ds.mean("v")).values

            t = time.perf_counter()
            shade()
            first = time.perf_counter() - t
            t_ds, theirs = _best(shade, args.repeat)
            both = np.isfinite(ours) & np.isfinite(theirs)
            same_empty = (np.isfinite(ours) == np.isfinite(theirs)).mean()
            diff = float(np.abs(ours[both] - theirs[both]).max()) if both.any() else float("nan")
            row[2:] = [f"{t_ds:.3f}", f"{first:.2f}", f"{diff:.1e} ({same_empty:.4f} same empty)"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
