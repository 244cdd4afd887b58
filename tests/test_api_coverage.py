"""docs/api.md is current, and the dynamo names added for dynamo users work as dynamo's do."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import numpy as np

import dynadask as dyn

DOCS = Path(__file__).parents[1] / "docs"


def _coverage():
    spec = importlib.util.spec_from_file_location("api_coverage", DOCS / "api_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_coverage_table_is_current():
    cov = _coverage()
    names = json.loads((DOCS / "dynamo_names.json").read_text())
    assert set(names) == set(cov.NAMESPACES) and sum(map(len, names.values())) > 400
    assert (DOCS / "api.md").read_text() == cov.table(names), "run python docs/api_coverage.py"


def test_every_offered_name_is_a_function_class_or_data_not_a_module():
    """A name counts as offered only when it is what dynamo's is, not a submodule's name."""
    cov = _coverage()
    names = json.loads((DOCS / "dynamo_names.json").read_text())
    for ns, listed in names.items():
        module = getattr(dyn, ns)
        for name in sorted(set(listed) & cov.ours(ns)):
            obj = getattr(module, name)
            assert not inspect.ismodule(obj), f"dyn.{ns}.{name}"
            assert callable(obj) or isinstance(obj, dict | list | tuple), f"dyn.{ns}.{name}"
    assert "dynamics" not in cov.ours("pl")  # dynadask.pl.dynamics is a module


def test_dynamos_other_names_for_the_same_things():
    adata = dyn.sample_data.pancreatic_endocrinogenesis()
    assert adata.shape == (3696, 2000) and "clusters" in adata.obs
    np.testing.assert_array_equal(
        adata.layers["spliced"].data[:100], dyn.sample_data.pancreas().layers["spliced"].data[:100]
    )
    assert dyn.config is dyn.configuration
