"""The package's shape: dynamo's namespaces, readers, figure settings, sample data, CLI."""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import pytest

import dynadask as dyn
from dynadask.cli import main


def test_dynamo_namespaces_exist():
    for name in ("pp", "tl", "vf", "pd", "mv", "sim", "pl", "ext", "configuration", "sample_data"):
        assert hasattr(dyn, name), name
    assert hasattr(dyn.est, "csc") and hasattr(dyn.est, "tsc")
    for reader in ("read", "read_h5ad", "read_loom", "read_zarr"):
        assert callable(getattr(dyn, reader))


def test_pancreas_ships_with_the_package():
    adata = dyn.sample_data.pancreas()
    assert adata.shape == (3696, 2000)
    assert {"spliced", "unspliced"} <= set(adata.layers)
    assert adata.obs["clusters"].nunique() == 8


def test_offline_download_says_what_to_do(monkeypatch, tmp_path):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("DYNADASK_DATA", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(ConnectionError, match="DYNADASK_DATA"):
        dyn.sample_data.zebrafish()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("background", ["white", "black"])
def test_set_figure_params(background):
    dyn.configuration.set_figure_params("dynamo", background=background)
    assert mpl.rcParams["axes.facecolor"] == background
    fg = "black" if background == "white" else "white"
    assert mpl.rcParams["text.color"] == fg
    with pytest.raises(ValueError, match="background"):
        dyn.configuration.set_figure_params("dynamo", background="grey")


def test_set_pub_style():
    dyn.configuration.set_pub_style()
    assert mpl.rcParams["pdf.fonttype"] == 42 and mpl.rcParams["font.size"] == 6
    mpl.rcdefaults()


def test_cli_convert_and_info(tmp_path, pancreas_path, capsys):
    store = tmp_path / "p.zarr"
    assert (
        main(["convert", str(pancreas_path), str(store), "--chunk-cells", "1000", "--workers", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "3,696 cells x 2,000 genes" in out and "layers/spliced" in out
    assert main(["info", str(store)]) == 0
    assert "none complete" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_notebooks_call_only_what_exists():
    import json
    import re
    from pathlib import Path

    books = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
    assert books, "the notebooks folder holds the 10-minute workflow"
    for book in books:
        code = "\n".join(
            "".join(c["source"])
            for c in json.loads(book.read_text())["cells"]
            if c["cell_type"] == "code"
        )
        compile(code, str(book), "exec")  # valid Python
        calls = set(re.findall(r"dyn\.((?:\w+\.)*\w+)\(", code))
        if book.name.startswith("10_minutes"):  # the guide's calls, one by one
            assert len(calls) >= 10
        else:  # the cluster notebook runs the stages through dyn.pipeline / the CLI
            assert len(calls) >= 3
        for dotted in calls:
            obj = dyn
            for part in dotted.split("."):
                obj = getattr(obj, part)
            assert callable(obj), dotted


def test_io_imports_no_analysis_layer():
    """io/ sits below pp/tl/vf/pl: no import of them, not even inside a function."""
    import ast

    root = Path(dyn.__file__).parent
    above = {"pp", "tl", "vf", "pl", "pd", "mv", "ext", "sim", "est", "pipeline", "cli"}
    for path in sorted((root / "io").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                names = [node.module] if node.module else [a.name for a in node.names]
                for name in names:
                    assert name.split(".")[0] not in above, f"{path.name} imports {name}"
