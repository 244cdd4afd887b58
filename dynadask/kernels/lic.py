"""Line integral convolution (LIC): a noise texture smeared along a 2-D vector field.

Each pixel's value is the mean of a white-noise texture over the pixels visited by a
streamline traced from it, ``length`` unit steps forward and ``length`` backward (a box
kernel). Velocities are sampled at the nearest pixel; a streamline stops at the image edge
or where the field is undefined (NaN) or zero. Pure numpy / numba.
"""

from __future__ import annotations

import numba
import numpy as np


def resample(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a ``(ny, nx)`` grid to ``shape`` (corners kept; NaN spreads)."""
    ny, nx = values.shape
    h, w = shape
    yi, xi = np.linspace(0, ny - 1, h), np.linspace(0, nx - 1, w)
    y0 = np.clip(np.floor(yi).astype(np.int64), 0, max(ny - 2, 0))
    x0 = np.clip(np.floor(xi).astype(np.int64), 0, max(nx - 2, 0))
    y1, x1 = np.minimum(y0 + 1, ny - 1), np.minimum(x0 + 1, nx - 1)
    ty, tx = (yi - y0)[:, None], (xi - x0)[None, :]
    a, b = values[y0][:, x0], values[y0][:, x1]
    c, d = values[y1][:, x0], values[y1][:, x1]
    top = a * (1 - tx) + b * tx
    bottom = c * (1 - tx) + d * tx
    return top * (1 - ty) + bottom * ty


@numba.njit(cache=True)
def lic(u: np.ndarray, v: np.ndarray, noise: np.ndarray, length: int) -> np.ndarray:
    """LIC texture of the field ``(u, v)`` (pixel rows x columns, ``v`` along rows).

    Parameters
    ----------
    u, v
        Field components at each pixel (any units: only the direction is used); NaN marks
        pixels without a field.
    noise
        Input texture, same shape.
    length
        Unit steps traced each way from every pixel.

    Returns
    -------
    numpy.ndarray
        Mean of ``noise`` along each pixel's streamline (NaN where the field is NaN).
    """
    h, w = noise.shape
    out = np.full((h, w), np.nan)
    for r in range(h):
        for c in range(w):
            if not (np.isfinite(u[r, c]) and np.isfinite(v[r, c])):
                continue
            total = noise[r, c]
            count = 1
            for sign in (1.0, -1.0):
                x, y = float(c), float(r)
                i, j = np.int64(r), np.int64(c)
                for _ in range(length):
                    du, dv = u[i, j], v[i, j]
                    norm = np.sqrt(du * du + dv * dv)
                    if not np.isfinite(norm) or norm == 0.0:
                        break
                    x += sign * du / norm
                    y += sign * dv / norm
                    j = np.int64(np.floor(x + 0.5))
                    i = np.int64(np.floor(y + 0.5))
                    if i < 0 or i >= h or j < 0 or j >= w:
                        break
                    if not (np.isfinite(u[i, j]) and np.isfinite(v[i, j])):
                        break
                    total += noise[i, j]
                    count += 1
            out[r, c] = total / count
    return out
