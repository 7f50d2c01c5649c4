"""Ablation: a component that does nothing makes no difference, and the time-shift null ranks a gate that truly
anticipates planted shocks above the 95th percentile."""
import numpy as np
import pytest

from btdensity import synthetic_market
from btdensity.evidence.ablation import ablate, write_ablation
from btdensity.evidence.replay import replay_indicator
from btdensity.indicators import LogDensity
from btdensity.runner import BacktestConfig
from btdensity.strategies import ModelStrategy, register_strategy


@register_strategy("test_gate_only")
class GateOnly(ModelStrategy):
    """Long while LogDensity's gate is open, flat while it is closed."""

    params = (("alpha", 0.05),)

    def __init__(self) -> None:
        super().__init__()
        self.density = self.model(LogDensity, alpha=self.p.alpha)

    def next(self) -> None:
        want = 0.95 if self.density.gate[0] > 0 else 0.0
        if (want > 0) != bool(self.position.size):
            self.order_target_percent(target=want)


def test_a_gate_that_never_closes_changes_nothing(tmp_path):
    df = synthetic_market(900, seed=2)
    config = BacktestConfig("test_gate_only", params={"alpha": 1e-9}, commission=0.001,
                            walk_forward={"train_bars": 300, "retrain_every": 400, "cache_dir": str(tmp_path),
                                          "fit_kwargs": {"epochs": 3}})
    result = ablate(df, config, "LogDensity", shifts=3, seed=0)
    table = result.table
    for figure in ("sharpe", "total_return", "max_drawdown", "fees_paid", "n_trades", "turnover_per_year"):
        assert table.loc["with", figure] == table.loc["without", figure]
    assert (result.null_sharpe == table.loc["with", "sharpe"]).all()   # an always-open gate has no timing
    assert "baseline (MixtureDensity)" in table.index
    paths = write_ablation(result, tmp_path / "out")
    assert "Timing null" in paths["html"].read_text() and paths["json"].exists()


def test_the_timing_null_ranks_a_gate_that_sees_shocks_coming_at_the_top():
    df = synthetic_market(3000, seed=5).drop(columns=["anomaly", "regime"], errors="ignore")
    shocks = np.arange(400, 2900, 250)
    for s in shocks:                                     # a 12 % gap down at the open of each shock bar
        df.iloc[s:, :4] *= 0.88
    gate = np.ones(len(df))
    for s in shocks:
        gate[s - 4:s + 1] = 0.0                          # closed from 4 bars before the shock through it
    lines = np.column_stack([np.zeros(len(df)), gate, gate])        # logp, pvalue, gate
    lines[:100] = np.nan                                 # a warm-up, as a real indicator has
    oracle = replay_indicator("LogDensity", ("logp", "pvalue", "gate"))
    config = BacktestConfig("test_gate_only", commission=0.001,
                            params={"replace": {"LogDensity": (oracle, lines)}})
    result = ablate(df, config, "LogDensity", shifts=39, seed=1, baseline=None)
    assert result.percentile > 0.95
    assert result.table.loc["with", "sharpe"] > result.table.loc["time-shifted (median)", "sharpe"] + 1.0
    assert result.table.loc["with", "max_drawdown"] > result.table.loc["without", "max_drawdown"]


def test_an_unknown_component_is_named(tmp_path):
    config = BacktestConfig("test_gate_only", walk_forward={"train_bars": 300, "retrain_every": 400,
                                                            "cache_dir": str(tmp_path), "fit_kwargs": {"epochs": 2}})
    with pytest.raises(ValueError, match="has no Energy indicator; its indicators: \\['LogDensity'\\]"):
        ablate(synthetic_market(500, seed=1), config, "Energy", shifts=0)


def test_command_line_score_and_ablate(tmp_path, capsys):
    from btdensity import run_backtest

    common = ["--bars", "900", "--train-bars", "250", "--retrain-every", "400", "--cache-dir", str(tmp_path)]
    assert run_backtest.main(["score", *common, "--models", "direction", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "ScoreDirection" in out and "MomentumDirection" in out and (tmp_path / "s" / "scorecard.html").exists()
    assert run_backtest.main(["ablate", *common, "--strategy", "energy_sized", "--component", "Energy",
                              "--shifts", "2", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "baseline (RealizedVolGate)" in out and "time-shifted (median)" in out
    assert run_backtest.main(["ablate", *common, "--strategy", "sma_cross", "--component", "Energy"]) == 2
    assert "cannot be ablated" in capsys.readouterr().err
