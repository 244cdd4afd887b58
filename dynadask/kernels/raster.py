"""Points into a pixel grid: binned (mean per pixel) or drawn as composited discs.

The figures draw cells above a size threshold with :func:`splat_discs` (the look of a
scatter, in time linear in the cells); :func:`mean_per_pixel` bins values per pixel.
"""

from __future__ import annotations

import numba
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


@numba.njit(cache=True, nogil=True)
def _splat(
    px: np.ndarray,
    py: np.ndarray,
    rgb: np.ndarray,
    alpha: float,
    radius: float,
    out: np.ndarray,
) -> None:
    ny, nx = out.shape[0], out.shape[1]
    reach = radius + 0.5
    inner = (reach - 1.0) * (reach - 1.0) if reach > 1.0 else -1.0  # fully covered within
    for k in range(px.shape[0]):
        x, y = px[k], py[k]
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        if x < -reach or y < -reach or x > nx + reach or y > ny + reach:
            continue
        c0, c1, c2 = rgb[k, 0], rgb[k, 1], rgb[k, 2]
        if not (np.isfinite(c0) and np.isfinite(c1) and np.isfinite(c2)):
            continue
        if radius < 0.5:  # smaller than a pixel: the disc's area, on the pixel of its centre
            j, i = int(np.floor(x)), int(np.floor(y))
            if 0 <= i < ny and 0 <= j < nx:
                a = alpha * min(np.pi * radius * radius, 1.0)
                out[i, j, 0] = c0 * a + out[i, j, 0] * (1.0 - a)
                out[i, j, 1] = c1 * a + out[i, j, 1] * (1.0 - a)
                out[i, j, 2] = c2 * a + out[i, j, 2] * (1.0 - a)
                out[i, j, 3] = a + out[i, j, 3] * (1.0 - a)
            continue
        i0, i1 = max(int(np.floor(y - reach)), 0), min(int(np.ceil(y + reach)), ny)
        j0, j1 = max(int(np.floor(x - reach)), 0), min(int(np.ceil(x + reach)), nx)
        for i in range(i0, i1):
            dy = i + 0.5 - y
            for j in range(j0, j1):
                dx = j + 0.5 - x
                d2 = dx * dx + dy * dy
                if d2 <= inner:
                    a = alpha
                else:
                    cover = reach - np.sqrt(d2)
                    if cover <= 0.0:
                        continue
                    a = alpha * min(cover, 1.0)
                out[i, j, 0] = c0 * a + out[i, j, 0] * (1.0 - a)
                out[i, j, 1] = c1 * a + out[i, j, 1] * (1.0 - a)
                out[i, j, 2] = c2 * a + out[i, j, 2] * (1.0 - a)
                out[i, j, 3] = a + out[i, j, 3] * (1.0 - a)


def splat_discs(
    px: np.ndarray,
    py: np.ndarray,
    rgb: np.ndarray,
    alpha: float,
    radius: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """Discs composited one over the other in the order given, as a scatter draws its markers.

    Parameters
    ----------
    px, py
        Centres in pixels: pixel ``(i, j)`` spans ``[j, j + 1) x [i, i + 1)``, row 0 at
        the bottom. Non-finite centres or colours are left out.
    rgb
        ``(n, 3)`` colours in ``[0, 1]`` (further columns are ignored).
    alpha
        Opacity of every disc (a scatter's ``alpha``).
    radius
        Disc radius in pixels. Edge pixels are covered by ``radius + 0.5 - distance``
        (clipped to ``[0, 1]``), like an anti-aliased marker; a disc under half a pixel
        covers the pixel of its centre by its area.
    shape
        ``(ny, nx)`` pixels.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx, 4)`` float32 straight (not premultiplied) RGBA: drawn over a background
        ``b`` it gives ``rgb * a + b * (1 - a)``, the discs drawn directly over ``b``.
    """
    out = np.zeros((int(shape[0]), int(shape[1]), 4), dtype=np.float32)
    colours = np.ascontiguousarray(np.asarray(rgb)[:, :3], dtype=np.float32)
    _splat(
        np.ascontiguousarray(px, dtype=np.float64),
        np.ascontiguousarray(py, dtype=np.float64),
        colours,
        float(alpha),
        float(radius),
        out,
    )
    seen = out[..., 3] > 0
    out[seen, :3] /= out[seen, 3:4]  # premultiplied -> straight colour
    np.clip(out, 0.0, 1.0, out=out)
    return out
