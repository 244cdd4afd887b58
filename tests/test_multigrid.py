"""The smoothed-aggregation multigrid preconditioner of ddhodge's potential solve."""

from __future__ import annotations

import numpy as np
import pytest

from dynadask.kernels import hodge as kh
from dynadask.kernels import multigrid as mg


def _grid_edges(side: int, seed: int = 0) -> kh.EdgeFlow:
    """A ``side x side`` lattice with random flows: a wide, badly conditioned graph."""
    ij = np.arange(side * side).reshape(side, side)
    right = np.full((side, side), -1)
    right[:, :-1] = ij[:, 1:]
    up = np.full((side, side), -1)
    up[:-1, :] = ij[1:, :]
    nbrs = np.column_stack([right.ravel(), up.ravel()])
    flows = np.random.default_rng(seed).normal(size=nbrs.shape)
    return kh.edges_from_knn(nbrs, flows)


@pytest.fixture(scope="module")
def lattice() -> kh.EdgeFlow:
    return _grid_edges(80)


def test_pinned_laplacian_matches_the_edge_operator(lattice):
    n = lattice.n
    pinned = np.zeros(n, dtype=bool)
    pinned[[0, 77]] = True
    A = lattice.pinned_laplacian(pinned)
    # a corner (2 edges) and a border node (3 edges) pinned: their rows keep the diagonal only
    assert A.dtype == np.float32 and A.nnz == n + 2 * lattice.lo.size - 2 * (2 + 3)
    x = np.random.default_rng(1).normal(size=n)
    free = (~pinned).astype(float)
    deg = lattice.degree().astype(float)
    np.testing.assert_allclose(A @ x, lattice.laplace(x, free, deg), atol=1e-12)
    np.testing.assert_array_equal((A - A.T).nnz, 0)


def test_hierarchy_and_symmetric_vcycle(lattice):
    pinned = np.zeros(lattice.n, dtype=bool)
    pinned[0] = True
    H = mg.build(lattice.pinned_laplacian(pinned))
    sizes = [lev.A.shape[0] for lev in H.levels]
    assert sizes[0] == 6400 and len(sizes) >= 2 and sizes[-1] <= 500
    assert all(a > b for a, b in zip(sizes, sizes[1:], strict=False))
    # measured: levels of 6,400, 1,081 and 127 rows, operator complexity 1.33
    assert sizes == [6400, 1081, 127]
    assert H.operator_complexity == pytest.approx(1.328, abs=0.01)
    # the preconditioner is a symmetric positive-definite map, as CG needs
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2, lattice.n))
    mx, my = H.vcycle(x), H.vcycle(y)
    assert abs(y @ mx - x @ my) < 1e-9 * abs(x @ mx)
    assert x @ mx > 0 and y @ my > 0


def test_multigrid_solve_equals_jacobi_in_far_fewer_iterations(lattice):
    div = lattice.divergence()
    jac = kh.graph_potential(lattice, div, preconditioner="jacobi")
    amg = kh.graph_potential(lattice, div, preconditioner="multigrid")
    assert jac.residual < 1e-10 and amg.residual < 1e-10
    np.testing.assert_allclose(amg.potential, jac.potential, atol=1e-7)
    # an 80 x 80 lattice (measured when written: Jacobi-PCG 502 iterations, multigrid 12,
    # potentials equal to 8.7e-9 of a range of 6.29)
    assert 450 < jac.iterations < 560
    assert amg.iterations <= 15
    assert jac.potential.max() == pytest.approx(6.292096, abs=1e-5)
