"""dyn.pl.fate, fate_bias and plot_energy on dynamo's pancreas reference: what is drawn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.cluster import hierarchy  # noqa: E402

import dynadask as dyn  # noqa: E402


@pytest.fixture(scope="module")
def small(reference):
    """The reference's cells, embedding, fit record and dynamo's 50 fates (2 x 500 each)."""
    fate = {k: reference.uns["fate_umap"][k] for k in ("init_cells", "prediction", "t")}
    return ad.AnnData(
        X=np.zeros((reference.n_obs, 1), dtype=np.float32),
        obs=reference.obs[["clusters"]].copy(),
        obsm={"X_umap": reference.obsm["X_umap"]},
        uns={"fate_umap": fate, "VecFld_umap": dict(reference.uns["VecFld_umap"])},
    )


@pytest.fixture(scope="module")
def store(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("plfate")
    small.write_h5ad(path / "small.h5ad")
    dyn.io.convert(path / "small.h5ad", path / "small.zarr", chunk_cells=1000)
    return dyn.io.open(path / "small.zarr")


def _fate_layers(ax):
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    return lines, points


def test_one_line_per_trajectory_and_points_coloured_by_time(small):
    ax = dyn.pl.fate(small, basis="umap", color="clusters", save_show_or_return="return")
    P, T = small.uns["fate_umap"]["prediction"], small.uns["fate_umap"]["t"]
    lines, points = _fate_layers(ax)
    segments = lines.get_segments()
    assert len(segments) == 50
    for b in (0, 17, 49):
        np.testing.assert_allclose(segments[b], P[b].T)
    cells, samples = points  # the cells' scatter first, the trajectory samples on top
    assert cells.get_offsets().shape == (small.n_obs, 2)
    np.testing.assert_allclose(samples.get_offsets(), P.transpose(0, 2, 1).reshape(-1, 2))
    when = np.asarray(samples.get_array()).reshape(50, 500)
    assert samples.norm.vmin == 0 and samples.norm.vmax == 1
    np.testing.assert_allclose(when.min(axis=1), 0) and np.testing.assert_allclose(
        when.max(axis=1), 1
    )
    b = 3
    np.testing.assert_allclose(when[b], (T[b] - T[b].min()) / np.ptp(T[b]))
    x0, x1 = ax.get_xlim()
    assert x0 <= P[:, 0].min() and x1 >= P[:, 0].max()


def test_fate_from_a_store_draws_the_same(small, store):
    mem = _fate_layers(
        dyn.pl.fate(small, basis="umap", color="clusters", save_show_or_return="return")
    )
    got = _fate_layers(
        dyn.pl.fate(store, basis="umap", color="clusters", save_show_or_return="return")
    )
    for a, b in zip(mem[0].get_segments(), got[0].get_segments(), strict=True):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(mem[1][1].get_offsets(), got[1][1].get_offsets())


def test_fate_bias_heatmap_is_the_clustered_table(small):
    df = dyn.pd.fate_bias(small, "clusters")
    ax = dyn.pl.fate_bias(small, "clusters", fate_bias_df=df, save_show_or_return="return")
    m = np.nan_to_num(df.drop(columns="confidence").to_numpy())
    rows = hierarchy.leaves_list(hierarchy.linkage(m, "average"))
    cols = hierarchy.leaves_list(hierarchy.linkage(m.T, "average"))
    (image,) = [i for i in ax.images if isinstance(i, AxesImage)]
    np.testing.assert_allclose(image.get_array(), m[rows][:, cols])
    assert image.norm.vmin == 0 and image.norm.vmax == 1
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == [str(c) for c in df.columns[1:][cols]]
    assert sorted(labels) == sorted(small.obs["clusters"].cat.categories)
    (strip,) = [a for a in ax.figure.axes if a.get_xticklabels() and a is not ax][:1]
    np.testing.assert_allclose(strip.images[0].get_array()[:, 0], df["confidence"].to_numpy()[rows])
    # without a table the figure computes the same one
    again = dyn.pl.fate_bias(small, "clusters", save_show_or_return="return")
    np.testing.assert_allclose(again.images[0].get_array(), image.get_array())


def test_plot_energy_draws_the_fit_record(small):
    fig = dyn.pl.plot_energy(small, basis="umap", save_show_or_return="return")
    E = np.asarray(small.uns["VecFld_umap"]["E_traj"])
    tecr = np.asarray(small.uns["VecFld_umap"]["tecr_traj"])
    left, right = fig.axes
    np.testing.assert_allclose(left.lines[0].get_ydata(), E - E.min() + 1)
    np.testing.assert_allclose(right.lines[0].get_ydata(), tecr)
    assert left.get_yscale() == right.get_yscale() == "log"
    assert len(left.lines[0].get_xdata()) == E.size > 5


def test_pngs_are_written(small, tmp_path):
    for name, call in [
        ("fate", lambda kw: dyn.pl.fate(small, basis="umap", color="clusters", **kw)),
        ("fate_bias", lambda kw: dyn.pl.fate_bias(small, "clusters", **kw)),
        ("energy", lambda kw: dyn.pl.plot_energy(small, basis="umap", **kw)),
    ]:
        kw = {
            "save_show_or_return": "save",
            "save_kwargs": {
                "path": str(tmp_path / name),
                "ext": "png",
                "dpi": 50,
                "verbose": False,
            },
        }
        call(kw)
        files = list(tmp_path.glob(f"*{name}.png"))
        assert len(files) == 1, name
        with Image.open(files[0]) as png:
            assert png.size[0] > 100 and png.size[1] > 100


def test_clear_errors(small):
    empty = ad.AnnData(obs=small.obs, obsm={"X_umap": small.obsm["X_umap"]})
    with pytest.raises(ValueError, match=r"dyn\.pd\.fate"):
        dyn.pl.fate(empty, basis="umap", save_show_or_return="return")
    with pytest.raises(ValueError, match="columns"):
        dyn.pl.fate(small, x=0, y=2, basis="umap", save_show_or_return="return")
    with pytest.raises(ValueError, match="VectorField"):
        dyn.pl.plot_energy(empty, basis="umap")
    with pytest.raises(ValueError, match="E_traj"):
        dyn.pl.plot_energy(None, vecfld_dict={"C": np.zeros(3)})
    with pytest.raises(ValueError, match="group columns"):
        dyn.pl.fate_bias(
            small, "clusters", fate_bias_df=dyn.pd.fate_bias(small, "clusters")[["confidence"]]
        )


def test_large_fates_stay_in_the_store_and_draw_the_same(small, store, monkeypatch):
    # above LAZY_UNS_BYTES a dense uns array opens as a Dask array over the store (1M-cell
    # stores hold fates of 10,000 cells: 1.1 GiB); here the threshold is lowered
    import importlib

    io_open = importlib.import_module("dynadask.io.open")  # the module, not dyn.io.open

    path = store.uns["dynadask"]["store"]
    monkeypatch.setattr(io_open, "LAZY_UNS_BYTES", 1000)
    lazy = dyn.io.open(path)
    P = lazy.uns["fate_umap"]["prediction"]
    assert isinstance(P, da.Array) and P.shape == (50, 2, 500)
    assert not isinstance(lazy.uns["fate_umap"]["init_cells"], da.Array)  # strings stay
    np.testing.assert_array_equal(P.compute(), small.uns["fate_umap"]["prediction"])
    mem = _fate_layers(
        dyn.pl.fate(small, basis="umap", color="clusters", save_show_or_return="return")
    )
    got = _fate_layers(
        dyn.pl.fate(lazy, basis="umap", color="clusters", save_show_or_return="return")
    )
    for a, b in zip(mem[0].get_segments(), got[0].get_segments(), strict=True):
        np.testing.assert_allclose(a, b)


def test_a_large_result_is_left_in_the_store_after_its_commit(store, monkeypatch):
    # pd.fate on a store: the committed trajectories are not kept twice on the client
    import importlib

    io_open = importlib.import_module("dynadask.io.open")
    monkeypatch.setattr(io_open, "LAZY_UNS_BYTES", 1000)
    path = store.uns["dynadask"]["store"]
    adata = dyn.io.open(path)
    cells = list(adata.obs_names[:6])
    dyn.pd.fate(adata, cells, basis="umap", interpolation_num=50)
    entry = adata.uns["fate_umap"]
    assert isinstance(entry["prediction"], da.Array) and entry["prediction"].shape[0] == 6
    assert not isinstance(entry["init_states"], da.Array)  # small arrays stay in memory
    again = dyn.io.open(path).uns["fate_umap"]["prediction"]
    np.testing.assert_array_equal(entry["prediction"].compute(), again.compute())
