"""Rules every public analysis function keeps (docs/architecture.md §2): checked package-wide."""

from __future__ import annotations

import inspect

import pytest

import dynadask as dyn

NAMESPACES = ("pp", "tl", "vf", "pd", "mv", "sim", "pl", "ext")


def _public_functions():
    for ns in NAMESPACES:
        module = getattr(dyn, ns)
        for name in getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")]):
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{ns}.{name}", obj


FUNCTIONS = dict(_public_functions())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_signature_rules(name):
    fn = FUNCTIONS[name]
    params = list(inspect.signature(fn).parameters.values())
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
    ]
    assert len(positional) <= 3, f"{name}: {len(positional)} positional parameters (at most 3)"
    if params and params[0].name.startswith("ad"):
        assert params[0].name == "adata", f"{name}: the first parameter is called 'adata'"
    assert fn.__doc__ and len(fn.__doc__.strip()) > 20, f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_parallelism_is_not_a_library_argument(name):
    params = inspect.signature(FUNCTIONS[name]).parameters
    assert "client" not in params, f"{name}: library functions take no client"


def test_the_rules_see_the_api():
    # guards against the rules test silently checking nothing
    assert len(FUNCTIONS) >= 1
