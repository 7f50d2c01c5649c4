"""``run_backtest.py score`` and ``run_backtest.py ablate``: the scorecard and the ablation from the command line."""
from __future__ import annotations

import argparse
import logging
from typing import Sequence

from btdensity.cli_options import (Parser, UserError, add_broker_options, add_data_options, add_model_options,
                                   add_strategy_options, backtest_config, load_data, walk_forward)

from .lineup import DEFAULT_FAMILIES, FAMILIES

__all__ = ["build_ablate_parser", "build_score_parser", "main"]


def _families(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--models takes families from {', '.join(FAMILIES)} (comma-separated); "
                                         f"got {text!r}")
    return names


def _windows(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for part in text.split(","):
        start, sep, end = part.strip().partition("/")
        if not sep or not start or not end:
            raise argparse.ArgumentTypeError(f"--anomalies takes START/END windows separated by commas "
                                             f"(e.g. 2022-05-07/2022-05-14); got {part!r}")
        out.append((start, end))
    return tuple(out)


def build_score_parser() -> argparse.ArgumentParser:
    p = Parser(prog="run_backtest.py score", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
               description="Score each deep model indicator against its classical baseline, walk-forward and "
                           "out of sample on the data; writes scorecard.json and scorecard.html.")
    add_data_options(p)
    add_model_options(p)
    p.add_argument("--models", type=_families, default=DEFAULT_FAMILIES, metavar="FAMILY,...",
                   help=f"families to score, from {', '.join(FAMILIES)}")
    p.add_argument("--horizon", type=int, default=1, help="bars ahead of the forecast and direction scores")
    p.add_argument("--anomalies", type=_windows, default=None, metavar="START/END,...",
                   help="ground-truth anomaly windows for detection latency (default: the data's anomaly column)")
    p.add_argument("--out", default="scorecard", help="output folder")
    return p


def build_ablate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="run_backtest.py ablate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
               description="Run a model strategy with and without one component, with its baseline in its place, "
                           "and with the component's series shifted in time; writes ablation.json and .html.")
    add_data_options(p)
    add_strategy_options(p, "density_gated")
    add_broker_options(p)
    add_model_options(p)
    p.add_argument("--component", required=True,
                   help="the indicator to ablate: LogDensity, Energy, BNNUncertainty, ScoreDirection or Regime")
    p.add_argument("--baseline", default=None, help="the indicator that stands in for it (default: its baseline)")
    p.add_argument("--shifts", type=int, default=19, help="time-shifted runs behind the timing null")
    p.add_argument("--out", default="ablation", help="output folder")
    p.set_defaults(bar_by_bar=False)
    return p


def _score(args: argparse.Namespace) -> None:
    from .page import write_scorecard
    from .scorecard import ScoreConfig, scorecard

    if args.horizon < 1:
        raise UserError(f"--horizon must be at least 1, got {args.horizon}")
    df = load_data(args)
    card = scorecard(df, ScoreConfig(families=args.models, walk_forward=walk_forward(args), horizon=args.horizon,
                                     anomalies=args.anomalies, seed=args.seed))
    paths = write_scorecard(card, args.out, title=f"Scorecard: {args.data}")
    if not args.quiet:
        table = card.verdicts()
        if len(table):
            shown = table[["family", "metric", "model", "baseline", "model_value", "baseline_value", "verdict"]]
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(f"scorecard: {paths['html']}")


def _ablate(args: argparse.Namespace) -> None:
    from .ablation import ablate, write_ablation

    if args.shifts < 0:
        raise UserError(f"--shifts must be >= 0, got {args.shifts}")
    df = load_data(args)
    result = ablate(df, backtest_config(args, df), args.component, shifts=args.shifts, seed=args.seed,
                    baseline=args.baseline)
    paths = write_ablation(result, args.out)
    if not args.quiet:
        print(result.table.to_string(float_format=lambda x: f"{x:.4g}"))
        if result.null_sharpe.size:
            print(f"timing: the real Sharpe ranks at {result.percentile:.0%} of {result.null_sharpe.size} "
                  f"time-shifted runs")
        print(f"ablation: {paths['html']}")


def main(command: str, argv: Sequence[str]) -> int:
    """Run ``command`` (``score`` or ``ablate``) with its arguments; errors propagate as one-line exceptions."""
    args = (build_score_parser() if command == "score" else build_ablate_parser()).parse_args(list(argv))
    if args.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    (_score if command == "score" else _ablate)(args)
    return 0
