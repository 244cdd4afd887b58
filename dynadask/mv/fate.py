"""``dyn.mv.animate_fates``: cells moving along their stored predicted fates."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import pl
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..kernels.trajectory import frame_times, positions_at

MODES = ("save", "show", "return")
DEFAULT_FILE = "fate_ani.gif"
"""dynamo's default file name."""
WRITERS = {".gif": "pillow", ".apng": "pillow", ".webp": "pillow"}
"""Writer per file extension; anything else (``.mp4``, ``.mov``, ...) goes to ffmpeg."""


def _fates(
    adata: ad.AnnData, basis: str, dims: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored trajectories' drawn columns (``n x 2 x L``), their times and initial states."""
    key = f"fate_{basis}"
    entry = adata.uns.get(key)
    if not isinstance(entry, Mapping) or not {"prediction", "t"} <= set(entry):
        raise MissingKeyError(
            f"no uns[{key!r}] with 'prediction' and 't': predict the fates first with "
            f"dyn.pd.fate(adata, init_cells, basis={basis!r})"
        )
    P, T = entry["prediction"], entry["t"]
    d = P.shape[1]
    if len(dims) != 2 or not all(0 <= k < d for k in dims):
        raise InputError(f"dims={list(dims)} must be two columns of the {d}-D trajectories")
    xy = P[:, list(dims), :]
    if isinstance(xy, da.Array) or isinstance(T, da.Array):
        xy, T = compute(xy, T, desc="fate trajectories")
    xy, T = np.asarray(xy, dtype=np.float64), np.asarray(T, dtype=np.float64)
    init = entry.get("init_states")
    init = xy[:, :, 0] if init is None else np.asarray(init, dtype=np.float64)[:, list(dims)]
    return xy, T, init


def _pick(n: int, cell_states: int | Sequence[int] | None, seed: int) -> np.ndarray:
    """Rows of the trajectories to animate: all, a seeded random ``int`` of them, or a list."""
    if cell_states is None:
        return np.arange(n)
    if isinstance(cell_states, int | np.integer):
        if cell_states < 1:
            raise InputError(f"cell_states={cell_states}: pass a positive number of states")
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(n, size=min(n, int(cell_states)), replace=False))
    rows = np.asarray(cell_states, dtype=np.int64)
    if rows.size == 0 or rows.min() < -n or rows.max() >= n:
        raise InputError(
            f"cell_states must index the {n} stored trajectories (0..{n - 1}); got {list(rows)}"
        )
    return rows


def _background(
    adata: ad.AnnData,
    basis: str,
    dims: Sequence[int],
    color: str,
    ax: Axes | None,
    plot_kwargs: dict[str, Any],
) -> Axes:
    """The still picture: the field's topography when it is stored, else streamlines or cells."""
    common = {"basis": basis, "x": dims[0], "y": dims[1], "color": color, "ax": ax}
    common.update(save_show_or_return="return", **plot_kwargs)
    vf = adata.uns.get(f"VecFld_{basis}")
    if isinstance(vf, Mapping) and "X_ctrl" in vf and np.shape(vf["X_ctrl"])[1] == 2:
        terms = ["streamline"]
        if any("Xss" in adata.uns.get(f"{k}_{basis}", {}) for k in ("VecFld", "topography")):
            terms.append("fixed_points")
        out = pl.topography(adata, terms=terms, **common)
    elif f"velocity_{basis}" in adata.obsm:
        out = pl.streamline_plot(adata, **common)
    else:
        out = pl.scatters(adata, **common)
    return out[0] if isinstance(out, list) else out


def _writer(filename: str, writer: Any, fps: float) -> Any:
    """The animation writer for ``filename``: Pillow for GIF, ffmpeg for video files."""
    if writer is not None:
        return writer
    ext = os.path.splitext(filename)[1].lower()
    name = WRITERS.get(ext, "ffmpeg")
    if name == "ffmpeg" and not animation.writers.is_available("ffmpeg"):
        raise InputError(
            f"writing {filename!r} needs ffmpeg, which is not installed: install ffmpeg or save "
            "a .gif (written with Pillow)"
        )
    return animation.PillowWriter(fps=fps) if name == "pillow" else animation.FFMpegWriter(fps=fps)


def animate_fates(
    adata: ad.AnnData,
    basis: str = "umap",
    dims: Sequence[int] | None = None,
    *,
    n_steps: int = 100,
    cell_states: int | Sequence[int] | None = None,
    color: str = "ntr",
    fig: Figure | None = None,
    ax: Axes | None = None,
    logspace: bool = False,
    max_time: float | None = None,
    interval: float = 100,
    blit: bool = True,
    markersize: float = 6.0,
    seed: int = 0,
    plot_kwargs: dict[str, Any] | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> animation.FuncAnimation | None:
    """Animate cells moving along their predicted fates over the learned flow.

    Each frame places every animated trajectory of ``uns['fate_<basis>']`` (from
    :func:`dynadask.pd.fate`) at the frame's time by interpolating its stored samples, so
    nothing is integrated again (dynamo integrates every state afresh from ``t = 0`` for each
    frame). The moving cells are red dots over a still background: the field's topography
    (:func:`dynadask.pl.topography`, streamlines and, when stored, fixed points) when
    ``uns['VecFld_<basis>']`` holds a 2-D field, else :func:`dynadask.pl.streamline_plot`
    when ``obsm['velocity_<basis>']`` exists, else the cells' scatter. The title gives each
    frame's time. A trajectory sits at its first state before its first time and rests at
    its last state after its end; with ``direction='both'`` fates the cells move from their
    predicted past through their initial states to their future.

    Parameters
    ----------
    adata
        AnnData with ``uns['fate_<basis>']`` and ``obsm['X_<basis>']``.
    basis
        The embedding the fates were predicted in.
    dims
        Two columns of the embedding (and of the trajectories) drawn (default ``[0, 1]``).
    n_steps
        Number of frames.
    cell_states
        Which trajectories move: all (``None``), ``int`` of them drawn at random with
        ``seed`` (dynamo's draw is unseeded), or a list of their rows.
    color
        obs column or gene colouring the background cells.
    fig, ax
        Draw the background into ``ax`` (of ``fig``; default a new figure).
    logspace
        Frame times evenly spaced in ``log(1 + t)`` from 0 to the last time; otherwise the
        sorted distinct stored times (and 0) taken at ``n_steps`` evenly spaced ranks.
    max_time
        Rescale the times shown in the titles so that the last frame reads ``max_time``.
    interval
        Delay between frames in milliseconds (the saved file's frame rate is
        ``1000 / interval`` unless ``save_kwargs`` sets ``fps``).
    blit
        Redraw only the moving cells when shown interactively.
    markersize
        Size of the moving cells' dots (points).
    seed
        Seed of the random choice of ``cell_states``.
    plot_kwargs
        More options of the background call (e.g. ``pointsize``, ``n_grid``).
    save_show_or_return
        ``'save'`` writes the animation to a file, ``'show'`` displays it (inline HTML in a
        notebook, else a window), ``'return'`` returns it.
    save_kwargs
        ``filename`` (default ``'fate_ani.gif'``; ``.gif``, ``.apng`` and ``.webp`` are
        written with Pillow, other extensions such as ``.mp4`` with ffmpeg), ``writer`` (a
        matplotlib writer or its name, chosen from the extension when absent), ``fps``,
        ``dpi`` and any other argument of ``matplotlib.animation.Animation.save``.
    **kwargs
        Passed to ``matplotlib.animation.FuncAnimation`` (e.g. ``repeat``).

    Returns
    -------
    matplotlib.animation.FuncAnimation or None
        The animation when ``save_show_or_return='return'``.

    Raises
    ------
    dynadask.MissingKeyError
        If ``uns['fate_<basis>']`` is missing (names ``dyn.pd.fate``).
    dynadask.InputError
        For bad ``dims``, ``cell_states``, ``n_steps`` or mode, or a video file without ffmpeg.

    Writes
    ------
    Nothing in ``adata``; the animation file when saving.
    """
    if save_show_or_return not in MODES:
        raise InputError(f"save_show_or_return must be one of {MODES}, not {save_show_or_return!r}")
    if n_steps < 1:
        raise InputError(f"n_steps={n_steps}: an animation needs at least one frame")
    basis = basis[2:] if basis.startswith("X_") else basis
    dims = [0, 1] if dims is None else [int(k) for k in dims]
    xy, T, _ = _fates(adata, basis, dims)
    rows = _pick(xy.shape[0], cell_states, seed)
    xy, T = xy[rows], T[rows]
    times = frame_times(T, n_steps, logspace)
    where = positions_at(xy, T, times)  # frames x n x 2, computed once
    shown = times if max_time is None else times * (max_time / max(abs(times[-1]), 1e-300))

    if ax is None and fig is not None:
        ax = fig.gca()
    ax = _background(adata, basis, dims, color, ax, dict(plot_kwargs or {}))
    fig = ax.figure
    (dots,) = ax.plot(*where[0].T, "o", color="red", markersize=markersize, zorder=20)
    title = ax.set_title(f"t = {shown[0]:.4g}")

    def update(frame: int):
        dots.set_data(where[frame, :, 0], where[frame, :, 1])
        title.set_text(f"t = {shown[frame]:.4g}")
        return dots, title

    anim = animation.FuncAnimation(
        fig, update, frames=n_steps, interval=interval, blit=blit, **kwargs
    )
    if save_show_or_return == "return":
        return anim
    if save_show_or_return == "save":
        options = {"filename": DEFAULT_FILE, **(save_kwargs or {})}
        filename = str(options.pop("filename"))
        fps = float(options.pop("fps", 1000.0 / interval))
        writer = _writer(filename, options.pop("writer", None), fps)
        folder = os.path.dirname(filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        anim.save(filename, writer=writer, **options)
        plt.close(fig)
        return None
    _show(anim, fig)
    return None


def _show(anim: animation.FuncAnimation, fig: Figure) -> None:
    """Display ``anim``: inline HTML in a notebook, else the backend's window."""
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython ships with the notebook extras
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(anim.to_jshtml()))
        plt.close(fig)
    else:
        plt.show()
