"""dyn.pl vector-field figures on dynamo's pancreas reference: what is drawn, from which keys."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import anndata as ad  # noqa: E402
import dask.array as da  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask.kernels import lic as klic  # noqa: E402
from dynadask.kernels import vectorfield as kv  # noqa: E402
from dynadask.pl import _points, _topo  # noqa: E402
from dynadask.pl import lic as pl_lic  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:uns.*mean positions:UserWarning")

N_CELLS = 3696
GENES = ["Neurog3", "Pax4", "Arx", "Pdx1", "Nkx2-2", "Ins1", "Ins2", "Gcg"]


def _small(reference, with_topography=True):
    """The reference's cells with only what the vector-field figures read."""
    obs = reference.obs[
        ["clusters", "umap_ddhodge_potential", "speed_umap", "divergence_pca", "acceleration_umap"]
        + ["divergence_umap", "curl_umap", "curvature_umap"]
    ].copy()
    uns = {"VecFld_umap": dict(reference.uns["VecFld_umap"])}
    if with_topography:
        uns["topography_umap"] = dict(reference.uns["topography_umap"])
    uns["jacobian_pca"] = dict(reference.uns["jacobian_pca"])
    return ad.AnnData(
        obs=obs,
        uns=uns,
        obsm={k: reference.obsm[k] for k in ("X_umap", "velocity_umap", "X_pca")},
    )


@pytest.fixture(scope="module")
def small(reference):
    return _small(reference)


@pytest.fixture(scope="module")
def store(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("plvf")
    a = _small(reference)
    a.write_h5ad(path / "small.h5ad")
    dyn.io.convert(path / "small.h5ad", path / "small.zarr", chunk_cells=1000)
    return dyn.io.open(path / "small.zarr")


def _points_of(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _norm(ax):
    """The colour normalisation of a panel's colour bar."""
    (cax,) = ax.child_axes
    return cax._colorbar.norm


# ---------------------------------------------------------------- point sizes and colours


def test_point_size_scales_with_the_number_of_cells(small):
    # dynamo's areas: 16000 / sqrt(n) for scatters, 2500 / sqrt(n) for phase portraits
    assert _points.point_size(3696) == pytest.approx(263.18, abs=0.01)
    assert _points.point_size(1_000_000, 2.0) == pytest.approx(32.0)
    assert _points.point_size(10_000, base=_points.PHASE_POINTS) == pytest.approx(25.0)
    ax = dyn.pl.scatters(small, color="clusters", save_show_or_return="return")
    np.testing.assert_allclose(_points_of(ax)[0].get_sizes(), 16000 / np.sqrt(N_CELLS))
    np.testing.assert_allclose(_points_of(ax)[0].get_alpha(), 0.1)
    ax = dyn.pl.scatters(small, color="clusters", pointsize=0.5, save_show_or_return="return")
    np.testing.assert_allclose(_points_of(ax)[0].get_sizes(), 0.5 * 16000 / np.sqrt(N_CELLS))


def test_symmetric_limits_whatever_the_signs():
    # all positive (the '8..16' case) and all negative (the 'zero is full red' case)
    assert _points.value_limits(np.linspace(8, 16, 101), sym_c=True) == pytest.approx(
        (-15.84, 15.84)
    )
    lo, hi = _points.value_limits(-np.linspace(0, 5, 101), sym_c=True)
    assert lo == -hi and hi == pytest.approx(4.9)
    # mostly zeros: still centred
    v = np.zeros(1000)
    v[:5] = 3.0
    assert _points.value_limits(v, sym_c=True) == (-3.0, 3.0)
    assert _points.value_limits(np.zeros(10), sym_c=True) == (-1.0, 1.0)


def test_phase_portrait_velocity_is_centred_on_zero(reference):
    axes = dyn.pl.phase_portraits(
        reference, ["Gcg", "Pdx1"], color="clusters", save_show_or_return="return"
    )
    for panel, gene in ((axes[2], "Gcg"), (axes[5], "Pdx1")):
        norm = _norm(panel)
        assert norm.vmin == -norm.vmax > -np.inf
        v = np.asarray(reference[:, gene].layers["velocity_S"]).ravel()
        v = v[np.isfinite(v)]
        assert norm.vmax == pytest.approx(np.max(np.abs(np.percentile(v, [2, 98]))))
        # a zero velocity is drawn in the middle colour of the map (white for bwr)
        cm = matplotlib.colormaps["bwr"]
        np.testing.assert_allclose(cm(norm(0.0)), cm(0.5))
        assert len(_points_of(panel)[0].get_offsets()) == N_CELLS
    np.testing.assert_allclose(_points_of(axes[0])[0].get_sizes(), 2500 / np.sqrt(N_CELLS))
    assert _points_of(axes[0])[0].get_alpha() == 0.2


def test_signed_obs_columns_are_centred(small):
    axes = dyn.pl.scatters(
        small, color=["divergence_pca", "curl_umap", "speed_umap"], save_show_or_return="return"
    )
    for panel in axes[:2]:
        assert _norm(panel).vmin == -_norm(panel).vmax
    assert _norm(axes[2]).vmin > 0  # speed is not signed
    ax = dyn.pl.divergence(small, basis="umap", save_show_or_return="return")
    norm = _norm(ax)
    v = small.obs["divergence_umap"].to_numpy()
    assert norm.vmax == -norm.vmin == pytest.approx(np.max(np.abs(np.percentile(v, [2, 98]))))
    axes = dyn.pl.speed(small, basis="umap", color="clusters", save_show_or_return="return")
    assert [a.get_title() for a in axes] == ["speed_umap", "clusters"]
    with pytest.raises(KeyError, match=r"dyn\.vf\.curvature\(adata, basis='pca'\)"):
        dyn.pl.curvature(small)


@pytest.mark.parametrize("source", ["memory", "store"])
def test_calculus_shortcuts_draw_their_column(small, store, source):
    adata = small if source == "memory" else store
    for name, signed in [
        ("speed", False),
        ("divergence", True),
        ("curl", True),
        ("acceleration", False),
        ("curvature", False),
    ]:
        ax = getattr(dyn.pl, name)(adata, basis="umap", save_show_or_return="return")
        assert ax.get_title() == f"{name}_umap"
        (points,) = _points_of(ax)
        assert len(points.get_offsets()) == N_CELLS
        np.testing.assert_allclose(points.get_sizes(), 16000 / np.sqrt(N_CELLS))
        v = small.obs[f"{name}_umap"].to_numpy()
        lo, hi = np.percentile(v, [2, 98])
        norm = _norm(ax)
        if signed:  # centred on zero, the larger percentile magnitude at both ends
            assert norm.vmax == -norm.vmin == pytest.approx(max(abs(lo), abs(hi)))
        else:
            assert (norm.vmin, norm.vmax) == pytest.approx((lo, hi))
        plt.close(ax.figure)


def test_nullclines_and_fixed_points_alone(small):
    topo = small.uns["topography_umap"]
    fig, ax = plt.subplots()
    assert dyn.pl.plot_nullclines(small, ax=ax) is ax
    lines = {g: [ln for ln in ax.lines if ln.get_gid() == g] for g in ("NCx", "NCy")}
    for g in ("NCx", "NCy"):
        assert len(lines[g]) == len(topo[f"{g}_offsets"]) - 1
        drawn = np.concatenate([ln.get_xydata() for ln in lines[g]])
        np.testing.assert_allclose(drawn, topo[f"{g}_points"])
    assert dyn.pl.plot_fixed_points(small, ax=ax) is ax
    assert len(ax.texts) == len(topo["Xss"])


def test_configuration_styles_the_figures(small):
    with matplotlib.rc_context():
        dyn.configuration.set_figure_params(background="black")
        ax = dyn.pl.scatters(small, color="clusters", save_show_or_return="return")
        assert matplotlib.colors.to_hex(ax.get_facecolor()) == "#000000"
        assert matplotlib.colors.to_hex(ax.figure.get_facecolor()) == "#000000"
        assert matplotlib.colors.to_hex(ax.title.get_color()) == "#ffffff"


def test_many_cells_become_one_image_at_the_default_threshold(small, monkeypatch):
    assert _points.RASTER_POINTS == 20_000
    monkeypatch.setattr(_points, "RASTER_POINTS", N_CELLS - 1)
    ax = dyn.pl.scatters(small, color="divergence_pca", save_show_or_return="return")
    assert not _points_of(ax)
    (img,) = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    assert (img.get_array()[..., 3] > 0).sum() > 1000


# ---------------------------------------------------------------- the guide's 2 x 2 figure


def _guide_figure(adata):
    fig, f1_axes = plt.subplots(ncols=2, nrows=2, constrained_layout=True, figsize=(12, 10))
    panels = f1_axes.copy()
    f1_axes[0, 0] = dyn.pl.cell_wise_vectors(
        adata,
        color="umap_ddhodge_potential",
        pointsize=0.1,
        alpha=0.7,
        ax=f1_axes[0, 0],
        quiver_length=6,
        quiver_size=6,
        save_show_or_return="return",
    )
    f1_axes[0, 1] = dyn.pl.grid_vectors(
        adata,
        color="speed_umap",
        ax=f1_axes[0, 1],
        quiver_length=12,
        quiver_size=12,
        save_show_or_return="return",
    )
    f1_axes[1, 0] = dyn.pl.streamline_plot(
        adata, color="divergence_pca", ax=f1_axes[1, 0], save_show_or_return="return"
    )
    f1_axes[1, 1] = dyn.pl.topography(
        adata, color="acceleration_umap", ax=f1_axes[1, 1], save_show_or_return="return"
    )
    # as in dynamo, cell_wise_vectors and streamline_plot return a list of axes (one per
    # panel), grid_vectors and topography the single axes
    assert f1_axes[0, 0] == [panels[0, 0]] and f1_axes[1, 0] == [panels[1, 0]]
    assert f1_axes[0, 1] is panels[0, 1] and f1_axes[1, 1] is panels[1, 1]
    return fig, panels


def test_the_guides_two_by_two_figure(small, tmp_path):
    fig, axes = _guide_figure(small)
    assert all(a.figure is fig for a in axes.ravel()) and len(fig.axes) == 4
    assert [len(a.child_axes) for a in axes.ravel()] == [1, 1, 1, 1]  # colour bars
    titles = [a.get_title() for a in axes.ravel()]
    assert titles == ["umap_ddhodge_potential", "speed_umap", "divergence_pca", "acceleration_umap"]
    (q,) = [c for c in axes[0, 0].collections if isinstance(c, Quiver)]
    assert q.N == N_CELLS
    np.testing.assert_allclose(
        _points_of(axes[0, 0])[0].get_sizes(), 0.1 * 16000 / np.sqrt(N_CELLS)
    )
    assert [c for c in axes[0, 1].collections if isinstance(c, Quiver)][0].N > 200
    assert _norm(axes[1, 0]).vmin == -_norm(axes[1, 0]).vmax  # divergence is centred
    for panel in (axes[1, 0], axes[1, 1]):
        assert any(isinstance(c, LineCollection) for c in panel.collections)
    n_fixed = len(small.uns["topography_umap"]["Xss"])
    assert len(axes[1, 1].texts) == n_fixed
    fig.savefig(tmp_path / "guide.png", dpi=40)
    png = (tmp_path / "guide.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (12 * 40, 10 * 40)
    assert dyn.pl.stremline_plot is dyn.pl.streamline_plot


def _arrow_length_over_width(ax):
    """Median drawn arrow length over the axes' width (data units: |(U, V)| / scale)."""
    (q,) = [c for c in ax.collections if isinstance(c, Quiver)]
    shown = ~np.ma.getmaskarray(np.ma.array(q.U, mask=q.Umask))
    length = np.hypot(np.asarray(q.U)[shown], np.asarray(q.V)[shown]) / q.scale
    return np.median(length[np.isfinite(length)]) / np.diff(ax.get_xlim())[0]


def test_the_guides_arrows_are_as_long_as_dynamos(small):
    # tests/data/pl_arrow_lengths.json: dynamo 1.5.3's own guide figure, drawn by
    # benchmarks/dynamo_pl_arrows.py from the same stored results
    dynamo = json.loads((Path(__file__).parent / "data" / "pl_arrow_lengths.json").read_text())
    fig, axes = _guide_figure(small)
    fig.canvas.draw()
    for panel, name in ((axes[0, 0], "cell_wise_vectors"), (axes[0, 1], "grid_vectors")):
        ours = _arrow_length_over_width(panel)
        assert ours == pytest.approx(dynamo[name]["median"], rel=0.25), name


def test_the_guides_figure_from_a_store(store, small):
    fig, axes = _guide_figure(store)
    fig_mem, axes_mem = _guide_figure(small)
    for a, b in zip(axes.ravel(), axes_mem.ravel(), strict=True):
        np.testing.assert_allclose(
            _points_of(a)[0].get_facecolors(), _points_of(b)[0].get_facecolors(), atol=1e-6
        )
    qa = [c for c in axes[0, 0].collections if isinstance(c, Quiver)][0]
    qb = [c for c in axes_mem[0, 0].collections if isinstance(c, Quiver)][0]
    np.testing.assert_allclose(qa.U, qb.U, rtol=1e-6)


# ---------------------------------------------------------------- topography


def test_topography_draws_the_stored_topography(small):
    topo = small.uns["topography_umap"]
    ax = dyn.pl.topography(
        small,
        color="clusters",
        terms=["streamline", "nullcline", "fixed_points"],
        save_show_or_return="return",
    )
    # fixed points: one marker each at Xss, fill by type, numbered
    markers = [c for c in _points_of(ax)[1:]]
    assert len(markers) == len(topo["Xss"])
    np.testing.assert_allclose(np.vstack([m.get_offsets() for m in markers]), topo["Xss"])
    fills = [m.get_paths()[0] for m in markers]
    assert len(fills) == len(topo["ftype"])
    numbers = {t.get_text(): t.get_color() for t in ax.texts if t.get_text().isdigit()}
    colours = {-1: "black", 0: "blue", 1: "red"}
    assert numbers == {str(i): colours[int(f)] for i, f in enumerate(topo["ftype"])}
    # nullclines: every stored curve, x green and y blue
    for name, colour in (("NCx", "#189e1a"), ("NCy", "#1f77b4")):
        lines = [ln for ln in ax.get_lines() if ln.get_gid() == name]
        offsets = topo[f"{name}_offsets"]
        assert len(lines) == int((np.diff(offsets) > 0).sum())
        np.testing.assert_allclose(
            np.vstack([ln.get_xydata() for ln in lines]), topo[f"{name}_points"]
        )
        assert matplotlib.colors.to_hex(lines[0].get_color()) == colour
    # streamlines of the learned field in the field's box
    assert any(isinstance(c, LineCollection) for c in ax.collections)
    np.testing.assert_allclose(ax.get_xlim(), small.uns["VecFld_umap"]["xlim"])
    np.testing.assert_allclose(ax.get_ylim(), small.uns["VecFld_umap"]["ylim"])


def test_fixed_point_fill_follows_the_type(small):
    _, ax = plt.subplots()
    assert dyn.pl.plot_fixed_points(small, ax=ax) is ax
    topo = small.uns["topography_umap"]
    markers = _points_of(ax)
    assert len(markers) == len(topo["Xss"])
    full = markers[int(np.flatnonzero(topo["ftype"] == -1)[0])].get_paths()[0].vertices
    for f, coll in zip(topo["ftype"], markers, strict=True):
        path = coll.get_paths()[0].vertices
        if f == -1:  # stable: a filled full circle
            assert coll.get_facecolor()[0, 3] == 1.0 and path.shape == full.shape
        elif f == 0:  # saddle: the top half filled
            assert path.shape != full.shape
        else:  # unstable: hollow
            assert len(coll.get_facecolor()) == 0 or coll.get_facecolor()[0, 3] == 0


def test_field_on_the_grid_is_the_learned_field(small, reference):
    vf = small.uns["VecFld_umap"]
    gx, gy, V = _topo.field_on_grid(vf, vf["xlim"], vf["ylim"], 7)
    pts = np.array([[gx[3], gy[5]], [gx[0], gy[6]]])
    want = kv.evaluate(pts, vf["X_ctrl"], vf["C"], vf["beta"])
    np.testing.assert_allclose(V[:, [5, 6], [3, 0]].T, want)
    # dynamo's reference: the field at the cells is velocity_umap_SparseVFC
    emb = small.obsm["X_umap"][:50]
    np.testing.assert_allclose(
        kv.evaluate(emb, vf["X_ctrl"], vf["C"], vf["beta"]),
        reference.obsm["velocity_umap_SparseVFC"][:50],
        rtol=1e-5,
        atol=1e-7,
    )


def test_separatrices_and_nullclines_from_dyn_vf_topography_keys(small):
    a = small.copy()
    vf = dict(a.uns["VecFld_umap"])
    curves = [np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [2.0, 3.0], [3, 3]])]
    vf.update(
        Xss=np.array([[1.0, 2.0], [3.0, 4.0]]),
        ftype=np.array([-1.0, 0.0]),
        confidence=np.array([0.2, 0.9]),
        fp_ind=np.array([0, 1]),
        separatrices={"0": curves[0], "1": curves[1]},
        NCx={"0": curves[1]},
        NCy={},
    )
    a.uns["VecFld_umap"] = vf
    del a.uns["topography_umap"]
    ax = dyn.pl.topography(
        a,
        color="clusters",
        terms=["nullcline", "separatrices", "fixed_points"],
        save_show_or_return="return",
    )
    seps = [ln for ln in ax.get_lines() if ln.get_gid() == "separatrices"]
    assert len(seps) == 2 and matplotlib.colors.to_hex(seps[0].get_color()) == "#ff6347"
    np.testing.assert_allclose(seps[1].get_xydata(), curves[1])
    assert [ln.get_gid() for ln in ax.get_lines()].count("NCx") == 1
    np.testing.assert_allclose(np.vstack([m.get_offsets() for m in _points_of(ax)[1:]]), vf["Xss"])
    # fixed points of another basis are drawn at their nearest cells
    b = a.copy()
    b.obsm["X_other"] = b.obsm["X_umap"] * 10
    ax = dyn.pl.topography(
        b, "other", "umap", color="clusters", terms=["fixed_points"], save_show_or_return="return"
    )
    np.testing.assert_allclose(
        np.vstack([m.get_offsets() for m in _points_of(ax)[1:]]), b.obsm["X_other"][[0, 1]]
    )


def test_topography_errors(small):
    bare = ad.AnnData(obs=small.obs[["clusters"]].copy(), obsm={"X_umap": small.obsm["X_umap"]})
    with pytest.raises(KeyError, match=r"dyn\.vf\.VectorField\(adata, basis='umap'\)"):
        dyn.pl.topography(bare, color="clusters")
    no_topo = _small_without_topography(small)
    with pytest.raises(KeyError, match=r"dyn\.vf\.topography\(adata, basis='umap'\)"):
        dyn.pl.topography(no_topo, color="clusters")
    with pytest.raises(ValueError, match="unknown terms"):
        dyn.pl.topography(small, color="clusters", terms=["trajectory"])
    pca = no_topo.copy()
    pca.uns["VecFld_pca"] = {"X_ctrl": np.zeros((3, 30)), "C": np.zeros((3, 30)), "beta": 1.0}
    with pytest.raises(ValueError, match="2-D field"):
        dyn.pl.topography(pca, "pca", color="clusters", terms=["streamline"])
    assert not plt.get_fignums()


def _small_without_topography(small):
    a = small.copy()
    del a.uns["topography_umap"]
    return a


# ---------------------------------------------------------------- line integral convolution


def test_lic_kernel_averages_noise_along_the_flow():
    rng = np.random.default_rng(0)
    noise = rng.random((20, 30))
    u, v = np.ones_like(noise), np.zeros_like(noise)
    tex = klic.lic(u, v, noise, 4)
    for r, c in ((3, 10), (17, 4), (0, 29)):
        lo, hi = max(c - 4, 0), min(c + 4, 29)
        assert tex[r, c] == pytest.approx(noise[r, lo : hi + 1].mean())
    # a vertical field averages along columns; NaN pixels have no texture and stop lines
    v2 = np.ones_like(noise)
    v2[:, 7] = np.nan
    tex = klic.lic(np.zeros_like(noise), v2, noise, 3)
    assert np.isnan(tex[:, 7]).all()
    assert tex[10, 2] == pytest.approx(noise[7:14, 2].mean())
    # the texture is smoother along the flow than across it
    tex = klic.lic(u, v, noise, 10)
    assert np.abs(np.diff(tex, axis=1)).mean() < 0.5 * np.abs(np.diff(tex, axis=0)).mean()


def test_resample_is_bilinear():
    g = np.arange(12.0).reshape(3, 4)
    out = klic.resample(g, (5, 7))
    np.testing.assert_allclose(out[::2, ::2], g)
    np.testing.assert_allclose(out[1, 1], g[:2, :2].mean())


def test_line_integral_conv_on_the_learned_field(small):
    ax = dyn.pl.line_integral_conv(
        small, xy_grid_nums=(20, 20), kernellen=20, density=0, save_show_or_return="return"
    )
    speed_img, tex_img = [a for a in ax.get_children() if isinstance(a, AxesImage)]
    axes_xy, V = pl_lic.field_grid(small, "umap", "velocity", (20, 20), {})
    np.testing.assert_allclose(speed_img.get_array(), np.hypot(V[0], V[1]))
    vf = small.uns["VecFld_umap"]
    np.testing.assert_allclose(
        V[:, 4, 9],
        kv.evaluate(np.array([[axes_xy[0][9], axes_xy[1][4]]]), vf["X_ctrl"], vf["C"], vf["beta"])[
            0
        ],
    )
    tex = pl_lic.texture(V, 20)
    assert tex.shape == (153, 153) == tex_img.get_array().shape[:2]
    np.testing.assert_allclose(tex_img.get_array(), pl_lic.lic_rgba(tex, (0, 1), False))
    # without a learned field the cells' Gaussian grid is used (NaN where no cells)
    bare = ad.AnnData(
        obs=small.obs[["clusters"]].copy(),
        obsm={k: small.obsm[k] for k in ("X_umap", "velocity_umap")},
    )
    ax = dyn.pl.line_integral_conv(bare, kernellen=10, density=0.5, save_show_or_return="return")
    tex_img = [a for a in ax.get_children() if isinstance(a, AxesImage)][1]
    alpha = tex_img.get_array()[..., 3]
    assert (alpha == 0).any() and (alpha > 0).mean() > 0.2
    with pytest.raises(ValueError, match="lim"):
        dyn.pl.line_integral_conv(small, lim=(0.5, 2))


# ---------------------------------------------------------------- Jacobian and sensitivity


def test_jacobian_scatter_panels(small):
    axes = dyn.pl.jacobian(small, ["Gcg", "Ins1"], save_show_or_return="return")
    assert len(axes) == 4
    ref = small.uns["jacobian_pca"]
    regs = list(ref["regulators"])
    J = ref["jacobian_gene"]  # dynamo: effectors x regulators x cells
    emb = small.obsm["X_umap"]
    for k, (reg, eff) in enumerate(
        [("Gcg", "Gcg"), ("Gcg", "Ins1"), ("Ins1", "Gcg"), ("Ins1", "Ins1")]
    ):
        v = J[regs.index(eff), regs.index(reg)].astype(float)
        norm = _norm(axes[k])
        assert norm.vmax == -norm.vmin == pytest.approx(np.max(np.abs(v)))
        (pts,) = _points_of(axes[k])
        cell = np.asarray(ref["cell_idx"])[np.argmax(np.abs(v))]
        np.testing.assert_allclose(pts.get_offsets()[-1], emb[cell])
        assert eff in axes[k].get_title() and reg in axes[k].get_title()


def test_jacobian_heatmap_and_a_lazy_array(small):
    ref = small.uns["jacobian_pca"]
    J = np.asarray(ref["jacobian_gene"]).transpose(2, 0, 1)  # cells x effectors x regulators
    axes = dyn.pl.jacobian_heatmap(small, [5, 400], save_show_or_return="return")
    for panel, cell in zip(axes, [5, 400], strict=True):
        (img,) = panel.images
        np.testing.assert_allclose(img.get_array(), J[cell].T)
        assert img.norm.vmin == -img.norm.vmax == -np.abs(J[cell]).max()
        assert len(panel.texts) == 64 and panel.get_title() == small.obs_names[cell]
    ax = dyn.pl.jacobian_heatmap(small, [5, 400], average=True, save_show_or_return="return")
    np.testing.assert_allclose(ax.images[0].get_array(), J[[5, 400]].mean(0).T, rtol=1e-6)
    # dynadask's own layout, lazy, on chosen cells only
    lazy = small.copy()
    cells = np.array([3, 5, 9, 400])
    lazy.uns["jacobian_pca"] = {
        "cell_idx": cells,
        "regulators": list(ref["regulators"]),
        "effectors": list(ref["effectors"]),
        "jacobian_gene": da.from_array(J[cells], chunks=(2, 8, 8)),
    }
    ax = dyn.pl.jacobian_heatmap(
        lazy, 400, regulators=["Gcg"], effectors=["Ins1", "Pdx1"], save_show_or_return="return"
    )
    regs = list(ref["regulators"])
    want = J[400][np.ix_([regs.index("Ins1"), regs.index("Pdx1")], [regs.index("Gcg")])].T
    np.testing.assert_allclose(ax.images[0].get_array(), want)
    axes = dyn.pl.jacobian(lazy, "Gcg", save_show_or_return="return")
    assert len(_points_of(axes)[0].get_offsets()) == 4
    with pytest.raises(ValueError, match="cell_idx"):
        dyn.pl.jacobian_heatmap(lazy, [0, 1])
    with pytest.raises(ValueError, match="no values"):
        dyn.pl.jacobian(lazy, ["Sox9"])
    with pytest.raises(KeyError, match=r"dyn\.vf\.sensitivity"):
        dyn.pl.sensitivity(lazy)
    lazy.uns["sensitivity_pca"] = {
        **lazy.uns["jacobian_pca"],
        "sensitivity_gene": lazy.uns["jacobian_pca"]["jacobian_gene"] * 2,
    }
    axes = dyn.pl.sensitivity(lazy, ["Gcg", "Ins1"], save_show_or_return="return")
    assert len(axes) == 4 and axes[1].get_title() == r"$d x_{Ins1} / d x_{Gcg}$"
    ax = dyn.pl.sensitivity_heatmap(lazy, 9, save_show_or_return="return")
    np.testing.assert_allclose(ax.images[0].get_array(), 2 * J[9].T)


def test_vector_field_figures_save_pngs(small, tmp_path):
    kwargs = {"ext": "png", "dpi": 30, "verbose": False}
    dyn.pl.topography(
        small,
        color="clusters",
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "t"), **kwargs},
    )
    dyn.pl.line_integral_conv(
        small,
        kernellen=10,
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "l"), **kwargs},
    )
    for name in ("topography_t.png", "line_integral_conv_l.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not plt.get_fignums()


def test_pd_frame_is_unchanged(small):
    before = small.obs.copy()
    dyn.pl.divergence(small, basis="pca", save_show_or_return="return")
    pd.testing.assert_frame_equal(small.obs, before)
