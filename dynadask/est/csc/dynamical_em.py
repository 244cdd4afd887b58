"""EM fit of the splicing ODE with latent cell times (the ``dynamical`` model's default).

Per gene (and stratum), the cells are placed at latent times on the curve of an
induction-then-repression trajectory, and ``alpha``, ``gamma`` and the switching time are
fitted by EM under Gaussian observation noise with per-gene variances
(:mod:`dynadask.kernels.dynamical_em`), from several starts, keeping the most likely fit.
Rates are in units of ``beta`` (``beta = 1``): with a latent time per gene, the time scale
and ``beta`` cannot be told apart, and dynamo reports conventional rates relative to
``beta`` too.

A gene whose curve explains less than ``min_r2`` of the spread of ``u`` and ``s`` (each in
units of its variance) is at steady state: its cells form a blob (the curve's two branches
through it explain up to about three quarters), the curve says nothing of ``gamma``, and
``gamma`` is then the ratio of the mean unspliced to the mean spliced value of the fit cells (the
steady-state relation ``u = gamma s``). A gene whose cells never reach where degradation
counts (``gamma s`` small against ``u`` in every cell: an induction caught early) leaves the
curve's ``gamma`` undetermined (curves with other ``gamma`` fit as well at other latent
times); it reports the slope of ``u`` on ``s`` over its extreme cells. So does a gene whose
curve's ``gamma`` lies above that slope while its cells are not seen on the decay branch:
on an induction ``s`` only grows, so every cell has ``u >= gamma s`` and the slope of the
extreme cells bounds ``gamma`` from above.

Out of core: the fit runs on a seeded sample of at most ``n_fit_cells`` cells per stratum,
gathered in one pass; genes are fitted in parallel tasks of ``genes_per_task`` genes. The
velocity ``u - gamma s`` is evaluated for every cell, row block by row block, and latent
times likewise (:meth:`DynamicalEM.latent_time`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._core.compute import compute
from ...graph import kinetics as gk
from ...graph.blocks import as_rows, map_rows
from ...kernels import dynamical as kd
from ...kernels import dynamical_em as ke
from ...kernels import shared_time as kst
from ...kernels.kinetics import dense_rows
from .steady_state import splicing_velocity

_AT = {"alpha": 0, "gamma": 1, "t_switch": 2, "loglik": 3, "var_u": 4, "var_s": 5}
_AT |= {"r2": 6, "t_min": 7, "t_max": 8, "decay": 9, "past": 10, "reach": 11}  # ke.fit_genes


@dataclass
class DynamicalEM:
    """EM over latent cell times and per-gene ``alpha``, ``gamma``, switching time.

    Parameters
    ----------
    n_fit_cells
        Cells sampled per stratum for the fit (all when fewer).
    n_grid
        Curve points per phase (the latent times between them are interpolated).
    n_em
        EM iterations per start at most (they stop when the noise variances settle).
    min_r2
        Share of the scaled spread of ``u`` and ``s`` explained by the curve below which a
        gene is taken to be at steady state.
    min_decay
        Decay share (:func:`~dynadask.kernels.dynamical_em.decay_share`: how far the cells
        reach where ``gamma s`` counts against ``u``) below which the cells do not determine
        the curve's ``gamma``, unless 5 % of them run at least ``MIN_REACH`` (in units
        of ``1 / beta``) past the curve's switch-off, where the decay branch pins ``gamma``,
        and the curve's ``gamma`` has not drifted to its lower bound; such a gene reports
        the slope of ``u`` on ``s`` over its 5 % extreme cells instead, and so does a gene
        without that decay branch whose curve's ``gamma`` is above the slope.
    genes_per_task
        Genes fitted by one task.
    random_state
        Seed of the cell sample (and of the held-out split).
    holdout
        Cells per stratum sampled besides the fit cells and held out of the fit, to score
        the fit against a steady-state line (``reference_gamma`` of :meth:`fit`); when a
        stratum has fewer cells than wanted, the held-out cells are those beyond
        ``n_fit_cells``, or a quarter of the stratum if that is more, and never more than
        ``holdout``.
    shared_rounds
        Rounds of the shared-time refit (0: none). All genes share the cells' times: the
        sample cells get one time from the trajectory genes together (first the median of
        each gene's projected time scaled to its range, then the time that fits all genes'
        curves at once), and every trajectory gene is refitted with the cells' times fixed
        (:mod:`~dynadask.kernels.shared_time`), on its own clock ``k T + b``. Each round
        refits at the time the previous one placed the cells at, weighting ``u`` and ``s``
        by the noise variances the previous round's refit left (the first round by the
        EM's); the alternation unfolds the time slowly (cells crowd the late end in the
        first rounds) and, through the pattern searches, not monotonically, so the round
        most likely under its own noise (the least mean over genes of ``log var_u + log
        var_s``) is kept. A gene whose
        cells are seen on the decay branch (``fit_reach`` at least ``MIN_REACH``) keeps its
        own curve (the branch pins its gamma; its refit only serves the shared time). Any
        other keeps the refit unless its own curve gives the held-out cells (the fit cells
        when none are held out) a mean log-likelihood more than 0.05 per cell higher, both
        curves placed at the cells' shared time (the own curve on the least-squares line of
        its projected times against the shared time;
        :func:`~dynadask.kernels.shared_time.clock_scores`); a kept refit's gamma above the
        extreme-cell slope is reported at the slope (``fit_gamma_free``), the bound on an
        induction as without the refit. Nothing is refitted in a
        stratum with fewer than ``MIN_SHARED_GENES`` trajectory genes or none without a
        seen decay branch.

    Attributes
    ----------
    params : dict
        After :meth:`fit`, each ``n_strata x n_genes``: ``alpha, beta (= 1), gamma,
        t_switch, gamma_b (= 0)``, ``gamma_r2`` (share of the spread of ``u`` and ``s``,
        each scaled to unit variance, that the curve explains), ``fit_likelihood`` (per-cell
        mean likelihood of the cells scaled to unit variance under the fitted noise),
        ``fit_steady``
        (1 where the steady-state ratio was reported), ``fit_var_u``, ``fit_var_s`` (noise
        variances), ``fit_t_min``, ``fit_t_max`` (earliest and latest latent times of the
        fit cells), ``fit_decay`` (the decay share), ``fit_past`` (share of the fit cells
        whose latent time is past ``t_switch``), ``fit_reach`` (95th percentile of the fit
        cells' latent time minus ``t_switch``: how far they run past the switch-off, in
        units of ``1 / beta``), ``fit_gamma_free`` (1 where the
        extreme-cell slope was reported: the curve's ``gamma`` not determined, or above
        the slope without a seen decay branch),
        ``fit_shared`` (1 where the shared-time refit was kept), ``fit_shared_gain`` (its
        held-out log-likelihood per cell minus the gene's own curve's), ``fit_clock_k``,
        ``fit_clock_b`` (the gene's clock against the shared time).
    """

    n_fit_cells: int = 2000
    n_grid: int = 24
    n_em: int = 4
    min_r2: float = ke.MIN_R2
    min_decay: float = ke.MIN_DECAY
    genes_per_task: int = 8
    random_state: int = 0
    holdout: int = 0
    shared_rounds: int = 32
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def fit(
        self,
        u: Any,
        s: Any,
        *,
        codes: np.ndarray | None = None,
        n_strata: int | None = None,
        reference_gamma: np.ndarray | None = None,
    ) -> DynamicalEM:
        """Fit every gene (in every stratum).

        Parameters
        ----------
        u, s
            Cells x genes unspliced and spliced values (moments or normalised layers).
        codes
            Stratum of each cell (-1 leaves a cell out); one stratum of all cells if None.
        n_strata
            Number of strata (default ``codes.max() + 1``).
        reference_gamma
            ``n_strata x genes`` slopes of a steady-state fit. With :attr:`holdout` cells,
            :attr:`params` gains ``fit_heldout_loglik`` (the held-out cells' mean
            log-likelihood under the fitted curve) and ``fit_heldout_loglik_ref`` (under the
            line ``u = reference_gamma s`` with its own noise fitted on the fit cells), both
            with ``u`` and ``s`` in units of the fit cells' variances.

        Returns
        -------
        DynamicalEM
            ``self``, with :attr:`params` set.
        """
        n = u.shape[0]
        codes = np.zeros(n, np.int64) if codes is None else np.asarray(codes, np.int64)
        n_strata = int(n_strata if n_strata is not None else codes.max() + 1)
        picks = [self._sample(np.flatnonzero(codes == k)) for k in range(n_strata)]
        rows = np.unique(np.concatenate(picks))
        got_u, got_s = (
            dense_rows(x, 0, x.shape[0])
            for x in compute(as_rows(u)[rows], as_rows(s)[rows], desc="dynamics: sample cells")
        )
        split = [self._split(np.searchsorted(rows, p)) for p in picks]
        fits = [self._fit_stratum(got_u[i], got_s[i]) for i, _ in split]
        tables = np.stack(compute(*fits, desc="dynamics: EM fits"))
        ratios = np.stack([_mean_ratio(got_u[i], got_s[i]) for i, _ in split])
        slopes = np.stack([kd.start_gamma(got_u[i], got_s[i]) for i, _ in split])
        self.params = self._params(tables, ratios, slopes)
        if self.shared_rounds > 0:
            for k, (i, j) in enumerate(split):
                fit_u, fit_s = got_u[i], got_s[i]
                test_u, test_s = (got_u[j], got_s[j]) if j.size else (fit_u, fit_s)
                self._shared(k, fit_u, fit_s, test_u, test_s, slopes[k])
        if self.holdout and reference_gamma is not None:
            ref = np.asarray(reference_gamma, np.float64).reshape(n_strata, -1)
            lls = compute(
                *[self._heldout(got_u, got_s, i, j, k, ref[k]) for k, (i, j) in enumerate(split)],
                desc="dynamics: held-out likelihoods",
            )
            self.params["fit_heldout_loglik"] = np.stack([x[0] for x in lls])
            self.params["fit_heldout_loglik_ref"] = np.stack([x[1] for x in lls])
        return self

    def _split(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit and held-out positions of a stratum's sampled cells (seeded)."""
        if not self.holdout or at.size < 20:
            return at, at[:0]
        rng = np.random.default_rng([self.random_state, 1])
        mixed = rng.permutation(at)
        # the fit comes first: a stratum short of n_fit_cells + holdout holds out what lies
        # beyond n_fit_cells, or a quarter of its cells if that is more
        n_out = min(self.holdout, max(at.size - self.n_fit_cells, at.size // HOLDOUT_SHARE))
        return np.sort(mixed[n_out:]), np.sort(mixed[:n_out])

    def _heldout(self, u, s, fit, out, k, ref) -> Any:
        p = self.params
        vectors = [p[c][k] for c in ("alpha", "fit_gamma_curve", "t_switch", "fit_var_u")]
        vectors += [p["fit_var_s"][k], ref]
        return gk.column_blocks(
            ke.heldout, [u[fit], s[fit], u[out], s[out]], vectors, self.genes_per_task,
            n_grid=self.n_grid,
        )  # fmt: skip

    def _params(self, table: np.ndarray, ratio: np.ndarray, slope: np.ndarray) -> dict:
        p = {k: table[:, i] for k, i in _AT.items()}
        steady = p["r2"] < self.min_r2
        decayed = (p["reach"] >= ke.MIN_REACH) & (p["gamma"] > ke.GAMMA_DRIFT)
        loose = ~steady & (p["decay"] < self.min_decay) & ~decayed
        # without a seen decay branch every cell is on the induction, where ds/dt >= 0 means
        # u >= gamma s: the extreme-cell slope bounds gamma from above (noise aside)
        loose |= ~steady & ~decayed & (p["gamma"] > slope)
        gamma = np.where(steady, ratio, np.where(loose, slope, p["gamma"]))
        out = {
            "alpha": p["alpha"],
            "beta": np.ones_like(gamma),
            "gamma": gamma,
            "t_switch": p["t_switch"],
            "gamma_b": np.zeros_like(gamma),
            "gamma_r2": p["r2"],
            "fit_likelihood": np.exp(p["loglik"]),
            "fit_steady": np.where(np.isfinite(p["r2"]), steady.astype(float), np.nan),
            "fit_var_u": p["var_u"],
            "fit_var_s": p["var_s"],
            "fit_t_min": p["t_min"],
            "fit_t_max": p["t_max"],
            "fit_decay": p["decay"],
            "fit_past": p["past"],
            "fit_reach": p["reach"],
            "fit_gamma_free": np.where(np.isfinite(p["decay"]), loose.astype(float), np.nan),
            "fit_gamma_curve": p["gamma"],
        }
        if self.shared_rounds > 0:
            out["fit_shared"] = np.where(np.isfinite(p["r2"]), 0.0, np.nan)
            for name in ("fit_shared_gain", "fit_clock_k", "fit_clock_b"):
                out[name] = np.full_like(gamma, np.nan)
        return out

    def _shared(
        self,
        k: int,
        u: np.ndarray,
        s: np.ndarray,
        ut: np.ndarray,
        st: np.ndarray,
        slope: np.ndarray,
    ) -> None:
        """Refit stratum ``k``'s trajectory genes at a cell time shared by them.

        Only genes without a seen decay branch keep the refit, its gamma capped at the
        extreme-cell ``slope`` (a bound on an induction, as in :meth:`_params`).

        ``u, s``: the fit cells; ``ut, st``: the cells that choose between the fits (held-out
        cells, or the fit cells when none are held out).
        """
        p = {name: v[k] for name, v in self.params.items()}
        curve = [p[c] for c in ("alpha", "fit_gamma_curve", "t_switch", "fit_var_u", "fit_var_s")]
        traj = (p["fit_steady"] == 0) & np.all(np.isfinite(np.stack(curve)), axis=0)
        genes = np.flatnonzero(traj)
        # the time comes from every trajectory gene's refit; a gene whose cells are seen on
        # the decay branch keeps its own curve (the branch pins gamma)
        free = p["fit_reach"][genes] < ke.MIN_REACH
        if genes.size < MIN_SHARED_GENES or not free.any():
            return
        uf, sf = np.ascontiguousarray(u[:, genes]), np.ascontiguousarray(s[:, genes])
        cur = [c[genes] for c in curve]
        times = ke.gene_times(uf, sf, *cur, n_grid=self.n_grid)
        span = p["fit_t_max"][genes] - p["fit_t_min"][genes]
        time = _unit(kst.shared_time(times, span, p["fit_t_min"][genes]))
        var = cur[3:]  # the EM's noise variances: the first round's weights, and the scores'
        grid = np.linspace(-0.1, 1.1, 121)
        best = None  # (mean log noise variance, refit, the time it was fitted at)
        cols = gk.share_columns([uf, sf])
        for r in range(self.shared_rounds):
            fit = compute(
                gk.column_blocks(
                    kst.refit_genes, cols, [*cur], self.genes_per_task,
                    time=time, n_grid=self.n_grid,
                ),
                desc="dynamics: shared-time refits",
            )[0]  # fmt: skip
            # each round weighs u and s by the noise the previous round's refit left (the
            # EM's own curve can leave s far noisier than it is, and a refit weighted by that
            # follows u alone); the round most likely under its own noise is kept: the least
            # mean over genes of log var_u + log var_s (each against the EM's)
            noise = kst.residual_variances(uf, sf, time, fit)
            score = np.nanmean(np.log(noise[0] / var[0]) + np.log(noise[1] / var[1]))
            if best is None or score < best[0]:
                best = (score, fit, time)
            if r + 1 < self.shared_rounds:  # the next round's time: the one these curves fit
                cur = [fit[0], fit[1], fit[2], noise[0], noise[1]]
                time = _unit(kst.joint_time(uf, sf, grid, *cur[:3], fit[3], fit[4], *noise))
        _, fit, used = best
        cur = [fit[0], fit[1], fit[2], *var]
        # the scored cells' shared time in the unit of the kept refit's time (the clocks')
        utf, stf = np.ascontiguousarray(ut[:, genes]), np.ascontiguousarray(st[:, genes])
        time_t = kst.joint_time(utf, stf, grid, *cur[:3], fit[3], fit[4], *var)
        own = np.stack([c[genes] for c in curve[:3]])
        scores = kst.clock_scores(uf, sf, used, utf, stf, time_t, own, fit, *var,
                                  n_grid=self.n_grid)  # fmt: skip
        gain = scores[1] - scores[0]
        take = np.isfinite(gain) & (gain >= -SHARED_MARGIN) & np.isfinite(fit[1]) & free
        at = genes[take]
        out = self.params
        for name, row in (("alpha", 0), ("fit_gamma_curve", 1), ("t_switch", 2)):
            out[name][k, at] = fit[row, take]
        out["fit_clock_k"][k, genes], out["fit_clock_b"][k, genes] = fit[3], fit[4]
        out["fit_shared_gain"][k, genes] = gain
        out["fit_shared"][k, at] = 1.0
        capped = fit[1, take] > slope[at]
        out["gamma"][k, at] = np.where(capped, slope[at], fit[1, take])
        out["fit_gamma_free"][k, at] = capped.astype(float)
        if not at.size:
            return
        ut_, st_ = np.ascontiguousarray(uf[:, take]), np.ascontiguousarray(sf[:, take])
        pt = ke.gene_times(ut_, st_, *[c[take] for c in cur], n_grid=self.n_grid)
        out["fit_t_min"][k, at], out["fit_t_max"][k, at] = np.nanmin(pt, 0), np.nanmax(pt, 0)
        out["fit_past"][k, at] = np.mean(pt > fit[2, take], axis=0)
        out["fit_reach"][k, at] = [ke.reach(pt[:, c], ts) for c, ts in enumerate(fit[2, take])]
        out["fit_decay"][k, at] = [
            ke.decay_share(np.ascontiguousarray(ut_[:, c]), np.ascontiguousarray(st_[:, c]), g)
            for c, g in enumerate(fit[1, take])
        ]

    def velocity(
        self, u: Any, s: Any, codes: np.ndarray | None = None, n_strata: int | None = None
    ) -> Any:
        """Lazy ``beta u - gamma s`` per cell with its stratum's parameters (float32)."""
        return splicing_velocity(self.params, u, s, codes, n_strata)

    def latent_time(self, u: Any, s: Any, genes: np.ndarray, stratum: int = 0) -> Any:
        """Lazy per-cell latent time shared by ``genes`` (row blocks; float64).

        Each gene's latent time of a cell (its projection on the gene's fitted curve,
        :func:`~dynadask.kernels.dynamical_em.gene_times`) is scaled so that the gene's
        earliest and latest times among the fit cells are 0 and 1, and the cell's time is
        the median over ``genes`` of these (a robust consensus of the genes' clocks).

        Parameters
        ----------
        u, s
            Cells x genes values, the columns the parameters were fitted on.
        genes
            Indices of the columns (genes) to combine.
        stratum
            Which stratum's parameters to use.
        """
        p = {k: np.asarray(v[stratum])[genes] for k, v in self.params.items()}
        return map_rows(
            _block_latent_time,
            u,
            s,
            n_cols=None,
            dtype=np.float64,
            genes=np.asarray(genes),
            curve=(
                p["alpha"], p["fit_gamma_curve"], p["t_switch"],
                p["fit_var_u"], p["fit_var_s"], p["fit_t_min"], p["fit_t_max"],
            ),
            n_grid=self.n_grid,
        )  # fmt: skip

    def _sample(self, cells: np.ndarray) -> np.ndarray:
        want = self.n_fit_cells + self.holdout
        if cells.size <= want:
            return cells
        rng = np.random.default_rng(self.random_state)
        return np.sort(rng.choice(cells, want, replace=False))

    def _fit_stratum(self, u: np.ndarray, s: np.ndarray) -> Any:
        return gk.column_blocks(
            ke.fit_genes,
            [u, s],
            [kd.start_gamma(u, s)],
            self.genes_per_task,
            n_grid=self.n_grid,
            n_em=self.n_em,
        )


# trajectory genes a shared time needs: with fewer it follows single genes' noise (a
# steady regime of benchmarks.regimes, 1,500 x 60, with 4 genes taken for trajectory ones:
# their refit at a time of their own making moved the rank from 0.995 to 0.909)
MIN_SHARED_GENES = 10
HOLDOUT_SHARE = 4  # a short stratum holds out at least 1 / HOLDOUT_SHARE of it (holdout at most)
SHARED_MARGIN = 0.05  # held-out log-likelihood per cell the gene's own curve must gain


def _unit(time: np.ndarray) -> np.ndarray:
    """``time`` scaled to span 0 to 1 over its finite values."""
    lo, hi = np.nanmin(time), np.nanmax(time)
    return (time - lo) / (hi - lo) if hi > lo else np.zeros_like(time)


def _mean_ratio(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Per-gene ``sum u / sum s`` over the finite cells (the steady-state ``gamma``)."""
    ok = np.isfinite(u) & np.isfinite(s)
    su, ss = np.where(ok, u, 0).sum(0), np.where(ok, s, 0).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss > 0, su / ss, np.nan)


def _block_latent_time(u: Any, s: Any, *, genes, curve, n_grid) -> np.ndarray:
    n = u.shape[0]
    ub = dense_rows(u, 0, n)[:, genes].astype(np.float64)
    sb = dense_rows(s, 0, n)[:, genes].astype(np.float64)
    alpha, gamma, t_switch, var_u, var_s, t_min, t_max = curve
    times = ke.gene_times(ub, sb, alpha, gamma, t_switch, var_u, var_s, n_grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = (times - t_min) / (t_max - t_min)
    out = np.full(n, np.nan)
    has = np.isfinite(scaled).any(axis=1)
    out[has] = np.nanmedian(scaled[has], axis=1)
    return out
