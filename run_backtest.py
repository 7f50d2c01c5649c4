#!/usr/bin/env python
"""Run one backtest and write its report: ``python run_backtest.py`` (the sample market, default strategy).

See ``python run_backtest.py --help`` for the options; README.md describes the outputs. Installed, the same
command is ``btdensity``.
"""
from __future__ import annotations

import argparse
import ast
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
from btdensity.cachedir import cache_root, model_cache_dir
from btdensity.feeds.source import load_source
from btdensity.indicators import WalkForwardSettings
from btdensity.reports import write_report
from btdensity.runner import BacktestConfig, backtest
from btdensity.strategies import STRATEGIES

DEFAULT_STRATEGY = "density_gated"


class UserError(Exception):
    """A mistake in the command line or the data: reported in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(message)


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def _fraction(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not 0 <= value < 0.1:
            raise argparse.ArgumentTypeError(f"{name} is a fraction (0.001 = 0.1 %) in [0, 0.1), got {text}")
        return value
    return parse


def _funding(text: str) -> float | str:
    if text == "bybit":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--funding-rate takes a rate per 8 h (0.0001 = 0.01 %) or 'bybit', "
                                         f"got {text!r}") from None
    if not abs(value) < 1:
        raise argparse.ArgumentTypeError(f"--funding-rate is a fraction per 8 h with |rate| < 1, got {text}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--volume-fill must be a number, got {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"--volume-fill is a percentage of bar volume in (0, 100], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run_backtest.py", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="sample",
                   help="'sample' (the synthetic market), a path to a CSV file, or bybit:SYMBOL (e.g. "
                        "bybit:BTC/USDT:USDT; API base URL from $BTDENSITY_BYBIT_URL when set)")
    p.add_argument("--cache-dir", default=None,
                   help="downloaded Bybit bars, and fitted models in its models/ subfolder (default: "
                        "$BTDENSITY_CACHE, else ~/.cache/btdensity)")
    p.add_argument("--live", action="store_true",
                   help="paper-trade on live bybit:SYMBOL bars with backtrader's broker until --until or Ctrl-C")
    p.add_argument("--backfill", type=int, default=None,
                   help="--live: closed bars loaded before going live, on which the models warm up (default: "
                        "the models' warm-up for --train-bars; with fewer the strategy waits for live bars)")
    p.add_argument("--poll-interval", type=float, default=5.0, help="--live: seconds between polls")
    p.add_argument("--timeframe", default=None, help="bar length, e.g. 15m, 1h, 4h, 1d (CSV data is resampled)")
    p.add_argument("--since", default=None, help="first instant of data to use (ISO 8601, UTC)")
    p.add_argument("--until", default=None, help="last instant of data the run sees (ISO 8601, UTC)")
    p.add_argument("--bars", type=int, default=None, help="bars of the sample market (default: one hourly year)")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, help=f"one of: {', '.join(sorted(STRATEGIES))}")
    p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="a strategy parameter (repeatable), e.g. --param fast=10")
    p.add_argument("--cash", type=float, default=10_000.0, help="starting cash")
    p.add_argument("--market", choices=("spot", "linear"), default=None,
                   help="spot, or linear (USDT perpetual: leverage, funding, Bybit's derivatives fees); default: "
                        "linear for --data bybit:BASE/QUOTE:QUOTE perpetuals, spot otherwise")
    p.add_argument("--commission", "--taker-fee", dest="commission", type=_fraction("--commission"), default=None,
                   help="taker fee (market and stop orders) as a fraction of traded value "
                        "(default: Bybit's base tier, spot 0.001, linear 0.00055)")
    p.add_argument("--maker-fee", type=_fraction("--maker-fee"), default=None,
                   help="maker fee (limit orders) as a fraction of traded value "
                        "(default: Bybit's base tier, spot 0.001, linear 0.0002)")
    p.add_argument("--leverage", type=float, default=1.0, help="--market linear: margin = notional / leverage")
    p.add_argument("--funding-rate", type=_funding, default=None, metavar="RATE|bybit",
                   help="--market linear: a constant funding rate per 8 h (00:00, 08:00, 16:00 UTC), or 'bybit' "
                        "for the symbol's history (--data bybit:SYMBOL)")
    p.add_argument("--volume-fill", type=_percent, default=None, metavar="PERC",
                   help="fill at most PERC %% of each bar's volume; the rest waits for the next bars")
    p.add_argument("--slippage", type=_fraction("--slippage"), default=0.0,
                   help="slippage as a fraction of price, against the trader")
    p.add_argument("--out", default="out", help="output folder")
    p.add_argument("--train-bars", type=int, default=2000,
                   help="model strategies: bars in each walk-forward training window")
    p.add_argument("--retrain-every", type=int, default=2000,
                   help="model strategies: bars between refits (the indicators' own default is 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample market and of the models")
    p.add_argument("--export-lines", default=None, metavar="PATH.csv",
                   help="write every indicator line of the strategy, per bar, to this CSV")
    p.add_argument("--bar-by-bar", action="store_true", help="run backtrader bar by bar (runonce=False)")
    p.add_argument("--no-plot", action="store_true", help="do not write plot.png")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")
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
    lines.append(f"{'bars':14s}{summary['bars']:>14d}   {summary['start'][:16]} .. {summary['end'][:16]}, "
                 f"backtest {summary['runtime_s']:.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the data, run the backtest, write the report; return the summary."""
    if args.bars is not None and args.bars < 2:
        raise UserError(f"--bars must be at least 2, got {args.bars}")
    df = load_source(args.data, timeframe=args.timeframe, since=args.since, until=args.until, seed=args.seed,
                     bars=args.bars, cache_dir=str(cache_root(args.cache_dir)), progress=not args.quiet)
    result = backtest(df, _config(args, df))
    if args.export_lines:
        lines = result.lines.set_axis(result.lines.index.strftime("%Y-%m-%dT%H:%M:%SZ"))
        with atomic_path(args.export_lines) as tmp:
            lines.rename_axis("datetime").to_csv(tmp, float_format="%.10g")
    title = f"{args.strategy} on {os.path.basename(args.data)}"
    return write_report(result, args.out, title=title, plot=not args.no_plot)


def _walk_forward(args: argparse.Namespace) -> WalkForwardSettings:
    """The model indicators' walk-forward settings of the command line."""
    return WalkForwardSettings(train_bars=args.train_bars, retrain_every=args.retrain_every, seed=args.seed,
                               quiet=args.quiet, cache_dir=str(model_cache_dir(args.cache_dir)))


def _config(args: argparse.Namespace, df: Any = None) -> BacktestConfig:
    """The backtest terms of the command line; ``--funding-rate bybit`` fetches the rates of ``df``'s span."""
    funding, market = args.funding_rate, args.market
    if market is None:
        market = "spot"
        if args.data.startswith("bybit:"):
            from btdensity.feeds.bybit import infer_category  # imports ccxt: only for Bybit data

            market = "linear" if infer_category(args.data[len("bybit:"):]) == "linear" else "spot"
    if funding is not None and market != "linear":
        raise UserError("--funding-rate applies to perpetuals: add --market linear")
    if args.leverage != 1.0 and market != "linear":
        raise UserError("--leverage applies to perpetuals: add --market linear")
    if funding == "bybit":
        if not args.data.startswith("bybit:") or df is None:
            raise UserError("--funding-rate bybit needs --data bybit:SYMBOL (a perpetual, e.g. BTC/USDT:USDT) "
                            "and no --live; give a constant rate otherwise")
        from btdensity.feeds.funding import fetch_funding_rates

        funding = fetch_funding_rates(args.data[len("bybit:"):], since=df.index[0], until=df.index[-1],
                                      cache_dir=str(cache_root(args.cache_dir)))
    return BacktestConfig(strategy=args.strategy, params=dict(args.param), cash=args.cash, market=market,
                          commission=args.commission, maker_fee=args.maker_fee, leverage=args.leverage,
                          funding=funding, slippage=args.slippage, volume_fill=args.volume_fill,
                          runonce=not args.bar_by_bar,
                          walk_forward=_walk_forward(args))


def run_live(args: argparse.Namespace) -> dict[str, Any]:
    """Paper-trade ``args.strategy`` on live Bybit bars (backfill first) with backtrader's broker.

    Runs until ``--until`` or Ctrl-C; returns the broker's final value and the bars seen. The backfilled
    bars (data status DELAYED) warm the models up; the strategy trades from the first live bar on.
    """
    import backtrader as bt

    from btdensity.feeds import BybitLiveFeed
    from btdensity.runner import paper_trading
    from btdensity.strategies import get_strategy

    if not args.data.startswith("bybit:"):
        raise UserError("--live needs --data bybit:SYMBOL, e.g. --data bybit:BTC/USDT:USDT")
    config = _config(args)
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
    p = _Parser(prog="run_backtest.py sweep", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        t = result.table
        print(f"{len(t)} trials ({result.computed} run now, {int((t['status'] != 'ok').sum())} failed); "
              f"report: {result.paths['html']}")
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
        args = build_parser().parse_args(argv)
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
        print(f"report: {os.path.join(args.out, 'tearsheet.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
