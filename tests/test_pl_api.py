"""dynamo's dyn.pl names for what dynadask builds, called as a dynamo user writes them.

A pancreas subsample goes through ``dyn.pp.recipe_monocle`` (with ``n_top_genes=500`` so the
dispersion-versus-mean regression runs), then each figure is checked against the numbers it
draws (numpy computations on the same AnnData, dynamo's stored outputs where they exist) and
against dynamo's return types. One store-backed run checks the same figures read by blocks.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402
from scipy import sparse  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask._core import compute as compute_mod  # noqa: E402
from dynadask.pl._facets import Facets  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:uns.*mean positions:UserWarning")

R = "return"
N_SUB = 600
NEW_NAMES = (
    "basic_stats",
    "show_fraction",
    "variance_explained",
    "biplot",
    "loading",
    "feature_genes",
    "exp_by_groups",
    "highest_frac_genes",
    "umap",
    "space",
)


@pytest.fixture(scope="module")
def adata():
    """A seeded 600-cell pancreas subsample after dynamo's monocle recipe."""
    full = dyn.sample_data.pancreas()
    rows = np.sort(np.random.default_rng(0).choice(full.n_obs, N_SUB, replace=False))
    sub = full[rows].copy()
    dyn.pp.recipe_monocle(sub, n_top_genes=500)
    return sub


@pytest.fixture(scope="module")
def store(adata, tmp_path_factory):
    """The same AnnData written to h5ad, converted to a Zarr store and opened lazily."""
    folder = tmp_path_factory.mktemp("pl_api")
    adata.write_h5ad(folder / "sub.h5ad")
    dyn.io.convert(folder / "sub.h5ad", folder / "sub.zarr", chunk_cells=200)
    return dyn.io.open(folder / "sub.zarr")


def _dense(x):
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def _points(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def test_names_are_public():
    for name in NEW_NAMES:
        assert name in dyn.pl.__all__ and callable(getattr(dyn.pl, name)), name


# ---------------------------------------------------------------- return types of the vectors


def test_vector_figures_return_lists_as_dynamo(reference):
    # dynamo: cell_wise_vectors and streamline_plot always return a list of axes;
    # grid_vectors and scatters one axes for one panel, a list for several
    two = dyn.pl.cell_wise_vectors(
        reference, color=["clusters", "ntr"], cell_inds=100, save_show_or_return=R
    )
    assert isinstance(two, list) and len(two) == 2 and all(isinstance(a, Axes) for a in two)
    assert [a.get_title() for a in two] == ["clusters", "ntr"]
    assert all(sum(isinstance(c, Quiver) for c in a.collections) == 1 for a in two)
    one = dyn.pl.cell_wise_vectors(
        reference, color="clusters", cell_inds=100, save_show_or_return=R
    )
    assert isinstance(one, list) and len(one) == 1
    fast = {"xy_grid_nums": (15, 15), "save_show_or_return": R}  # a coarse grid: quick
    flows = dyn.pl.streamline_plot(reference, color=["clusters", "ntr"], density=0.2, **fast)
    assert isinstance(flows, list) and len(flows) == 2
    assert isinstance(dyn.pl.streamline_plot(reference, color="ntr", density=0.2, **fast), list)
    assert isinstance(dyn.pl.grid_vectors(reference, color="ntr", **fast), Axes)
    grids = dyn.pl.grid_vectors(reference, color=["ntr", "clusters"], **fast)
    assert isinstance(grids, list) and len(grids) == 2
    assert isinstance(dyn.pl.scatters(reference, color="ntr", save_show_or_return=R), Axes)
    assert len(dyn.pl.scatters(reference, color=["ntr", "clusters"], save_show_or_return=R)) == 2


# ---------------------------------------------------------------- umap / pca / space


def test_umap_and_pca_are_scatters_on_their_basis(reference):
    ax = dyn.pl.umap(reference, color="clusters", save_show_or_return=R)
    (pts,) = _points(ax)
    np.testing.assert_allclose(pts.get_offsets(), reference.obsm["X_umap"], rtol=1e-6)
    axes = dyn.pl.pca(reference, color=["clusters", "ntr"], save_show_or_return=R)
    assert len(axes) == 2
    np.testing.assert_allclose(
        _points(axes[0])[0].get_offsets(), reference.obsm["X_pca"][:, :2], rtol=1e-6
    )


def test_space_marker_area_from_the_cell_spacing(adata):
    small = adata[:300].copy()
    # cells on a 20 x 15 lattice with a spacing of 2 (x) by 3 (y): the smallest spacing is 2
    ix, iy = np.divmod(np.arange(300), 15)
    small.obsm["spatial"] = np.column_stack([2.0 * ix, 3.0 * iy])
    axes = dyn.pl.space(small, color="clusters", genes=["Gcg"], dpi=100, save_show_or_return=R)
    assert [a.get_title() for a in axes] == ["Gcg", "clusters"]
    width, span_x, span_y = 6.0, 38.0, 42.0
    assert axes[0].figure.get_size_inches()[1] == pytest.approx(span_y / span_x * width + 0.3)
    pixels = 2.0 * width / span_x * 100
    np.testing.assert_allclose(_points(axes[0])[0].get_sizes(), pixels**2)
    np.testing.assert_allclose(_points(axes[1])[0].get_offsets(), small.obsm["spatial"])
    # stacked: one panel, each gene only where it exceeds the threshold, one legend entry each
    stacked = dyn.pl.space(
        small,
        genes=["Gcg", "Ins1"],
        stack_genes=True,
        stack_genes_threshold=1,
        save_show_or_return=R,
    )
    assert isinstance(stacked, Axes) and stacked.get_title() == "stacked spatial genes"
    x = _dense(small.X)
    above = [(x[:, small.var_names.get_loc(g)] > 1).sum() for g in ["Gcg", "Ins1"]]
    assert [len(p.get_offsets()) for p in _points(stacked)] == above
    assert [t.get_text() for t in stacked.get_legend().get_texts()] == ["Gcg", "Ins1"]
    with pytest.raises(KeyError, match=r"obsm\['spatial'\]"):
        dyn.pl.space(adata, color="clusters")


# ---------------------------------------------------------------- QC violins


def test_basic_stats_draws_the_qc_columns(adata):
    g = dyn.pl.basic_stats(adata, save_show_or_return=R)
    assert isinstance(g, Facets) and g.axes.shape == (1, 3)
    assert [a.get_title() for a in g.axes.flat] == ["nGenes", "nCounts", "pMito"]
    drawn = g.data.pivot_table(index=g.data.groupby("variable").cumcount(), columns="variable")
    np.testing.assert_allclose(drawn["value"]["nCounts"], adata.obs["nCounts"])
    by_group = dyn.pl.basic_stats(adata, group="clusters", save_show_or_return=R)
    n_groups = adata.obs["clusters"].nunique()
    ax = by_group.axes_dict["nGenes"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(
        adata.obs["clusters"].cat.categories
    )
    assert len(ax.collections) >= n_groups  # one violin body per group (+ medians)
    # without the obs columns (raw data) they are computed from X block by block, as the
    # recipe computes them (after the recipe X holds log1p(X / Size_Factor), so take raw X)
    bare = dyn.sample_data.pancreas()[adata.obs_names].copy()
    assert not {"nGenes", "nCounts", "pMito"} & set(bare.obs)
    again = dyn.pl.basic_stats(bare, save_show_or_return=R)
    pd.testing.assert_frame_equal(again.data, g.data)
    x = _dense(bare.X)
    np.testing.assert_allclose(
        again.data.query("variable == 'nGenes'")["value"], (x > 0).sum(1).astype(float)
    )


def test_show_fraction_is_unspliced_over_total(adata):
    g = dyn.pl.show_fraction(adata, save_show_or_return=R)
    assert [a.get_title() for a in g.axes.flat] == ["unspliced", "spliced"]
    u, s = _dense(adata.layers["unspliced"]), _dense(adata.layers["spliced"])
    expected = u.sum(1) / (u.sum(1) + s.sum(1))
    np.testing.assert_allclose(g.data.query("variable == 'unspliced'")["value"], expected)
    genes = ["Gcg", "Ins1", "Pyy", "Sst"]
    cols = adata.var_names.get_indexer(genes)
    sub = dyn.pl.show_fraction(adata, genes=genes, group="clusters", save_show_or_return=R)
    with np.errstate(invalid="ignore"):
        frac = u[:, cols].sum(1) / (u[:, cols].sum(1) + s[:, cols].sum(1))
    np.testing.assert_allclose(sub.data.query("variable == 'spliced'")["value"], 1 - frac)
    assert "group" in sub.data
    with pytest.raises(ValueError, match="none of the genes"):
        dyn.pl.show_fraction(adata, genes=["no_such_gene"])
    with pytest.raises(ValueError, match="spliced and unspliced"):
        dyn.pl.show_fraction(ad.AnnData(np.ones((5, 3))))


def test_exp_by_groups_reads_the_genes_columns(adata):
    with pytest.raises(KeyError, match=r"dyn\.tl\.moments"):
        dyn.pl.exp_by_groups(adata, ["Gcg"], group="clusters")  # M_s needs moments
    g = dyn.pl.exp_by_groups(
        adata,
        ["Gcg", "Ins1", "not_a_gene"],
        group="clusters",
        use_smoothed=False,
        save_show_or_return=R,
    )
    assert g.axes.shape == (2, 1) and [a.get_title() for a in g.axes.flat] == ["Gcg", "Ins1"]
    x = _dense(adata.layers["X_spliced"])[:, adata.var_names.get_loc("Gcg")]
    np.testing.assert_allclose(g.data.query("variable == 'Gcg'")["value"], np.log1p(x))
    ratio = dyn.pl.exp_by_groups(
        adata, ["Gcg"], use_smoothed=False, use_ratio=True, log=False, save_show_or_return=R
    )
    u = _dense(adata.layers["X_unspliced"])[:, adata.var_names.get_loc("Gcg")]
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(ratio.data["value"], x / (x + u))


# ---------------------------------------------------------------- PCA and gene selection


def test_variance_explained_draws_the_pca_ratio(adata, reference):
    ax = dyn.pl.variance_explained(adata, save_show_or_return=R)
    ratio = adata.uns["explained_variance_ratio_"]
    curve, line = ax.lines
    np.testing.assert_allclose(curve.get_ydata(), ratio)
    change = np.diff(np.diff(np.cumsum(ratio)) > 0.002)
    assert line.get_xdata()[0] == (np.flatnonzero(change)[0] if change.any() else 20)
    # dynamo's own PCA on all 3,696 cells: the curve and the elbow dynamo draws
    ref = dyn.pl.variance_explained(reference, save_show_or_return=R)
    ref_ratio = reference.uns["explained_variance_ratio_"]
    np.testing.assert_allclose(ref.lines[0].get_ydata(), ref_ratio)
    change = np.diff(np.diff(np.cumsum(ref_ratio)) > 0.002)
    assert ref.lines[1].get_xdata()[0] == np.flatnonzero(change)[0] == 23
    assert (
        dyn.pl.variance_explained(adata, n_pcs=7, save_show_or_return=R).lines[1].get_xdata()[0]
        == 7
    )


def test_biplot_arrows_are_the_loadings(adata):
    ax = dyn.pl.biplot(adata, show_text=True, save_show_or_return=R)
    pcs, scores = adata.uns["PCs"], adata.obsm["X_pca"]
    (arrows,) = [c for c in ax.collections if isinstance(c, Quiver)]
    assert arrows.N == pcs.shape[0] == adata.var["use_for_pca"].sum()
    genes = adata.var_names[adata.var["use_for_pca"].to_numpy()]
    tips = pcs[:, :2] * scores[:, :2].max(axis=0)
    np.testing.assert_allclose(arrows.X, 0)
    np.testing.assert_allclose(np.column_stack([arrows.U, arrows.V]), tips, rtol=1e-6)
    np.testing.assert_allclose([t.get_position() for t in ax.texts], tips * 1.01, rtol=1e-6)
    assert [t.get_text() for t in ax.texts] == list(genes)
    cells = dyn.pl.biplot(
        adata,
        pca_components=[1, 2],
        draw_pca_embedding=True,
        scale_pca_embedding=True,
        save_show_or_return=R,
    )
    (pts,) = _points(cells)
    xy = scores[:, 1:3]
    np.testing.assert_allclose(pts.get_offsets(), xy / np.ptp(xy, axis=0), rtol=1e-6)
    assert cells.get_xlabel() == "PC1"


def test_loading_lists_the_largest_loadings(reference):
    axes = dyn.pl.loading(reference, save_show_or_return=R)
    assert isinstance(axes, np.ndarray) and axes.shape == (2, 5)
    pcs = reference.uns["PCs"]
    genes = reference.var_names[reference.var["use_for_pca"].to_numpy()]
    for k, ax in enumerate(axes.flat):
        top = np.argsort(-np.abs(pcs[:, k]))[:10]
        assert ax.get_title() == f"PC {k}"
        assert [t.get_text() for t in ax.texts] == list(genes[top])
        np.testing.assert_allclose(_points(ax)[0].get_offsets()[:, 1], np.abs(pcs[top, k]))
        red = [t.get_color() == "r" for t in ax.texts]
        assert red == list(pcs[top, k] > 0)
    three = dyn.pl.loading(reference, n_pcs=3, n_top_genes=4, ncol=2, save_show_or_return=R)
    assert three.shape == (2, 2) and not three[1, 1].get_visible()


def test_feature_genes_svr_and_selection(adata, reference):
    fig = dyn.pl.feature_genes(adata, save_show_or_return=R)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    chosen, other = _points(ax)
    var = adata.var
    ok = np.isfinite(var["log_m"]) & np.isfinite(var["log_cv"])
    assert len(chosen.get_offsets()) == (ok & var["use_for_pca"]).sum()
    assert len(other.get_offsets()) == (ok & ~var["use_for_pca"]).sum()
    (trend,) = ax.lines
    svr = adata.uns["velocyto_SVR"]
    # the trend is the SVR the selection ranked genes against: at each gene's own mean it
    # gives log_cv minus the stored score
    from sklearn.svm import SVR

    fit = SVR(gamma=svr["svr_gamma"]).fit(svr["mean"][:, None], svr["cv"])
    np.testing.assert_allclose(trend.get_ydata(), fit.predict(trend.get_xdata()[:, None]))
    at_genes = fit.predict(var.loc[ok, "log_m"].to_numpy()[:, None])
    np.testing.assert_allclose(at_genes, (var["log_cv"] - var["score"])[ok], atol=1e-9)
    assert ax.get_yscale() == "log"
    with pytest.raises(KeyError, match="log_m"):
        dyn.pl.feature_genes(reference, mode="cv_dispersion")  # 2,000 genes: no SVR ran
    with pytest.raises(ValueError, match="mode="):
        dyn.pl.feature_genes(adata, mode="pearson")


def test_highest_frac_genes_top_genes_equal_numpy(adata):
    ax = dyn.pl.highest_frac_genes(adata, show=False)
    x = _dense(adata.X).astype(np.float64)
    top = np.argsort(-x.sum(0), kind="stable")[:30]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(adata.var_names[top])
    frac = x[:, top] / x.sum(1, keepdims=True)
    means = [ln.get_ydata()[0] for ln in ax.lines if ln.get_marker() == "^"]
    np.testing.assert_allclose(means, frac.mean(0))
    (twin,) = [a for a in ax.figure.axes if a is not ax]
    assert [t.get_text() for t in twin.get_xticklabels()] == [
        str(v) for v in adata.var["use_for_pca"].to_numpy()[top]
    ]
    groups = dyn.pl.highest_frac_genes(
        adata, n_top=3, gene_prefix_list=["Rps", "Rpl", "mt-"], orient="h", show=False
    )
    sums = {p: x[:, adata.var_names.str.startswith(p)].sum() for p in ["Rps", "Rpl", "mt-"]}
    sums = {p: v for p, v in sums.items() if adata.var_names.str.startswith(p).any()}
    order = sorted(sums, key=lambda p: -sums[p])
    assert [t.get_text() for t in groups.get_yticklabels()] == order


# ---------------------------------------------------------------- missing keys


def test_missing_keys_name_the_call(adata):
    bare = ad.AnnData(adata.X[:50], obs=adata.obs.iloc[:50], var=adata.var)
    with pytest.raises(KeyError, match=r"explained_variance_ratio_.*recipe_monocle"):
        dyn.pl.variance_explained(bare)
    with pytest.raises(KeyError, match=r"PCs.*recipe_monocle"):
        dyn.pl.biplot(bare)
    with pytest.raises(KeyError, match=r"PCs.*recipe_monocle"):
        dyn.pl.loading(bare)
    with pytest.raises(KeyError, match=r"feature_selection.*recipe_monocle"):
        dyn.pl.feature_genes(bare)


# ---------------------------------------------------------------- a store-backed run


def test_store_backed_figures_equal_memory(store, adata):
    assert isinstance(store.X, type(store.layers["spliced"])) and hasattr(store.X, "dask")
    before = compute_mod.compute_count()
    ax = dyn.pl.highest_frac_genes(store, show=False)
    assert compute_mod.compute_count() - before == 2  # gene totals, then the top fractions
    mem = dyn.pl.highest_frac_genes(adata, show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        t.get_text() for t in mem.get_xticklabels()
    ]
    means = [ln.get_ydata()[0] for ln in ax.lines if ln.get_marker() == "^"]
    mem_means = [ln.get_ydata()[0] for ln in mem.lines if ln.get_marker() == "^"]
    np.testing.assert_allclose(means, mem_means, rtol=1e-6)
    store.obs = store.obs.drop(columns=["nGenes", "nCounts", "pMito"])
    bare = adata.copy()
    bare.obs = bare.obs.drop(columns=["nGenes", "nCounts", "pMito"])
    pd.testing.assert_frame_equal(  # both computed from the same X, block by block
        dyn.pl.basic_stats(store, save_show_or_return=R).data,
        dyn.pl.basic_stats(bare, save_show_or_return=R).data,
    )
    pd.testing.assert_frame_equal(
        dyn.pl.show_fraction(store, group="clusters", save_show_or_return=R).data,
        dyn.pl.show_fraction(adata, group="clusters", save_show_or_return=R).data,
    )
    kwargs = {"group": "clusters", "use_smoothed": False, "save_show_or_return": R}
    np.testing.assert_allclose(
        dyn.pl.exp_by_groups(store, ["Gcg", "Ins1"], **kwargs).data["value"],
        dyn.pl.exp_by_groups(adata, ["Gcg", "Ins1"], **kwargs).data["value"],
        rtol=1e-6,
    )
    (arrows,) = dyn.pl.biplot(store, save_show_or_return=R).collections
    assert arrows.N == adata.uns["PCs"].shape[0]
    np.testing.assert_allclose(
        dyn.pl.variance_explained(store, save_show_or_return=R).lines[0].get_ydata(),
        adata.uns["explained_variance_ratio_"],
    )
    assert len(dyn.pl.feature_genes(store, save_show_or_return=R).axes[0].lines) == 1
    assert dyn.pl.loading(store, save_show_or_return=R).shape == (2, 5)


# ---------------------------------------------------------------- the summaries' builders


@pytest.mark.parametrize("kind", ["numpy", "csr", "dask", "dask_csr"])
def test_summaries_builders_over_array_types(kind):
    from dynadask.graph import summaries as gs

    rng = np.random.default_rng(1)
    x = rng.poisson(0.4, size=(230, 17)).astype(np.float32)
    x[5] = 0  # a cell without counts
    mito = np.zeros(17, dtype=bool)
    mito[[2, 9]] = True
    arr = {
        "numpy": x,
        "csr": sparse.csr_matrix(x),
        "dask": da.from_array(x, chunks=(60, 17)),
        "dask_csr": da.from_array(x, chunks=(60, 17)).map_blocks(
            sparse.csr_matrix, dtype=np.float32
        ),
    }[kind]
    members = [np.array([3]), np.array([0, 4, 16])]
    totals, per_cell, fractions, qc = compute_mod.compute(
        gs.gene_totals(arr),
        gs.cell_totals(arr, arr, genes=np.array([1, 2, 3])),
        gs.feature_fractions(arr, members),
        gs.basic_stats(arr, mito),
    )
    np.testing.assert_allclose(totals, x.sum(0))
    np.testing.assert_allclose(per_cell, np.column_stack([x[:, 1:4].sum(1)] * 2))
    with np.errstate(invalid="ignore"):
        expected = np.column_stack([x[:, m].sum(1) for m in members]) / x.sum(1)[:, None]
    np.testing.assert_allclose(fractions, expected)
    assert np.isnan(fractions[5]).all()
    np.testing.assert_allclose(qc, np.column_stack([(x > 0).sum(1), x.sum(1), x[:, mito].sum(1)]))
