"""Simulations of splicing and metabolic-labelling experiments with known truth.

``simulate`` returns an in-memory AnnData; ``simulate_store`` writes the same cells straight
into a Zarr store, block by block on the active Dask scheduler. ``simulate_steady_labelling``
gives labelling designs (one-shot, kin, deg, mix_std_stm) on steady-state cells in closed
form, with a library size that varies from cell to cell. Models: independent genes,
the two-gene bifurcation (toggle switch) and oscillator, and the neurogenesis motif.
dynamo's simulator classes (``BifurcationTwoGenes``, ``OscillationTwoGenes``,
``Neurongenesis``, ``KinLabelingSimulator``) record exact paths of the same motifs;
``Gillespie(method=...)`` runs dynamo's designs with promoter switching or protein.
"""

from .designs import EXPERIMENTS
from .gillespie import Gillespie
from .models import (
    MODELS,
    Network,
    bifur2genes_params,
    bifur2genes_splicing_params,
    build_network,
    neurongenesis_params,
    osc2genes_params,
    osc2genes_splicing_params,
)
from .simulate import simulate, simulate_store
from .simulators import (
    BifurcationTwoGenes,
    KinLabelingSimulator,
    Neurongenesis,
    OscillationTwoGenes,
)
from .steady import simulate_steady_labelling
from .truth import fixed_points, vector_field

__all__ = [
    "BifurcationTwoGenes",
    "EXPERIMENTS",
    "Gillespie",
    "KinLabelingSimulator",
    "MODELS",
    "Network",
    "Neurongenesis",
    "OscillationTwoGenes",
    "bifur2genes_params",
    "bifur2genes_splicing_params",
    "build_network",
    "fixed_points",
    "neurongenesis_params",
    "osc2genes_params",
    "osc2genes_splicing_params",
    "simulate",
    "simulate_steady_labelling",
    "simulate_store",
    "vector_field",
]
