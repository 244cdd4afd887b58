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
    ix = (xy[:, 0] - x0) * (nx / max(x1 - x0, 1e-12))
    iy = (xy[:, 1] - y0) * (ny / max(y1 - y0, 1e-12))
    ix = np.clip(np.nan_to_num(ix), 0, nx - 1).astype(np.int64)
    iy = np.clip(np.nan_to_num(iy), 0, ny - 1).astype(np.int64)
    return np.where(ok, iy * nx + ix, -1)


def sum_per_pixel(
    pixels: np.ndarray, n_pixels: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per pixel, the number of points (or the sum of ``weights``, one column per channel).

    ``weights`` is ``(n,)`` or ``(n, k)``; points with index ``-1`` or a non-finite weight
    are left out. Block sums add up, so a Dask reduction over row blocks sums these.
    """
    keep = pixels >= 0
    if weights is None:
        return np.bincount(pixels[keep], minlength=n_pixels).astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w2 = w.reshape(w.shape[0], -1)
    keep &= np.isfinite(w2).all(axis=1)
    p = pixels[keep]
    out = np.stack(
        [np.bincount(p, weights=w2[keep, j], minlength=n_pixels) for j in range(w2.shape[1])],
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
    pixels = np.where(ok, pixels, -1)
    count = sum_per_pixel(pixels, n_pixels)
    total = sum_per_pixel(pixels, n_pixels, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count.reshape((n_pixels,) + (1,) * (values.ndim - 1))
    return mean.reshape(tuple(shape) + values.shape[1:])
