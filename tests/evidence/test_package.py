"""The evidence package: imports without torch, backtrader or pandas, exports what it lists, and its docstring
examples hold."""
import doctest
import importlib
import subprocess
import sys

import pytest

import btdensity.evidence as evidence

MODULES = ["comparison", "detection", "direction", "hac", "regime", "rows", "scoring", "var_tests"]


def test_all_names_resolve_and_are_documented():
    assert len(set(evidence.__all__)) == len(evidence.__all__)
    for name in evidence.__all__:
        assert getattr(evidence, name).__doc__, name


def test_imports_nothing_heavy():
    code = ("import sys, btdensity.evidence; "
            "print(sorted(m for m in ('torch', 'backtrader', 'pandas', 'pyro') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"btdensity.evidence.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
