"""The command line's shared pieces: one-line errors, argument types, the option groups of its commands (data,
walk-forward settings, broker terms, strategy) and what they build (the bars, the walk-forward settings, the
backtest terms). ``run_backtest.py`` and the ``score`` / ``ablate`` commands (:mod:`btdensity.evidence.cli`) use
them."""
from __future__ import annotations

import argparse
import ast
import os
from typing import TYPE_CHECKING, Any

import pandas as pd

from btdensity.cachedir import cache_root, model_cache_dir

if TYPE_CHECKING:
    from btdensity.indicators import WalkForwardSettings
    from btdensity.runner import BacktestConfig

__all__ = ["Parser", "UserError", "add_broker_options", "add_data_options", "add_model_options",
           "add_strategy_options", "asset_name", "backtest_config", "data_specs", "fraction", "funding", "jobs",
           "load_data", "load_datasets", "param", "percent", "walk_forward"]


class UserError(Exception):
    """A mistake in the command line or the data: reported in one line, without a traceback."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UserError`), not usage + message."""

    def error(self, message: str) -> None:  # one line, not usage + message
        raise UserError(message)


def param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def fraction(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not 0 <= value < 0.1:
            raise argparse.ArgumentTypeError(f"{name} is a fraction (0.001 = 0.1 %) in [0, 0.1), got {text}")
        return value
    return parse


def funding(text: str) -> float | str:
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


def percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--volume-fill must be a number, got {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"--volume-fill is a percentage of bar volume in (0, 100], got {text}")
    return value

def add_data_options(p: argparse.ArgumentParser, several: bool = False) -> None:
    """The data a command runs on: ``--data``, ``--timeframe``, ``--since``, ``--until``, ``--bars``, ``--cache-dir``.

    ``several=True``: ``--data`` may be repeated or take a comma list (a portfolio); :func:`data_specs` reads it."""
    text = ("'sample' (the synthetic market; 'sample:seed=N' for another one), a path to a CSV file, or bybit:SYMBOL "
            "(e.g. bybit:BTC/USDT:USDT; API base URL from $BTDENSITY_BYBIT_URL when set)")
    if several:
        p.add_argument("--data", action="append", default=None,
                       help=text + "; repeat it or give a comma list for several assets, aligned on their common "
                                   "bars (default: sample)")
    else:
        p.add_argument("--data", default="sample", help=text)
    p.add_argument("--cache-dir", default=None,
                   help="downloaded Bybit bars, and fitted models in its models/ subfolder (default: "
                        "$BTDENSITY_CACHE, else ~/.cache/btdensity)")
    p.add_argument("--timeframe", default=None, help="bar length, e.g. 15m, 1h, 4h, 1d (CSV data is resampled)")
    p.add_argument("--since", default=None, help="first instant of data to use (ISO 8601, UTC)")
    p.add_argument("--until", default=None, help="last instant of data the run sees (ISO 8601, UTC)")
    p.add_argument("--bars", type=int, default=None, help="bars of the sample market (default: one hourly year)")


def jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--jobs takes a whole number of fits at once, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be at least 1 (1: fit serially), got {text}")
    return value


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The model indicators' walk-forward settings: ``--train-bars``, ``--retrain-every``, ``--seed``, ``--jobs``,
    ``--expanding``, ``--warm-start``, ``--device``, ``--quiet``."""
    p.add_argument("--train-bars", type=int, default=2000,
                   help="model indicators: bars in each walk-forward training window")
    p.add_argument("--expanding", action=argparse.BooleanOptionalAction, default=None,
                   help="train every model on all bars so far (--no-expanding: on the last --train-bars; default: "
                        "as each indicator does, all bars for the forecasts BNNUncertainty and GarchForecast)")
    p.add_argument("--retrain-every", type=int, default=2000,
                   help="model indicators: bars between refits (the indicators' own default is 500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample market and of the models")
    p.add_argument("--jobs", type=jobs, default=None, metavar="N",
                   help="model fits at once, in worker processes (default: $BTDENSITY_JOBS, else every CPU; "
                        "1: serial); the values are the same")
    p.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                   help="start each window's fit from the previous window's weights, with fewer epochs (default: "
                        "as each indicator does, warm for LogDensity and Regime)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where models are fitted and evaluated: auto is CUDA when there is a GPU, else the CPU")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")


def add_broker_options(p: argparse.ArgumentParser) -> None:
    """The broker's terms: cash, market, fees, leverage, funding, volume-limited fills, slippage."""
    p.add_argument("--cash", type=float, default=10_000.0, help="starting cash")
    p.add_argument("--market", choices=("spot", "linear"), default=None,
                   help="spot, or linear (USDT perpetual: leverage, funding, Bybit's derivatives fees); default: "
                        "linear for --data bybit:BASE/QUOTE:QUOTE perpetuals, spot otherwise")
    p.add_argument("--commission", "--taker-fee", dest="commission", type=fraction("--commission"), default=None,
                   help="taker fee (market and stop orders) as a fraction of traded value "
                        "(default: Bybit's base tier, spot 0.001, linear 0.00055)")
    p.add_argument("--maker-fee", type=fraction("--maker-fee"), default=None,
                   help="maker fee (limit orders) as a fraction of traded value "
                        "(default: Bybit's base tier, spot 0.001, linear 0.0002)")
    p.add_argument("--leverage", type=float, default=1.0, help="--market linear: margin = notional / leverage")
    p.add_argument("--funding-rate", type=funding, default=None, metavar="RATE|bybit",
                   help="--market linear: a constant funding rate per 8 h (00:00, 08:00, 16:00 UTC), or 'bybit' "
                        "for the symbol's history (--data bybit:SYMBOL)")
    p.add_argument("--volume-fill", type=percent, default=None, metavar="PERC",
                   help="fill at most PERC %% of each bar's volume; the rest waits for the next bars")
    p.add_argument("--slippage", type=fraction("--slippage"), default=0.0,
                   help="slippage as a fraction of price, against the trader")


def add_strategy_options(p: argparse.ArgumentParser, default: str) -> None:
    """``--strategy`` and its ``--param NAME=VALUE`` (repeatable)."""
    from btdensity.strategies import STRATEGIES

    p.add_argument("--strategy", default=default, help=f"one of: {', '.join(sorted(STRATEGIES))}")
    p.add_argument("--param", type=param, action="append", default=[], metavar="NAME=VALUE",
                   help="a strategy parameter (repeatable), e.g. --param fast=10")


def data_specs(values: str | list[str] | None) -> list[str]:
    """The data sets of ``--data`` (repeated, comma lists, or one): ``["sample"]`` when none is given.

    >>> data_specs(["sample", "a.csv,bybit:ETH/USDT:USDT"]), data_specs(None)
    (['sample', 'a.csv', 'bybit:ETH/USDT:USDT'], ['sample'])
    """
    if values is None:
        return ["sample"]
    specs = [part.strip() for value in ([values] if isinstance(values, str) else values) for part in value.split(",")]
    if not all(specs):
        raise UserError(f"--data has an empty data set in {','.join(specs)!r}")
    names = [asset_name(spec) for spec in specs]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise UserError(f"--data {specs[i]} is given twice (as {name!r}); each data set once")
    return specs


def asset_name(spec: str) -> str:
    """The name of a data set in reports and feed names: the symbol of ``bybit:SYMBOL``, a CSV file's name without
    ``.csv``, or the spec itself (``sample``, ``sample:seed=7``).

    >>> asset_name("bybit:BTC/USDT:USDT"), asset_name("data/eth_1h.csv"), asset_name("sample:seed=7")
    ('BTC/USDT:USDT', 'eth_1h', 'sample:seed=7')
    """
    if spec.startswith("bybit:"):
        return spec[len("bybit:"):]
    if spec.lower().endswith(".csv"):
        return os.path.splitext(os.path.basename(spec))[0]
    return spec


def _sample_seed(spec: str, seed: int) -> tuple[str, int]:
    """``sample:seed=N`` is the sample market of seed N (another synthetic market); other specs keep ``seed``."""
    if not spec.startswith("sample:"):
        return spec, seed
    key, _, value = spec[len("sample:"):].partition("=")
    if key != "seed" or not value.strip().lstrip("-").isdigit():
        raise UserError(f"--data {spec!r}: the sample market takes 'sample' or 'sample:seed=N' (N a whole number)")
    return "sample", int(value)


def load_data(args: argparse.Namespace, spec: str | None = None) -> pd.DataFrame:
    """The bars of the data options (of ``spec``, one data set, when given; else of ``args.data``)."""
    from btdensity.feeds.source import load_source

    if args.bars is not None and args.bars < 2:
        raise UserError(f"--bars must be at least 2, got {args.bars}")
    source, seed = _sample_seed(args.data if spec is None else spec, args.seed)
    return load_source(source, timeframe=args.timeframe, since=args.since, until=args.until, seed=seed,
                       bars=args.bars, cache_dir=str(cache_root(args.cache_dir)), progress=not args.quiet)


def load_datasets(args: argparse.Namespace, specs: list[str], min_bars: int = 2,
                  need: str = "") -> dict[str, pd.DataFrame]:
    """The bars of several data sets by :func:`asset_name`, aligned on their common timestamps; a UserError names
    the data set that leaves no common bar, or says the overlap is shorter than ``min_bars`` (``need``: why)."""
    from btdensity.runner.assets import align_frames

    frames = {asset_name(spec): load_data(args, spec) for spec in specs}
    try:
        return align_frames(frames, min_bars=min_bars, need=need)
    except ValueError as exc:
        raise UserError(f"--data: {exc}") from None


def walk_forward(args: argparse.Namespace) -> "WalkForwardSettings":
    """The model indicators' walk-forward settings of the command line."""
    from btdensity.indicators import WalkForwardSettings

    speed = {"n_jobs": args.jobs, "device": args.device, "expanding": args.expanding, "warm_start": args.warm_start}
    return WalkForwardSettings(train_bars=args.train_bars, retrain_every=args.retrain_every, seed=args.seed,
                               quiet=args.quiet, cache_dir=str(model_cache_dir(args.cache_dir)), **speed)


def _default_market(spec: str) -> str:
    """The market of a data set when ``--market`` is not given: linear for Bybit perpetuals, spot otherwise."""
    if not spec.startswith("bybit:"):
        return "spot"
    from btdensity.feeds.bybit import infer_category  # imports ccxt: only for Bybit data

    return "linear" if infer_category(spec[len("bybit:"):]) == "linear" else "spot"


def backtest_config(args: argparse.Namespace, df: Any = None) -> "BacktestConfig":
    """The backtest terms of the command line; ``--funding-rate bybit`` fetches the rates of ``df``'s span."""
    from btdensity.runner import BacktestConfig

    rate, market = args.funding_rate, args.market
    specs = list(getattr(args, "datasets", None) or [args.data])
    if market is None:
        markets = {_default_market(spec) for spec in specs}
        if len(markets) > 1:
            raise UserError("--data mixes spot and perpetual data sets: give --market spot or --market linear")
        market = markets.pop()
    if rate is not None and market != "linear":
        raise UserError("--funding-rate applies to perpetuals: add --market linear")
    if args.leverage != 1.0 and market != "linear":
        raise UserError("--leverage applies to perpetuals: add --market linear")
    if rate == "bybit":
        if len(specs) > 1:
            raise UserError("--funding-rate bybit reads one symbol's history; with several --data give a constant "
                            "rate (charged on every asset)")
        if not args.data.startswith("bybit:") or df is None:
            raise UserError("--funding-rate bybit needs --data bybit:SYMBOL (a perpetual, e.g. BTC/USDT:USDT) "
                            "and no --live; give a constant rate otherwise")
        from btdensity.feeds.funding import fetch_funding_rates

        rate = fetch_funding_rates(args.data[len("bybit:"):], since=df.index[0], until=df.index[-1],
                                      cache_dir=str(cache_root(args.cache_dir)))
    return BacktestConfig(strategy=args.strategy, params=dict(args.param), cash=args.cash, market=market,
                          commission=args.commission, maker_fee=args.maker_fee, leverage=args.leverage,
                          funding=rate, slippage=args.slippage, volume_fill=args.volume_fill,
                          runonce=not args.bar_by_bar,
                          walk_forward=walk_forward(args))
