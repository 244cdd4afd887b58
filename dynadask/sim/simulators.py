"""dynamo's simulator classes: recorded Gillespie paths of the regulatory motifs as AnnData.

``BifurcationTwoGenes``, ``OscillationTwoGenes`` and ``Neurongenesis`` take dynamo's
constructor arguments and dictionaries (``bifur2genes_params`` …), scale them as dynamo
does (``r_aug`` multiplies the molecule-count parameters, ``tau`` divides the rates), run one
exact stochastic path per initial state (one Dask task each) and give dynamo's AnnData:
every recorded reaction event is a cell. Without ``beta`` in the dictionary a gene is one
species (``total``); with it, unspliced and spliced. ``KinLabelingSimulator`` labels the
cells of such a simulation for a given time at each cell's transcription rates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.blocks import map_rows
from ..graph.sim import path_tasks
from ..io.commit import commit
from ..kernels.sim_network import alpha_rows, reduced_field
from ..kernels.sim_path import label_cells
from .models import NEUROGENESIS_GENES, Network, build_network

log = logging.getLogger(__name__)


def _seeds(seed: int, tag: int, n: int) -> np.ndarray:
    return np.random.default_rng([int(seed), tag]).integers(0, 2**31 - 1, n)


class _MotifSimulator:
    """Common part of the motif simulators (see the subclasses for the arguments)."""

    model = ""
    synthesis_param_names: tuple[str, ...] = ()
    kinetic_param_names: tuple[str, ...] = ()  # divided by tau, besides beta and gamma

    def __init__(
        self,
        param_dict: Mapping,
        C0s: np.ndarray | None,  # noqa: N803 - dynamo's name
        r_aug: float,
        tau: float,
        n_C0s: int,  # noqa: N803 - dynamo's name
        gene_names: Sequence[str] | None,
        report_stoich: bool,
        seed: int,
    ) -> None:
        missing = [k for k in (*self.synthesis_param_names, "gamma") if k not in param_dict]
        if missing:
            raise MissingKeyError(
                f"param_dict lacks {missing}: start from dyn.sim.{self.model}_params and "
                "change the values you need"
            )
        if r_aug <= 0 or tau <= 0:
            raise InputError(f"r_aug and tau must be positive, got r_aug={r_aug}, tau={tau}")
        self.splicing = "beta" in param_dict
        self.seed = int(seed)
        self._rng = np.random.default_rng([self.seed, 13])
        self.network: Network = build_network(self.model, dict(param_dict), r_aug=r_aug, tau=tau)
        names = list(gene_names) if gene_names is not None else list(self.network.gene_names)
        if len(names) != self.network.n_genes:
            raise InputError(
                f"gene_names has {len(names)} names for a model of {self.network.n_genes} genes"
            )
        self.gene_names = names
        kinds = ("unspliced", "spliced") if self.splicing else ("total",)
        g = self.network.n_genes
        self.species = {k: list(range(i * g, (i + 1) * g)) for i, k in enumerate(kinds)}
        params = (*self.synthesis_param_names, *(("beta",) if self.splicing else ()), "gamma")
        self.param_dict = {k: np.asarray(self.network.var[f"true_{k}"]) for k in params}
        # whole-number parameters that no rate division touches stay integers (dynamo's dtypes)
        whole = float(r_aug).is_integer()
        for k in set(self.synthesis_param_names) - set(self.kinetic_param_names):
            if whole and np.asarray(param_dict[k]).dtype.kind in "iu":
                self.param_dict[k] = np.rint(self.param_dict[k]).astype(np.int64)
        self.C0s = self._initial(C0s, r_aug, tau)
        self.augment_C0_gaussian(int(n_C0s), sigma=5)
        self.C = self.T = self.V = self.traj_id = None
        if report_stoich:
            log.info("stoichiometry matrix:\n%s", self.stoichiometry())

    # ------------------------------------------------------------------ sizes, species
    def get_n_genes(self) -> int:
        """Return the number of genes."""
        return self.network.n_genes

    def get_n_species(self) -> int:
        """Return the number of species (genes, or twice that with splicing)."""
        return self.get_n_genes() * (2 if self.splicing else 1)

    def get_n_cells(self) -> int:
        """Return the number of simulated cells.

        Raises
        ------
        MissingKeyError
            Before :meth:`simulate`.
        """
        if self.C is None:
            raise MissingKeyError("no cells simulated yet: call simulate(t_span) first")
        return self.C.shape[0]

    def get_synthesized_species(self) -> list[int]:
        """Return the species transcription makes (``unspliced``, or ``total``)."""
        return self.species["unspliced" if self.splicing else "total"]

    def get_primary_species(self) -> list[int]:
        """Return the species the regulation reads (``spliced``, or ``total``)."""
        return self.species["spliced" if self.splicing else "total"]

    def stoichiometry(self) -> pd.DataFrame:
        """Return the stoichiometry matrix (reactions x species) of the model."""
        names = [f"{k}_{g}" for k in self.species for g in self.gene_names]
        rows, index = [], []
        for i, gene in enumerate(self.gene_names):
            syn = np.zeros(len(names))
            syn[self.get_synthesized_species()[i]] = 1
            rows.append(syn)
            index.append(f"synthesis_{gene}")
            if self.splicing:
                spl = np.zeros(len(names))
                spl[self.species["unspliced"][i]], spl[self.species["spliced"][i]] = -1, 1
                rows.append(spl)
                index.append(f"splicing_{gene}")
            deg = np.zeros(len(names))
            deg[self.get_primary_species()[i]] = -1
            rows.append(deg)
            index.append(f"degradation_{gene}")
        return pd.DataFrame(np.array(rows, dtype=int), index=index, columns=names)

    # ------------------------------------------------------------------ initial states
    def auto_C0(self, r_aug: float, tau: float) -> np.ndarray:  # noqa: N802 - dynamo's name
        """Return the model's default initial state (one row of species counts)."""
        return self._from_primary(self._primary0(r_aug))

    def _primary0(self, r_aug: float) -> np.ndarray:
        raise NotImplementedError  # every subclass defines its default state

    def _from_primary(self, x: np.ndarray) -> np.ndarray:
        if not self.splicing:
            return np.asarray(x, dtype=np.float64)
        u = self.network.gamma / self.network.beta * x
        return np.concatenate([u, x]).astype(np.float64)

    def _initial(self, C0s, r_aug, tau) -> np.ndarray:  # noqa: N803
        c0 = self.auto_C0(r_aug, tau) if C0s is None else np.asarray(C0s, dtype=np.float64)
        c0 = np.atleast_2d(c0)
        if c0.shape[1] != self.get_n_species() or not np.all(np.isfinite(c0)) or np.any(c0 < 0):
            raise InputError(
                f"C0s must be non-negative counts of the {self.get_n_species()} species "
                f"({', '.join(self.species)} per gene), got shape {c0.shape}"
            )
        return np.rint(c0)

    def augment_C0_gaussian(  # noqa: N802 - dynamo's name
        self, n: int, sigma: float = 5, inplace: bool = True
    ) -> np.ndarray:
        """Add ``n`` noisy copies of every initial state (Gaussian, ``sigma``, rounded, >= 0).

        Parameters
        ----------
        n
            Copies per initial state.
        sigma
            Standard deviation of the noise, in molecules.
        inplace
            Keep the result as the simulator's ``C0s``.

        Returns
        -------
        numpy.ndarray
            The initial states, the given ones first.
        """
        if n < 0 or sigma < 0:
            raise InputError(f"n and sigma must be non-negative, got n={n}, sigma={sigma}")
        parts = [self.C0s]
        for c0 in self.C0s:
            noisy = c0 + self._rng.normal(0.0, sigma, (int(n), c0.size))
            parts.append(np.rint(np.clip(noisy, 0, None)))
        c0s = np.vstack(parts)
        if inplace:
            self.C0s = c0s
        return c0s

    # ------------------------------------------------------------------ simulation
    def simulate(
        self,
        t_span: Sequence[float],
        n_cells: int | None = None,
        *,
        record_skip_steps: int = 0,
        record_max_length: int = 100_000,
    ) -> None:
        """Run one exact path per initial state over ``t_span`` (one Dask task each).

        Parameters
        ----------
        t_span
            Start and end time.
        n_cells
            Cells to keep, drawn without replacement from all recorded states (seeded);
            ``None`` keeps them all.
        record_skip_steps
            Record the state after every this many reactions (0: every reaction).
        record_max_length
            Most states recorded per path.

        Writes
        ------
        self
            ``T`` (times), ``C`` (cells x species counts), ``traj_id``, ``V`` (the velocity
            of the reduced model, ``alpha(x) - gamma x`` at the spliced / total levels).
        """
        t0, t1 = (float(v) for v in t_span)
        if not t1 > t0 or int(record_max_length) < 1:
            raise InputError(f"t_span must be [start, end] with end > start, got {t_span}")
        net = self.network
        tasks = path_tasks(
            net.kernel_net(),
            self.C0s,
            (t0, t1),
            beta=net.beta,
            gamma=net.gamma,
            splicing=self.splicing,
            seeds=_seeds(self.seed, 17, len(self.C0s)),
            skip=int(record_skip_steps),
            max_len=int(record_max_length),
        )
        (paths,) = compute(tasks, desc="simulate paths")
        T = np.concatenate([p[0] for p in paths])  # noqa: N806
        C = np.vstack([p[1] for p in paths])  # noqa: N806
        traj = np.concatenate([np.full(len(p[0]), i) for i, p in enumerate(paths)])
        if n_cells is not None and int(n_cells) <= len(T):
            keep = np.sort(self._rng.choice(len(T), int(n_cells), replace=False))
            T, C, traj = T[keep], C[keep], traj[keep]  # noqa: N806
        elif n_cells is not None:
            log.warning("cannot draw %d cells from %d recorded states: all kept", n_cells, len(T))
        self.T, self.C, self.traj_id = T, C, traj.astype(int)
        self.V = reduced_field(C[:, self.get_primary_species()], net.as_dict())

    def generate_anndata(self, remove_empty_cells: bool = False) -> ad.AnnData:
        """Return the simulated cells as an AnnData (dynamo's keys).

        Parameters
        ----------
        remove_empty_cells
            Drop cells without any RNA.

        Returns
        -------
        anndata.AnnData
            The cells, in memory.

        Writes
        ------
        X
            The sum of the species layers.
        layers
            ``unspliced`` and ``spliced`` (with splicing) or ``total``; ``total`` always;
            ``velocity_T`` (reduced-model velocity) and, with splicing, ``velocity_S``
            (``beta u - gamma s``).
        obs
            ``trajectory``, ``time``; index ``cell_name``.
        var
            The scaled parameters (``a, b, S, K, m, n, [beta,] gamma``); index ``gene_name``.
        """
        n = self.get_n_cells()
        obs = pd.DataFrame(
            {"trajectory": self.traj_id, "time": self.T},
            index=pd.Index([str(i) for i in range(n)], name="cell_name"),
        )
        var = pd.DataFrame(self.param_dict, index=pd.Index(self.gene_names, name="gene_name"))
        layers = {"velocity_T": np.asarray(self.V)}
        for name, idx in self.species.items():
            layers[name] = self.C[:, idx]
        X = sum(self.C[:, idx] for idx in self.species.values())  # noqa: N806
        layers.setdefault("total", X.copy())
        if self.splicing:
            p = self.param_dict
            layers["velocity_S"] = p["beta"] * layers["unspliced"] - p["gamma"] * layers["spliced"]
        adata = ad.AnnData(X, obs=obs, var=var, layers=layers)
        if remove_empty_cells:
            adata = adata[np.asarray(X.sum(axis=1)) > 0].copy()
        return adata


class BifurcationTwoGenes(_MotifSimulator):
    """The two-gene toggle switch (self-activation, mutual inhibition) as dynamo's simulator.

    Parameters
    ----------
    param_dict
        ``a, b, S, K, m, n, gamma`` per gene (``dyn.sim.bifur2genes_params``), and ``beta``
        for a splicing model (``bifur2genes_splicing_params``).
    C0s
        Initial states (rows of species counts: unspliced then spliced, or total); default
        the state where each gene is fully on, ``s = (a + b) / gamma``.
    r_aug
        Multiplies ``a, b, S, K`` (molecule counts).
    tau
        Divides ``a, b, beta, gamma`` (rates).
    n_C0s
        Noisy copies added per initial state (Gaussian, 5 molecules, rounded).
    gene_names
        Default ``gene_1, gene_2``.
    report_stoich
        Log the stoichiometry matrix.
    seed
        Seeds the initial-state noise, the paths and the cell draw.
    """

    model = "bifur2genes"
    synthesis_param_names = ("a", "b", "S", "K", "m", "n")
    kinetic_param_names = ("a", "b")

    def __init__(
        self,
        param_dict: Mapping,
        C0s: np.ndarray | None = None,  # noqa: N803 - dynamo's name
        r_aug: float = 20,
        tau: float = 3,
        n_C0s: int = 10,  # noqa: N803 - dynamo's name
        gene_names: Sequence[str] | None = None,
        report_stoich: bool = False,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__(param_dict, C0s, r_aug, tau, n_C0s, gene_names, report_stoich, seed)

    def _primary0(self, r_aug: float) -> np.ndarray:
        p = self.param_dict
        return (p["a"] + p["b"]) / p["gamma"]


class OscillationTwoGenes(_MotifSimulator):
    """The two-gene oscillator (gene 2 activates gene 1, gene 1 represses gene 2's partner).

    Gene 1 is activated by itself and repressed by gene 2; gene 2 is activated by itself and
    by gene 1 (dynamo's predator-prey motif). Arguments as :class:`BifurcationTwoGenes`
    (``dyn.sim.osc2genes_params``); the default initial state has 70 molecules of each
    gene's spliced (or total) RNA.
    """

    model = "osc2genes"
    synthesis_param_names = ("a", "b", "S", "K", "m", "n")
    kinetic_param_names = ("a", "b")

    def __init__(
        self,
        param_dict: Mapping,
        C0s: np.ndarray | None = None,  # noqa: N803 - dynamo's name
        r_aug: float = 20,
        tau: float = 3,
        n_C0s: int = 10,  # noqa: N803 - dynamo's name
        gene_names: Sequence[str] | None = None,
        report_stoich: bool = False,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__(param_dict, C0s, r_aug, tau, n_C0s, gene_names, report_stoich, seed)

    def _primary0(self, r_aug: float) -> np.ndarray:
        return np.full(2, 70.0)


class Neurongenesis(_MotifSimulator):
    """dynamo's 12-gene neurogenesis motif (Pax6 to neuron, astrocyte, oligodendrocyte).

    Arguments as :class:`BifurcationTwoGenes` without ``gene_names`` (the motif's genes,
    ``Pax6 … Sox8``); ``param_dict`` holds ``a, K, n, gamma`` (``dyn.sim.
    neurongenesis_params``), and ``beta`` for a splicing model (dynamo has none). The
    default initial state has ``2 r_aug`` molecules of Pax6 and nothing else.
    """

    model = "neurongenesis"
    synthesis_param_names = ("a", "K", "n")
    kinetic_param_names = ("a",)

    def __init__(
        self,
        param_dict: Mapping,
        C0s: np.ndarray | None = None,  # noqa: N803 - dynamo's name
        r_aug: float = 20,
        tau: float = 3,
        n_C0s: int = 10,  # noqa: N803 - dynamo's name
        report_stoich: bool = False,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__(
            param_dict, C0s, r_aug, tau, n_C0s, list(NEUROGENESIS_GENES), report_stoich, seed
        )

    def _primary0(self, r_aug: float) -> np.ndarray:
        x = np.zeros(self.get_n_genes())
        x[0] = 2.0 * r_aug
        return x


class KinLabelingSimulator:
    """A kinetic labelling experiment on the cells of a motif simulation.

    Each cell transcribes labelled RNA at its own rates (those of its state in the
    simulation, held fixed), which is spliced and degraded at the model's rates, from no
    labelled RNA, for the labelling time.

    Parameters
    ----------
    simulator
        A simulator that has run :meth:`simulate`.
    syn_rxn_tag
        The reactions that make the labelled RNA: ``'synthesis'`` (the only kind).
    seed
        Seeds the cells' labelling runs.
    """

    def __init__(
        self, simulator: _MotifSimulator, syn_rxn_tag: str = "synthesis", *, seed: int = 0
    ) -> None:
        if syn_rxn_tag != "synthesis":
            raise InputError(f"syn_rxn_tag must be 'synthesis', got {syn_rxn_tag!r}")
        if getattr(simulator, "C", None) is None:
            raise MissingKeyError(
                "the simulator has no cells: call simulator.simulate(t_span) first"
            )
        self.n_cells = simulator.get_n_cells()
        self.splicing = simulator.splicing
        self.seed = int(seed)
        g = simulator.get_n_genes()
        names = ("ul", "sl") if self.splicing else ("new",)
        self.species = {k: list(range(i * g, (i + 1) * g)) for i, k in enumerate(names)}
        self.gene_names = list(simulator.gene_names)
        net = simulator.network
        self._rates = (np.asarray(net.beta), np.asarray(net.gamma))
        primary = simulator.C[:, simulator.get_primary_species()]
        self.alpha = alpha_rows(np.ascontiguousarray(primary, dtype=np.float64), *net.kernel_net())
        self.Cl = self.Tl = self._label_time = None

    def get_n_cells(self) -> int:
        """Return the number of cells."""
        return self.n_cells

    def simulate(self, label_time: float | np.ndarray) -> None:
        """Label every cell for ``label_time`` (one value, or one per cell).

        Writes
        ------
        self
            ``Cl`` (cells x labelled species), ``Tl`` (time of each cell's last reaction).
        """
        times = np.broadcast_to(np.asarray(label_time, dtype=np.float64), (self.n_cells,))
        if not np.all(np.isfinite(times)) or np.any(times < 0):
            raise InputError("label_time must be non-negative: one value or one per cell")
        beta, gamma = self._rates
        n_species = sum(len(v) for v in self.species.values())
        lazy = map_rows(
            _label_block,
            self.alpha,
            times[:, None].copy(),
            _seeds(self.seed, 19, self.n_cells)[:, None],
            n_cols=n_species + 1,
            dtype=np.float64,
            beta=beta,
            gamma=gamma,
            splicing=self.splicing,
        )
        (out,) = compute(lazy, desc="labelling")
        self.Cl, self.Tl, self._label_time = out[:, :n_species], out[:, n_species], times.copy()

    def write_to_anndata(self, adata: ad.AnnData) -> ad.AnnData:
        """Add the labelled RNA to ``adata`` (in memory or a store) and return it.

        Writes
        ------
        layers
            ``ul`` and ``sl`` (splicing model) or ``new``.
        obs
            ``actual_label_time`` (last reaction), ``label_time``.
        """
        if self.Cl is None:
            raise MissingKeyError("no labelling simulated yet: call simulate(label_time) first")
        if adata.n_vars != len(self.gene_names) or adata.n_obs != self.n_cells:
            raise InputError(
                f"adata is {adata.n_obs} x {adata.n_vars}; the labelling has {self.n_cells} "
                f"cells x {len(self.gene_names)} genes: pass the simulator's generate_anndata()"
            )
        layers = {k: self.Cl[:, idx] for k, idx in self.species.items()}
        obs = {"actual_label_time": self.Tl, "label_time": self._label_time}
        commit(adata, "kin_labeling", layers=layers, obs=obs)
        return adata


def _label_block(alpha, times, seeds, *, beta, gamma, splicing):
    return label_cells(
        np.ascontiguousarray(alpha, dtype=np.float64), times[:, 0], seeds[:, 0], beta, gamma,
        splicing,
    )  # fmt: skip
