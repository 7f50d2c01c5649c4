"""The installed layout: one ``btdensity`` namespace that user folders named ``models`` or ``feeds`` cannot shadow,
the backtrader fixes applied by importing it, and the layering's promises about what an import loads."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ("models", "indicators", "strategies", "feeds", "reports", "runner", "sweeps", "run_backtest")
SUBPACKAGES = ("models", "indicators", "strategies", "runner", "feeds", "reports", "sweeps")


def run_python(code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter started in ``cwd`` (on ``sys.path``, as a user's project folder is)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "", "PYTHONPATH": str(cwd)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def user_project(tmp_path):
    """A folder with its own ``models`` and ``feeds`` packages, both of which fail loudly when imported."""
    for name in ("models", "feeds"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    return tmp_path


def test_no_generic_top_level_package_is_loaded_and_user_packages_do_not_shadow_ours(user_project):
    out = run_python(f"""
        import sys, collections
        import btdensity
        for sub in {SUBPACKAGES!r}:
            __import__("btdensity." + sub)
        from btdensity import LogDensity, RealNVP, DataFrameFeed, load_csv, backtest, write_report
        import btdensity.run_backtest
        print(sorted(m for m in sys.modules if m.split(".")[0] in {GENERIC!r}))
        print(RealNVP.__module__, LogDensity.__module__, hasattr(collections, "Iterable"))
    """, user_project)
    loaded, names = out.splitlines()
    assert loaded == "[]"
    assert names == "btdensity.models.realnvp btdensity.indicators.density True"


def test_importing_btdensity_alone_loads_neither_torch_nor_backtrader(tmp_path):
    out = run_python("""
        import sys, collections, btdensity
        print("torch" in sys.modules, "backtrader" in sys.modules, hasattr(collections, "Iterable"))
    """, tmp_path)
    assert out.split() == ["False", "False", "True"]   # the fixes are applied, the heavy packages wait


def test_reports_load_no_torch_and_no_indicators(tmp_path):
    out = run_python("""
        import sys
        import btdensity.reports
        print("torch" in sys.modules, any(m.startswith("btdensity.indicators") for m in sys.modules))
    """, tmp_path)
    assert out.split() == ["False", "False"]


def test_a_backtest_and_its_report_import_neither_quantstats_nor_scipy_stats(tmp_path):
    """Start-up: the strategies and the summary figures need neither (half a second and a second and a half to
    import); the tearsheet imports QuantStats when it is written (in a child process)."""
    out = run_python("""
        import sys
        import btdensity.strategies, btdensity.runner, btdensity.reports
        from btdensity.runner.metrics import summarize
        print("scipy.stats" in sys.modules, "quantstats" in sys.modules)
    """, tmp_path)
    assert out.split() == ["False", "False"]


def test_doctests_of_the_modules_that_import_scipy_stats_when_used():
    import doctest
    import importlib

    for name in ("predictive", "models.tail", "models.calibration"):
        result = doctest.testmod(importlib.import_module(f"btdensity.{name}"))
        assert result.attempted > 0 and result.failed == 0, name


def test_backtrader_imported_first_still_works(tmp_path):
    """Users need no import order: backtrader before btdensity, then an indicator on a feed."""
    out = run_python("""
        import backtrader as bt
        from btdensity import DataFrameFeed, synthetic_market
        cerebro = bt.Cerebro()
        cerebro.adddata(DataFrameFeed(dataname=synthetic_market(60, seed=1)))
        cerebro.addstrategy(bt.Strategy)
        cerebro.addindicator(bt.ind.SMA, period=5)
        cerebro.run()
        print("ran")
    """, tmp_path)
    assert out.strip() == "ran"


def test_unknown_top_level_name_is_an_attribute_error():
    import btdensity

    with pytest.raises(AttributeError, match="no attribute 'LogDensty'"):
        btdensity.LogDensty   # noqa: B018
    assert {"LogDensity", "backtest", "write_report", "WalkForwardSettings"} <= set(btdensity.__all__)


def test_run_backtest_script_works_from_a_checkout_without_an_install(tmp_path):
    """``python run_backtest.py`` in a checkout imports the checkout as btdensity when none is installed."""
    code = f"""
        import importlib.util, runpy, sys
        real_find_spec = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == "btdensity" else real_find_spec(name, *a)
        sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                         and "editable" not in getattr(f, "__name__", "").lower()]
        sys.argv = ["run_backtest.py", "--help"]
        try:
            runpy.run_path({str(ROOT / "run_backtest.py")!r}, run_name="__main__")
        except SystemExit as exc:
            print("exit", exc.code)
        print(sys.modules["btdensity"].__file__)
    """
    out = run_python(code, tmp_path)
    assert "usage: run_backtest.py" in out and "exit 0" in out
    assert out.strip().splitlines()[-1] == str(ROOT / "__init__.py")
