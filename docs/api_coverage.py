"""Which of dynamo's public names dynadask offers: the table in docs/api.md.

    python docs/api_coverage.py --dynamo-src /path/to/dynamo   # re-read dynamo's names
    python docs/api_coverage.py                                 # rewrite docs/api.md

dynamo's public names per namespace (``dyn.pp``, ``dyn.tl``, ...) are read from its source
without importing it (``pip download --no-deps dynamo-release==1.5.3`` and unzip): a
namespace's names are those its module binds by relative imports, definitions and
assignments, following ``from .x import *`` (through ``__all__`` where the module has one).
They are kept in ``docs/dynamo_names.json``, so the table can be rebuilt, and checked by the
tests, on a machine without dynamo. dynadask's names are read by importing it.

Each dynamo name is then *offered* (same name, same call), *offered with a difference*
(listed in ``DIFFERENCES`` below with the difference), or *not offered*, with the reason
from ``NOT_OFFERED`` (first matching rule).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import re
from pathlib import Path

HERE = Path(__file__).parent
NAMES = HERE / "dynamo_names.json"
TABLE = HERE / "api.md"
NAMESPACES = ("pp", "est", "tl", "vf", "pd", "pl", "mv", "sim", "ext", "sample_data",
              "configuration")  # fmt: skip
SOURCES = {  # the module each namespace star-imports from, relative to dynamo/
    "pp": "preprocessing",
    "est": "estimation",
    "tl": "tools",
    "vf": "vectorfield",
    "pd": "prediction",
    "pl": "plot",
    "mv": "movie",
    "sim": "simulation",
    "ext": "external",
    "sample_data": "sample_data",
    "configuration": "configuration",
}

_SIM_CLASS = (
    "seeded (seed=); initial states rounded to whole molecules, n_C0s noisy copies of each "
    "(dynamo adds n_C0s per species around a single state); the initial state is a cell; "
    "drawn cells in path order"
)
# Offered under the same name, with a behaviour a dynamo user should know about.
DIFFERENCES: dict[str, str] = {
    "pp.recipe_monocle": "works on a Zarr store out of core; the kNN graph is NN-descent",
    "pp.normalize_layers_pearson_residuals": "genes or cells without counts get residual 0 "
    "(dynamo: NaN); uns records the clip used (dynamo: the argument, None by default)",
    "pp.Preprocessor": "recipes monocle, seurat, sctransform, pearson_residuals, "
    "monocle_pearson_residuals; the sctransform recipe keeps the genes it does not model "
    "(dynamo subsets var to them; their X columns keep counts); dynamo's function-valued "
    "options are ignored with a warning",
    "pp.sctransform": "the step-1 fit samples 5,000 cells when n_cells is not given (dynamo: "
    "all cells) and is seeded (seed=); inplace=False is refused (dynamo's wrapper discards "
    "its copy); adata.raw is not set",
    "tl.neighbors": "NN-descent (pynndescent's method, own implementation) on every size",
    "tl.dynamics": "one-shot/kinetics/degradation/mixed labelling and splicing models; "
    "est_method 'em' adds the EM dynamical model; model='auto' chooses per gene between it "
    "and the steady-state fit (dynamo's 'auto' is the default, model=None)",
    "vf.VectorField": "SparseVFC fitted on a kNN-spread sample, evaluated for every cell by blocks",
    "ext.ddhodge": "the potential is solved by preconditioned conjugate gradients",
    "tl.find_group_markers": "the control group's values are sorted and each group's own "
    "counts are used (dynamo keeps the last cells of a sparse X, and counts the test group "
    "twice on a dense layer)",
    "tl.top_n_markers": "with_moran_i needs the Moran columns in var (moran_i is not built)",
    "tl.stationary_distribution": "reads the method's transition matrix (obsp['<method>_"
    "transition_matrix']) that cell_velocities writes; the sink is the left eigenvector "
    "(dynamo's sink is the right one, uniform, and its source is dynadask's sink); a missing "
    "transition_matrix_rnd is skipped with a warning (dynamo: KeyError); 'diffusion' takes a "
    "sparse T (dynamo's fails on one)",
    "tl.cell_growth_rate": "without clone information, birth_genes and death_genes must be "
    "given (no downloaded default lists); with clones each source cell's rate uses its own "
    "clone's counts (dynamo 1.5.3 divides the k-th target cell's clone count by the k-th "
    "source cell's, and fails unless both groups have as many cells)",
    "tl.scv_dyn_convertor": "on a store the keys under their old names stay in the store",
    "tl.sample": "the kmeans method is seeded; a missing X / V is an InputError (dynamo: "
    "NotImplementedError)",
    "pp.filter_genes_by_outliers": "a store's genes are flagged, never dropped (with a warning)",
    "pp.filter_genes_by_pattern": "a store's genes are not dropped: the flags are returned; "
    "with no gene matched the all-False flags are returned (dynamo: None)",
    "pp.calc_dispersion_by_svr": "winsorize=True is refused (needs per-gene percentiles)",
    "pp.scale": "each layer by its own totals, as dynamo's loop (scale_to_layer is only checked)",
    "pp.highest_frac_genes": "rows: cells with counts; a store's uns gets no gene_mat copy of X",
    "pl.basic_stats": "returns a FacetGrid-like object (seaborn is not a dependency); the QC "
    "columns are computed for the figure, not written to obs",
    "pl.show_fraction": "returns a FacetGrid-like object (seaborn is not a dependency)",
    "pl.exp_by_groups": "FacetGrid-like return; log=False plots the values as they are",
    "pl.highest_frac_genes": "the table stays in the figure (no uns['highest_frac_genes'])",
    "pl.biplot": "genes are labelled by gene name",
    "pl.feature_genes": "draws after dynadask's monocle selection, which writes var['log_m'], "
    "['log_cv'] and uns['velocyto_SVR'] (dynamo 1.5.3's preprocessing writes none of them, so "
    "its feature_genes fails after its own recipes)",
    "tl.confident_cell_velocities": "dense or sparse M_s / velocity_S layers (dynamo 1.5.3's "
    "gene_wise_confidence fails on dense ones with an IndexError)",
    "pl.loading": "genes are labelled by gene name",
    "pd.fate_bias": "exact kNN search at every size; paths with zero time steps do not raise",
    "vf.Potential": "basis is used; limits from the cells; Tang's paths start at the stable "
    "point, exact gradient, Zgrid aligned with Xgrid; a constant diffusion matrix",
    "pd.state_graph": "method 'vf' only; seeded start cells; mean passing times per trajectory",
    "pl.state_graph": "group and basis are the first arguments; returns the axes",
    "pl.show_landscape": "the grids are keyword arguments after basis",
    "mv.animate_fates": "frames from the stored fates (no re-integration); save_show_or_return="
    "'return' gives the animation; GIF with Pillow, MP4 with ffmpeg",
    "pl.fate_bias": "an imshow heatmap clustered as seaborn's clustermap, without dendrograms",
    "pl.kinetic_curves": "arguments after mode are keyword-only; matplotlib panels: a "
    "trajectory's line, or the cells with their running mean (n_convolve, spaced_num) in "
    "pseudotime mode (dynamo: seaborn lines through every cell); log applies to layers only, "
    "trajectories are drawn as stored; color='ntr' absent draws one colour, another absent "
    "column raises",
    "pl.kinetic_heatmap": "arguments after mode are keyword-only; an imshow heatmap (seaborn's "
    "clustermap in dynamo, no dendrograms); the running mean is cut at the ends (dynamo's "
    "np.convolve pads with zeros); half_max_ordering forms a transient group (dynamo's never "
    "does); cell_group colours pseudotime columns by their cells' majority; the table is not "
    "written to uns",
    "pl.jacobian_kinetics": "arguments after regulators are keyword-only; an imshow heatmap "
    "centred on zero (seaborn's clustermap in dynamo, no dendrograms); mode 'pseudotime' only "
    "(the array is per cell); tkey='potential' reads ddhodge's column (dynamo recomputes "
    "ddhodge); 'maximum' and 'half_max_ordering' use the running mean cut at the ends",
    "pl.sensitivity_kinetics": "as pl.jacobian_kinetics, on uns['sensitivity_<basis>']",
    "vf.cell_accelerations": "writes obsm['acceleration_<basis>'] and "
    "obsp['acceleration_transition_matrix'] (dynamo 1.5.3 drops its key and overwrites "
    "velocity_<basis> and the velocity transition matrix); a missing field raises (dynamo fits "
    "one); vf_basis an embedding or equal to basis raises (dynamo does nothing)",
    "vf.cell_curvatures": "as vf.cell_accelerations, with the curvature vectors and keys",
    "pd.least_action": "initial paths on a kNN graph in the basis over <= 20,000 sampled cells "
    "(adj_key= for a stored graph); L-BFGS-B (optimizer='BFGS' for dynamo's); no min_lap_t; "
    "arrays stacked over the paths",
    "pd.perturbation": "J v from the field (jac_key not read); projection 'pearson' (default) "
    "or 'cosine', not 'fp'",
    "sim.BifurcationTwoGenes": _SIM_CLASS,
    "sim.OscillationTwoGenes": _SIM_CLASS,
    "sim.Neurongenesis": _SIM_CLASS + "; with beta in param_dict also a splicing model",
    "sim.Gillespie": "seeded (seed=); parameters after the third keyword-only; the species "
    "carry their names ('basic' and 'simulate_2bifurgenes' swap layers in dynamo), paths are "
    "read at the record times exactly (dynamo interpolates and stops at 100,000 events), "
    "n_traj paths kept (dynamo: one); cell names carry the experiment; obsm['promoter'] "
    "and uns['gillespie'] added; true_eta/true_delta NaN (dynamo: None)",
    "sim.KinLabelingSimulator": "seeded (seed=); write_to_anndata also writes into a store; "
    "labelling stops at label_time (dynamo keeps the first reaction after it: about one "
    "molecule more per cell, actual_label_time past label_time)",
    "pp.log1p": "an AnnData without uns['pp'] gets one (dynamo logs X, then raises KeyError)",
    "configuration.DynamoAdataConfig": "the switches dynamo 1.5.3 reads are read: dynamics' "
    "del_2nd_moments=None follows the mode ('succinct' drops M_ss, M_us, ... from the AnnData; "
    "a store keeps them)",
    "sample_data.pancreatic_endocrinogenesis": "without url: the bundled 2,000-gene copy (offline)",
}

# Why a name is not offered: (regular expression on "namespace.name", reason); first match.
NOT_OFFERED: list[tuple[str, str]] = [
    (
        r"^mv\.(StreamFuncAnim|StreamFuncAnim3D|PyvistaAnim)$",
        "dynamo's animation classes: dyn.mv.animate_fates makes the 2-D movie in one call; "
        "3-D and pyvista movies are not built",
    ),  # fmt: skip
    (r"^pl\..*(shiny|plotly|pyvista|3d|3D)", "interactive or 3-D back-ends are not used"),
    (r"^sample_data\.", "downloads a public dataset; dynadask ships pancreas only (no network)"),
    (
        r"^configuration\.(DKM|DynamoAdataKeyManager)$",
        "dynamo's key manager: dynadask's keys are fixed (dynadask._core.keys)",
    ),  # fmt: skip
    (r"^configuration\.", "dynamo's plotting themes and colour maps"),
    (
        r"^tl\.(DDRTree|construct_velocity_tree|directed_pg|psl|cal_ncenter)",
        "principal-graph pseudotime is not built",
    ),  # fmt: skip
    (
        r"^tl\.(leiden|louvain|hdbscan|scc|cluster_community|purity|infomap)",
        "clustering is left to scanpy on the same AnnData",
    ),  # fmt: skip
    (r"^tl\..*(mnn|MNN)", "batch correction is not built"),
    (
        r"^tl\..*(markov|Markov|KernelMarkov|DiscreteMarkov|ContinuousMarkov)",
        "Markov-chain classes of the transition matrix are not built",
    ),  # fmt: skip
    (r"^est\.", "dynamo's estimation internals: dyn.tl.dynamics is the public entry"),
    (
        r"^sim\.(AnnDataSimulator|CellularModelSimulator)$",
        "dynamo's base classes for user-defined reaction systems: the motifs' classes "
        "(BifurcationTwoGenes, ...) and dyn.sim.simulate(model=Network) are offered",
    ),  # fmt: skip
    (r"^sim\.", "not built yet"),
    (r"^(vf|pd|ext)\.", "not built yet (vector-field half)"),
    (r"^pl\.", "plot not built yet"),
    (r"^(pp|tl)\.", "not built yet"),
]


# --------------------------------------------------------------------- dynamo's names
def _module_path(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def _resolve(root: Path, here: str, level: int, module: str | None) -> str:
    parts = here.split(".")
    package = parts if _module_path(root, here).name == "__init__.py" else parts[:-1]
    package = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*package, module] if module else package)


def public_names(root: Path, dotted: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Names ``from dynamo.<dotted> import *`` binds, read from the source."""
    path = _module_path(root, dotted)
    if path is None or dotted in seen:
        return set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return {ast.literal_eval(e) for e in node.value.elts}
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            target = _resolve(root, dotted, node.level, node.module)
            for alias in node.names:
                if alias.name == "*":
                    names |= public_names(root, target, seen | {dotted})
                elif _module_path(root, f"{target}.{alias.name}") is None:
                    names.add(alias.asname or alias.name)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_")}


def read_dynamo(src: Path) -> dict[str, list[str]]:
    """Dynamo's public names per namespace, from its source folder ``src`` (``.../dynamo``)."""
    root = src.parent
    return {ns: sorted(public_names(root, f"dynamo.{SOURCES[ns]}")) for ns in NAMESPACES}


# --------------------------------------------------------------------- the table
def ours(namespace: str) -> set[str]:
    """The public names of ``dynadask.<namespace>``."""
    module = importlib.import_module(f"dynadask.{namespace}")
    return {
        n for n in dir(module)
        if not n.startswith("_") and not inspect.ismodule(getattr(module, n))
    }  # fmt: skip


def status(qualified: str, offered: set[str]) -> tuple[str, str]:
    """(``offered`` | ``difference`` | ``not offered``, note) of one dynamo name."""
    name = qualified.split(".", 1)[1]
    if name in offered:
        if qualified in DIFFERENCES:
            return "difference", DIFFERENCES[qualified]
        return "offered", ""
    for pattern, why in NOT_OFFERED:
        if re.search(pattern, qualified):
            return "not offered", why
    return "not offered", "not built yet"


def table(dynamo: dict[str, list[str]]) -> str:
    """The Markdown of docs/api.md."""
    lines = [
        "# dynamo 1.5.3's public names in dynadask",
        "",
        "Generated by `python docs/api_coverage.py` (a test checks it is current). "
        "*offered*: same name and call; *difference*: offered, with the difference noted; "
        "*not offered*: with the reason.",
        "",
        "| namespace | dynamo names | offered | with a difference | not offered |",
        "|---|---:|---:|---:|---:|",
    ]
    detail: list[str] = []
    for ns in NAMESPACES:
        offered = ours(ns)
        rows = [(n, *status(f"{ns}.{n}", offered)) for n in dynamo[ns]]
        count = {k: sum(r[1] == k for r in rows) for k in ("offered", "difference", "not offered")}
        lines.append(
            f"| `dyn.{ns}` | {len(rows)} | {count['offered']} | {count['difference']} "
            f"| {count['not offered']} |"
        )
        detail += ["", f"## dyn.{ns}", "", "| name | status | note |", "|---|---|---|"]
        detail += [f"| `{n}` | {s} | {note} |" for n, s, note in rows]
    return "\n".join(lines + detail) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Re-read dynamo's names when asked, then rewrite docs/api.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamo-src", type=Path, help="dynamo's source folder (re-read names)")
    args = parser.parse_args(argv)
    if args.dynamo_src:
        NAMES.write_text(json.dumps(read_dynamo(args.dynamo_src), indent=1) + "\n")
    TABLE.write_text(table(json.loads(NAMES.read_text())))
    print(TABLE.read_text().split("\n\n## ")[0])


if __name__ == "__main__":
    main()
