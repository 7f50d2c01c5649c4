"""run_backtest.py: the default run end to end, --until prefix property, one-line user errors."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import run_backtest

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
    assert not (tmp_path / "plot.png").exists()


def test_until_gives_a_prefix_of_the_full_run(tmp_path):
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    common = ["--bars", "1500", "--no-plot", "--quiet", "--strategy", "sma_cross"]
    assert run_backtest.main(common + ["--out", str(tmp_path / "a"), "--export-lines", str(full)]) == 0
    assert run_backtest.main(common + ["--out", str(tmp_path / "b"), "--export-lines", str(cut),
                                       "--until", "2023-02-10T05:00"]) == 0
    a, b = pd.read_csv(full), pd.read_csv(cut)
    assert list(a.columns) == ["datetime", "SMA.sma", "SMA_2.sma", "CrossOver.crossover"]
    assert b["datetime"].iloc[-1] == "2023-02-10T05:00:00Z"
    pd.testing.assert_frame_equal(a.iloc[:len(b)], b)
    assert a["SMA.sma"].notna().sum() > 1000


def test_bar_by_bar_equals_batched(tmp_path):
    paths = [tmp_path / "once.csv", tmp_path / "next.csv"]
    for path, extra in zip(paths, ([], ["--bar-by-bar"])):
        assert run_backtest.main(["--bars", "800", "--no-plot", "--quiet", "--out", str(tmp_path / path.stem),
                                  "--export-lines", str(path)] + extra) == 0
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]), pd.read_csv(paths[1]))


def test_csv_data_and_resampling(tmp_path):
    from feeds import synthetic_market

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
