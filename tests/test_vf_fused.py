"""dyn.vf.vector_calculus (one pass) and the vector calculus of a gene-space field (basis=None)."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from test_vf_gene_space import _linear_genes

import dynadask as dyn

FIVE = ("speed", "divergence", "curl", "acceleration", "curvature")
ONE = {
    "speed": dyn.vf.speed,
    "divergence": dyn.vf.divergence,
    "curl": dyn.vf.curl,
    "acceleration": dyn.vf.acceleration,
    "curvature": dyn.vf.curvature,
    "torsion": dyn.vf.torsion,
}


def _reference_fields(reference, n=300):
    """Every 12th pancreas cell with dynamo's fitted fields and PCA loadings."""
    cells = np.arange(0, reference.n_obs, reference.n_obs // n)[:n]
    return ad.AnnData(
        obs=pd.DataFrame(index=reference.obs_names[cells]),
        var=reference.var[["use_for_pca"]].copy(),
        obsm={k: np.asarray(reference.obsm[k])[cells] for k in ("X_umap", "X_pca")},
        uns={k: reference.uns[k] for k in ("VecFld_umap", "VecFld_pca", "PCs")},
    )


def _written(adata):
    return (
        set(adata.obs.columns),
        set(adata.obsm.keys()),
        set(adata.layers.keys()),
    )


def _dense(x):
    x = x.compute() if isinstance(x, da.Array) else x
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _assert_same(a, b, rtol=1e-9):
    assert _written(a) == _written(b)
    for k in a.obs.columns:
        if not pd.api.types.is_numeric_dtype(a.obs[k]) and a.obs[k].dtype != bool:
            assert list(a.obs[k]) == list(b.obs[k]), k
            continue
        np.testing.assert_allclose(
            a.obs[k].to_numpy(dtype=float), b.obs[k].to_numpy(dtype=float), rtol=rtol, err_msg=k
        )
    for slot in ("obsm", "layers"):
        for k in getattr(a, slot).keys():
            x, y = _dense(getattr(a, slot)[k]), _dense(getattr(b, slot)[k])
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-14, err_msg=f"{slot} {k}")


# ------------------------------------------------------------------------------------------
# the fused pass


@pytest.mark.parametrize("basis", ["umap", "pca"])
def test_one_pass_equals_the_one_quantity_functions(reference, basis):
    one, fused = _reference_fields(reference), _reference_fields(reference)
    for name in FIVE:
        ONE[name](one, basis=basis)
    dyn.vf.jacobian(one, basis=basis)
    del one.uns[f"jacobian_{basis}"]
    dyn.vf.vector_calculus(fused, basis=basis, quantities=(*FIVE, "jacobian_det"))
    _assert_same(one, fused)
    want = {f"{q}_{basis}" for q in (*FIVE, "jacobian_det")}
    assert want <= set(fused.obs.columns)
    if basis == "pca":
        assert {"acceleration", "curvature"} <= set(fused.layers.keys())
        # dynamo's values with its own fit (curl_pca: dynamo fails in 30-D)
        for q in ("speed", "divergence", "acceleration", "curvature"):
            ref = reference.obs[f"{q}_pca"].to_numpy()[_rows(reference, fused)]
            atol = 1e-5 * np.abs(ref).max()  # dynamo's float32 differences
            np.testing.assert_allclose(fused.obs[f"{q}_pca"], ref, rtol=1e-5, atol=atol)


def _rows(reference, adata):
    return reference.obs_names.get_indexer(adata.obs_names)


def test_one_pass_reads_each_block_of_the_coordinates_once(reference):
    reads = []

    def counted(block):
        if block.shape[0]:  # not dask's empty probe of the output type
            reads.append(block.shape[0])
        return block

    def adata_with_counted_x():
        a = _reference_fields(reference)
        x = da.from_array(a.obsm["X_pca"], chunks=(150, 30)).map_blocks(counted, dtype=float)
        a.obsm["X_pca"] = x
        return a

    a = adata_with_counted_x()
    before = dyn.parallel.compute_count()
    dyn.vf.vector_calculus(a, basis="pca")
    assert dyn.parallel.compute_count() == before + 1
    assert sorted(reads) == [150] * 2  # 300 cells in 2 blocks, each read once
    reads.clear()
    b = adata_with_counted_x()
    for name in FIVE:
        ONE[name](b, basis="pca")
    assert len(reads) == 2 * len(FIVE)  # one pass per quantity


def test_one_pass_on_a_store_equals_memory(tmp_path):
    rng = np.random.default_rng(3)
    n = 900
    X = rng.normal(size=(n, 3))
    V = np.column_stack([-X[:, 1] - 0.3 * X[:, 0], X[:, 0], -X[:, 2] + 0.5 * X[:, 0] ** 2])
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    adata.obsm["X_u3"], adata.obsm["velocity_u3"] = X, V + rng.normal(0, 0.05, X.shape)
    dyn.vf.VectorField(adata, basis="u3", MaxIter=10, grid_num=5)
    adata.write_h5ad(tmp_path / "u3.h5ad")
    dyn.io.convert(tmp_path / "u3.h5ad", tmp_path / "u3.zarr", chunk_cells=250)
    stored = dyn.io.open(tmp_path / "u3.zarr")
    names = (*FIVE, "torsion", "jacobian_det")
    dyn.vf.vector_calculus(adata, basis="u3", quantities=names)
    dyn.vf.vector_calculus(stored, basis="u3", quantities=names)
    _assert_same(adata, dyn.io.open(tmp_path / "u3.zarr"))
    assert adata.obsm["curl_u3"].shape == (n, 3) and adata.obsm["torsion_u3"].shape == (n, 3)
    one = adata.copy()
    for name in (*FIVE, "torsion"):
        ONE[name](one, basis="u3", **({"formula": 1} if name == "curvature" else {}))
    dyn.vf.vector_calculus(adata, basis="u3", quantities=["curvature"], formula=1)
    np.testing.assert_allclose(one.obs["curvature_u3"], adata.obs["curvature_u3"], rtol=1e-12)
    np.testing.assert_allclose(one.obs["torsion_u3"], adata.obs["torsion_u3"], rtol=1e-12)


def test_one_pass_errors(reference):
    a = _reference_fields(reference, n=50)
    with pytest.raises(ValueError, match="unknown: \\['speeed'\\]"):
        dyn.vf.vector_calculus(a, basis="pca", quantities=["speeed"])
    with pytest.raises(ValueError, match="distinct"):
        dyn.vf.vector_calculus(a, basis="pca", quantities=["speed", "speed"])
    with pytest.raises(ValueError, match="3-D"):
        dyn.vf.vector_calculus(a, basis="pca", quantities=["torsion"])
    with pytest.raises(ValueError, match="formula"):
        dyn.vf.vector_calculus(a, basis="umap", formula=3)
    with pytest.raises(ValueError, match=r"VectorField\(adata, basis='tsne'\)"):
        dyn.vf.vector_calculus(a, basis="tsne")
    with pytest.raises(ValueError, match="basis=None"):
        dyn.vf.vector_calculus(a, basis=None)
    assert "speed_pca" not in a.obs  # nothing written


# ------------------------------------------------------------------------------------------
# gene space (basis=None)


def _finite_differences(f, x, h=1e-4):
    """Central-difference Jacobians (n x d x d) of ``f`` at the rows of ``x``."""
    eye = np.eye(x.shape[1])
    return np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in eye], axis=2)


_GENE: dict[str, ad.AnnData] = {}


@pytest.fixture
def gene_field():
    """A gene-space field learned on a known linear system in 12 genes (one fit per session)."""
    if "adata" not in _GENE:
        adata, A, X, V = _linear_genes(n=1200)
        dyn.vf.VectorField(adata, basis=None)
        _GENE.update(adata=adata, A=A, X=X, V=V)
    return _GENE["adata"].copy(), _GENE["A"], _GENE["X"], _GENE["V"]


def test_gene_space_calculus_against_finite_differences(gene_field):
    adata, A, X, V = gene_field
    vf = adata.uns["VecFld"]
    for name in FIVE:
        ONE[name](adata, basis=None)
    dyn.vf.jacobian(adata, regulators=["g0", "g3"], effectors=["g1", "g2", "g5"], basis=None)
    assert {"speed", "divergence", "curl", "acceleration", "curvature", "jacobian_det"} <= set(
        adata.obs.columns
    )
    assert {"acceleration", "curvature"} <= set(adata.obsm.keys()) & set(adata.layers.keys())
    pts = np.asarray(adata.layers["M_s"][:25, :12], dtype=np.float64)  # where it is evaluated

    def f(x):
        return dyn.vf.vector_field_function(x, vf)

    J, F = _finite_differences(f, pts), f(pts)
    acc = np.einsum("nij,nj->ni", J, F)
    scale = np.max(np.abs(acc))
    np.testing.assert_allclose(adata.obsm["acceleration"][:25], acc, atol=1e-6 * scale)
    np.testing.assert_allclose(adata.obs["speed"][:25], np.linalg.norm(F, axis=1), rtol=1e-10)
    div = np.trace(J, axis1=1, axis2=2)
    np.testing.assert_allclose(adata.obs["divergence"][:25], div, atol=1e-5 * np.abs(div).max())
    vv = np.sum(F * F, 1)[:, None]
    kappa = (acc * vv - F * np.sum(F * acc, 1)[:, None]) / vv**2
    np.testing.assert_allclose(adata.obsm["curvature"][:25], kappa, atol=1e-5 * np.abs(kappa).max())
    rot = np.linalg.norm(J - J.transpose(0, 2, 1), axis=(1, 2)) / np.sqrt(2)
    np.testing.assert_allclose(adata.obs["curl"][:25], rot, rtol=1e-5)
    jg = np.asarray(adata.uns["jacobian"]["jacobian_gene"])[:25]
    np.testing.assert_allclose(jg, J[:, [1, 2, 5]][:, :, [0, 3]], atol=1e-5 * np.abs(J).max())
    assert adata.uns["jacobian"]["regulators"] == ["g0", "g3"]
    # the gene layers: the vectors on the field's genes, NaN on the two others
    layer = np.asarray(adata.layers["acceleration"])
    assert layer.dtype == np.float32 and np.isnan(layer[:, -2:]).all()
    np.testing.assert_allclose(layer[:, :12], adata.obsm["acceleration"], rtol=1e-6, atol=1e-6)
    # the known system: divergence tr A = -12 where the data are dense (measured -11.5)
    x0 = np.full(12, 3.0)
    core = np.linalg.norm((X - x0) / np.linspace(0.5, 1.5, 12), axis=1) < np.sqrt(12)
    assert np.median(adata.obs["divergence"].to_numpy()[core]) == pytest.approx(np.trace(A), 0.1)


def test_gene_space_one_pass_on_a_store(gene_field, tmp_path):
    adata, *_ = gene_field
    adata.write_h5ad(tmp_path / "g.h5ad")
    dyn.io.convert(tmp_path / "g.h5ad", tmp_path / "g.zarr", chunk_cells=500)
    stored = dyn.io.open(tmp_path / "g.zarr")
    names = (*FIVE, "jacobian_det")
    dyn.vf.vector_calculus(adata, basis=None, quantities=names)
    dyn.vf.vector_calculus(stored, basis=None, quantities=names)
    _assert_same(adata, dyn.io.open(tmp_path / "g.zarr"), rtol=1e-6)
    one = gene_field[0]
    for name in FIVE:
        ONE[name](one, basis=None)
    for q in FIVE:
        np.testing.assert_allclose(one.obs[q], adata.obs[q], rtol=1e-9)
    with pytest.raises(ValueError, match="gene-space field"):
        dyn.vf.jacobian(one, regulators=["flat1"], basis=None)
    with pytest.raises(ValueError, match="3-D"):
        dyn.vf.torsion(one, basis=None)


def test_gene_space_hessian_and_laplacian_against_finite_differences(gene_field, tmp_path):
    adata, *_ = gene_field
    vf = adata.uns["VecFld"]
    regs, coregs, eff = ["g0", "g3"], ["g1", "g4", "g7"], "g2"
    dyn.vf.hessian(adata, regs, coregs, effector=eff, basis=None, cell_idx=np.arange(20))
    dyn.vf.laplacian(adata, basis=None)
    entry = adata.uns["hessian"]  # unsuffixed in gene space, as the other keys there
    assert entry["regulators"] == regs and entry["effectors"] == [eff]
    pts = np.asarray(adata.layers["M_s"][:20, :12], dtype=np.float64)
    h = 1e-3

    def jac(x):
        return _finite_differences(lambda y: dyn.vf.vector_field_function(y, vf), x)

    # H[n, i, j, k] = d2 f_i / dx_j dx_k by central differences of the Jacobian
    eye = np.eye(12)
    H = np.stack([(jac(pts + h * e) - jac(pts - h * e)) / (2 * h) for e in eye], axis=3)
    want = H[:, 2][:, [0, 3]][:, :, [1, 4, 7]]
    got = np.asarray(entry["hessian_gene"])
    np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(H).max())
    lap = np.einsum("nijj->ni", H)
    np.testing.assert_allclose(adata.obsm["Laplacian"][:20], lap, atol=2e-3 * np.abs(lap).max())
    layer = np.asarray(adata.layers["laplacian"])
    assert np.isnan(layer[:, -2:]).all()
    np.testing.assert_allclose(layer[:, :12], adata.obsm["Laplacian"], rtol=1e-5, atol=1e-6)
    # a store gives the same
    adata.write_h5ad(tmp_path / "h.h5ad")
    dyn.io.convert(tmp_path / "h.h5ad", tmp_path / "h.zarr", chunk_cells=500)
    stored = dyn.io.open(tmp_path / "h.zarr")
    dyn.vf.laplacian(stored, basis=None)
    np.testing.assert_allclose(
        np.asarray(dyn.io.open(tmp_path / "h.zarr").obsm["Laplacian"]),
        adata.obsm["Laplacian"],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="gene-space field"):
        dyn.vf.hessian(adata, ["flat1"], ["g0"], effector="g1", basis=None)
