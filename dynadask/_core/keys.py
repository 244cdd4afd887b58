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

# expression layers of a splicing experiment
SPLICED = "spliced"
UNSPLICED = "unspliced"
# metabolic-labelling layers
NEW = "new"
TOTAL = "total"
LABELLING_LAYERS = ("uu", "ul", "su", "sl")

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


def moment_key(layer: str) -> str:
    """Return the first-moment layer name for an expression layer (spliced -> M_s)."""
    short = {"spliced": "s", "unspliced": "u", "new": "n", "total": "t"}
    if layer in short:
        return f"M_{short[layer]}"
    return f"M_{layer}"


def velocity_key(basis: str) -> str:
    """Return the obsm key of the embedding velocity in ``basis``."""
    return f"velocity_{basis}"


def basis_key(basis: str) -> str:
    """Return the obsm key of the coordinates in ``basis`` (umap -> X_umap)."""
    return basis if basis.startswith("X_") else f"X_{basis}"
