"""dyn.mv.animate_fates: frames from the stored fates, GIF written and read back, stores."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask.kernels.trajectory import frame_times, positions_at  # noqa: E402

FRAMES = 8


@pytest.fixture(scope="module")
def small(reference):
    """Every fourth pancreas cell with dynamo's umap field and topography; 6 Ductal fates."""
    rows = np.arange(0, reference.n_obs, 4)
    sub = ad.AnnData(
        X=np.zeros((rows.size, 1), dtype=np.float32),
        obs=reference.obs[["clusters"]].iloc[rows].copy(),
        obsm={"X_umap": reference.obsm["X_umap"][rows]},
        uns={
            "VecFld_umap": dict(reference.uns["VecFld_umap"]),
            "topography_umap": dict(reference.uns["topography_umap"]),
        },
    )
    ductal = list(sub.obs_names[sub.obs["clusters"] == "Ductal"][:6])
    dyn.pd.fate(sub, ductal, basis="umap", interpolation_num=40)
    return sub


@pytest.fixture(scope="module")
def store(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("mv")
    small.write_h5ad(path / "small.h5ad")
    dyn.io.convert(path / "small.h5ad", path / "small.zarr", chunk_cells=300)
    return dyn.io.open(path / "small.zarr")


def test_positions_follow_the_samples_and_rest_at_the_ends():
    t = np.array([[0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])  # the second out of order
    P = np.stack([np.stack([t[0], -t[0]]), np.stack([10 * t[1], t[1] ** 2])])
    times = np.array([-1.0, 0.5, 2.0, 5.0])
    got = positions_at(P, t, times)
    np.testing.assert_allclose(got[:, 0, 0], [0.0, 0.5, 2.0, 3.0])  # held before and after
    np.testing.assert_allclose(got[:, 0, 1], [0.0, -0.5, -2.0, -3.0])
    np.testing.assert_allclose(got[:, 1, 0], [0.0, 5.0, 20.0, 20.0])
    np.testing.assert_allclose(got[:, 1, 1], [0.0, 0.5, 4.0, 4.0])  # linear between samples
    ft = frame_times(t, 3)
    assert ft[0] == 0.0 and ft[-1] == 3.0 and ft.size == 3
    lt = frame_times(t, 4, logspace=True)
    np.testing.assert_allclose(lt[[0, -1]], [0.0, 3.0])


def test_gif_has_the_frames_and_the_size(small, tmp_path):
    target = tmp_path / "movie" / "fates.gif"
    fig, ax = plt.subplots(figsize=(4, 3))
    dyn.mv.animate_fates(
        small,
        color="clusters",
        n_steps=FRAMES,
        fig=fig,
        ax=ax,
        plot_kwargs={"n_grid": 20},
        save_show_or_return="save",
        save_kwargs={"filename": str(target), "dpi": 50},
    )
    with Image.open(target) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == FRAMES
        assert gif.size == (200, 150)
    # the last frame shows every trajectory at its end (the last stored time)
    fate = small.uns["fate_umap"]
    P, T = fate["prediction"], fate["t"]
    (dots,) = [line for line in ax.lines if line.get_color() == "red"]
    end = P[np.arange(len(P)), :, np.argmax(T, axis=1)]
    np.testing.assert_allclose(np.column_stack(dots.get_data()), end)
    assert ax.get_title().startswith("t = ")


def test_frames_interpolate_and_store_equals_memory(small, store):
    anims = [
        dyn.mv.animate_fates(
            adata,
            color="clusters",
            n_steps=FRAMES,
            cell_states=[0, 2, 5],
            plot_kwargs={"n_grid": 20},
            save_show_or_return="return",
        )
        for adata in (small, store)
    ]
    fate = small.uns["fate_umap"]
    P, T = fate["prediction"][[0, 2, 5]], fate["t"][[0, 2, 5]]
    times = frame_times(T, FRAMES)
    assert times[0] == T.min() and times[-1] == T.max()  # from the past to the future
    for anim in anims:
        (dots,) = [line for line in anim._fig.axes[0].lines if line.get_color() == "red"]
        for k in (0, 3, FRAMES - 1):
            anim._func(k)  # the frame's update, as the writer calls it
            want = np.array([np.interp(times[k], T[b], P[b, 0]) for b in range(3)])
            np.testing.assert_allclose(dots.get_data()[0], want)


def test_seeded_random_states_and_clear_errors(small, tmp_path):
    quick = {"color": "clusters", "n_steps": 2, "plot_kwargs": {"n_grid": 20}}
    a = dyn.mv.animate_fates(small, cell_states=3, save_show_or_return="return", **quick)
    b = dyn.mv.animate_fates(small, cell_states=3, save_show_or_return="return", **quick)
    get = lambda anim: [ln for ln in anim._fig.axes[0].lines if ln.get_color() == "red"][0]  # noqa: E731
    np.testing.assert_array_equal(get(a).get_data()[0], get(b).get_data()[0])
    assert len(get(a).get_data()[0]) == 3
    bare = ad.AnnData(np.zeros((3, 1)), obsm={"X_umap": np.zeros((3, 2))})
    with pytest.raises(dyn.MissingKeyError, match=r"dyn\.pd\.fate"):
        dyn.mv.animate_fates(bare, save_show_or_return="return")
    with pytest.raises(dyn.InputError, match="dims"):
        dyn.mv.animate_fates(small, dims=[0, 5], save_show_or_return="return")
    with pytest.raises(dyn.InputError, match="cell_states"):
        dyn.mv.animate_fates(small, cell_states=[99], save_show_or_return="return")
    if not matplotlib.animation.writers.is_available("ffmpeg"):
        with pytest.raises(dyn.InputError, match="ffmpeg"):
            dyn.mv.animate_fates(
                small,
                save_show_or_return="save",
                **quick,
                save_kwargs={"filename": str(tmp_path / "x.mp4")},
            )
        assert not (tmp_path / "x.mp4").exists()
