"""run_backtest.py: the default run end to end, exported model lines, --until prefix, bar-by-bar parity,
one-line user errors."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from btdensity import run_backtest

ROOT = Path(__file__).resolve().parents[1]


def test_default_run_writes_the_three_files(tmp_path, capsys):
    code = run_backtest.main(["--out", str(tmp_path), "--bars", "2000", "--quiet"])
    assert code == 0
    assert capsys.readouterr().out == ""
    assert {p.name for p in tmp_path.iterdir()} >= {"tearsheet.html", "summary.json", "plot.png"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["bars"] == 2000


def test_prints_a_table_of_the_main_figures(tmp_path, capsys):
    assert run_backtest.main(["--out", str(tmp_path), "--bars", "500", "--no-plot"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "buy & hold" in out and f"{summary['sharpe']:.2f}" in out
    assert f"turnover/year {summary['turnover_per_year']:>13.1f}x   fees {summary['fees_per_year']:.1%}" in out
    assert not (tmp_path / "plot.png").exists()


#: the default strategy (all five model indicators) with windows small enough to fit several times in 1500
#: bars; the same arguments and cache as tests/strategies' end-to-end run, so a full session fits once
MODEL_RUN = ["--bars", "1500", "--train-bars", "400", "--retrain-every", "600", "--no-plot", "--quiet"]
MODEL_LINES = {"Energy": ("energy", "zscore", "pvalue"), "LogDensity": ("logp", "pvalue", "gate"),
               "BNNUncertainty": ("mean", "epistemic", "aleatoric", "lower", "upper"),
               "Regime": ("regime", "confidence", "energy"), "ScoreDirection": ("direction", "strength")}


def _export(tmp_path_factory, name: str, *extra: str) -> pd.DataFrame:
    cache = tmp_path_factory.getbasetemp() / "shared-cli-cache"
    out = tmp_path_factory.mktemp(name)
    assert run_backtest.main(MODEL_RUN + ["--cache-dir", str(cache), "--out", str(out),
                                          "--export-lines", str(out / "lines.csv"), *extra]) == 0
    return pd.read_csv(out / "lines.csv")


@pytest.fixture(scope="module")
def full_lines(tmp_path_factory):
    return _export(tmp_path_factory, "full")


def test_export_lines_has_every_line_of_the_five_model_indicators(full_lines):
    expected = {f"{ind}.{line}" for ind, lines in MODEL_LINES.items() for line in lines}
    assert expected <= set(full_lines.columns)
    for column in expected:  # values from two walk-forward windows, NaN only during the warm-up (the BNN's from
        values = full_lines[column]   # bar 569: its volatility regression reads a week)
        assert values.notna().sum() > 900, column
        if column == "BNNUncertainty.mean":   # the default forecast is centred at zero
            assert values.notna().to_numpy()[-1] and (values.dropna() == 0).all()
            continue
        assert values.notna().to_numpy()[-1] and values.dropna().nunique() > 1, column


def test_until_gives_a_prefix_of_the_full_run(full_lines, tmp_path_factory):
    cut = _export(tmp_path_factory, "cut", "--until", "2023-02-24T04:00")   # bar 1300, in the third window
    assert cut["datetime"].iloc[-1] == "2023-02-24T04:00:00Z" and len(cut) == 1301
    assert cut["LogDensity.logp"].notna().sum() > 800
    pd.testing.assert_frame_equal(full_lines.iloc[:len(cut)], cut)


def test_bar_by_bar_equals_batched(full_lines, tmp_path_factory):
    bar_by_bar = _export(tmp_path_factory, "bar-by-bar", "--bar-by-bar")
    assert list(bar_by_bar.columns) == list(full_lines.columns)
    # float64 evaluation in both paths: the CSV round trip keeps ~15 digits
    pd.testing.assert_frame_equal(full_lines, bar_by_bar, check_exact=False, rtol=1e-9, atol=1e-12)


def test_csv_data_and_resampling(tmp_path):
    from btdensity.feeds import synthetic_market

    synthetic_market(480, freq="15m", seed=3)[["open", "high", "low", "close", "volume"]].to_csv(tmp_path / "m.csv")
    code = run_backtest.main(["--data", str(tmp_path / "m.csv"), "--timeframe", "1h", "--quiet", "--no-plot",
                              "--strategy", "buy_and_hold", "--out", str(tmp_path / "o")])
    assert code == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["bars"] == 120


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.csv"], "CSV file not found: missing.csv"),
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--commission", "2"], "--commission is a fraction"),
    (["--since", "not a date"], "since 'not a date' is not a date"),
    (["--until", "2023-01-01", "--since", "2023-02-01"], "is before since"),
    (["--param", "fast"], "--param takes NAME=VALUE"),
    (["--data", "sample.txt"], "is not understood"),
    (["--strategy", "sma_cros"], "unknown strategy 'sma_cros' (did you mean 'sma_cross'?)"),
    (["--param", "nosuch=3"], "strategy 'density_gated' has no parameter 'nosuch'; its parameters: alpha, band, closed_scale"),
    (["--strategy", "sma_cross", "--param", "slwo=3"], "has no parameter 'slwo' (did you mean 'slow'?)"),
    (["--strategy", "sma_cross", "--param", "fast=abc"], "fast='abc' must be an integer, like its default 24"),
    (["--param", "enter_z=yes"], "enter_z='yes' must be a number"),
    (["--param", "long_short=1"], "long_short=1 must be True or False"),
])
def test_user_errors_are_one_line(tmp_path, capsys, args, message):
    code = run_backtest.main(["--out", str(tmp_path / "o"), "--bars", "300", "--no-plot", *args])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_backtest.py: error:") and message in lines[0]


def test_bad_csv_from_the_shell_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,open,high,low,close,volume\n2024-01-01T00:00Z,1,2,0.5,1,1\n"
                   "2024-01-01T01:00Z,1,0.4,0.5,1,1\n")
    proc = subprocess.run([sys.executable, str(ROOT / "run_backtest.py"), "--data", str(bad), "--out",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"run_backtest.py: error: {bad}: high < low at row 3 "
                                                "(2024-01-01 01:00:00+00:00)"]


def test_the_cache_folder_rule_holds_for_the_command_line_and_the_library(tmp_path, monkeypatch):
    """--cache-dir, else $BTDENSITY_CACHE, else ~/.cache/btdensity; fitted models in its models/ subfolder."""
    from btdensity.indicators.walkforward import FitCache, default_cache_dir

    env = tmp_path / "env-cache"
    monkeypatch.setenv("BTDENSITY_CACHE", str(env))
    assert default_cache_dir() == env / "models"
    run = ["--strategy", "energy_sized", "--bars", "700", "--train-bars", "200", "--retrain-every", "400",
           "--no-plot", "--quiet"]
    assert run_backtest.main(run + ["--out", str(tmp_path / "a")]) == 0
    assert [p.name.split("-")[0] for p in (env / "models").iterdir()] == ["Energy"] * 2   # two windows
    given = tmp_path / "given"
    FitCache.forget()   # models fitted in this process are kept in memory too: make the second run fit again
    assert run_backtest.main(run + ["--out", str(tmp_path / "b"), "--cache-dir", str(given)]) == 0
    assert len(list((given / "models").iterdir())) == 2
    monkeypatch.delenv("BTDENSITY_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "btdensity" / "models"


def test_a_damaged_model_file_is_refitted_with_one_warning_that_quiet_hides(tmp_path, caplog):
    import warnings

    from btdensity.indicators.walkforward import FitCache

    run = ["--strategy", "energy_sized", "--bars", "500", "--train-bars", "200", "--retrain-every", "1000",
           "--no-plot", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    assert run_backtest.main(run + ["--quiet"]) == 0
    [model_file] = (tmp_path / "cache" / "models").iterdir()
    for quiet, expected in ((False, 1), (True, 0)):
        model_file.write_bytes(model_file.read_bytes()[:300])       # truncated by a crash
        FitCache.forget()
        caplog.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert run_backtest.main(run + (["--quiet"] if quiet else [])) == 0
        messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(messages) == expected and all(model_file.name in m and "fitting the model again" in m
                                                 for m in messages)
        assert not [w for w in caught if "torch" in str(w.filename)]
