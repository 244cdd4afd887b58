"""The simulated models: independent genes and dynamo's regulatory motifs, as Hill-term tables.

Each builder returns a :class:`Network`: the per-gene splicing and degradation rates, the
transcription terms (see :mod:`dynadask.kernels.sim_network`), the initial means of the
trajectories and a default time span. The motifs take dynamo's parameter dictionaries
(``bifur2genes_params`` …) with dynamo's scaling: ``r_aug`` multiplies the parameters that
count molecules (``a, b, S, K``) and ``tau`` divides the rates (``a, b, beta, gamma``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .._core.errors import InputError, MissingKeyError
from ..kernels.sim_network import ACT, CONST, INH, PROD_ACT, SUM_ACT, is_coupled

bifur2genes_params = {
    "gamma": [0.2, 0.2],
    "a": [0.5, 0.5],
    "b": [0.5, 0.5],
    "S": [2.5, 2.5],
    "K": [2.5, 2.5],
    "m": [5, 5],
    "n": [5, 5],
}
bifur2genes_splicing_params = {"beta": [1.0, 1.0], **bifur2genes_params}
osc2genes_params = {
    "gamma": [0.5, 0.5],
    "a": [1.5, 0.5],
    "b": [1.0, 2.5],
    "S": [2.5, 2.5],
    "K": [2.5, 2.5],
    "m": [5, 5],
    "n": [10, 10],
}
osc2genes_splicing_params = {"beta": [1.0, 1.0], **osc2genes_params}
neurongenesis_params = {
    "gamma": [1.0] * 12,
    "a": [2.2, 4, 3, 3, 3, 4, 5, 5, 3, 3, 3, 3],
    "K": [10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    "n": [4.0] * 12,
}
NEUROGENESIS_GENES = (
    "Pax6", "Mash1", "Zic1", "Brn2", "Tuj1", "Hes5", "Scl", "Olig2", "Stat3", "A1dh1L",
    "Myt1L", "Sox8",
)  # fmt: skip
# (kind, inputs) of each neurogenesis gene, in NEUROGENESIS_GENES order
_NEURO_WIRING = (
    (INH, (4, 9, 11)), (ACT, (0, 5)), (ACT, (1,)), (ACT, (1, 7)), (SUM_ACT, (2, 3, 10)),
    (ACT, (0, 1)), (ACT, (5, 7)), (ACT, (5, 6)), (PROD_ACT, (5, 6)), (ACT, (8,)),
    (ACT, (7,)), (ACT, (7,)),
)  # fmt: skip


@dataclass(frozen=True)
class Network:
    """A simulated gene network with known parameters.

    Attributes
    ----------
    name
        The model's name.
    gene_names
        One name per gene.
    beta, gamma
        Splicing and degradation rate per gene.
    gene, kind, inputs, par
        The transcription terms: target gene, kind, input genes (-1 pads), ``(a, K, n)``.
    x0
        Initial means per trajectory, (n_traj, genes, 2) for (unspliced, spliced).
    t_span
        Default simulated time span.
    var
        Per-gene truth columns for ``var`` (``true_alpha`` for constant transcription, …).
    """

    name: str
    gene_names: tuple[str, ...]
    beta: np.ndarray
    gamma: np.ndarray
    gene: np.ndarray
    kind: np.ndarray
    inputs: np.ndarray
    par: np.ndarray
    x0: np.ndarray
    t_span: tuple[float, float]
    var: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_genes(self) -> int:
        """The number of genes."""
        return len(self.gene_names)

    @property
    def coupled(self) -> bool:
        """Whether transcription depends on the state (a regulatory motif)."""
        return is_coupled(self.inputs, self.kind)

    def kernel_net(self) -> tuple[np.ndarray, ...]:
        """The term tables in the form the simulation kernels take."""
        return (self.gene, self.kind, self.inputs, self.par)

    def as_dict(self) -> dict[str, np.ndarray]:
        """The network as plain arrays (for ``uns`` and the vector-field kernels)."""
        keys = ("beta", "gamma", "gene", "kind", "inputs", "par")
        return {k: np.asarray(getattr(self, k)) for k in keys}


class _Terms:
    """Collects Hill terms row by row."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, tuple[int, ...], tuple[float, float, float]]] = []

    def add(self, gene: int, kind: int, inputs: tuple[int, ...], a: float, k=1.0, n=1.0):
        self.rows.append((gene, kind, inputs, (float(a), float(k), float(n))))

    def arrays(self) -> dict[str, np.ndarray]:
        inputs = np.full((len(self.rows), 3), -1, dtype=np.int64)
        for i, row in enumerate(self.rows):
            inputs[i, : len(row[2])] = row[2]
        return {
            "gene": np.array([r[0] for r in self.rows], dtype=np.int64),
            "kind": np.array([r[1] for r in self.rows], dtype=np.int64),
            "inputs": inputs,
            "par": np.array([r[3] for r in self.rows], dtype=np.float64).reshape(-1, 3),
        }


def _per_gene(params: Mapping, name: str, n_genes: int, default=None) -> np.ndarray:
    value = params.get(name, default)
    if value is None:
        raise MissingKeyError(f"parameter {name!r} is missing: give it in `params`")
    value = np.broadcast_to(np.asarray(value, dtype=np.float64), (n_genes,)).copy()
    if not np.all(np.isfinite(value)) or np.any(value < 0):
        raise InputError(f"parameter {name!r} must be finite and non-negative, got {value}")
    return value


def _positive_rates(beta: np.ndarray, gamma: np.ndarray) -> None:
    if np.any(beta <= 0) or np.any(gamma <= 0):
        raise InputError("splicing (beta) and degradation (gamma) rates must be positive")


def _random_kinetics(n_genes: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 7])
    return {
        "alpha": np.exp(rng.uniform(np.log(2.0), np.log(50.0), n_genes)),
        "beta": np.exp(rng.uniform(np.log(0.5), np.log(2.0), n_genes)),
        "gamma": np.exp(rng.uniform(np.log(0.1), np.log(1.0), n_genes)),
    }


def independent(
    params: Mapping | None = None,
    *,
    n_genes: int = 20,
    start: str = "zero",
    seed: int = 0,
    **_: object,
) -> Network:
    """Genes with constant transcription ``alpha``, splicing ``beta`` and degradation ``gamma``.

    Missing parameters are drawn log-uniformly (alpha 2-50, beta 0.5-2, gamma 0.1-1) from
    ``seed``. ``start`` is ``"zero"`` (an induction from no RNA) or ``"steady"`` (the
    stationary distribution, independent Poissons of means alpha/beta and alpha/gamma).
    """
    params = {**_random_kinetics(n_genes, seed), **dict(params or {})}
    n_genes = int(np.size(params["alpha"])) if np.ndim(params["alpha"]) else n_genes
    alpha, beta, gamma = (_per_gene(params, k, n_genes) for k in ("alpha", "beta", "gamma"))
    _positive_rates(beta, gamma)
    if start not in ("zero", "steady"):
        raise InputError(f"start must be 'zero' or 'steady', got {start!r}")
    terms = _Terms()
    for g in range(n_genes):
        terms.add(g, CONST, (), alpha[g])
    x0 = np.stack([alpha / beta, alpha / gamma], axis=1)[None] * (start == "steady")
    span = (0.0, float(4.0 / np.median(gamma)))
    names = tuple(f"gene_{i}" for i in range(n_genes))
    truth = {"true_alpha": alpha, "true_beta": beta, "true_gamma": gamma}
    return Network(
        "independent", names, beta, gamma, **terms.arrays(), x0=x0, t_span=span, var=truth
    )


def _scaled(
    params: Mapping,
    names: tuple[str, ...],
    n_genes: int,
    r_aug: float,
    tau: float,
    molecular: tuple[str, ...],
    kinetic: tuple[str, ...],
) -> dict[str, np.ndarray]:
    p = {k: _per_gene(params, k, n_genes) for k in names}
    p["beta"] = _per_gene(params, "beta", n_genes, default=1.0)
    for k in molecular:
        p[k] = p[k] * r_aug
    for k in (*kinetic, "beta", "gamma"):
        p[k] = p[k] / tau
    _positive_rates(p["beta"], p["gamma"])
    return p


def _trajectories(
    s0: np.ndarray, beta: np.ndarray, gamma: np.ndarray, n_traj: int, seed: int, sigma: float = 5.0
) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    s = np.vstack([s0, np.clip(s0 + rng.normal(0, sigma, (n_traj - 1, s0.size)), 0, None)])
    return np.stack([s * gamma / beta, s], axis=2)


def _two_gene(name: str, second_kind: int, defaults: Mapping):
    def build(
        params: Mapping | None = None,
        *,
        r_aug: float = 20.0,
        tau: float = 3.0,
        n_traj: int = 10,
        seed: int = 0,
        **_: object,
    ) -> Network:
        given = {**defaults, **dict(params or {})}
        p = _scaled(
            given,
            ("a", "b", "S", "K", "m", "n", "gamma"),
            2,
            r_aug,
            tau,
            ("a", "b", "S", "K"),
            ("a", "b"),
        )
        terms = _Terms()
        for g, other in ((0, 1), (1, 0)):
            terms.add(g, ACT, (g,), p["a"][g], p["S"][g], p["m"][g])
            kind = INH if g == 0 else second_kind
            terms.add(g, kind, (other,), p["b"][g], p["K"][g], p["n"][g])
        s0 = (p["a"] + p["b"]) / p["gamma"] if second_kind == INH else np.full(2, 70.0)
        x0 = _trajectories(s0, p["beta"], p["gamma"], n_traj, seed)
        truth = {f"true_{k}": p[k] for k in ("a", "b", "S", "K", "m", "n", "beta", "gamma")}
        return Network(
            name,
            ("gene_1", "gene_2"),
            p["beta"],
            p["gamma"],
            **terms.arrays(),
            x0=x0,
            t_span=(0.0, 50.0 * tau),
            var=truth,
        )

    return build


def neurogenesis(
    params: Mapping | None = None,
    *,
    r_aug: float = 20.0,
    tau: float = 3.0,
    n_traj: int = 10,
    seed: int = 0,
    **_: object,
) -> Network:
    """The 12-gene neurogenesis motif (Pax6 → neuron / astrocyte / oligodendrocyte fates)."""
    given = {**neurongenesis_params, **dict(params or {})}
    p = _scaled(given, ("a", "K", "n", "gamma"), 12, r_aug, tau, ("a", "K"), ("a",))
    terms = _Terms()
    for g, (kind, inputs) in enumerate(_NEURO_WIRING):
        terms.add(g, kind, inputs, p["a"][g], p["K"][g], p["n"][g])
    s0 = np.zeros(12)
    s0[0] = 2.0 * r_aug
    x0 = _trajectories(s0, p["beta"], p["gamma"], n_traj, seed)
    truth = {f"true_{k}": p[k] for k in ("a", "K", "n", "beta", "gamma")}
    return Network(
        "neurogenesis",
        NEUROGENESIS_GENES,
        p["beta"],
        p["gamma"],
        **terms.arrays(),
        x0=x0,
        t_span=(0.0, 15.0 * tau),
        var=truth,
    )


MODELS: dict[str, Callable[..., Network]] = {
    "independent": independent,
    "bifurcation": _two_gene("bifurcation", INH, bifur2genes_splicing_params),
    "oscillation": _two_gene("oscillation", ACT, osc2genes_splicing_params),
    "neurogenesis": neurogenesis,
}
ALIASES = {
    "kinetic": "independent", "bifur2genes": "bifurcation", "twogenes": "bifurcation",
    "toggle": "bifurcation", "osc2genes": "oscillation", "neurongenesis": "neurogenesis",
}  # fmt: skip


def build_network(model: str | Network, params: Mapping | None = None, **options) -> Network:
    """Return the :class:`Network` of ``model`` (a name or a network) with ``params``."""
    if isinstance(model, Network):
        return model
    name = ALIASES.get(model, model)
    if name not in MODELS:
        known = ", ".join(sorted({*MODELS, *ALIASES}))
        raise InputError(f"unknown model {model!r}: use one of {known}")
    return MODELS[name](params, **options)
