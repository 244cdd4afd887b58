"""Points binned into a pixel grid: the raster figures draw above a size threshold."""

from __future__ import annotations

import numpy as np


def pixel_index(
    xy: np.ndarray, extent: tuple[float, float, float, float], shape: tuple[int, int]
) -> np.ndarray:
    """Flat pixel index ``row * nx + col`` of each point, ``-1`` for non-finite points.

    ``extent`` is ``(x0, x1, y0, y1)`` and ``shape`` ``(ny, nx)``; points on or past the
    edges go to the edge pixels.
    """
    x0, x1, y0, y1 = extent
    ny, nx = shape
    ok = np.isfinite(xy).all(axis=1)
    out = np.empty(xy.shape[0], dtype=np.int64)
    for col, lo, hi, n, scale in ((0, x0, x1, nx, 1), (1, y0, y1, ny, nx)):
        t = xy[:, col] - lo  # one float temporary per axis, worked on in place
        t *= n / max(hi - lo, 1e-12)
        np.nan_to_num(t, copy=False)
        np.clip(t, 0, n - 1, out=t)
        if col == 0:
            out[:] = t  # truncation toward zero on non-negative values: the floor
        else:
            out += t.astype(np.int64) * scale
    if not ok.all():
        out[~ok] = -1
    return out


def sum_per_pixel(
    pixels: np.ndarray, n_pixels: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per pixel, the number of points (or the sum of ``weights``, one column per channel).

    ``weights`` is ``(n,)`` or ``(n, k)``; points with index ``-1`` or a non-finite weight
    are left out. Block sums add up, so a Dask reduction over row blocks sums these.
    """
    keep = pixels >= 0
    if weights is None:
        p = pixels if keep.all() else pixels[keep]
        return np.bincount(p, minlength=n_pixels).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w2 = w.reshape(w.shape[0], -1)
    keep &= np.isfinite(w2).all(axis=1)
    every = keep.all()
    p = pixels if every else pixels[keep]
    out = np.stack(
        [
            np.bincount(p, weights=w2[:, j] if every else w2[keep, j], minlength=n_pixels)
            for j in range(w2.shape[1])
        ],
        axis=1,
    )
    return out.reshape((n_pixels,) + w.shape[1:])


def mean_per_pixel(
    xy: np.ndarray,
    values: np.ndarray,
    extent: tuple[float, float, float, float],
    shape: tuple[int, int],
) -> np.ndarray:
    """Mean of ``values`` over the points in each pixel (``NaN`` where there are none).

    ``values`` is ``(n,)`` or ``(n, k)`` (e.g. RGBA colours); the result is ``shape`` (plus
    ``k``), row 0 at ``y0``.
    """
    n_pixels = shape[0] * shape[1]
    pixels = pixel_index(xy, extent, shape)
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if not ok.all():
        pixels[~ok] = -1
    count = sum_per_pixel(pixels, n_pixels)
    total = sum_per_pixel(pixels, n_pixels, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count.reshape((n_pixels,) + (1,) * (values.ndim - 1))
    return mean.reshape(tuple(shape) + values.shape[1:])
