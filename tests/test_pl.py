"""dyn.pl on dynamo's pancreas reference: artists drawn, files saved, errors, store-backed data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask._core import compute as compute_mod  # noqa: E402
from dynadask.pl import _data, _grid, _points  # noqa: E402
from dynadask.pl import vectors as pl_vectors  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:uns.*mean positions:UserWarning")

N_CELLS = 3696
CLUSTERS = 8


@pytest.fixture(scope="module")
def store(reference_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("pl") / "ref.zarr"
    dyn.io.convert(reference_path, path, chunk_cells=1000)
    return dyn.io.open(path)


def _points_of(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _quivers(ax):
    return [c for c in ax.collections if isinstance(c, Quiver)]


# ---------------------------------------------------------------- scatters


def test_scatters_categorical_on_data(reference):
    ax = dyn.pl.scatters(reference, color="clusters", save_show_or_return="return")
    (pts,) = _points_of(ax)
    assert pts.get_offsets().shape == (N_CELLS, 2)
    assert pts.get_rasterized()
    assert sorted(t.get_text() for t in ax.texts) == sorted(reference.obs.clusters.cat.categories)
    # every label sits at the median position of its cells
    emb = reference.obsm["X_umap"]
    text = next(t for t in ax.texts if t.get_text() == "Ductal")
    np.testing.assert_allclose(
        text.get_position(), np.median(emb[reference.obs.clusters == "Ductal"], axis=0)
    )
    assert ax.get_title() == "clusters"


def test_scatters_legend_right_margin(reference):
    ax = dyn.pl.scatters(
        reference, color="clusters", show_legend="right margin", save_show_or_return="return"
    )
    assert len(ax.get_legend().get_texts()) == CLUSTERS
    ax2 = dyn.pl.scatters(
        reference, color="clusters", show_legend=False, save_show_or_return="return"
    )
    assert ax2.get_legend() is None and not ax2.texts


def test_scatters_several_colors_make_panels(reference):
    axes = dyn.pl.scatters(
        reference,
        color=["clusters", "ntr", "Ins1", "Gcg", "speed_umap"],
        layer="spliced",
        ncols=3,
        save_show_or_return="return",
    )
    assert len(axes) == 5
    assert [a.get_title() for a in axes] == ["clusters", "ntr", "Ins1", "Gcg", "speed_umap"]
    # each of the four continuous panels has a colour bar (an inset axes)
    assert [len(a.child_axes) for a in axes] == [0, 1, 1, 1, 1]
    # panels sit on a 2 x 3 grid
    assert axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 3)


def test_scatters_gene_colours_come_from_the_smoothed_layer(reference):
    ax = dyn.pl.scatters(
        reference, color="Ins1", layer="spliced", sort="raw", save_show_or_return="return"
    )
    (pts,) = _points_of(ax)
    j = reference.var_names.get_loc("Ins1")
    values = np.asarray(reference.layers["M_s"][:, j]).ravel()
    # drawn in increasing order: the last point is the cell with the highest value
    np.testing.assert_allclose(pts.get_offsets()[-1], reference.obsm["X_umap"][values.argmax()])


def test_scatters_highlights_grey_out_the_rest(reference):
    ax = dyn.pl.scatters(
        reference, color="clusters", highlights=["Beta", "Alpha"], save_show_or_return="return"
    )
    (pts,) = _points_of(ax)
    colours = pts.get_facecolors()
    grey = np.all(np.isclose(colours[:, :3], matplotlib.colors.to_rgb(_points.OTHER_COLOR)), axis=1)
    n_hi = int(reference.obs.clusters.isin(["Beta", "Alpha"]).sum())
    assert grey.sum() == N_CELLS - n_hi
    assert not grey[-n_hi:].any()  # highlighted cells are drawn last, on top
    assert sorted(t.get_text() for t in ax.texts) == ["Alpha", "Beta"]


def test_scatters_values_and_labels_arguments(reference):
    vals = np.arange(N_CELLS, dtype=float)
    ax = dyn.pl.scatters(reference, values=vals, save_show_or_return="return")
    assert _points_of(ax)[0].get_offsets().shape == (N_CELLS, 2)
    with pytest.raises(ValueError, match="only one"):
        dyn.pl.scatters(reference, values=vals, labels=vals.astype(str))


def test_many_cells_are_aggregated_into_an_image(reference, monkeypatch):
    monkeypatch.setattr(_points, "RASTER_POINTS", 1000)
    ax = dyn.pl.scatters(reference, color="clusters", save_show_or_return="return")
    assert not _points_of(ax)
    (img,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    pixels = img.get_array()
    assert pixels.shape[2] == 4 and (pixels[..., 3] > 0).sum() > 500


def _png(ax, dpi):
    ax.figure.canvas.draw()  # layout first, so both figures have the same axes box
    path = f"/tmp/_pl_{id(ax)}.png"
    ax.figure.savefig(path, dpi=dpi)
    return plt.imread(path)[..., :3]


@pytest.mark.parametrize("color", ["clusters", "ntr"])
def test_many_cells_image_looks_like_the_scatter(reference, monkeypatch, color):
    """Above the threshold the cells are one image that shows what the scatter shows."""
    scattered = dyn.pl.scatters(reference, color=color, save_show_or_return="return")
    assert _points_of(scattered)
    monkeypatch.setattr(_points, "RASTER_POINTS", 1000)
    imaged = dyn.pl.scatters(reference, color=color, save_show_or_return="return")
    assert not _points_of(imaged)
    (img,) = [a for a in imaged.get_children() if isinstance(a, _points.PointImage)]
    assert imaged.get_xlim() == scattered.get_xlim() and imaged.get_ylim() == scattered.get_ylim()
    for dpi in (60, 150):  # the image is made again for the output's resolution
        a, b = _png(scattered, dpi), _png(imaged, dpi)
        assert a.shape == b.shape
        size = imaged.bbox.size[::-1] * dpi / imaged.figure.dpi  # the axes at the output's dpi
        assert img.get_array().shape[:2] == tuple(round(v) for v in size)
        diff = np.abs(a - b)
        assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.1, (dpi, diff.mean())
        # a mean colour per pixel (the former raster) is far off: the scatter draws in order
        assert (b < 0.99).any(axis=2).sum() > 0.9 * (a < 0.99).any(axis=2).sum()


# ---------------------------------------------------------------- vectors


def test_cell_wise_vectors_one_arrow_per_cell(reference):
    (ax,) = dyn.pl.cell_wise_vectors(reference, color="clusters", save_show_or_return="return")
    (q,) = _quivers(ax)
    assert q.N == N_CELLS
    assert len(_points_of(ax)[0].get_offsets()) == N_CELLS
    # arrows point like the velocities
    v = reference.obsm["velocity_umap"]
    cos = (q.U * v[:, 0] + q.V * v[:, 1]) / np.hypot(q.U, q.V) / np.linalg.norm(v, axis=1)
    assert np.allclose(cos, 1, atol=1e-5)


def test_cell_wise_vectors_subsample_is_bounded_and_seeded(reference, monkeypatch):
    monkeypatch.setattr(pl_vectors, "MAX_CELL_ARROWS", 500)
    a = _quivers(dyn.pl.cell_wise_vectors(reference, color="ntr", save_show_or_return="return")[0])[
        0
    ]
    b = _quivers(dyn.pl.cell_wise_vectors(reference, color="ntr", save_show_or_return="return")[0])[
        0
    ]
    assert a.N == 500
    np.testing.assert_array_equal(a.X, b.X)
    c = _quivers(
        dyn.pl.cell_wise_vectors(
            reference, color="ntr", cell_inds=120, save_show_or_return="return"
        )[0]
    )[0]
    assert c.N == 120
    names = list(reference.obs_names[:7])
    d = _quivers(
        dyn.pl.cell_wise_vectors(
            reference, color="ntr", cell_inds=names, save_show_or_return="return"
        )[0]
    )[0]
    np.testing.assert_allclose(d.X, reference.obsm["X_umap"][:7, 0])


def _small(reference, grid=None):
    uns = {} if grid is None else {"grid_velocity_umap": grid}
    return ad.AnnData(
        obs=reference.obs[["clusters"]].copy(),
        uns=uns,
        obsm={k: reference.obsm[k] for k in ("X_umap", "velocity_umap")},
    )


def test_grid_vectors_use_a_stored_velocity_grid(reference):
    axes, v_grid = _grid.cell_grid(
        reference.obsm["X_umap"], reference.obsm["velocity_umap"], (50, 50)
    )
    v_grid[:, :, :10] = np.nan  # a stored grid recognisable by its masked columns
    small = _small(reference, {"X_grid": np.stack(axes), "V_grid": v_grid})
    ax = dyn.pl.grid_vectors(small, color="clusters", save_show_or_return="return")
    (q,) = _quivers(ax)
    assert q.N == int(np.isfinite(v_grid).all(axis=0).sum())
    assert q.X.min() > axes[0][9]


def test_local_grid_equals_the_all_pairs_grid(reference):
    from dynadask.kernels import grid as kg

    emb, vel = reference.obsm["X_umap"], reference.obsm["velocity_umap"]
    axes, local = _grid.cell_grid(emb, vel, (50, 50))
    scale = np.mean([a[1] - a[0] for a in axes]) * 0.5
    full = kg.finish_grid(kg.grid_sums(emb, vel, axes, scale), axes, mask="both")["V_grid"]
    assert (np.isfinite(full) == np.isfinite(local)).mean() > 0.98
    both = np.isfinite(full) & np.isfinite(local)
    np.testing.assert_allclose(local[both], full[both], atol=1e-4)


def test_dynamos_position_grid_is_recomputed(reference):
    """dynamo 1.5.3 stores mean positions x + dx in uns['grid_velocity_umap']."""
    stored = reference.uns["grid_velocity_umap"]
    assert _grid.holds_positions(list(stored["X_grid"]), stored["V_grid"])
    with pytest.warns(UserWarning, match="mean positions"):
        ax = dyn.pl.grid_vectors(reference, color="clusters", save_show_or_return="return")
    (q,) = _quivers(ax)
    axes, v_grid = _grid.cell_grid(
        reference.obsm["X_umap"], reference.obsm["velocity_umap"], (50, 50)
    )
    assert not _grid.holds_positions(axes, v_grid)
    assert q.N == int(np.isfinite(v_grid).all(axis=0).sum())


def test_grid_vectors_recomputed_grid(reference):
    ax = dyn.pl.grid_vectors(
        reference, color="clusters", xy_grid_nums=(30, 20), save_show_or_return="return"
    )
    (q,) = _quivers(ax)
    assert 100 < q.N < 600


def test_gaussian_grid_reproduces_dynamos_grid(reference):
    """Fed what dynamo averaged (x + dx), the grid equals dynamo's stored one."""
    emb, vel = reference.obsm["X_umap"], reference.obsm["velocity_umap"]
    axes, v_grid = _grid.cell_grid(emb, emb + vel, (50, 50))
    ref = reference.uns["grid_velocity_umap"]
    np.testing.assert_allclose(axes[0], ref["X_grid"][0], atol=5e-3)
    np.testing.assert_allclose(axes[1], ref["X_grid"][1], atol=5e-3)
    ours, theirs = np.isfinite(v_grid).all(0), np.isfinite(ref["V_grid"]).all(0)
    assert (ours == theirs).mean() > 0.97
    diff = np.abs(v_grid[:, ours & theirs] - ref["V_grid"][:, ours & theirs])
    assert np.median(diff) < 2e-3 and np.percentile(diff, 95) < 0.05


def test_streamline_plot(reference):
    (ax,) = dyn.pl.streamline_plot(reference, color="clusters", save_show_or_return="return")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) > 100
    assert len(ax.patches) > 10  # arrow heads
    (sparse,) = dyn.pl.streamline_plot(
        reference, color="clusters", density=0.3, save_show_or_return="return"
    )
    n_sparse = sum(
        len(c.get_segments()) for c in sparse.collections if isinstance(c, LineCollection)
    )
    assert n_sparse < len(lines[0].get_segments())


def test_flow_runs_from_ductal_towards_endocrine_cells(reference):
    """The grid flow at Ductal / Ngn3 cells points towards the Pre-endocrine cells."""
    emb = reference.obsm["X_umap"]
    axes, v_grid = _grid.cell_grid(emb, reference.obsm["velocity_umap"], (50, 50))
    target = np.median(emb[reference.obs.clusters == "Pre-endocrine"], axis=0)
    start = np.median(emb[reference.obs.clusters == "Ngn3 high EP"], axis=0)
    i = np.abs(axes[0] - start[0]).argmin()
    j = np.abs(axes[1] - start[1]).argmin()
    v = v_grid[:, j, i]
    assert np.dot(v, target - start) > 0


# ---------------------------------------------------------------- phase portraits


def test_phase_portraits(reference):
    genes = ["Pdx1", "Gcg"]
    axes = dyn.pl.phase_portraits(reference, genes, color="clusters", save_show_or_return="return")
    assert len(axes) == 3 * len(genes)
    phase = axes[3]
    (pts,) = _points_of(phase)
    j = reference.var_names.get_loc("Gcg")
    s = np.asarray(reference.layers["M_s"][:, j]).ravel()
    u = np.asarray(reference.layers["M_u"][:, j]).ravel()
    assert sorted(map(tuple, pts.get_offsets())) == sorted(zip(s, u, strict=True))
    (line,) = phase.get_lines()
    xs, ys = line.get_data()
    gamma = reference.var.at["Gcg", "gamma"]
    np.testing.assert_allclose(ys, gamma * xs, rtol=1e-6)
    assert phase.get_title() == "Gcg" and axes[4].get_title() == "Gcg (M_s)"
    assert len(_points_of(axes[5])[0].get_offsets()) == N_CELLS


def test_phase_portraits_without_gamma_raise(reference):
    small = ad.AnnData(
        obs=reference.obs[["clusters"]].copy(),
        var=reference.var[["beta"]].copy(),
        layers={k: reference.layers[k] for k in ("M_s", "M_u", "velocity_S")},
        obsm={"X_umap": reference.obsm["X_umap"]},
    )
    with pytest.raises(KeyError, match=r"dyn\.tl\.dynamics"):
        dyn.pl.phase_portraits(small, "Gcg", color="clusters")


# ---------------------------------------------------------------- save / show / return


def test_save_writes_png(reference, tmp_path):
    out = dyn.pl.streamline_plot(
        reference,
        color="clusters",
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "flow"), "ext": "png", "dpi": 60, "verbose": False},
    )
    assert out is None
    png = tmp_path / "streamline_plot_flow.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not plt.get_fignums()  # closed after saving
    dyn.pl.scatters(
        reference,
        color="clusters",
        save_show_or_return="save",
        save_kwargs={
            "path": str(tmp_path) + "/",
            "prefix": "umap",
            "ext": "png",
            "dpi": 40,
            "verbose": False,
        },
    )
    assert (tmp_path / "umap_dyn_savefig.png").stat().st_size > 1000


def test_show_and_both(reference, tmp_path):
    assert dyn.pl.scatters(reference, color="ntr") is None
    ax = dyn.pl.scatters(
        reference,
        color="ntr",
        save_show_or_return="all",
        save_kwargs={"path": str(tmp_path / "a"), "ext": "png", "dpi": 30, "verbose": False},
    )
    assert ax.figure.number in plt.get_fignums()
    with pytest.raises(ValueError, match="save_show_or_return"):
        dyn.pl.scatters(reference, color="ntr", save_show_or_return="keep")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "kwargs", "match"),
    [
        ("scatters", {"basis": "tsne", "color": "clusters"}, r"reduceDimension.*tsne"),
        ("scatters", {"color": "no_such_column"}, "neither a column"),
        ("scatters", {"color": "Ins1"}, "X is empty"),
        ("scatters", {"color": "Ins1", "layer": "M_n"}, r"dyn\.tl\.moments"),
        (
            "cell_wise_vectors",
            {"basis": "pca", "vector": "acceleration"},
            r"dyn\.vf\.acceleration\(adata, basis='pca'\)",
        ),
        (
            "phase_portraits",
            {"genes": ["Gcg"], "color": "clusters", "vkey": "velocity_T"},
            r"dyn\.tl\.dynamics",
        ),
    ],
)
def test_missing_keys_name_the_function_that_makes_them(reference, call, kwargs, match):
    with pytest.raises(KeyError, match=match):
        getattr(dyn.pl, call)(reference, **kwargs)


def test_missing_velocity_raises_before_drawing(reference):
    small = _small(reference)
    del small.obsm["velocity_umap"]
    for fn in (dyn.pl.cell_wise_vectors, dyn.pl.grid_vectors, dyn.pl.streamline_plot):
        with pytest.raises(KeyError, match=r"dyn\.tl\.cell_velocities\(adata, basis='umap'\)"):
            fn(small, color="clusters")
    assert not plt.get_fignums()


def test_bad_options(reference):
    with pytest.raises(ValueError, match="gaussian"):
        dyn.pl.grid_vectors(reference, method="SparseVFC")
    with pytest.raises(ValueError, match="grid options"):
        dyn.pl.grid_vectors(reference, xy_grid_nums=(20, 20), n_neighbors=3)
    with pytest.raises(ValueError, match="columns"):
        dyn.pl.scatters(reference, x=0, y=5, color="clusters")
    with pytest.raises(ValueError, match="single panel"):
        _, ax = plt.subplots()
        dyn.pl.scatters(reference, color=["ntr", "clusters"], ax=ax)


# ---------------------------------------------------------------- store-backed AnnData


def test_store_backed_scatters_reads_once(store, reference):
    before = compute_mod._state["computes"]
    ax = dyn.pl.scatters(store, color="Ins1", layer="M_s", save_show_or_return="return")
    assert compute_mod._state["computes"] - before == 1
    (pts,) = _points_of(ax)
    mem = dyn.pl.scatters(reference, color="Ins1", layer="M_s", save_show_or_return="return")
    np.testing.assert_allclose(pts.get_facecolors(), _points_of(mem)[0].get_facecolors(), atol=1e-6)


def test_store_backed_vectors_and_phase(store, reference, tmp_path):
    (ax,) = dyn.pl.cell_wise_vectors(
        store, color="clusters", cell_inds=300, save_show_or_return="return"
    )
    (mem,) = dyn.pl.cell_wise_vectors(
        reference, color="clusters", cell_inds=300, save_show_or_return="return"
    )
    np.testing.assert_allclose(_quivers(ax)[0].U, _quivers(mem)[0].U, rtol=1e-5)
    grid = dyn.pl.grid_vectors(
        store, color="clusters", xy_grid_nums=(25, 25), save_show_or_return="return"
    )
    grid_mem = dyn.pl.grid_vectors(
        reference, color="clusters", xy_grid_nums=(25, 25), save_show_or_return="return"
    )
    np.testing.assert_allclose(_quivers(grid)[0].U, _quivers(grid_mem)[0].U, rtol=1e-5)
    axes = dyn.pl.phase_portraits(store, ["Gcg"], color="clusters", save_show_or_return="return")
    assert len(_points_of(axes[0])[0].get_offsets()) == N_CELLS
    dyn.pl.streamline_plot(
        store,
        color="clusters",
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "s"), "ext": "png", "dpi": 40, "verbose": False},
    )
    assert (tmp_path / "streamline_plot_s.png").stat().st_size > 1000


# ---------------------------------------------------------------- grid kernel and helpers


def _slow_grid_sums(x, v, points, scale, radius=np.inf):
    out = np.zeros((len(points), 7))
    for p, g in enumerate(points):
        for xi, vi in zip(x, v, strict=True):
            if not (np.isfinite(xi).all() and np.isfinite(vi).all()):
                continue
            if np.sum((xi - g) ** 2) > (radius * scale) ** 2:
                continue
            w = np.exp(-0.5 * np.sum((xi - g) ** 2) / scale**2) / (scale * np.sqrt(2 * np.pi))
            out[p] += w * np.array(
                [1, vi[0], vi[1], abs(vi[0]) + abs(vi[1]), vi[0] ** 2, vi[1] ** 2, vi[0] * vi[1]]
            )
    return out


def test_grid_kernel_matches_a_loop_and_sums_over_blocks():
    from dynadask.kernels import grid as kg

    rng = np.random.default_rng(3)
    x, v = rng.normal(size=(60, 2)), rng.normal(size=(60, 2))
    v[5] = np.nan
    axes = kg.grid_axes(x.min(0), x.max(0), (6, 5))
    points = kg.grid_points(axes)
    whole = kg.grid_sums(x, v, axes, 0.4)
    np.testing.assert_allclose(whole, _slow_grid_sums(x, v, points, 0.4), rtol=1e-10)
    parts = sum(kg.grid_sums(x[i : i + 17], v[i : i + 17], axes, 0.4) for i in range(0, 60, 17))
    np.testing.assert_allclose(parts, whole, rtol=1e-12)


@pytest.mark.parametrize("scale", [0.15, 0.4])
def test_local_grid_kernel_matches_a_truncated_loop_and_sums_over_blocks(scale):
    from dynadask.kernels import grid as kg

    rng = np.random.default_rng(5)
    x, v = rng.normal(size=(80, 2)), rng.normal(size=(80, 2))
    x[7] = np.nan
    axes = kg.grid_axes(x[np.isfinite(x).all(1)].min(0), x[np.isfinite(x).all(1)].max(0), (9, 7))
    points = kg.grid_points(axes)
    local = kg.grid_sums(x, v, axes, scale, radius=2.0)
    np.testing.assert_allclose(
        local, _slow_grid_sums(x, v, points, scale, radius=2.0), rtol=1e-10, atol=1e-14
    )
    parts = sum(
        kg.grid_sums(x[i : i + 23], v[i : i + 23], axes, scale, radius=2.0)
        for i in range(0, 80, 23)
    )
    np.testing.assert_allclose(parts, local, rtol=1e-12, atol=1e-15)
    # with the default 5-width cut-off it is the full Gaussian sum up to exp(-12.5)
    full = kg.grid_sums(x, v, axes, scale)
    np.testing.assert_allclose(
        kg.grid_sums(x, v, axes, scale, radius=5.0), full, atol=4e-4 * np.abs(full).max()
    )


def test_grid_velocity_finish_masks_one_or_both_components():
    from dynadask.kernels import grid as kg

    rng = np.random.default_rng(4)
    x, v = rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) + [1.0, 0.0]
    axes = kg.grid_axes(x.min(0), x.max(0), (12, 12))
    sums = kg.grid_sums(x, v, axes, 0.3)
    ours = kg.finish_grid(sums, axes, mask="both")["V_grid"]
    theirs = kg.finish_grid(sums, axes)["V_grid"]
    np.testing.assert_array_equal(np.isnan(ours[0]), np.isnan(theirs[0]))
    np.testing.assert_allclose(ours[1][~np.isnan(ours[0])], theirs[1][~np.isnan(theirs[0])])
    assert np.isnan(ours[1][np.isnan(ours[0])]).all()  # both components are masked
    # any grid shape; no cut-offs keeps every point
    axes = kg.grid_axes(x.min(0), x.max(0), (9, 5))
    sums = kg.grid_sums(x, v, axes, 0.3)
    full = kg.finish_grid(sums, axes, min_mass=0.0, cut_percentile=0.0, mask="both")["V_grid"]
    assert full.shape == (2, 5, 9) and np.isfinite(full).all()
    np.testing.assert_allclose(full[:, 2, 3], sums[2 * 9 + 3, 1:3] / max(1, sums[2 * 9 + 3, 0]))


def test_pick_cells():
    assert len(_data.pick_cells(50, "all")) == 50
    assert len(_data.pick_cells(5000, "random")) == 1000
    np.testing.assert_array_equal(
        _data.pick_cells(100, 10, random_state=1), _data.pick_cells(100, 10, random_state=1)
    )
    assert len(_data.pick_cells(100, "all", cap=30)) == 30
    with pytest.raises(ValueError, match="cell_inds"):
        _data.pick_cells(10, "some")
