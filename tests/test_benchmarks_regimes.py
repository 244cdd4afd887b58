"""benchmarks.regimes' simulation: the cells' spread in time."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import regimes as R


def _quarter_shares(a) -> np.ndarray:
    counts, _ = np.histogram(a.obs["true_time"], bins=4, range=(0, R.SPAN))
    return counts / counts.sum()


def test_time_densities_spread_the_cells_as_documented():
    # density 1/2 to 3/2 over the span: CDF (x + x^2) / 2, quarters 5/32, 7/32, 9/32, 11/32
    late = np.array([5, 7, 9, 11]) / 32
    uniform = R.simulate(4000, 2, "induction", seed=3)
    np.testing.assert_allclose(_quarter_shares(uniform), 0.25, atol=0.02)
    later = R.simulate(4000, 2, "induction", seed=3, time_density="late")
    np.testing.assert_allclose(_quarter_shares(later), late, atol=0.02)
    early = R.simulate(4000, 2, "induction", seed=3, time_density="early")
    np.testing.assert_allclose(_quarter_shares(early), late[::-1], atol=0.02)
    # the default draws are the ones the tables were measured on
    same = R.simulate(4000, 2, "induction", seed=3, time_density="uniform")
    np.testing.assert_array_equal(same.obs["true_time"], uniform.obs["true_time"])
    np.testing.assert_array_equal(
        same.layers["spliced"].toarray(), uniform.layers["spliced"].toarray()
    )


def test_unknown_time_density_is_refused():
    with pytest.raises(ValueError, match="time_density"):
        R.simulate(50, 2, "induction", time_density="bimodal")
