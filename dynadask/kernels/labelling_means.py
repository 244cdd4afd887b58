"""Closed-form mean RNA levels of labelling designs run on cells at steady state (pure numpy).

Genes are independent, with constant transcription ``alpha``, splicing ``beta`` and decay
``gamma`` (per hour). A cell is at steady state (``u = alpha / beta``, ``s = alpha / gamma``)
when the label is added. Labelled and unlabelled RNA follow the same first-order chain, the
labelled one fed by ``alpha`` only while the label is on, so their means are closed form:

* ``kin`` / ``one-shot``: labelled for ``t``;
* ``deg``: labelled for ``pulse`` (a long pulse labels everything), then chased for ``t``;
* ``mix_std_stm``: labelled for ``T`` (the longest time), the last ``t`` of it stimulated
  (transcription ``alpha_stm`` instead of ``alpha``).

Without splicing (``new`` / ``total`` only) the RNA is one species decaying at ``gamma``.
"""

from __future__ import annotations

import numpy as np

from .._core.errors import InputError


def _gap(beta: np.ndarray, gamma: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """``(exp(-beta tau) - exp(-gamma tau)) / (gamma - beta)``, finite when beta ~ gamma."""
    d = (gamma - beta) * tau
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.abs(d) > 1e-12, np.expm1(d) / np.where(d == 0, 1, d), 1.0)
    return np.exp(-gamma * tau) * tau * ratio


def chain(alpha, beta, gamma, u0, s0, tau) -> tuple[np.ndarray, np.ndarray]:
    """Mean unspliced and spliced RNA after ``tau`` at constant ``alpha`` from ``(u0, s0)``."""
    u_inf = alpha / beta
    du = u0 - u_inf
    u = u_inf + du * np.exp(-beta * tau)
    s = (
        alpha / gamma
        + (s0 - alpha / gamma) * np.exp(-gamma * tau)
        + beta * du * _gap(beta, gamma, tau)
    )
    return u, s


def one_species(alpha, gamma, x0, tau) -> np.ndarray:
    """Mean RNA after ``tau`` at constant ``alpha`` from ``x0``, decaying at ``gamma``."""
    x_inf = alpha / gamma
    return x_inf + (x0 - x_inf) * np.exp(-gamma * tau)


def labelled_means(
    design: str,
    rates: dict[str, np.ndarray],
    t: np.ndarray,
    *,
    splicing: bool,
    pulse: float = np.inf,
    big_t: float | None = None,
) -> dict[str, np.ndarray]:
    """Mean counts (cells x genes) of each layer for cells at steady state.

    Parameters
    ----------
    design
        ``'one-shot'``, ``'kin'``, ``'deg'`` or ``'mix_std_stm'``.
    rates
        Per-gene ``alpha``, ``beta``, ``gamma`` (and ``alpha_stm`` for ``mix_std_stm``).
    t
        Each cell's time (label, chase or stimulation duration), shape (cells,).
    splicing
        Return ``uu, ul, su, sl`` (else ``new, old``: labelled and unlabelled RNA of one
        species).
    pulse
        Pulse length of ``deg`` (``inf``: every molecule labelled when the chase starts).
    big_t
        Labelling duration of ``mix_std_stm`` (default the longest ``t``).

    Returns
    -------
    dict
        ``{'uu', 'ul', 'su', 'sl'}`` or ``{'new', 'old'}`` means: independent species
        (their counts are drawn apart, and ``total = new + old``).
    """
    alpha, beta, gamma = rates["alpha"], rates["beta"], rates["gamma"]
    t = np.asarray(t, dtype=np.float64)[:, None]
    zero = np.zeros_like(t)
    big_t = float(t.max()) if big_t is None else float(big_t)
    if splicing:
        ss = (alpha / beta + zero, alpha / gamma + zero)

        def grow(a, u0, s0, tau):
            return chain(a, beta, gamma, u0, s0, tau)
    else:
        ss = (alpha / gamma + zero,)

        def grow(a, x0, tau):
            return (one_species(a, gamma, x0, tau),)

    none = tuple(zero for _ in ss)
    if design in ("one-shot", "kin"):
        lab = grow(alpha, *none, t)
        old = tuple(x - y for x, y in zip(ss, lab, strict=True))
    elif design == "deg":
        start = ss if np.isinf(pulse) else grow(alpha, *none, zero + pulse)
        lab = grow(0.0, *start, t)
        old = tuple(x - y for x, y in zip(ss, lab, strict=True))
    elif design == "mix_std_stm":
        lab = grow(alpha, *none, big_t - t)
        lab = grow(rates["alpha_stm"], *lab, t)
        old = grow(0.0, *ss, zero + big_t)
    else:
        raise InputError(f"unknown design {design!r}: use one-shot, kin, deg or mix_std_stm")
    if splicing:
        return {"uu": old[0], "ul": lab[0], "su": old[1], "sl": lab[1]}
    return {"new": lab[0], "old": old[0]}
