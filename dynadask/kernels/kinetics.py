"""Per-gene sufficient statistics of one row block, for kinetic estimation.

Every estimate of ``dyn.tl.dynamics`` is a function of sums over cells: sums of products of
layers (``sum s*u``, ``sum s^2`` …) within each stratum of cells (a cell group, a labelling
time, or both) and, for the steady-state fits, only over the cells in the extreme quantiles
of each gene. Those quantiles are found exactly from three cheap per-gene summaries:

1. :func:`extent` — minimum and maximum of ``s`` and ``u`` per stratum and gene (they scale
   the extremeness score ``s / max s + u / max u``);
2. :func:`score_histogram` — counts of the score in ``n_bins`` equal bins per stratum and gene
   (and of the scores at the lowest value);
3. :func:`collect_in_bins` — the distinct score values (with their counts) inside the bins
   that hold the wanted order statistics.

Together they give the exact order statistics, hence exactly ``numpy.percentile``.
Blocks are processed in row slices so that no dense float64 copy of a whole block is made.
Strata are given as one integer code per cell (``-1`` leaves a cell out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numba
import numpy as np
from scipy import sparse

SLICE_ROWS = 2048


def dense_rows(x: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a block as a dense float64 array."""
    part = x[start:stop]
    if sparse.issparse(part):
        part = part.toarray()
    return np.asarray(part, dtype=np.float64)


def _rows(x: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a block, dense, in their own float type (C order)."""
    part = x[start:stop]
    if sparse.issparse(part):
        part = part.toarray()
    part = np.ascontiguousarray(part)
    return part if part.dtype in (np.float32, np.float64) else part.astype(np.float64)


def row_slices(n: int, size: int = SLICE_ROWS) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs cutting ``n`` rows in slices of at most ``size``."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def one_hot(codes: np.ndarray, n_strata: int) -> sparse.csr_matrix:
    """``n_strata x n_cells`` indicator of each cell's stratum (code -1: no stratum)."""
    codes = np.asarray(codes).ravel()
    keep = codes >= 0
    cols = np.flatnonzero(keep)
    return sparse.csr_matrix(
        (np.ones(cols.size), (codes[keep], cols)), shape=(n_strata, codes.size)
    )


def extremeness(
    s: np.ndarray, u: np.ndarray, s_scale: np.ndarray, u_scale: np.ndarray
) -> np.ndarray:
    """The score ranking cells for the steady-state fits: ``s / s_scale + u / u_scale``.

    ``s_scale``/``u_scale`` are per-cell rows of per-gene scales (the stratum's maxima,
    clipped below at 1e-3), shaped like ``s``.
    """
    return s / s_scale + u / u_scale


def extent(s: Any, u: Any, codes: np.ndarray, n_strata: int) -> dict[str, np.ndarray]:
    """Per stratum and gene: minimum and maximum of ``s`` and ``u`` (combine with min/max).

    Returns
    -------
    dict
        ``s_min, s_max, u_min, u_max`` (``n_strata x n_genes``; +inf/-inf where empty).
    """
    g = s.shape[1]
    lo = np.full((2, n_strata, g), np.inf)
    hi = np.full((2, n_strata, g), -np.inf)
    codes = np.asarray(codes).ravel()
    for start, stop in row_slices(s.shape[0]):
        _extent(_rows(s, start, stop), _rows(u, start, stop), codes[start:stop], lo, hi)
    return {"s_min": lo[0], "u_min": lo[1], "s_max": hi[0], "u_max": hi[1]}


@numba.njit(cache=True)
def _extent(s, u, codes, lo, hi):
    # NaN wins, as in numpy's minimum / maximum
    for i in range(s.shape[0]):
        k = codes[i]
        if k < 0:
            continue
        for j in range(s.shape[1]):
            for m in range(2):
                x = np.float64(s[i, j]) if m == 0 else np.float64(u[i, j])
                if x != x:
                    lo[m, k, j] = x
                    hi[m, k, j] = x
                    continue
                if x < lo[m, k, j]:
                    lo[m, k, j] = x
                if x > hi[m, k, j]:
                    hi[m, k, j] = x


def combine_extent(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Combine :func:`extent` results of several blocks."""
    out = {k: np.array(v, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k, v in p.items():
            fn = np.minimum if k.endswith("_min") else np.maximum
            fn(out[k], v, out=out[k])
    return out


def bin_index(score: np.ndarray, lo: np.ndarray, width: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each score in ``n_bins`` equal bins from ``lo`` (same rule in every pass)."""
    b = np.floor((score - lo) / width)
    return np.clip(np.nan_to_num(b, nan=0.0), 0, n_bins - 1).astype(np.int64)


def score_histogram(
    s: Any,
    u: Any,
    codes: np.ndarray,
    scale: Mapping[str, np.ndarray],
    lo: np.ndarray,
    width: np.ndarray,
    n_bins: int,
) -> np.ndarray:
    """Counts of the extremeness score per stratum, gene and bin (sum over blocks).

    Returns
    -------
    numpy.ndarray
        ``n_strata x n_genes x (n_bins + 1)`` int64: the bins, then the count of scores
        equal to ``lo`` (also counted in bin 0).
    """
    n_strata, g = lo.shape
    out = np.zeros((n_strata, g, n_bins + 1), dtype=np.int64)
    codes = np.asarray(codes).ravel()
    for start, stop in row_slices(s.shape[0]):
        _histogram(
            _rows(s, start, stop), _rows(u, start, stop), codes[start:stop],
            scale["s"], scale["u"], lo, width, n_bins, out,
        )  # fmt: skip
    return out


@numba.njit(cache=True, error_model="numpy", inline="always")
def _bin(score, lo, width, n_bins):
    # the rule of bin_index, for one value
    b = np.floor((score - lo) / width)
    if b != b:
        return 0
    if b < 0:
        return 0
    if b > n_bins - 1:
        return n_bins - 1
    return np.int64(b)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _score(s, u, s_scale, u_scale):
    # the rule of extremeness, for one value
    return np.float64(s) / s_scale + np.float64(u) / u_scale


@numba.njit(cache=True, error_model="numpy")
def _histogram(s, u, codes, s_scale, u_scale, lo, width, n_bins, out):
    for i in range(s.shape[0]):
        k = codes[i]
        if k < 0:
            continue
        for j in range(s.shape[1]):
            score = _score(s[i, j], u[i, j], s_scale[k, j], u_scale[k, j])
            out[k, j, _bin(score, lo[k, j], width[k, j], n_bins)] += 1
            if score == lo[k, j]:
                out[k, j, n_bins] += 1


def collect_in_bins(
    s: Any,
    u: Any,
    codes: np.ndarray,
    scale: Mapping[str, np.ndarray],
    lo: np.ndarray,
    width: np.ndarray,
    n_bins: int,
    windows: Sequence[tuple[np.ndarray, np.ndarray]],
) -> list[tuple]:
    """Distinct score values (and counts) inside bin windows, per stratum and gene.

    Parameters
    ----------
    windows
        One ``(first_bin, last_bin)`` pair of ``n_strata x n_genes`` arrays per wanted
        quantile.

    Returns
    -------
    list
        Per window ``(keys, values, counts)`` with ``key = stratum * n_genes + gene``,
        unique ``(key, value)`` pairs (concatenate over blocks with :func:`combine_collected`).
    """
    found: list[list[tuple]] = [[] for _ in windows]
    codes = np.asarray(codes).ravel()
    for start, stop in row_slices(s.shape[0]):
        si, ui, c = _rows(s, start, stop), _rows(u, start, stop), codes[start:stop]
        for w, (first, last) in enumerate(windows):
            args = (si, ui, c, scale["s"], scale["u"], lo, width, n_bins, first, last)
            keys = np.empty(_in_window(*args, np.empty(0, np.int64), np.empty(0)), np.int64)
            values = np.empty(keys.size)
            _in_window(*args, keys, values)
            found[w].append((keys, values))
    return [_unique_pairs([f[0] for f in parts], [f[1] for f in parts], None) for parts in found]


@numba.njit(cache=True, error_model="numpy")
def _in_window(s, u, codes, s_scale, u_scale, lo, width, n_bins, first, last, keys, values):
    # the (stratum * n_genes + gene, score) pairs whose bin is in the window, written to
    # keys / values when they have room; returns how many there are (call once to count)
    g = s.shape[1]
    fill = keys.shape[0] > 0
    m = 0
    for i in range(s.shape[0]):
        k = codes[i]
        if k < 0:
            continue
        for j in range(g):
            score = _score(s[i, j], u[i, j], s_scale[k, j], u_scale[k, j])
            b = _bin(score, lo[k, j], width[k, j], n_bins)
            if first[k, j] <= b <= last[k, j]:
                if fill:
                    keys[m] = k * g + j
                    values[m] = score
                m += 1
    return m


def _unique_pairs(keys: list, values: list, counts: list | None) -> tuple:
    if not keys:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    k, v = np.concatenate(keys), np.concatenate(values)
    c = np.ones(k.size, np.int64) if counts is None else np.concatenate(counts)
    if k.size == 0:
        return k.astype(np.int64), v, c
    order = np.lexsort((v, k))
    k, v, c = k[order], v[order], c[order]
    new = np.ones(k.size, dtype=bool)
    new[1:] = (k[1:] != k[:-1]) | (v[1:] != v[:-1])
    starts = np.flatnonzero(new)
    return k[starts].astype(np.int64), v[starts], np.add.reduceat(c, starts)


def combine_collected(*parts: list[tuple]) -> list[tuple]:
    """Combine :func:`collect_in_bins` results of several blocks (per window)."""
    out = []
    for w in range(len(parts[0])):
        items = [p[w] for p in parts]
        out.append(
            _unique_pairs([i[0] for i in items], [i[1] for i in items], [i[2] for i in items])
        )
    return out


def extreme_mask(
    score: np.ndarray, left: np.ndarray | None, right: np.ndarray | None
) -> np.ndarray:
    """Cells in the tails: ``score >= right`` (and ``score <= left`` when ``left`` is given)."""
    if right is None:
        return np.ones(score.shape, dtype=bool)
    mask = score >= right
    if left is not None:
        mask |= score <= left
    return mask


def product_sums(
    blocks: Mapping[str, Any],
    codes: np.ndarray,
    n_strata: int,
    terms: Mapping[str, tuple[str, ...]],
    *,
    extreme: Mapping[str, Any] | None = None,
    derived: Mapping[str, tuple[tuple[float, str], ...]] | None = None,
) -> dict[str, np.ndarray]:
    """Sums over the cells of each stratum of products of layers, per gene.

    Parameters
    ----------
    blocks
        Layer name -> the row block (cells x genes, dense or sparse; same shape).
    codes
        Stratum of each cell of the block (-1: left out).
    n_strata
        Number of strata.
    terms
        Output name -> the layer names multiplied (``()`` counts cells; a name may repeat).
        Names starting with ``'x:'`` are summed only over the extreme cells (over all
        cells when ``extreme`` is None).
    extreme
        ``{'s': name, 'u': name, 'scale': {'s','u'}, 'left': arr|None, 'right': arr|None}``
        selecting the extreme cells of each gene (thresholds ``n_strata x n_genes``).
    derived
        Extra layers made as linear combinations of given ones: ``name -> ((c, layer), …)``.

    Returns
    -------
    dict
        Output name -> ``n_strata x n_genes`` float64 sums.
    """
    first = next(iter(blocks.values()))
    n, g = first.shape
    codes = np.asarray(codes).ravel()
    plan = _Products(terms)
    out = {name: np.zeros((n_strata, g)) for name in terms}
    for start, stop, xs, stack in _slices(blocks, derived):
        c = codes[start:stop]
        if extreme is None:
            state = np.ones((stop - start, g), dtype=np.int8)  # 'x:' terms over every cell
        else:
            state = _slice_mask(xs, c, extreme).view(np.int8)
        plan.add(out, plan.sums(xs, stack, c, state, n_strata))
    return out


PENDING_CAP = 2**16
"""Distinct window scores one stratum's gene may keep in a row block (:func:`window_sums`).

A gene with more is left out of the block's pending values and flagged; its sums are then
taken by the separate quantile and product passes. The callers bound the pending values
beforehand from the histogram (``window['skip']``), so this is a last guard."""


def window_sums(
    blocks: Mapping[str, Any],
    codes: np.ndarray,
    n_strata: int,
    terms: Mapping[str, tuple[str, ...]],
    *,
    window: Mapping[str, Any],
    derived: Mapping[str, tuple[tuple[float, str], ...]] | None = None,
    cap: int | None = None,
) -> dict[str, Any]:
    """:func:`product_sums` before the extreme thresholds are known, from the score bins.

    The thresholds lie in known bins of the extremeness score (the windows of the
    quantile passes). A cell above the right window (below the left one) is extreme
    whatever the threshold and enters the ``'x:'`` sums here; a cell inside a window waits:
    its score and its ``'x:'`` products are kept, merged per distinct ``(stratum, gene,
    score)``, until :func:`add_pending` adds those at or beyond the exact thresholds. The
    window values also give those thresholds (:func:`pending_in_window`), so one pass
    replaces the window pass and the sums pass.

    Parameters
    ----------
    blocks, codes, n_strata, terms, derived
        As :func:`product_sums`.
    window
        ``{'s': name, 'u': name, 'scale': {'s','u'}, 'lo', 'width', 'n_bins', 'right':
        (first_bin, last_bin) | None, 'left': (first_bin, last_bin) | None}`` with
        ``n_strata x n_genes`` arrays (the score grid of :func:`score_histogram`), and
        optionally ``'skip'``: keys (boolean ``n_strata x n_genes``) flagged at once.
    cap
        Distinct pending scores a key may keep (default :data:`PENDING_CAP`).

    Returns
    -------
    dict
        ``sums`` (name -> ``n_strata x n_genes``; ``'x:'`` sums over the certain cells
        only), ``pending`` (``keys, values, counts, products``: ``key = stratum * n_genes +
        gene``, sorted unique ``(key, value)`` pairs, ``products`` one column per sorted
        ``'x:'`` name) and ``dropped`` (flagged keys, boolean ``n_strata * n_genes``).
        Combine blocks with :func:`combine_window_sums`.
    """
    first = next(iter(blocks.values()))
    n, g = first.shape
    codes = np.asarray(codes).ravel()
    plan = _Products(terms)
    out = {name: np.zeros((n_strata, g)) for name in terms}
    x_names = sorted(k for k in terms if k.startswith("x:"))
    seen = np.zeros(n_strata * g, dtype=np.int64)
    pending: list[tuple] = []
    for start, stop, xs, stack in _slices(blocks, derived):
        c = codes[start:stop]
        state, ties, ui, uj, values = _window_masks(xs, c, window)
        # sums over every cell, over the surely extreme ones (state 1) and over the cells
        # waiting at their bin's lower edge (state 2: the zeros of a sparse gene, often most
        # cells), which are summed per key rather than listed one by one
        acc = plan.sums(xs, stack, c, state, n_strata)
        plan.add(out, acc)
        tied_cols = np.flatnonzero(ties.sum(axis=0) > 0)
        tied_prods = np.stack(
            [acc[2, plan.x_product[name]][:, tied_cols] for name in x_names], axis=-1
        ).reshape(n_strata, tied_cols.size, len(x_names))
        prods = np.empty((ui.size, len(x_names)))
        for i, name in enumerate(x_names):
            prods[:, i] = _product_at(xs, tuple(sorted(terms[name])), ui, uj)
        keys = c[ui].astype(np.int64) * g + uj
        tk, tj = np.nonzero(ties[:, tied_cols])
        part = merge_pending(
            np.concatenate([keys, tk * g + tied_cols[tj]]),
            np.concatenate([values, window["lo"][tk, tied_cols[tj]]]),
            np.concatenate([np.ones(ui.size, np.int64), ties[tk, tied_cols[tj]]]),
            np.concatenate([prods, tied_prods[tk, tj]]),
        )
        seen += np.bincount(part[0], minlength=seen.size)
        pending.append(part)
    dropped = seen > (PENDING_CAP if cap is None else cap)
    if window.get("skip") is not None:
        dropped |= np.ravel(window["skip"])
    return {"sums": out, "pending": _keep(pending, dropped), "dropped": dropped}


def _window_masks(
    xs: Mapping[str, np.ndarray], c: np.ndarray, window: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's state in one slice, and the cells waiting in a window.

    Returns ``state`` (1: surely extreme, 2: waiting at its bin's lower edge ``lo``, 0:
    else), the count of those at ``lo`` per stratum and gene, and the rows, columns and
    scores of the other waiting cells.
    """
    s, u = _rows(xs[window["s"]], 0, len(c)), _rows(xs[window["u"]], 0, len(c))
    state = np.zeros(s.shape, dtype=np.int8)
    ties = np.zeros(np.shape(window["lo"]), dtype=np.int64)
    none = np.zeros((1, 1), dtype=np.int64)
    right = window.get("right")
    left = window.get("left")
    rf, rl = (none, none) if right is None else right
    lf, ll = (none, none) if left is None else left
    args = (
        s, u, np.asarray(c, dtype=np.int64), window["scale"]["s"], window["scale"]["u"],
        window["lo"], window["width"], window["n_bins"],
        np.asarray(rf, np.int64), np.asarray(rl, np.int64),
        np.asarray(lf, np.int64), np.asarray(ll, np.int64),
        right is not None, left is not None, state, ties,
    )  # fmt: skip
    room = max(1024, s.size // 64)
    while True:
        wi, wj, wv = np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room)
        ties[:] = 0
        m = _classify(*args, wi, wj, wv)
        if m <= room:
            return state, ties, wi[:m], wj[:m], wv[:m]
        room = m


@numba.njit(cache=True, error_model="numpy")
def _classify(
    s, u, codes, s_scale, u_scale, lo, width, n_bins, rf, rl, lf, ll, right, left, state, ties,
    wi, wj, wv,
):  # fmt: skip
    # state 1: the score is beyond a window (bins as in the histogram), so extreme whatever
    # the threshold; 2: in a window at exactly the grid's lower edge (counted in ties);
    # other cells in a window are listed (as many as fit) and counted
    m = 0
    for i in range(s.shape[0]):
        k = codes[i]
        if k < 0:
            continue
        for j in range(s.shape[1]):
            score = _score(s[i, j], u[i, j], s_scale[k, j], u_scale[k, j])
            b = _bin(score, lo[k, j], width[k, j], n_bins)
            waits = (right and rf[k, j] <= b <= rl[k, j]) or (left and lf[k, j] <= b <= ll[k, j])
            if waits:
                if score == lo[k, j]:
                    state[i, j] = 2
                    ties[k, j] += 1
                    continue
                if m < wi.shape[0]:
                    wi[m] = i
                    wj[m] = j
                    wv[m] = score
                m += 1
            elif score == score and ((right and b > rl[k, j]) or (left and b < lf[k, j])):
                state[i, j] = 1
    return m


def merge_pending(
    keys: np.ndarray, values: np.ndarray, counts: np.ndarray, prods: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort ``(key, value)`` pairs and merge equal ones, summing counts and product rows."""
    if keys.size == 0:
        return (
            keys.astype(np.int64),
            values.astype(np.float64),
            counts.astype(np.int64),
            prods.reshape(0, prods.shape[1]),
        )
    order = np.lexsort((values, keys))
    keys, values, counts, prods = keys[order], values[order], counts[order], prods[order]
    new = np.ones(keys.size, dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]) | (values[1:] != values[:-1])
    at = np.flatnonzero(new)
    return keys[at], values[at], np.add.reduceat(counts, at), np.add.reduceat(prods, at, axis=0)


def _keep(parts: list[tuple], dropped: np.ndarray) -> tuple:
    """The pending parts of the keys not dropped, merged."""
    keep = [tuple(a[~dropped[p[0]]] for a in p) for p in parts]
    return merge_pending(*(np.concatenate([p[i] for p in keep]) for i in range(4)))


def combine_window_sums(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """Combine :func:`window_sums` results of several blocks."""
    sums = {k: sum(p["sums"][k] for p in parts) for k in parts[0]["sums"]}
    dropped = np.logical_or.reduce([p["dropped"] for p in parts])
    return {
        "sums": sums,
        "pending": _keep([p["pending"] for p in parts], dropped),
        "dropped": dropped,
    }


def pending_in_window(
    pending: tuple, window: Mapping[str, Any], first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(keys, values, counts)`` of the pending values whose bin is in ``[first, last]``.

    What :func:`collect_in_bins` collects for that window, for the keys not dropped.
    """
    keys, values, counts, _ = pending
    lo, width = np.ravel(window["lo"])[keys], np.ravel(window["width"])[keys]
    b = bin_index(values, lo, width, window["n_bins"])
    inside = (b >= np.ravel(first)[keys]) & (b <= np.ravel(last)[keys])
    return keys[inside], values[inside], counts[inside]


def add_pending(
    sums: Mapping[str, np.ndarray],
    pending: tuple,
    x_names: Sequence[str],
    right: np.ndarray | None,
    left: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The ``'x:'`` sums with the pending cells at or beyond the exact thresholds added."""
    keys, values, _, prods = pending
    take = np.zeros(keys.size, dtype=bool)
    with np.errstate(invalid="ignore"):
        if right is not None:
            take |= values >= np.ravel(right)[keys]
        if left is not None:
            take |= values <= np.ravel(left)[keys]
    out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in sums.items()}
    for i, name in enumerate(x_names):
        shape = out[name].shape
        add = np.bincount(keys[take], weights=prods[take, i], minlength=out[name].size)
        out[name] = out[name] + add.reshape(shape)
    return out


def _slices(
    blocks: Mapping[str, Any], derived: Mapping | None
) -> Iterator[tuple[int, int, dict[str, np.ndarray], np.ndarray]]:
    """``(start, stop, layers, stack)`` for each row slice (see :func:`_slice_layers`).

    One float64 buffer serves every slice: a slice's layers are overwritten by the next.
    """
    combos = {k: v for k, v in (derived or {}).items() if all(a in blocks for _, a in v)}
    n, g = next(iter(blocks.values())).shape
    buffer = np.empty((len(blocks) + len(combos), min(n, SLICE_ROWS), g))
    for start, stop in row_slices(n):
        stack = buffer[:, : stop - start]
        yield start, stop, _slice_layers(blocks, combos, start, stop, stack), stack


def _slice_layers(
    blocks: Mapping[str, Any], combos: Mapping, start: int, stop: int, stack: np.ndarray
) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of every layer as float64, with the derived layers ``combos``.

    The values are views into ``stack`` (``layers x rows x genes``, in the order of the
    returned dict), which is what :meth:`_Products.sums` reads.
    """
    xs = {name: stack[i] for i, name in enumerate([*blocks, *combos])}
    for name, block in blocks.items():
        part = block[start:stop]
        xs[name][...] = part.toarray() if sparse.issparse(part) else part
    for name, combo in combos.items():
        (f, a), *rest = combo
        np.multiply(f, xs[a], out=xs[name])
        for f, a in rest:
            xs[name] += f * xs[a]
    return xs


class _Products:
    """The distinct products of a set of terms, and which terms each product feeds.

    A term's product is formed once per cell and gene and serves both its plain term (summed
    over every cell of a stratum) and its ``'x:'`` term (summed over the cells of state 1);
    the ``'x:'`` products of the cells of state 2 are summed too (see :func:`window_sums`).
    """

    def __init__(self, terms: Mapping[str, tuple[str, ...]]) -> None:
        products: dict[tuple[str, ...], int] = {}
        self.plain: dict[str, int] = {}
        self.x_product: dict[str, int] = {}
        for name, factors in terms.items():
            p = products.setdefault(tuple(sorted(factors)), len(products))
            (self.x_product if name.startswith("x:") else self.plain)[name] = p
        self.layers = sorted({f for factors in products for f in factors})
        width = max([len(f) for f in products] + [1])
        self.factors = np.full((len(products), width), -1, dtype=np.int64)
        for factors, p in products.items():
            self.factors[p, : len(factors)] = [self.layers.index(f) for f in factors]
        self.n_factors = np.array([len(f) for f in products], dtype=np.int64)
        self.need = np.zeros((len(products), 2), dtype=np.bool_)
        self.need[list(self.plain.values()), 0] = True
        self.need[list(self.x_product.values()), 1] = True

    def sums(
        self,
        xs: Mapping[str, np.ndarray],
        stack: np.ndarray,
        codes: np.ndarray,
        state: np.ndarray,
        n_strata: int,
    ) -> np.ndarray:
        """``3 x n_products x n_strata x n_genes`` sums: every cell, state 1, state 2.

        ``xs`` and ``stack`` are a slice of :func:`_slices` (``xs``' values are the rows of
        ``stack``, in order).
        """
        g = np.shape(state)[1]
        names = list(xs)
        at = np.array([names.index(f) for f in self.layers], dtype=np.int64)
        acc = np.zeros((3, self.factors.shape[0], n_strata, g))
        factors = np.where(self.factors >= 0, at[self.factors], -1)
        _product_sums(
            stack, np.asarray(codes, dtype=np.int64), np.ascontiguousarray(state, np.int8),
            factors, self.n_factors, self.need, acc,
        )  # fmt: skip
        return acc

    def add(self, out: dict[str, np.ndarray], acc: np.ndarray) -> None:
        """Add the plain terms' sums and the ``'x:'`` terms' sums over the cells of state 1."""
        for name, p in self.plain.items():
            out[name] += acc[0, p]
        for name, p in self.x_product.items():
            out[name] += acc[1, p]


@numba.njit(cache=True)
def _product_sums(x, codes, state, factors, n_factors, need, acc):
    # acc[0]: sums over every cell of a stratum; acc[1] / acc[2]: over the cells whose
    # state is 1 / 2; a product is formed once per cell in a row buffer (contiguous loops)
    g = x.shape[2]
    buf = np.empty(g)
    for i in range(x.shape[1]):
        k = codes[i]
        if k < 0:
            continue
        for p in range(factors.shape[0]):
            _form_product(x, i, factors[p], n_factors[p], buf)
            if need[p, 0]:
                for j in range(g):
                    acc[0, p, k, j] += buf[j]
            if need[p, 1]:
                for j in range(g):
                    st = state[i, j]
                    if st == 1:
                        acc[1, p, k, j] += buf[j]
                    elif st == 2:
                        acc[2, p, k, j] += buf[j]


@numba.njit(cache=True, inline="always")
def _form_product(x, i, factors, n, buf):
    # buf = the product of layers factors[:n] on row i (ones when n is 0)
    if n == 0:
        buf[:] = 1.0
        return
    f0 = factors[0]
    for j in range(buf.size):
        buf[j] = x[f0, i, j]
    for q in range(1, n):
        f = factors[q]
        for j in range(buf.size):
            buf[j] *= x[f, i, j]


def _product_at(
    xs: Mapping[str, np.ndarray], factors: tuple[str, ...], rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """The product of the named layers at the cells ``(rows[i], cols[i])`` (ones if none)."""
    out = np.ones(rows.size)
    for f in factors:
        out = out * xs[f][rows, cols]
    return out


def _slice_mask(xs: Mapping[str, np.ndarray], c: np.ndarray, extreme: Mapping) -> np.ndarray:
    s, u = xs[extreme["s"]], xs[extreme["u"]]
    mask = np.zeros(s.shape, dtype=bool)
    for k in np.unique(c[c >= 0]):
        rows = c == k
        score = extremeness(s[rows], u[rows], extreme["scale"]["s"][k], extreme["scale"]["u"][k])
        left = None if extreme["left"] is None else extreme["left"][k]
        right = None if extreme["right"] is None else extreme["right"][k]
        mask[rows] = extreme_mask(score, left, right)
    return mask


def sign_counts(v: Any, codes: np.ndarray, n_strata: int, threshold: np.ndarray) -> dict:
    """Per stratum and gene: cells with ``v > -threshold``, with ``v < threshold``, and NaNs.

    Returns
    -------
    dict
        ``above`` (``v > -threshold``), ``below`` (``v < threshold``), ``nan`` and ``n``
        (cells), each ``n_strata x n_genes`` float64 (sum over blocks).
    """
    g = v.shape[1]
    out = {k: np.zeros((n_strata, g)) for k in ("above", "below", "nan", "n")}
    codes = np.asarray(codes).ravel()
    for start, stop in row_slices(v.shape[0]):
        x = dense_rows(v, start, stop)
        ind = one_hot(codes[start:stop], n_strata)
        with np.errstate(invalid="ignore"):
            out["above"] += ind @ (x > -threshold).astype(np.float64)
            out["below"] += ind @ (x < threshold).astype(np.float64)
        out["nan"] += ind @ np.isnan(x).astype(np.float64)
        out["n"] += np.asarray(ind.sum(axis=1)).reshape(-1, 1)
    return out


@numba.njit(cache=True)
def combine_rows(x, codes, coefs, const, cols, out):
    """``out[i, j] = sum_l coefs[l, k, j] x[l, i, cols[j]] (+ const[k, j])``, ``k = codes[i]``.

    ``x`` is ``layers x rows x genes`` float64, ``coefs`` ``layers x strata x width``,
    ``const`` ``strata x width`` (or no rows: none); rows with ``k < 0`` get 0. Summed in
    layer order in float64, then stored in ``out``'s type.
    """
    for i in range(x.shape[1]):
        k = codes[i]
        for j in range(cols.size):
            if k < 0:
                out[i, j] = 0.0
                continue
            acc = 0.0
            for m in range(x.shape[0]):
                acc += coefs[m, k, j] * x[m, i, cols[j]]
            if const.shape[0] > 0:
                acc += const[k, j]
            out[i, j] = acc
