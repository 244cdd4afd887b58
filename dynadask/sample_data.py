"""Sample data sets: the pancreas data ships with the package; others download on demand."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from importlib.resources import files
from pathlib import Path

import anndata as ad

# public addresses of dynamo's sample data sets
_URLS = {
    "DentateGyrus": "http://pklab.med.harvard.edu/velocyto/DentateGyrus/DentateGyrus.loom",
    "scNT_seq_neuron_splicing": "https://figshare.com/ndownloader/files/47439605",
    "scNT_seq_neuron_labeling": "https://figshare.com/ndownloader/files/47439629",
    "zebrafish": "https://figshare.com/ndownloader/files/47420257",
    "BM": "https://figshare.com/ndownloader/files/35826944",
    "hematopoiesis_raw": "https://figshare.com/ndownloader/files/47439626",
    "hematopoiesis": "https://figshare.com/ndownloader/files/47439635",
}


def pancreas() -> ad.AnnData:
    """Return the mouse pancreas endocrinogenesis data (3,696 cells x 2,000 genes).

    Raw ``spliced``/``unspliced`` counts with ``obs['clusters']`` and ``obs['clusters_coarse']``.
    The file ships with dynadask, so this works offline.

    Returns
    -------
    anndata.AnnData
        A new in-memory copy each call.
    """
    return ad.read_h5ad(pancreas_path())


def pancreatic_endocrinogenesis(url: str | None = None, filename: str | None = None) -> ad.AnnData:
    """Return the pancreas endocrinogenesis data under dynamo's name for it.

    Without ``url`` this is :func:`pancreas`: the bundled copy of the same 3,696 cells,
    which works offline but holds 2,000 genes (the file dynamo's own downloads holds all
    of them). With ``url`` that file is downloaded once and cached under ``filename``
    (default: the address's last part).

    Raises
    ------
    ConnectionError
        If ``url`` is given, the file is not cached and cannot be downloaded.
    """
    if url is None:
        return pancreas()
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    return ad.read_h5ad(_download("pancreatic_endocrinogenesis", name, url))


def pancreas_path() -> Path:
    """Return the path of the bundled pancreas ``.h5ad`` file."""
    return Path(str(files("dynadask") / "data" / "pancreas.h5ad"))


def _download(name: str, filename: str, url: str | None = None) -> Path:
    cache = Path(os.environ.get("DYNADASK_DATA", Path.home() / ".cache" / "dynadask"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / filename
    if path.exists():
        return path
    part = path.with_suffix(path.suffix + ".part")
    try:
        urllib.request.urlretrieve(url or _URLS[name], part)  # noqa: S310
    except (urllib.error.URLError, OSError) as err:
        part.unlink(missing_ok=True)
        raise ConnectionError(
            f"could not download the {name} sample data ({err}). This needs internet access; "
            f"or place the file at {path} (or set DYNADASK_DATA to a folder that holds it)."
        ) from err
    part.rename(path)
    return path


def DentateGyrus() -> ad.AnnData:  # noqa: N802 - dynamo's name
    """Return the dentate gyrus data (La Manno et al. 2018), downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_loom(_download("DentateGyrus", "DentateGyrus.loom"))


def scNT_seq_neuron_labeling() -> ad.AnnData:  # noqa: N802 - dynamo's name
    """Return the scNT-seq neuron labelling data (Qiu et al. 2020), downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("scNT_seq_neuron_labeling", "neuron_labeling.h5ad"))


def zebrafish() -> ad.AnnData:
    """Return the zebrafish pigmentation data (Saunders et al. 2019), downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("zebrafish", "zebrafish.h5ad"))


def hematopoiesis_raw() -> ad.AnnData:
    """Return the raw human hematopoiesis labelling data, downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("hematopoiesis_raw", "hematopoiesis_raw.h5ad"))


def scNT_seq_neuron_splicing() -> ad.AnnData:  # noqa: N802 - dynamo's name
    """Return the scNT-seq neuron splicing data (Qiu et al. 2020), downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("scNT_seq_neuron_splicing", "neuron_splicing.h5ad"))


def BM() -> ad.AnnData:  # noqa: N802 - dynamo's name
    """Return the human bone-marrow data (Setty et al. 2019), downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("BM", "setty_bone_marrow.h5ad"))


def hematopoiesis() -> ad.AnnData:
    """Return the processed human hematopoiesis labelling data, downloaded once and cached.

    Raises
    ------
    ConnectionError
        If the file is not cached and cannot be downloaded.
    """
    return ad.read_h5ad(_download("hematopoiesis", "hematopoiesis.h5ad"))
