"""The AnnData key names dynadask reads and writes (dynamo's names, in one place)."""

from __future__ import annotations

# uns record of dynadask's own bookkeeping (store path, completed stages)
DYNADASK = "dynadask"
STORE = "store"
STAGES = "stages"
# row order: each cell's row in the user's original order (int64 obs column, kept by every
# reorder, so it composes), the reorder record in uns['dynadask'], and the store's order id
# (root attrs 'dynadask'), which changes at every reorder so that AnnData opened before it
# can no longer commit into the store
ORIGINAL_ROW = "dynadask_original_row"
REORDER = "reorder"
ORDER_ID = "order_id"
# fitted-model records (``_core/model.py``): uns['dynadask_models'][<output key>]
MODELS = "dynadask_models"

# expression layers of a splicing experiment
SPLICED = "spliced"
UNSPLICED = "unspliced"
# metabolic-labelling layers
NEW = "new"
TOTAL = "total"
LABELLING_LAYERS = ("uu", "ul", "su", "sl")
NEW_TOTAL = (NEW, TOTAL)

# first moments (``dyn.tl.moments``): the smoothed layer of each normalised layer X_<layer>
M_S = "M_s"
M_U = "M_u"
M_N = "M_n"
M_T = "M_t"
FIRST_MOMENTS = {
    f"X_{SPLICED}": M_S,
    f"X_{UNSPLICED}": M_U,
    f"X_{NEW}": M_N,
    f"X_{TOTAL}": M_T,
    **{f"X_{k}": f"M_{k}" for k in LABELLING_LAYERS},
}
# the normalised layer each first moment smooths (M_s -> X_spliced)
NORMALISED = {m: x for x, m in FIRST_MOMENTS.items()}
# second moments ``dyn.tl.dynamics`` reads
M_US = "M_us"
M_SS = "M_ss"
M_TN = "M_tn"
M_TT = "M_tt"

# velocity layers written by ``dyn.tl.dynamics`` (dynamo's names)
VELOCITY_S = "velocity_S"
VELOCITY_U = "velocity_U"
VELOCITY_N = "velocity_N"
VELOCITY_T = "velocity_T"

# var flags
USE_FOR_PCA = "use_for_pca"
USE_FOR_DYNAMICS = "use_for_dynamics"
USE_FOR_TRANSITION = "use_for_transition"
PASS_BASIC_FILTER = "pass_basic_filter"

# obsm / obsp
X_PCA = "X_pca"
CONNECTIVITIES = "connectivities"
DISTANCES = "distances"
MOMENTS_CON = "moments_con"


def size_factor_key(layer: str | None) -> str:
    """Return the obs column that holds the size factor of ``layer`` (``None`` or 'X': X)."""
    return "Size_Factor" if layer in (None, "X") else f"{layer}_Size_Factor"


def normalised_key(layer: str) -> str:
    """Return the normalised layer of an expression layer (spliced -> X_spliced)."""
    return layer if layer.startswith("X_") else f"X_{layer}"


def moment_key(layer: str) -> str | None:
    """Return the first-moment layer of a raw or normalised expression layer.

    ``spliced`` and ``X_spliced`` -> ``M_s``, ``uu`` -> ``M_uu``; ``None`` for a layer that is
    not an expression layer dynamo smooths.
    """
    return FIRST_MOMENTS.get(normalised_key(layer))


def velocity_key(basis: str) -> str:
    """Return the obsm key of the embedding velocity in ``basis``."""
    return f"velocity_{basis}"


def basis_key(basis: str) -> str:
    """Return the obsm key of the coordinates in ``basis`` (umap -> X_umap)."""
    return basis if basis.startswith("X_") else f"X_{basis}"


def basis_name(basis: str) -> str:
    """Return the name of ``basis`` without the obsm prefix (X_umap or umap -> umap)."""
    return basis[2:] if basis.startswith("X_") else basis
