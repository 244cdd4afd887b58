"""kernels/raster.py: points binned into pixels, against a plain loop; block sums add up."""

from __future__ import annotations

import numpy as np

from dynadask.kernels import raster


def _loop_mean(xy, v, extent, shape):
    x0, x1, y0, y1 = extent
    ny, nx = shape
    total, count = np.zeros(shape), np.zeros(shape)
    for (x, y), val in zip(xy, v, strict=True):
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(val)):
            continue
        col = min(max(int((x - x0) / (x1 - x0) * nx), 0), nx - 1)
        row = min(max(int((y - y0) / (y1 - y0) * ny), 0), ny - 1)
        total[row, col] += val
        count[row, col] += 1
    with np.errstate(invalid="ignore"):
        return total / count


def test_mean_per_pixel_equals_a_loop():
    rng = np.random.default_rng(3)
    xy = rng.uniform(-1, 2, size=(3000, 2))  # some outside the extent: clipped to the edge
    v = rng.standard_normal(3000)
    xy[5] = np.nan
    v[7] = np.nan
    extent, shape = (0.0, 1.0, -0.5, 1.5), (13, 17)
    got = raster.mean_per_pixel(xy, v, extent, shape)
    want = _loop_mean(xy, v, extent, shape)
    assert got.shape == shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-12)
    rgba = rng.uniform(size=(3000, 4))
    img = raster.mean_per_pixel(xy, rgba, extent, shape)
    assert img.shape == (*shape, 4)
    np.testing.assert_allclose(img[..., 2], _loop_mean(xy, rgba[:, 2], extent, shape))


def test_block_sums_add_up_to_the_whole():
    rng = np.random.default_rng(4)
    xy, w = rng.standard_normal((1000, 2)), rng.uniform(size=(1000, 3))
    pix = raster.pixel_index(xy, (-2.0, 2.0, -2.0, 2.0), (8, 8))
    assert pix.min() >= 0 and pix.max() < 64
    whole = raster.sum_per_pixel(pix, 64, w)
    parts = sum(
        raster.sum_per_pixel(pix[i : i + 300], 64, w[i : i + 300]) for i in range(0, 1000, 300)
    )
    np.testing.assert_allclose(whole, parts)
    assert raster.sum_per_pixel(pix, 64).sum() == 1000


def _loop_discs(px, py, rgb, alpha, radius, shape):
    """Discs composited in order, pixel by pixel: the rule splat_discs implements."""
    ny, nx = shape
    colour, cover = np.zeros((ny, nx, 3)), np.zeros((ny, nx))  # premultiplied
    for x, y, c in zip(px, py, rgb, strict=True):
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(c).all()):
            continue
        for i in range(ny):
            for j in range(nx):
                d = np.hypot(j + 0.5 - x, i + 0.5 - y)
                a = alpha * min(max(radius + 0.5 - d, 0.0), 1.0)
                colour[i, j] = c * a + colour[i, j] * (1 - a)
                cover[i, j] = a + cover[i, j] * (1 - a)
    with np.errstate(invalid="ignore"):
        straight = np.where(cover[..., None] > 0, colour / cover[..., None], 0.0)
    return np.concatenate([straight, cover[..., None]], axis=2)


def test_splat_discs_composite_in_order_like_a_loop():
    rng = np.random.default_rng(5)
    n, shape = 400, (23, 31)
    px, py = rng.uniform(-3, 34, n), rng.uniform(-3, 26, n)  # some discs cut by the edges
    rgb = rng.uniform(size=(n, 3))
    px[3], rgb[8, 1] = np.nan, np.nan
    for radius, alpha in ((2.7, 0.3), (0.9, 1.0)):
        got = raster.splat_discs(px, py, rgb, alpha, radius, shape)
        want = _loop_discs(px, py, rgb, alpha, radius, shape)
        assert got.shape == (*shape, 4) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-5)
    # the order matters: the last opaque disc is the one seen at its centre
    two = raster.splat_discs(
        np.array([5.5, 5.5]), np.array([5.5, 5.5]), np.eye(3)[:2], 1.0, 2.0, (11, 11)
    )
    np.testing.assert_allclose(two[5, 5], [0, 1, 0, 1])
    # a disc under half a pixel covers the pixel of its centre by its area
    dot = raster.splat_discs(np.array([2.2]), np.array([1.7]), np.ones((1, 3)), 0.5, 0.2, (4, 4))
    assert dot[1, 2, 3] == np.float32(0.5 * np.pi * 0.04) and dot[..., 3].sum() == dot[1, 2, 3]
