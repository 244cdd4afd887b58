"""dynamo's global switches for what the analyses keep in an AnnData (``DynamoAdataConfig``)."""

from __future__ import annotations

from typing import Any

from .errors import InputError, MissingKeyError


class DynamoAdataConfig:
    """dynamo's global switches for what the analyses keep in the AnnData.

    Class attributes, set together by :meth:`update_data_store_mode`: ``'full'`` (the
    default, as dynamo's) keeps everything; ``'succinct'`` makes ``dyn.tl.dynamics`` drop the
    second-moment layers (``M_ss``, ``M_us``, ``M_uu``, …) when its ``del_2nd_moments`` is
    left at None. The recipe switches are kept for dynamo's code that reads them.
    ``*_KEY`` attributes name the switches in ``config_key_to_values``.
    """

    data_store_mode: str | None = None
    recipe_keep_filtered_genes: bool | None = None
    recipe_keep_raw_layers: bool | None = None
    recipe_keep_filtered_cells: bool | None = None
    recipe_monocle_keep_filtered_genes: bool | None = None
    recipe_monocle_keep_filtered_cells: bool | None = None
    recipe_monocle_keep_raw_layers: bool | None = None
    dynamics_del_2nd_moments: bool | None = None
    recipe_del_2nd_moments: bool | None = None

    RECIPE_KEEP_FILTERED_CELLS_KEY = "keep_filtered_cells_key"
    RECIPE_KEEP_FILTERED_GENES_KEY = "keep_filtered_genes_key"
    RECIPE_KEEP_RAW_LAYERS_KEY = "keep_raw_layers_key"
    RECIPE_MONOCLE_KEEP_FILTERED_CELLS_KEY = "recipe_monocle_keep_filtered_cells_key"
    RECIPE_MONOCLE_KEEP_FILTERED_GENES_KEY = "recipe_monocle_keep_filtered_genes_key"
    RECIPE_MONOCLE_KEEP_RAW_LAYERS_KEY = "recipe_monocle_keep_raw_layers_key"
    DYNAMICS_DEL_2ND_MOMENTS_KEY = "dynamics_del_2nd_moments_key"
    RECIPE_DEL_2ND_MOMENTS_KEY = "recipe_del_2nd_moments"

    config_key_to_values: dict[str, bool | None] | None = None

    @staticmethod
    def use_default_var_if_none(val: Any, key: str, replace_val: Any = None) -> Any:
        """Return the configured value of ``key`` when ``val`` is ``replace_val``, else ``val``.

        Parameters
        ----------
        val
            The caller's argument.
        key
            One of the ``*_KEY`` names.
        replace_val
            The value that means "use the configuration" (None).

        Raises
        ------
        KeyError
            If ``key`` is not a known switch.
        """
        table = DynamoAdataConfig.config_key_to_values or {}
        if key not in table:
            known = ", ".join(sorted(table))
            raise MissingKeyError(f"{key!r} is not a DynamoAdataConfig switch: use one of {known}")
        same = val is None if replace_val is None else val == replace_val
        return table[key] if same else val

    @staticmethod
    def update_data_store_mode(mode: str) -> None:
        """Set every switch for ``mode``: ``'full'`` (keep everything) or ``'succinct'``."""
        if mode not in ("full", "succinct"):
            raise InputError(f"data store mode must be 'full' or 'succinct', got {mode!r}")
        c = DynamoAdataConfig
        full = mode == "full"
        c.data_store_mode = mode
        c.recipe_keep_filtered_genes = c.recipe_keep_raw_layers = False
        c.recipe_keep_filtered_cells = False
        c.recipe_del_2nd_moments = True
        c.recipe_monocle_keep_filtered_genes = c.recipe_monocle_keep_filtered_cells = full
        c.recipe_monocle_keep_raw_layers = full
        c.dynamics_del_2nd_moments = not full
        c.config_key_to_values = {
            c.RECIPE_KEEP_FILTERED_CELLS_KEY: c.recipe_keep_filtered_cells,
            c.RECIPE_KEEP_FILTERED_GENES_KEY: c.recipe_keep_filtered_genes,
            c.RECIPE_KEEP_RAW_LAYERS_KEY: c.recipe_keep_raw_layers,
            c.RECIPE_MONOCLE_KEEP_FILTERED_CELLS_KEY: c.recipe_monocle_keep_filtered_cells,
            c.RECIPE_MONOCLE_KEEP_FILTERED_GENES_KEY: c.recipe_monocle_keep_filtered_genes,
            c.RECIPE_MONOCLE_KEEP_RAW_LAYERS_KEY: c.recipe_monocle_keep_raw_layers,
            c.DYNAMICS_DEL_2ND_MOMENTS_KEY: c.dynamics_del_2nd_moments,
            c.RECIPE_DEL_2ND_MOMENTS_KEY: c.recipe_del_2nd_moments,
        }


def update_data_store_mode(mode: str) -> None:
    """Set dynamo's data store mode (``'full'`` or ``'succinct'``); see DynamoAdataConfig."""
    DynamoAdataConfig.update_data_store_mode(mode)


DynamoAdataConfig.update_data_store_mode("full")
