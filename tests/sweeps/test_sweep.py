"""Sweeps on the local process pool and on Ray: metrics equal a direct backtest, both engines agree,
failing trials are retried then reported, a killed sweep resumes without recomputing, walk-forward
optimisation picks the in-sample best and scores it on the following bars, and the report shows it;
every trial keeps its per-bar returns (those of the scored span) and the selection-bias figures follow."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from btdensity.feeds.source import load_source
from btdensity.runner import summarize
from btdensity.sweeps.report import heatmap_frame
from btdensity.sweeps.returns import bar_returns, read_returns
from btdensity.runner import BacktestConfig, backtest
from btdensity.sweeps.sweep import sweep
from btdensity.sweeps.trial import flatten_summary

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "sweep_test_plugin"

# A strategy in a module of its own (as a user's would be): it appends a line to its `marker` file every
# time it is built, so tests count how often a trial ran; with `fail_first`, the first build of all the
# trials sharing a marker raises (exactly one: the failure flag file is created exclusively).
PLUGIN_SOURCE = textwrap.dedent('''
    import os
    import time
    import backtrader as bt
    from btdensity.strategies.registry import register_strategy

    @register_strategy("sweep_test_marker")
    class Marker(bt.Strategy):
        params = (("marker", ""), ("fail_first", False), ("sleep", 0.0), ("period", 5))

        def __init__(self):
            with open(self.p.marker, "a") as fh:
                fh.write("run\\n")
            if self.p.fail_first:
                try:
                    os.close(os.open(self.p.marker + ".failed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    raise RuntimeError("planned failure of the first run")
            time.sleep(self.p.sleep)
            self.sma = bt.ind.SMA(self.data.close, period=self.p.period)

        def next(self):
            self.order_target_percent(target=0.9 if self.data.close[0] > self.sma[0] else 0.0)
''')

METRIC_KEYS = ("final_value", "total_return", "sharpe", "sortino", "max_drawdown", "calmar", "n_trades",
               "win_rate", "exposure", "benchmark_sharpe")


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    sys.path.insert(0, str(d))
    yield d
    sys.path.remove(str(d))


def _grid(markers: Path) -> dict:
    markers.mkdir(exist_ok=True)
    return {"data": {"source": "sample", "bars": 400}, "seed": 1, "imports": [PLUGIN],
            "strategies": [
                {"strategy": "sma_cross", "params": {"fast": [5, 10], "slow": [20, 40]}},
                {"strategy": "sma_cross", "params": {"fast": 30, "slow": 10}},          # always raises
                {"strategy": "sweep_test_marker", "params": {"marker": str(markers / "flaky"), "fail_first": True}},
            ]}


@pytest.fixture(scope="module")
def local_run(plugin_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    grid = _grid(base / "markers")
    return grid, base, sweep(grid, "local", out=base / "out", max_parallel=2, retries=2)


def _metrics(table: pd.DataFrame) -> dict:
    ok = table[table["status"] == "ok"].set_index("trial_id")
    return {tid: tuple(row[k] for k in METRIC_KEYS) for tid, row in ok.iterrows()}


def test_trial_metrics_equal_a_direct_backtest(local_run):
    _, _, result = local_run
    t = result.table
    ok = t[(t["status"] == "ok") & (t["strategy"] == "sma_cross")]
    assert len(ok) == 4 and (ok["seed"] == 1).all()
    for _, row in ok.iterrows():
        df = load_source("sample", bars=400, seed=int(row["seed"]))
        params = {"fast": int(row["param.fast"]), "slow": int(row["param.slow"])}
        direct = flatten_summary(summarize(backtest(df, BacktestConfig(params=params)), BacktestConfig().cash))
        for key in METRIC_KEYS:
            assert row[key] == pytest.approx(direct[key], rel=1e-12, abs=1e-12), key


def test_a_raising_trial_is_retried_then_reported_as_failed(local_run):
    _, base, result = local_run
    failed = result.table[result.table["status"] == "failed"]
    assert len(failed) == 1                              # fast=30 > slow=10
    assert (failed["attempts"] == 3).all()
    assert failed["error"].str.contains("fast < slow").all()
    assert failed["sharpe"].isna().all()
    flaky = result.table[result.table["strategy"] == "sweep_test_marker"]
    assert list(flaky["status"]) == ["ok"] and list(flaky["attempts"]) == [2]
    assert (base / "markers" / "flaky").read_text().count("run") == 2   # one failure, one success
    csv = pd.read_csv(result.paths["csv"])
    assert len(csv) == len(result.table) == 6 and set(csv["status"]) == {"ok", "failed"}


def test_trials_keep_their_per_bar_returns_and_the_selected_one_its_figures(local_run):
    _, base, result = local_run
    t = result.table
    sma = t[(t["status"] == "ok") & (t["strategy"] == "sma_cross")]
    for _, row in sma.iterrows():
        direct = backtest(load_source("sample", bars=400, seed=1),
                          BacktestConfig(params={"fast": int(row["param.fast"]), "slow": int(row["param.slow"])}))
        stored = read_returns(base / "out", row["trial_id"])
        assert stored.dtype == "float32" and stored.index.equals(direct.values.index)
        assert stored.to_numpy() == pytest.approx(direct.returns.to_numpy(), rel=1e-6, abs=1e-9)
    assert not list((base / "out" / "returns").glob(".*"))                     # no temporary file left
    figures = result.overfitting
    assert len(figures) == 1 and figures["n_trials"].iloc[0] == 5                # the ok trials of the one group
    best = t.loc[t["sharpe"].idxmax()]
    assert figures["trial_id"].iloc[0] == best["trial_id"] and bool(best["selected"])
    assert t["selected"].sum() == 1 and figures["days"].iloc[0] == 17           # 400 hourly bars
    assert figures["pbo_blocks"].iloc[0] == 4 and figures["pbo_splits"].iloc[0] == 6
    assert 0.0 <= best["deflated_sharpe"] <= 1.0 and best["pbo"] == figures["pbo"].iloc[0]


def test_a_second_run_recomputes_only_the_failed_trials(local_run):
    grid, base, first = local_run
    again = sweep(grid, "local", out=base / "out", max_parallel=2, retries=0)
    assert again.computed == 1
    assert (base / "markers" / "flaky").read_text().count("run") == 2   # finished trials are not run again
    assert _metrics(again.table) == _metrics(first.table)
    pd.testing.assert_frame_equal(again.overfitting, first.overfitting)   # from the stored returns


def test_report_is_sorted_by_the_metric_with_a_heatmap(local_run):
    _, _, result = local_run
    page = Path(result.paths["html"]).read_text()
    assert "data:image/png;base64," in page and "http" not in page.replace("<!doctype html>", "")
    trials = page[page.index("<h2>Trials</h2>"):page.index("<h2>Failed trials</h2>")]
    order = re.findall(r"<td class=\"l\">([0-9a-f]{16})</td>", trials)
    ok = result.table[result.table["status"] == "ok"].set_index("trial_id")
    assert len(order) == len(ok)
    sharpe = [ok.loc[i, "sharpe"] for i in order]
    assert sharpe == sorted(sharpe, reverse=True)
    failed = page[page.index("<h2>Failed trials</h2>"):]
    assert failed.count("fast &lt; slow") == 1
    grid = heatmap_frame(result.table, "sharpe", "fast", "slow")
    sma = ok[ok["strategy"] == "sma_cross"]
    assert grid.loc[40, 10] == pytest.approx(sma[(sma["param.fast"] == 10) & (sma["param.slow"] == 40)]["sharpe"].mean())
    assert grid.shape == (2, 2)   # the failed (30, 10) pair has no metric


@pytest.fixture(scope="module")
def walk_forward(tmp_path_factory):
    out = tmp_path_factory.mktemp("wf")
    grid = {"data": {"source": "sample", "bars": 600}, "seed": [3], "strategy": "sma_cross",
            "params": {"fast": [4, 8], "slow": [24, 48]}, "metric": "total_return",
            "walk_forward": {"in_sample_bars": 200, "out_of_sample_bars": 100, "folds": 2}}
    return sweep(grid, "local", out=out, max_parallel=2)


def test_walk_forward_picks_the_in_sample_best_and_scores_the_next_block(walk_forward):
    t, wf = walk_forward.table, walk_forward.walk_forward
    df = load_source("sample", bars=600, seed=3)
    assert list(wf["fold"]) == [0, 1] and (wf["status"] == "ok").all()
    for fold, (is_first, oos_first) in enumerate([(200, 400), (300, 500)]):
        ins = t[(t["stage"] == "in_sample") & (t["fold"] == fold)]
        assert len(ins) == 4 and (ins["bars"] == 200).all()
        assert ins["score_from"].eq(df.index[is_first].isoformat()).all()
        best = ins.loc[ins["total_return"].idxmax()]
        row = wf[wf["fold"] == fold].iloc[0]
        assert json.loads(row["params"]) == {"fast": best["param.fast"], "slow": best["param.slow"]}
        assert row["in_sample_total_return"] == best["total_return"]
        # out of sample: the same parameters, run from the first bar, scored on the next 100 bars only
        oos_last = oos_first + 99
        res = backtest(df.iloc[:oos_last + 1], BacktestConfig(params=json.loads(row["params"])))
        v = res.values
        assert row["out_of_sample_from"] == df.index[oos_first].isoformat()
        assert row["out_of_sample_total_return"] == pytest.approx(v.iloc[oos_last] / v.iloc[oos_first - 1] - 1,
                                                                  rel=1e-12, abs=1e-15)
        closes = df["close"]
        oos = t[(t["stage"] == "out_of_sample") & (t["fold"] == fold)].iloc[0]
        assert oos["bars"] == 100
        assert oos["benchmark_total_return"] == pytest.approx(closes.iloc[oos_last] / closes.iloc[oos_first - 1] - 1,
                                                              rel=1e-12)
    page = Path(walk_forward.paths["html"]).read_text()
    assert "in-sample vs out-of-sample" in page and page.count("data:image/png;base64,") == 2
    assert len(pd.read_csv(walk_forward.paths["walk_forward"])) == 2


def test_walk_forward_reports_the_selection_figures_per_fold_and_overall(walk_forward):
    out = walk_forward.paths["csv"].parent
    t, wf, figures = walk_forward.table, walk_forward.walk_forward, walk_forward.overfitting
    assert list(figures["fold"]) == [0, 1] and (figures["stage"] == "in_sample").all()
    assert (figures["n_trials"] == 4).all() and (figures["days"] == 9).all()     # 200 hourly bars
    assert figures["pbo"].isna().all() and (figures["pbo_blocks"] == 0).all()   # too short for 4 blocks
    assert wf["in_sample_deflated_sharpe"].tolist() == figures["deflated_sharpe"].tolist()
    assert figures["out_of_sample_sharpe"].tolist() == wf["out_of_sample_sharpe"].tolist()
    # a trial's returns are those of its scored block: the out-of-sample ones start at the block
    oos = t[t["stage"] == "out_of_sample"].sort_values("fold")
    bars = [read_returns(out, tid) for tid in oos["trial_id"]]
    assert [len(b) for b in bars] == [100, 100] and bars[0].index[-1] < bars[1].index[0]
    df = load_source("sample", bars=600, seed=3)
    row = wf[wf["fold"] == 1].iloc[0]
    res = backtest(df.iloc[:600], BacktestConfig(params=json.loads(row["params"])))
    assert bars[1].to_numpy() == pytest.approx(bar_returns(res.values.iloc[500:], res.values.iloc[499]).to_numpy(),
                                               rel=1e-6, abs=1e-9)
    overall = walk_forward.walk_forward_overall
    assert len(overall) == 1 and overall["folds"].iloc[0] == 2
    assert overall["in_sample_sharpe"].iloc[0] == pytest.approx(wf["in_sample_sharpe"].mean())
    stitched = (1 + pd.concat(bars).astype(float)).prod() - 1
    assert overall["out_of_sample_total_return"].iloc[0] == pytest.approx(stitched, rel=1e-6)
    assert pd.read_csv(walk_forward.paths["walk_forward_overall"]).shape[0] == 1


def test_a_killed_sweep_resumes_without_recomputing_finished_trials(plugin_dir, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    grid = {"data": {"source": "sample", "bars": 300}, "imports": [PLUGIN],
            "strategy": "sweep_test_marker",
            "params": {"marker": [str(markers / f"m{i}") for i in range(6)], "sleep": 0.4}}
    (tmp_path / "grid.yaml").write_text(json.dumps(grid))      # JSON is YAML
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_backtest.py"), "sweep", "--grid",
                             str(tmp_path / "grid.yaml"), "--out", str(out), "--max-parallel", "1", "--quiet"],
                            env=env, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not results.exists() or results.read_text().count("\n") < 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)                 # the sweep and its worker, mid-trial
    proc.wait()
    before = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert 2 <= len(before) < 6
    runs_before = {p.name: p.read_text().count("run") for p in markers.iterdir()}

    result = sweep(tmp_path / "grid.yaml", "local", out=out, max_parallel=1)
    assert result.computed == 6 - len(before)
    assert (result.table["status"] == "ok").all() and len(result.table) == 6
    runs = {p.name: p.read_text().count("run") for p in markers.iterdir()}
    marker_of = {row["trial_id"]: Path(row["param.marker"]).name for _, row in result.table.iterrows()}
    finished = {marker_of[i] for i in before}
    for name in finished:                                # finished before the kill: built exactly once
        assert runs[name] == 1 == runs_before[name]
    assert sum(runs.values()) <= 6 + 1                   # at most the one trial in flight ran twice
    ids = [json.loads(line)["id"] for line in results.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 6
    assert sorted(p.stem for p in (out / "returns").iterdir()) == sorted(ids)   # kept across the kill
    assert result.overfitting["n_trials"].tolist() == [6]


# ---------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_engine_gives_identical_metrics_and_reports_failures(ray_session, local_run, tmp_path):
    grid, base, local = local_run
    (base / "markers" / "flaky.failed").unlink()         # a flaky trial fails once again on Ray
    result = sweep(grid, "ray", out=tmp_path, retries=2)
    assert result.computed == 6
    assert _metrics(result.table) == _metrics(local.table)
    assert len(_metrics(result.table)) == 5
    failed = result.table[result.table["status"] == "failed"]
    assert len(failed) == 1 and (failed["attempts"] == 3).all() and failed["error"].str.contains("fast < slow").all()
    flaky = result.table[result.table["strategy"] == "sweep_test_marker"]
    assert list(flaky["status"]) == ["ok"] and list(flaky["attempts"]) == [2]


# ---------------------------------------------------------------- trials that train models
def _model_grid(cache: Path) -> dict:
    return {"data": {"source": "sample", "bars": 900}, "seed": 2, "model_cache_dir": str(cache),
            "strategy": "energy_sized",
            "params": {"threshold": [1.5, 3.0], "walk_forward.train_bars": 240,
                       "walk_forward.retrain_every": 300, "walk_forward.fit_kwargs": {"epochs": 3}}}


def _model_files(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.pt")}


@pytest.fixture(scope="module")
def model_sweep(tmp_path_factory):
    base = tmp_path_factory.mktemp("model-sweep")
    grid = _model_grid(base / "models")
    return grid, base, sweep(grid, "local", out=base / "out", max_parallel=2, retries=0), _model_files(base / "models")


def test_model_trials_share_fitted_models_through_the_cache_folder(model_sweep, tmp_path):
    grid, base, result, files = model_sweep
    ok = result.table[result.table["status"] == "ok"]
    assert len(ok) == 2 and ok["param.threshold"].tolist() == [1.5, 3.0]
    # a direct backtest of one trial into an empty cache fits exactly the models the whole sweep left behind:
    # the two trials (same indicator settings) share one model per window, keyed by content
    df = load_source("sample", bars=900, seed=2)
    params = {"threshold": 3.0, "walk_forward": {"train_bars": 240, "retrain_every": 300,
                                                       "fit_kwargs": {"epochs": 3}, "seed": 2,
                                                       "cache_dir": str(tmp_path)}}
    direct = backtest(df, BacktestConfig("energy_sized", params=params))
    fits = direct.strategy.energy.n_fits
    assert fits >= 2 and len(files) == fits == len(list(tmp_path.glob("*.pt")))
    row = ok[ok["param.threshold"] == 3.0].iloc[0]
    expected = flatten_summary(summarize(direct, BacktestConfig().cash))
    for key in METRIC_KEYS:
        assert row[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    assert row["n_trades"] > 0


def test_ray_engine_reuses_the_models_and_agrees(ray_session, model_sweep, tmp_path):
    grid, base, local, files = model_sweep
    result = sweep(grid, "ray", out=tmp_path, retries=0)
    assert result.computed == 2
    assert _metrics(result.table) == _metrics(local.table) and len(_metrics(local.table)) == 2
    assert _model_files(base / "models") == files        # loaded by path, nothing refitted or rewritten
