"""dyn.pl.kinetic_curves and kinetic_heatmap on pancreas: pseudotime, fates and least-action paths.

The pseudotime is dynamo's own ``umap_ddhodge_potential`` of the reference; the trajectories
are integrated here on dynamo's PCA field (``dyn.pd.fate`` / ``dyn.pd.least_action``).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask.kernels import time_series as ts  # noqa: E402

TKEY = "umap_ddhodge_potential"
GENES = ["Spp1", "Sox9", "Neurog3", "Cpe", "Pcsk2", "Ins1", "Gcg", "Sst", "Ghrl", "Chga"]


@pytest.fixture(scope="module")
def small(reference):
    """dynamo's cells with M_s, its ddhodge potential, PCA, PCA field and 8 genes' Jacobian."""
    return ad.AnnData(
        X=None,
        obs=reference.obs[["clusters", TKEY]].copy(),
        var=reference.var[["use_for_pca"]].copy(),
        layers={"M_s": reference.layers["M_s"]},
        obsm={"X_pca": reference.obsm["X_pca"]},
        uns={
            "VecFld_pca": dict(reference.uns["VecFld_pca"]),
            "PCs": reference.uns["PCs"],
            "pca_mean": reference.uns["pca_mean"],
            "jacobian_pca": dict(reference.uns["jacobian_pca"]),
        },
    )


@pytest.fixture(scope="module")
def store(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("plkinetics")
    small.write_h5ad(path / "k.h5ad")
    return dyn.io.convert(path / "k.h5ad", path / "k.zarr", chunk_cells=1000)


@pytest.fixture(scope="module")
def fates(small):
    """Two Ductal cells' fates in genes and one least-action path Ductal -> Beta."""
    a = small.copy()
    obs = a.obs["clusters"].to_numpy()
    cells = list(a.obs_names[obs == "Ductal"][:2])
    dyn.pd.fate(a, init_cells=cells, basis="pca", inverse_transform=True, interpolation_num=100)
    dyn.pd.least_action(a, cells[:1], [a.obs_names[obs == "Beta"][0]], basis="pca", n_points=20)
    return a


def _windows(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running mean written out window by window (cut at the ends)."""
    n = len(x)
    out = np.empty_like(x, dtype=np.float64)
    for i in range(n):
        lo, hi = max(0, i - (width - 1) // 2), min(n, i + width // 2 + 1)
        out[i] = x[lo:hi].mean(axis=0)
    return out


# --- kernels ---------------------------------------------------------------------------


def test_moving_average_is_the_window_mean_cut_at_the_ends():
    x = np.random.default_rng(0).normal(size=(57, 3))
    for width in (1, 4, 30, 57, 200):
        np.testing.assert_allclose(ts.moving_average(x, width), _windows(x, min(width, 57)))


def test_smoothing_reads_a_line_exactly_and_sorts_the_cells():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 10, 400)
    values = np.stack([2 * t + 1, -t], axis=1)
    grid, m, order = ts.smooth_over_time(t, values, 50, 1)
    assert np.all(np.diff(t[order]) >= 0)
    np.testing.assert_allclose(grid, np.linspace(t.min(), t.max(), 50))
    np.testing.assert_allclose(m, np.stack([2 * grid + 1, -grid]), atol=1e-9)
    grid, m, order = ts.smooth_over_time(t, values, None, 1)
    np.testing.assert_allclose(m, values[order].T)


def test_half_max_order_sorts_rising_falling_and_transient_genes():
    t = np.linspace(0, 1, 100)
    rise = [1 / (1 + np.exp(-40 * (t - c))) for c in (0.7, 0.3)]
    fall = [1 - 1 / (1 + np.exp(-40 * (t - c))) for c in (0.6, 0.2)]
    bump = [np.exp(-((t - c) ** 2) / 0.005) for c in (0.8, 0.4)]
    edge = [np.exp(-((t - 0.99) ** 2) / 0.005)]  # peaks at the end: rising, not transient
    m = 3.0 * np.stack(rise + fall + bump + edge) + 2.0
    order, group = ts.half_max_order(m)
    assert list(group) == ["up", "up", "down", "down", "transient", "transient", "up"]
    # rising by where they reach half their maximum, then falling, then transient
    assert order.tolist() == [1, 0, 6, 3, 2, 5, 4]


def test_min_max_and_moving_samples():
    m = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(ts.min_max(m, 1), [[0, 1, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(ts.min_max(m, 0), [[0, 0, 0], [1, 1, 1]])
    path = np.array([[0.0, 0], [1, 0], [2, 0], [2, 1e-7], [2, 2e-7]])
    assert ts.moving_samples(path, 1e-10).tolist() == [0, 1, 2]
    assert ts.moving_samples(path, None).tolist() == [0, 1, 2, 3, 4]


# --- pseudotime ------------------------------------------------------------------------


def _expected_table(adata, genes, width=30, n_points=100):
    """log1p(M_s) of the genes, cells by potential, running mean, read on a grid, [0, 1]."""
    t = adata.obs[TKEY].to_numpy()
    order = np.argsort(t, kind="stable")
    cols = [adata.var_names.get_loc(g) for g in genes]
    x = np.log1p(np.asarray(adata.layers["M_s"], dtype=np.float64)[:, cols][order])
    smooth = _windows(x, width)
    grid = np.linspace(t.min(), t.max(), n_points)
    m = np.stack([np.interp(grid, t[order], smooth[:, j]) for j in range(len(genes))])
    lo, hi = m.min(axis=1, keepdims=True), m.max(axis=1, keepdims=True)
    return (m - lo) / (hi - lo), grid


def test_heatmap_in_pseudotime_orders_pancreas_genes_by_their_peak(small):
    ax = dyn.pl.kinetic_heatmap(
        small, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, save_show_or_return="return"
    )
    want, _ = _expected_table(small, GENES)
    rows = np.argsort(np.argmax(want, axis=1), kind="stable")
    (image,) = ax.images
    np.testing.assert_allclose(image.get_array(), want[rows], atol=1e-12)
    drawn = [t.get_text() for t in ax.get_yticklabels()]
    assert drawn == [GENES[r] for r in rows]
    # ductal genes first, the Ngn3 progenitors' gene next, beta cells' insulin late
    assert drawn.index("Spp1") < drawn.index("Neurog3") < drawn.index("Ins1")
    assert drawn.index("Sox9") < drawn.index("Neurog3") < drawn.index("Pcsk2")
    # tkey's default 'potential' reads ddhodge's obs['umap_ddhodge_potential']
    again = dyn.pl.kinetic_heatmap(
        small, GENES, mode="pseudotime", layer="M_s", save_show_or_return="return"
    )
    np.testing.assert_array_equal(again.images[0].get_array(), image.get_array())


def test_heatmap_half_max_groups_and_cell_strip(small):
    ax = dyn.pl.kinetic_heatmap(
        small,
        GENES,
        mode="pseudotime",
        layer="M_s",
        tkey=TKEY,
        gene_order_method="half_max_ordering",
        cell_group="clusters",
        save_show_or_return="return",
    )
    want, grid = _expected_table(small, GENES)
    order, group = ts.half_max_order(want)
    drawn = [t.get_text() for t in ax.get_yticklabels()]
    assert drawn == [GENES[r] for r in order]
    named = dict(zip(GENES, group, strict=True))
    assert named["Ins1"] == named["Pcsk2"] == "up" and named["Spp1"] == "down"
    assert named["Neurog3"] == "transient"
    # the strip above: each column in the colour of its cells' most common cluster
    (strip,) = [a for a in ax.figure.axes if a is not ax and a.images]
    colours = strip.images[0].get_array()[0]
    names = sorted(small.obs["clusters"].astype(str).unique())
    lut = dict(zip(names, dyn.pl._points.label_colors(names), strict=True))
    t = small.obs[TKEY].to_numpy()
    nearest = np.abs(t[:, None] - grid[None, :]).argmin(axis=1)
    labels = small.obs["clusters"].astype(str).to_numpy()
    for col in (0, 50, 99):
        cells = labels[nearest == col]
        values, counts = np.unique(cells, return_counts=True)
        np.testing.assert_allclose(colours[col], lut[values[np.argmax(counts)]])
    assert tuple(colours[0]) == tuple(lut["Ductal"]) and tuple(colours[-1]) == tuple(lut["Beta"])


def test_curves_draw_every_cell_and_the_heatmaps_curve(small):
    axes = dyn.pl.kinetic_curves(
        small,
        ["Spp1", "Ins1"],
        mode="pseudotime",
        layer="M_s",
        tkey=TKEY,
        color="clusters",
        save_show_or_return="return",
    )
    assert [a.get_title() for a in axes] == ["Spp1", "Ins1"]
    t = small.obs[TKEY].to_numpy()
    order = np.argsort(t, kind="stable")
    want, grid = _expected_table(small, ["Spp1", "Ins1"])
    for j, ax in enumerate(axes):
        (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        xy = points.get_offsets()
        assert len(xy) == small.n_obs
        x = np.log1p(
            np.asarray(small.layers["M_s"], dtype=np.float64)[
                :, small.var_names.get_loc(ax.get_title())
            ]
        )
        np.testing.assert_allclose(xy[:, 1], (x - x.min()) / (x.max() - x.min()))
        np.testing.assert_allclose(xy[:, 0], t)
        (line,) = ax.get_lines()
        np.testing.assert_allclose(line.get_xdata(), grid)
        # scaling the cells first, then smoothing: the same curve up to the gene's scale
        y = np.asarray(line.get_ydata())
        np.testing.assert_allclose((y - y.min()) / (y.max() - y.min()), want[j], atol=1e-12)
    assert np.all(np.diff(t[order]) >= 0)
    legend = axes[-1].get_legend()
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(
        small.obs["clusters"].astype(str).unique()
    )


def test_curves_of_many_cells_draw_a_sample_and_keep_the_curve(small, monkeypatch):
    from dynadask.pl import time_series

    kw = {"mode": "pseudotime", "layer": "M_s", "tkey": TKEY, "save_show_or_return": "return"}
    (full,) = dyn.pl.kinetic_curves(small, ["Ins1"], **kw)
    monkeypatch.setattr(time_series, "MAX_POINTS_DRAWN", 1000)
    (part,) = dyn.pl.kinetic_curves(small, ["Ins1"], **kw)
    (points,) = [c for c in part.collections if isinstance(c, PathCollection)]
    xy = points.get_offsets()
    assert len(xy) == 1000
    # drawn cells are cells: each point is one of the full figure's points
    every = {tuple(p) for p in np.asarray(full.collections[0].get_offsets())}
    assert all(tuple(p) in every for p in np.asarray(xy))
    np.testing.assert_array_equal(part.get_lines()[0].get_ydata(), full.get_lines()[0].get_ydata())


def test_a_store_draws_what_memory_draws(small, store):
    lazy = dyn.io.open(store)
    for kwargs in ({}, {"gene_order_method": "half_max_ordering", "spaced_num": None}):
        mem = dyn.pl.kinetic_heatmap(
            small, GENES, mode="pseudotime", layer="M_s", tkey=TKEY,
            save_show_or_return="return", **kwargs,
        )  # fmt: skip
        got = dyn.pl.kinetic_heatmap(
            lazy, GENES, mode="pseudotime", layer="M_s", tkey=TKEY,
            save_show_or_return="return", **kwargs,
        )  # fmt: skip
        np.testing.assert_allclose(got.images[0].get_array(), mem.images[0].get_array())
        assert got.images[0].get_array().shape[1] == (100 if not kwargs else small.n_obs)
    a = dyn.pl.kinetic_curves(lazy, ["Ins1"], mode="pseudotime", layer="M_s", tkey=TKEY,
                              save_show_or_return="return")  # fmt: skip
    b = dyn.pl.kinetic_curves(small, ["Ins1"], mode="pseudotime", layer="M_s", tkey=TKEY,
                              save_show_or_return="return")  # fmt: skip
    np.testing.assert_allclose(a[0].get_lines()[0].get_ydata(), b[0].get_lines()[0].get_ydata())
    assert "kinetic_heatmap" not in dyn.io.open(store).uns  # a figure writes nothing


# --- trajectories ----------------------------------------------------------------------


def test_heatmap_of_a_fate_in_genes(fates):
    f = fates.uns["fate_pca"]
    genes = ["Ins1", "Spp1", "Pcsk2", "Sox9"]
    for k in (0, 1):
        ax = dyn.pl.kinetic_heatmap(
            fates, genes, basis="pca", traj_ind=k, gene_order_method="raw",
            save_show_or_return="return",
        )  # fmt: skip
        names = list(f["expr_genes"])
        path = f["exprs"][k][:, [names.index(g) for g in genes]].astype(np.float64)
        keep = ts.moving_samples(path, 1e-10)
        keep = keep[np.argsort(f["t"][k][keep], kind="stable")]
        m = path[keep].T
        m = (m - m.min(axis=1, keepdims=True)) / np.ptp(m, axis=1, keepdims=True)
        np.testing.assert_allclose(ax.images[0].get_array(), m, atol=1e-12)
        assert [t.get_text() for t in ax.get_yticklabels()] == genes
    # a Ductal cell's fate towards the endocrine cells: the ductal gene falls, Pcsk2 rises
    t = f["t"][0]
    fwd = t > 0
    names = list(f["expr_genes"])
    path = f["exprs"][0][fwd]
    assert path[-1, names.index("Spp1")] < path[0, names.index("Spp1")]
    assert path[-1, names.index("Pcsk2")] > path[0, names.index("Pcsk2")]


def test_a_fate_committed_to_a_store_draws_from_the_store(store, monkeypatch):
    # above LAZY_UNS_BYTES a stored uns array opens as a Dask array: here the threshold is
    # lowered so the 2 x 50 x 1,617 trajectories in genes stay in the store
    import importlib

    io_open = importlib.import_module("dynadask.io.open")
    monkeypatch.setattr(io_open, "LAZY_UNS_BYTES", 1000)
    adata = dyn.io.open(store)
    cells = list(adata.obs_names[adata.obs["clusters"].to_numpy() == "Ductal"][2:4])
    dyn.pd.fate(adata, init_cells=cells, basis="pca", inverse_transform=True, interpolation_num=50)
    lazy = dyn.io.open(store)
    f = lazy.uns["fate_pca"]
    assert isinstance(f["exprs"], da.Array)
    genes = ["Ins1", "Spp1", "Pcsk2"]
    ax = dyn.pl.kinetic_heatmap(
        lazy, genes, basis="pca", traj_ind=1, gene_order_method="raw",
        save_show_or_return="return",
    )  # fmt: skip
    names = list(f["expr_genes"])
    path = f["exprs"][1].compute()[:, [names.index(g) for g in genes]].astype(np.float64)
    t = np.asarray(f["t"][1])
    keep = ts.moving_samples(path, 1e-10)
    keep = keep[np.argsort(t[keep], kind="stable")]
    m = path[keep].T
    m = (m - m.min(axis=1, keepdims=True)) / np.ptp(m, axis=1, keepdims=True)
    np.testing.assert_allclose(ax.images[0].get_array(), m, atol=1e-12)


def test_curves_of_a_least_action_path_and_of_components(fates):
    lap = fates.uns["LAP_pca"]
    names = list(lap["genes"])
    axes = dyn.pl.kinetic_curves(
        fates, ["Ins1", "Spp1"], mode="lap", basis="pca", standard_scale=None,
        save_show_or_return="return",
    )  # fmt: skip
    for ax in axes:
        (line,) = ax.get_lines()
        np.testing.assert_allclose(line.get_xdata(), lap["t"][0])
        np.testing.assert_allclose(
            line.get_ydata(), lap["exprs"][0][:, names.index(ax.get_title())]
        )
    # the path ends in a Beta cell: insulin at the end above its start
    y = axes[0].get_lines()[0].get_ydata()
    assert y[-1] > y[0]
    axes = dyn.pl.kinetic_curves(
        fates, ["pca_0", "pca_1"], mode="lap", basis="pca", project_back_to_high_dim=False,
        standard_scale=None, save_show_or_return="return",
    )  # fmt: skip
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), lap["prediction"][0][:, 1])
    axes = dyn.pl.kinetic_curves(
        fates, ["pca_2"], basis="X_pca", project_back_to_high_dim=False, standard_scale=None,
        save_show_or_return="return",
    )  # fmt: skip
    f = fates.uns["fate_pca"]
    keep = ts.moving_samples(f["prediction"][0].T, 1e-10)
    order = keep[np.argsort(f["t"][0][keep], kind="stable")]
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), f["prediction"][0][2, order])


def _jacobian_rows(adata, regulators, effectors):
    """dynamo's stored J[effector, regulator, cell] as 'r->e' rows, cells by potential."""
    j = adata.uns["jacobian_pca"]
    regs, effs = list(j["regulators"]), list(j["effectors"])
    t = adata.obs[TKEY].to_numpy()[j["cell_idx"]]
    order = np.argsort(t, kind="stable")
    rows = [
        np.asarray(j["jacobian_gene"][effs.index(e), regs.index(r)], dtype=np.float64)[order]
        for e in effectors
        for r in regulators
    ]
    return [f"{r}->{e}" for e in effectors for r in regulators], np.stack(rows), t[order]


def test_jacobian_kinetics_of_dynamos_pancreas_jacobian(small, store):
    regs, effs = ["Neurog3", "Pdx1"], ["Ins1", "Gcg", "Arx"]
    names, J, t = _jacobian_rows(small, regs, effs)
    ax = dyn.pl.jacobian_kinetics(
        small, "pca", regs, effectors=effs, tkey=TKEY, cluster_row_col=(False, False),
        save_show_or_return="return",
    )  # fmt: skip
    want = J / np.abs(J).max(axis=1, keepdims=True)
    np.testing.assert_allclose(ax.images[0].get_array(), want, atol=1e-12)
    assert [x.get_text() for x in ax.get_yticklabels()] == names
    norm = ax.images[0].norm
    assert norm.vmin == -norm.vmax == -1.0  # centred on zero
    # the default clusters the rows: the same rows, reordered
    ax = dyn.pl.jacobian_kinetics(
        small, "pca", regs, effectors=effs, tkey=TKEY, save_show_or_return="return"
    )
    got = [x.get_text() for x in ax.get_yticklabels()]
    assert sorted(got) == sorted(names) and got != names
    np.testing.assert_allclose(ax.images[0].get_array(), want[[names.index(g) for g in got]])
    # maximum: running mean over 30 cells, each pair on [0, 1], ordered by its peak
    ax = dyn.pl.jacobian_kinetics(
        small, "pca", regs, effectors=effs, tkey=TKEY, gene_order_method="maximum",
        cluster_row_col=(False, False), save_show_or_return="return",
    )  # fmt: skip
    smooth = _windows(J.T, 30).T
    smooth = (smooth - smooth.min(axis=1, keepdims=True)) / np.ptp(smooth, axis=1, keepdims=True)
    rows = np.argsort(np.argmax(smooth, axis=1), kind="stable")
    np.testing.assert_allclose(ax.images[0].get_array(), smooth[rows], atol=1e-12)
    # a store draws the same
    lazy = dyn.pl.jacobian_kinetics(
        dyn.io.open(store), "pca", regs, effectors=effs, tkey=TKEY,
        cluster_row_col=(False, False), save_show_or_return="return",
    )  # fmt: skip
    np.testing.assert_allclose(lazy.images[0].get_array(), want, atol=1e-12)


def test_sensitivity_kinetics_of_a_sensitivity_computed_here(small):
    a = small.copy()
    genes = ["Neurog3", "Pdx1", "Ins1"]
    cells = np.arange(0, a.n_obs, 7)
    dyn.vf.sensitivity(a, regulators=genes, effectors=genes, cell_idx=cells, basis="pca")
    ax = dyn.pl.sensitivity_kinetics(
        a, "pca", genes, tkey=TKEY, gene_order_method="half_max_ordering",
        cluster_row_col=(False, False), save_show_or_return="return",
    )  # fmt: skip
    s = a.uns["sensitivity_pca"]
    S = np.asarray(s["sensitivity_gene"], dtype=np.float64)  # cells x effectors x regulators
    assert S.shape == (cells.size, 3, 3)
    regs, effs = list(s["regulators"]), list(s["effectors"])
    pairs = np.stack([S[:, effs.index(e), regs.index(r)] for e in genes for r in genes], axis=1)
    t = a.obs[TKEY].to_numpy()[np.asarray(s["cell_idx"])]
    _, m, _ = ts.smooth_over_time(t, pairs, 100, 30)
    order, _ = ts.half_max_order(m)
    np.testing.assert_allclose(ax.images[0].get_array(), ts.min_max(m, 1)[order], atol=1e-12)
    names = [f"{r}->{e}" for e in genes for r in genes]
    assert [x.get_text() for x in ax.get_yticklabels()] == [names[k] for k in order]


def test_a_table_placed_in_uns_is_drawn_unless_enforced(small):
    a = small.copy()
    table = pd.DataFrame(np.arange(6.0).reshape(2, 3), index=["Ins1", "Spp1"])
    a.uns["kinetic_heatmap"] = table
    ax = dyn.pl.kinetic_heatmap(a, GENES, save_show_or_return="return")
    np.testing.assert_allclose(ax.images[0].get_array(), table.to_numpy())
    ax = dyn.pl.kinetic_heatmap(
        a, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, enforce=True,
        save_show_or_return="return",
    )  # fmt: skip
    assert ax.images[0].get_array().shape == (len(GENES), 100)


def test_groups_lines_and_files(small, tmp_path):
    a = small.copy()
    a.var["kind"] = np.where(a.var_names.isin(["Ins1", "Gcg", "Sst"]), "hormone", "other")
    ax = dyn.pl.kinetic_heatmap(
        a, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, gene_group="kind",
        hline_rows=[3], vline_cols=[10, 20], show_colorbar=True, transpose=True,
        save_show_or_return="return",
    )  # fmt: skip
    assert ax.images[0].get_array().shape == (100, len(GENES))
    (strip,) = [x for x in ax.figure.axes if x is not ax and x.images]
    rgba = strip.images[0].get_array()[0]  # transposed: the genes' strip runs along the top
    genes = [t.get_text() for t in ax.get_xticklabels()]
    lut = dict(zip(["hormone", "other"], dyn.pl._points.label_colors(["hormone", "other"]),
                   strict=True))  # fmt: skip
    for g, c in zip(genes, rgba, strict=True):
        np.testing.assert_allclose(c, lut["hormone" if g in ("Ins1", "Gcg", "Sst") else "other"])
    assert len(ax.collections) == 2  # the dash-dotted lines
    assert len(ax.figure.axes) == 3  # heatmap, strip, colour bar
    dyn.pl.kinetic_heatmap(
        a, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, save_show_or_return="save",
        save_kwargs={"path": str(tmp_path) + "/", "ext": "png"},
    )  # fmt: skip
    dyn.pl.kinetic_curves(
        a, GENES[:2], mode="pseudotime", layer="M_s", tkey=TKEY, save_show_or_return="save",
        save_kwargs={"path": str(tmp_path) + "/", "ext": "png"},
    )  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "kinetic_curves_dyn_savefig.png",
        "kinetic_heatmap_dyn_savefig.png",
    ]


def test_clear_errors(small, fates):
    kw = {"save_show_or_return": "return"}
    cases = [
        (lambda: dyn.pl.kinetic_heatmap(small, GENES, mode="time", **kw), "mode must be"),
        (lambda: dyn.pl.kinetic_heatmap(small, GENES, **kw), "needs basis="),
        (lambda: dyn.pl.kinetic_heatmap(small, GENES, basis="pca", **kw), "run dyn.pd.fate"),
        (
            lambda: dyn.pl.kinetic_heatmap(small, GENES, mode="lap", basis="umap", **kw),
            "dyn.pd.least_action",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(
                small, GENES, mode="pseudotime", layer="M_s", tkey="latent_time", **kw
            ),
            "dyn.ext.ddhodge",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(small, GENES, mode="pseudotime", tkey=TKEY, **kw),
            "adata.X is empty",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(
                small, ["Nope"], mode="pseudotime", layer="M_s", tkey=TKEY, **kw
            ),
            "none of the genes",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(
                small, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, standard_scale=2, **kw
            ),
            "standard_scale must be",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(
                small,
                GENES,
                mode="pseudotime",
                layer="M_s",
                tkey=TKEY,
                gene_order_method="peak",
                **kw,
            ),  # fmt: skip
            "gene_order_method",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(fates, GENES, basis="pca", cell_group="clusters", **kw),
            "cell_group colours the time axis",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(fates, GENES, basis="pca", traj_ind=5, **kw),
            "holds 2 trajectories",
        ),
        (
            lambda: dyn.pl.kinetic_heatmap(fates, ["pca_0"], basis="pca", **kw),
            "none of the genes",
        ),
        (
            lambda: dyn.pl.kinetic_curves(
                small, GENES, mode="pseudotime", layer="M_s", tkey=TKEY, color="clustrs", **kw
            ),
            "not a column of adata.obs",
        ),
        (lambda: dyn.pl.kinetic_curves(small, [], mode="pseudotime", **kw), "genes is empty"),
        (lambda: dyn.pl.jacobian_kinetics(small, **kw), r"dyn.vf.jacobian\(.*basis='umap'"),
        (
            lambda: dyn.pl.jacobian_kinetics(small, "pca", ["Sox9"], tkey=TKEY, **kw),
            r"regulators \['Sox9'\] have no values",
        ),
        (
            lambda: dyn.pl.jacobian_kinetics(small, "pca", mode="vector_field", **kw),
            "mode must be 'pseudotime'",
        ),
        (
            lambda: dyn.pl.sensitivity_kinetics(small, "pca", tkey=TKEY, **kw),
            "dyn.vf.sensitivity",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    a = fates.copy()
    dyn.pd.fate(a, init_cells=list(a.obs_names[:1]), basis="pca")  # no inverse_transform
    with pytest.raises(ValueError, match="inverse_transform=True"):
        dyn.pl.kinetic_curves(a, GENES, basis="pca", **kw)
    with pytest.warns(UserWarning, match=r"1 of the genes .* left out: \['Nope'\]"):
        axes = dyn.pl.kinetic_curves(
            small, ["Ins1", "Nope"], mode="pseudotime", layer="M_s", tkey=TKEY, **kw
        )
    assert [a.get_title() for a in axes] == ["Ins1"]
    # the default colour 'ntr' exists for labelling data only: absent, one colour
    axes = dyn.pl.kinetic_curves(small, ["Ins1"], mode="pseudotime", layer="M_s", tkey=TKEY, **kw)
    assert axes[0].get_legend() is None
