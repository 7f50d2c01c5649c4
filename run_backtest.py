#!/usr/bin/env python
"""Run one backtest and write its report: ``python run_backtest.py`` (the sample market, default strategy).

See ``python run_backtest.py --help`` for the options; README.md describes the outputs. Installed, the same
command is ``btdensity``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

if __name__ == "__main__" and __package__ in (None, ""):
    # run as a script from a checkout: import this folder as the btdensity package unless one is installed
    import importlib.util

    if importlib.util.find_spec("btdensity") is None:
        _root = os.path.dirname(os.path.abspath(__file__))
        _spec = importlib.util.spec_from_file_location("btdensity", os.path.join(_root, "__init__.py"),
                                                       submodule_search_locations=[_root])
        sys.modules["btdensity"] = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(sys.modules["btdensity"])

from btdensity.atomic import atomic_path
from btdensity.cachedir import cache_root
from btdensity.cli_options import (Parser, UserError, add_broker_options, add_data_options, add_model_options,
                                   add_strategy_options, backtest_config, data_specs, load_data, load_datasets)
from btdensity.reports import write_report
from btdensity.reports.report import portfolio_total
from btdensity.runner import backtest

DEFAULT_STRATEGY = "density_gated"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="run_backtest.py", description=__doc__.splitlines()[0],
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_options(p, several=True)
    p.add_argument("--live", action="store_true",
                   help="paper-trade on live bybit:SYMBOL bars with backtrader's broker until --until or Ctrl-C")
    p.add_argument("--backfill", type=int, default=None,
                   help="--live: closed bars loaded before going live, on which the models warm up (default: "
                        "the models' warm-up for --train-bars; with fewer the strategy waits for live bars)")
    p.add_argument("--poll-interval", type=float, default=5.0, help="--live: seconds between polls")
    add_strategy_options(p, DEFAULT_STRATEGY)
    add_broker_options(p)
    add_model_options(p)
    p.add_argument("--out", default="out", help="output folder")
    p.add_argument("--export-lines", default=None, metavar="PATH.csv",
                   help="write every indicator line of the strategy, per bar, to this CSV")
    p.add_argument("--bar-by-bar", action="store_true", help="run backtrader bar by bar (runonce=False)")
    p.add_argument("--no-plot", action="store_true", help="do not write plot.png")
    return p


def _table(summary: dict[str, Any]) -> str:
    bench = summary["benchmark"]
    rows = [("final value", "final_value", "{:,.2f}"), ("total return", "total_return", "{:+.2%}"),
            ("CAGR", "cagr", "{:+.2%}"), ("Sharpe", "sharpe", "{:.2f}"), ("Sortino", "sortino", "{:.2f}"),
            ("max drawdown", "max_drawdown", "{:.2%}"), ("Calmar", "calmar", "{:.2f}")]
    lines = [f"{'':14s}{'strategy':>14s}{'buy & hold':>14s}"]
    for label, key, fmt in rows:
        lines.append(f"{label:14s}{fmt.format(summary[key]):>14s}{fmt.format(bench[key]):>14s}")
    lines.append(f"{'trades':14s}{summary['n_trades']:>14d}   win rate {summary['win_rate']:.0%}, "
                 f"exposure {summary['exposure']:.0%}")
    if "turnover_per_year" in summary:
        lines.append(f"{'turnover/year':14s}{summary['turnover_per_year']:>13.1f}x   "
                     f"fees {summary['fees_per_year']:.1%} of average equity a year, "
                     f"positions held {summary['avg_holding_days']:.1f} days on average")
    lines.append(f"{'bars':14s}{summary['bars']:>14d}   {summary['start'][:16]} .. {summary['end'][:16]}, "
                 f"backtest {summary['runtime_s']:.1f} s")
    return "\n".join(lines)


def _asset_table(summary: dict[str, Any], cash: float) -> str:
    """The per-asset rows of a portfolio's table (return and P&L of each asset's sleeve, its risk, weight and costs)
    and the portfolio's total."""
    head = (f"{'asset':14s}{'return':>10s}{'P&L':>12s}{'volatility':>12s}{'Sharpe':>8s}{'avg weight':>12s}"
            f"{'turnover/yr':>13s}{'fees':>10s}")
    rows = [head]
    total = portfolio_total(summary, cash)
    for name, f in [*summary["assets"].items(), ("total", total)]:
        rows.append(f"{name[:13]:14s}{f['total_return']:>+10.2%}{f['pnl']:>12,.2f}{f['volatility']:>12.1%}"
                    f"{f['sharpe']:>8.2f}{f['avg_weight']:>12.1%}{f['turnover_per_year']:>12.1f}x"
                    f"{f['fees_paid']:>10,.2f}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the data, run the backtest, write the report; return the summary."""
    specs = getattr(args, "datasets", None) or [args.data]
    if len(specs) == 1:
        df = load_data(args)
        result = backtest(df, backtest_config(args, df))
        title = f"{args.strategy} on {os.path.basename(args.data)}"
    else:
        config = backtest_config(args)
        needs_models = "walk_forward" in _strategy_params(args.strategy)
        settings = config.walk_forward
        frames = load_datasets(args, specs, min_bars=settings.warmup_bars() + 1 if needs_models else 2,
                               need=f"the walk-forward's warm-up with --train-bars {settings.train_bars}"
                               if needs_models else "")
        result = backtest(frames, config)
        title = f"{args.strategy} on {', '.join(os.path.basename(spec) for spec in specs)}"
    if args.export_lines:
        lines = result.lines.set_axis(result.lines.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
        with atomic_path(args.export_lines) as tmp:
            lines.rename_axis("datetime").to_csv(tmp, float_format="%.10g")
    return write_report(result, args.out, title=title, plot=not args.no_plot)


def _strategy_params(name: str) -> tuple[str, ...]:
    from btdensity.strategies import get_strategy

    return tuple(get_strategy(name).params._getkeys())


def run_live(args: argparse.Namespace) -> dict[str, Any]:
    """Paper-trade ``args.strategy`` on live Bybit bars (backfill first) with backtrader's broker.

    Runs until ``--until`` or Ctrl-C; returns the broker's final value and the bars seen. The backfilled
    bars (data status DELAYED) warm the models up; the strategy trades from the first live bar on.
    """
    import backtrader as bt

    from btdensity.feeds import BybitLiveFeed
    from btdensity.runner import paper_trading
    from btdensity.strategies import get_strategy

    if len(getattr(args, "datasets", None) or [args.data]) > 1:
        raise UserError("--live paper-trades one data set: give one --data bybit:SYMBOL")
    if not args.data.startswith("bybit:"):
        raise UserError("--live needs --data bybit:SYMBOL, e.g. --data bybit:BTC/USDT:USDT")
    config = backtest_config(args)
    backfill = config.walk_forward.warmup_bars() if args.backfill is None else args.backfill
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(BybitLiveFeed(dataname=args.data[len("bybit:"):], interval=args.timeframe or "1h",
                                  backfill=backfill, cache_dir=str(cache_root(args.cache_dir)),
                                  poll_interval=args.poll_interval, until=args.until), name="data")
    strategy = get_strategy(args.strategy)
    params = dict(args.param)
    if "walk_forward" in strategy.params._getkeys():
        params.setdefault("walk_forward", config.walk_forward)
    cerebro.addstrategy(paper_trading(strategy), **params)
    cerebro.setbroker(config.make_broker())
    try:
        cerebro.run()
    except KeyboardInterrupt:
        print("run_backtest.py: stopped by the user", file=sys.stderr)
    data = cerebro.datas[0]
    return {"final_value": cerebro.broker.getvalue(), "bars": len(data),
            "last_bar": data.datetime.datetime(0).isoformat() if len(data) else None}


def build_sweep_parser() -> argparse.ArgumentParser:
    """``run_backtest.py sweep``: a grid of backtests on a process pool or Ray (see btdensity.sweeps.grid)."""
    p = Parser(prog="run_backtest.py sweep", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                description="Run a parameter sweep or walk-forward optimisation; resumes from --out.")
    p.add_argument("--grid", required=True, metavar="GRID.yaml", help="the grid (README: Parameter sweeps)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: a process pool; ray: Ray tasks (pip install 'btdensity[distributed]')")
    p.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start Ray locally)")
    p.add_argument("--max-parallel", type=int, default=None, help="trials at once (default: every CPU)")
    p.add_argument("--retries", type=int, default=2, help="further attempts of a trial that fails")
    p.add_argument("--out", default="sweep", help="output folder (results.jsonl, sweep.csv, sweep.html)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def run_sweep(args: argparse.Namespace) -> Any:
    """Run the sweep of ``args``; print the best trials unless ``--quiet``."""
    from btdensity.sweeps import sweep

    if args.quiet:
        logging.getLogger().setLevel(logging.ERROR)
    result = sweep(args.grid, args.engine, out=args.out, max_parallel=args.max_parallel,
                   ray_address=args.ray_address, retries=args.retries)
    if not args.quiet:
        from btdensity.sweeps.selection import summary_lines

        t = result.table
        print(f"{len(t)} trials ({result.computed} run now, {int((t['status'] != 'ok').sum())} failed); "
              f"report: {result.paths['html']}")
        for line in summary_lines(result.overfitting, result.walk_forward_overall):
            print(line)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    level = root.level
    try:
        return _main(argv)
    finally:
        root.setLevel(level)  # --quiet must not silence the rest of a process that called main()


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["sweep"]:
            run_sweep(build_sweep_parser().parse_args(argv[1:]))
            return 0
        if argv[:1] in (["score"], ["ablate"]):
            from btdensity.evidence import cli

            return cli.main(argv[0], argv[1:])
        args = build_parser().parse_args(argv)
        args.datasets = data_specs(args.data)      # --data repeated or a comma list: several assets
        args.data = ",".join(args.datasets)        # one data set: its spec, as before
        if args.quiet:
            logging.getLogger().setLevel(logging.ERROR)
        if args.live:
            live = run_live(args)
            if not args.quiet:
                print(f"paper trading: final value {live['final_value']:,.2f} after {live['bars']} bars "
                      f"(last {live['last_bar']})")
            return 0
        summary = run(args)
    except (UserError, ValueError, OSError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"run_backtest.py: error: {message}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(_table(summary))
        if "assets" in summary:
            print(_asset_table(summary, args.cash))
        print(f"report: {os.path.join(args.out, 'tearsheet.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
