"""``dyn.pl.line_integral_conv``: a line-integral-convolution (LIC) view of a 2-D field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anndata as ad
import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes

from .._core.errors import InputError
from ..kernels import lic as klic
from ..kernels import vectorfield as kv
from . import _data, _grid
from ._figure import clean_axes, panels, save_show_ret

UPSAMPLE = 8  # texture pixels per grid step


def field_grid(
    adata: ad.AnnData,
    basis: str,
    vector: str,
    xy_grid_nums: tuple[int, int],
    grid_kwargs: dict[str, Any],
) -> tuple[list[np.ndarray], np.ndarray]:
    """``(axes, V (2, ny, nx))``: the learned field on the grid, else the cells' Gaussian grid.

    The field ``uns['VecFld_<basis>']`` (2-D, with ``vector='velocity'``) is evaluated at the
    grid over the cells' range; without it the cells' ``obsm['<vector>_<basis>']`` are
    averaged onto the grid as for :func:`dynadask.pl.grid_vectors`.
    """
    emb = _data.obsm_columns(adata, _data.basis_key(adata, basis), [0, 1])
    vf = adata.uns.get(f"VecFld_{basis}")
    learned = (
        vector == "velocity"
        and not grid_kwargs
        and isinstance(vf, Mapping)
        and "X_ctrl" in vf
        and np.asarray(vf["X_ctrl"]).shape[1] == 2
    )
    if learned:
        xy = _data.gather({"xy": emb})["xy"]
        ok = np.isfinite(xy).all(axis=1)
        lo, hi = xy[ok].min(axis=0), xy[ok].max(axis=0)
        nx, ny = xy_grid_nums
        gx, gy = np.linspace(lo[0], hi[0], nx), np.linspace(lo[1], hi[1], ny)
        xx, yy = np.meshgrid(gx, gy)
        V = kv.evaluate(
            np.column_stack([xx.ravel(), yy.ravel()]),
            np.asarray(vf["X_ctrl"]),
            np.asarray(vf["C"]),
            float(vf["beta"]),
        )
        return [gx, gy], V.T.reshape(2, ny, nx)
    vel = _data.obsm_columns(adata, _grid.velocity_key(adata, vector, basis), [0, 1])
    data = _data.gather({"xy": emb, "v": vel})
    return _grid.cell_grid(data["xy"], data["v"], xy_grid_nums, **grid_kwargs)


def texture(
    V: np.ndarray, kernellen: int, random_state: int = 0, upsample: int = UPSAMPLE
) -> np.ndarray:
    """The LIC texture of a ``(2, ny, nx)`` grid field, ``upsample`` pixels per grid step."""
    _, ny, nx = V.shape
    shape = ((ny - 1) * upsample + 1, (nx - 1) * upsample + 1)
    u, v = klic.resample(V[0], shape), klic.resample(V[1], shape)
    noise = np.random.default_rng(random_state).random(shape)
    return klic.lic(u, v, noise, max(1, int(kernellen) // 2))


def line_integral_conv(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    U_grid: np.ndarray | None = None,
    V_grid: np.ndarray | None = None,
    xy_grid_nums: tuple[int, int] = (50, 50),
    cmap: str = "viridis",
    density: float = 1,
    lim: tuple[float, float] = (0, 1),
    const_alpha: bool = False,
    kernellen: int = 100,
    V_threshold: float | None = None,
    vector: str = "velocity",
    figsize: tuple[float, float] = (6, 6),
    ax: Axes | None = None,
    random_state: int = 0,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    g_kwargs_dict: dict | None = None,
) -> Axes | None:
    """Draw a 2-D field as a line integral convolution over its speed.

    The field on a grid (the learned ``uns['VecFld_<basis>']`` evaluated on it, else the
    cells' vectors averaged onto it, or ``U_grid``/``V_grid``) is drawn as its speed with
    ``cmap``, overlaid with a grey LIC texture: white noise averaged along each pixel's
    streamline over ``kernellen`` pixels (``dynadask.kernels.lic``, 8 texture pixels per
    grid step), so the texture shows the flow lines. The texture is rescaled to [0, 1] and
    clipped to ``lim``; its opacity follows its value unless ``const_alpha``. Thin white
    streamlines are added when ``density > 0``.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and the field or ``obsm['<vector>_<basis>']``.
    basis
        Embedding (2-D; the first two columns).
    U_grid, V_grid
        Field components on a ``(ny, nx)`` grid spanning the cells' range, used as given.
    xy_grid_nums
        Grid points along x and y.
    cmap
        Colour map of the speed.
    density
        Streamline density (0: none).
    lim
        Bounds in [0, 1] the texture is clipped to.
    const_alpha
        Constant texture opacity (0.5) instead of opacity equal to the texture's value.
    kernellen
        Length of the convolution in texture pixels (longer: longer streaks).
    V_threshold
        Grid points slower than this have no texture.
    vector
        ``'velocity'`` or another obsm prefix (``'acceleration'``).
    figsize
        Figure size when ``ax`` is None.
    ax
        Axes to draw into.
    random_state
        Seed of the noise texture.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``line_integral_conv``).
    g_kwargs_dict
        ``smooth`` / ``min_mass`` of the Gaussian grid averaging.

    Returns
    -------
    Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        If only one of ``U_grid`` / ``V_grid`` is given, or ``lim`` is outside [0, 1].

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    if (U_grid is None) != (V_grid is None):
        raise InputError("pass both U_grid and V_grid, or neither")
    if not 0 <= lim[0] < lim[1] <= 1:
        raise InputError(f"lim must satisfy 0 <= lim[0] < lim[1] <= 1, not {lim}")
    if U_grid is not None:
        V = np.stack([np.asarray(U_grid, float), np.asarray(V_grid, float)])
        xy = _data.gather({"xy": _data.obsm_columns(adata, _data.basis_key(adata, basis), [0, 1])})
        ok = np.isfinite(xy["xy"]).all(axis=1)
        lo, hi = xy["xy"][ok].min(axis=0), xy["xy"][ok].max(axis=0)
        axes_xy = [np.linspace(lo[0], hi[0], V.shape[2]), np.linspace(lo[1], hi[1], V.shape[1])]
    else:
        axes_xy, V = field_grid(adata, basis, vector, tuple(xy_grid_nums), g_kwargs_dict or {})
    speed = np.hypot(V[0], V[1])
    if V_threshold is not None:
        V = np.where(speed < V_threshold, np.nan, V)
    tex = texture(V, kernellen, random_state)
    fig, (panel,) = panels(1, 1, figsize, ax)
    extent = (axes_xy[0][0], axes_xy[0][-1], axes_xy[1][0], axes_xy[1][-1])
    panel.imshow(
        np.ma.masked_invalid(speed), cmap=cmap, origin="lower", extent=extent, aspect="auto"
    )
    panel.imshow(
        lic_rgba(tex, lim, const_alpha), origin="lower", extent=extent, aspect="auto", zorder=2
    )
    if density > 0:
        bad = ~np.isfinite(V).all(axis=0)
        u, v = (np.ma.masked_array(np.nan_to_num(c), mask=bad) for c in V)
        panel.streamplot(
            axes_xy[0], axes_xy[1], u, v, density=density, color="white", linewidth=0.5, zorder=3
        )
    panel.set_xlim(extent[:2])
    panel.set_ylim(extent[2:])
    clean_axes(panel)
    panel.set_xlabel(f"{basis}_1")
    panel.set_ylabel(f"{basis}_2")
    return save_show_ret("line_integral_conv", save_show_or_return, save_kwargs, panel, fig)


def lic_rgba(tex: np.ndarray, lim: tuple[float, float], const_alpha: bool) -> np.ndarray:
    """Grey RGBA image of a LIC texture: rescaled to [0, 1] over its 1st-99th percentiles."""
    finite = tex[np.isfinite(tex)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    scaled = np.clip((tex - lo) / max(hi - lo, 1e-12), 0, 1)
    scaled = np.clip(scaled, *lim)
    rgba = mpl.colormaps["gray"](np.nan_to_num(scaled))
    rgba[..., 3] = 0.5 if const_alpha else np.nan_to_num(scaled)
    rgba[~np.isfinite(tex), 3] = 0.0
    return rgba
