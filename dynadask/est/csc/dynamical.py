"""Whole-trajectory ("dynamical") estimation of ``gamma / beta`` for splicing data.

The steady-state fit reads only the extreme cells and is biased for genes that never reach
steady state. This estimator fits, per gene, the transient solution of the splicing ODE
(induction from zero, then repression; :mod:`dynadask.kernels.dynamical`) to the cells of
the whole phase portrait, in the spirit of scVelo's dynamical model. Rates are in units of
``beta`` (``beta = 1``), as dynamo reports conventional data.

Out of core: the curve is fitted on a seeded sample of at most ``n_fit_cells`` cells per
stratum (three parameters per gene need far fewer cells than an atlas has), gathered in one
pass; genes are fitted in parallel blocks on the workers. The velocity ``u - gamma s`` is
then evaluated for every cell, row block by row block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._core.compute import compute
from ..._core.validate import same_shape
from ...graph import kinetics as gk
from ...graph.blocks import as_rows
from ...kernels import dynamical as kd
from ...kernels.kinetics import dense_rows
from .steady_state import splicing_velocity


@dataclass
class Dynamical:
    """Per-gene fit of the splicing ODE's trajectory through the cells' ``(s, u)``.

    Parameters
    ----------
    n_fit_cells
        Cells sampled per stratum for the fit (all when fewer).
    n_grid
        Curve points per phase.
    genes_per_task
        Genes fitted by one task.
    random_state
        Seed of the cell sample.

    Attributes
    ----------
    params : dict
        After :meth:`fit`, each ``n_strata x n_genes``: ``alpha, beta (= 1), gamma,
        t_switch, gamma_r2`` (share of the scaled spread the curve explains), ``gamma_b``
        (0).
    """

    n_fit_cells: int = 1000
    n_grid: int = 20
    genes_per_task: int = 64
    random_state: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(
        self, u: Any, s: Any, *, codes: np.ndarray | None = None, n_strata: int | None = None
    ) -> Dynamical:
        """Fit every gene (in every stratum).

        Parameters
        ----------
        u, s
            Cells x genes unspliced and spliced values (moments or normalised layers).
        codes
            Stratum of each cell (-1 leaves a cell out); one stratum of all cells if None.
        n_strata
            Number of strata (default ``codes.max() + 1``).

        Returns
        -------
        Dynamical
            ``self``, with :attr:`params` set.
        """
        same_shape(u=u, s=s)
        n = u.shape[0]
        codes = np.zeros(n, np.int64) if codes is None else np.asarray(codes, np.int64)
        n_strata = int(n_strata if n_strata is not None else codes.max() + 1)
        picks = [self._sample(np.flatnonzero(codes == k)) for k in range(n_strata)]
        rows = np.unique(np.concatenate(picks))
        lazy_u, lazy_s = as_rows(u)[rows], as_rows(s)[rows]
        got_u, got_s = (
            dense_rows(x, 0, x.shape[0])
            for x in compute(lazy_u, lazy_s, desc="dynamics: sample cells")
        )
        at = [np.searchsorted(rows, p) for p in picks]
        fits = [self._fit_stratum(got_u[i], got_s[i]) for i in at]
        out = compute(*fits, desc="dynamics: trajectory fits")
        table = np.stack(out)  # strata x 4 x genes
        self.params = {
            "alpha": table[:, 0],
            "beta": np.ones_like(table[:, 0]),
            "gamma": table[:, 1],
            "t_switch": table[:, 2],
            "gamma_r2": table[:, 3],
            "gamma_b": np.zeros_like(table[:, 0]),
        }
        return self

    def velocity(
        self, u: Any, s: Any, codes: np.ndarray | None = None, n_strata: int | None = None
    ) -> Any:
        """Lazy ``beta u - gamma s`` per cell with its stratum's parameters (float32)."""
        return splicing_velocity(self.params, u, s, codes, n_strata)

    def _sample(self, cells: np.ndarray) -> np.ndarray:
        if cells.size <= self.n_fit_cells:
            return cells
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(cells, self.n_fit_cells, replace=False))

    def _fit_stratum(self, u: np.ndarray, s: np.ndarray) -> Any:
        return gk.column_blocks(
            kd.fit_genes, [u, s], [kd.start_gamma(u, s)], self.genes_per_task, n_grid=self.n_grid
        )
