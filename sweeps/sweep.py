"""``sweep``: run a grid of backtests (parameter sweep or walk-forward optimisation) on a local process
pool or on Ray, resumable, and write ``sweep.csv`` and ``sweep.html``.

Every finished trial is appended to ``results.jsonl`` in the output folder at once (see
:class:`~btdensity.sweeps.store.ResultStore`) and ``sweep.csv`` is rewritten atomically, so an interrupted
sweep started again with the same grid and folder runs only the trials that have not finished.

Walk-forward optimisation (the grid's ``walk_forward``): on every fold, every candidate is scored on the
in-sample block; the candidate with the best ``metric`` there is then scored on the out-of-sample block
that follows. ``walk_forward.csv`` and the report show both side by side.

Every trial's per-bar returns are kept in ``returns/`` (see :mod:`btdensity.sweeps.returns`); from them,
each selection group's chosen trial gets its deflated Sharpe ratio and the group its probability of
backtest overfitting (``overfitting.csv``, the ``selected`` / ``deflated_sharpe`` / ``pbo`` columns of
sweep.csv, the report; see :mod:`btdensity.sweeps.selection`).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from btdensity.atomic import atomic_path

from .engines import make_engine, run_trials
from .report import write_sweep_html
from .grid import Candidate, SweepGrid, load_grid
from .returns import returns_path, write_returns
from .selection import SelectionGroup, overfitting_table, walk_forward_overall
from .store import ResultStore
from .trial import flatten_params, load_trial_data, make_trial, trial_id

__all__ = ["SweepResult", "sweep"]


@dataclass(frozen=True)
class _Planned:
    """A trial in its place in the sweep: stage (``sweep``, ``in_sample``, ``out_of_sample``), fold, group."""

    stage: str
    fold: int | None
    group: str
    candidate: Candidate
    trial: Mapping[str, Any]

    @functools.cached_property
    def id(self) -> str:
        return trial_id(self.trial)


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep: ``table`` is sweep.csv, ``walk_forward`` the in- vs out-of-sample table (or None),
    ``overfitting`` overfitting.csv (one row per selection group), ``walk_forward_overall`` the walk-forward
    figures over all folds (or None)."""

    table: pd.DataFrame
    walk_forward: pd.DataFrame | None
    paths: dict[str, Path]
    computed: int          # trials run by this call (the others were found in results.jsonl)
    overfitting: pd.DataFrame | None = None
    walk_forward_overall: pd.DataFrame | None = None


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _row(p: _Planned, record: Mapping[str, Any]) -> dict[str, Any]:
    t = p.trial
    row: dict[str, Any] = {"trial_id": p.id, "stage": p.stage, "fold": p.fold, "strategy": t["strategy"]}
    row.update({f"param.{k}": _plain(v) for k, v in flatten_params(t["params"]).items()})
    row.update({k: t["data"][k] for k in ("source", "timeframe", "since", "until", "bars")})
    row.update({"score_from": t["score_from"], "seed": t["seed"], **t["broker"]})
    row.update({"status": record["status"], "attempts": record["attempts"], "runtime_s": record["runtime_s"],
                "error": record.get("error")})
    row.update(record.get("metrics") or {})
    return row


def _table(plan: list[_Planned], store: ResultStore) -> pd.DataFrame:
    rows = [_row(p, store.records[p.id]) for p in plan if p.id in store.records]
    return pd.DataFrame(rows)


def _plan(grid: SweepGrid) -> list[_Planned]:
    """Every trial of the sweep, or of the in-sample stage of a walk-forward optimisation."""
    plan = []
    for data in grid.data:
        for seed in grid.seeds:
            windows: list[tuple[int | None, str | None, str | None]] = [(None, data["until"], None)]
            if grid.walk_forward is not None:
                index = load_trial_data(data, seed, grid.data_cache_dir).index
                windows = [(k, index[is_[1]].isoformat(), index[is_[0]].isoformat())
                           for k, (is_, _) in enumerate(grid.walk_forward.windows(len(index)))]
            for broker in grid.brokers:
                for fold, until, score_from in windows:
                    group = json.dumps([data, seed, broker, fold], sort_keys=True)
                    for cand in grid.candidates:
                        trial = make_trial({**data, "until": until}, cand.strategy, cand.params, broker, seed,
                                           score_from)
                        plan.append(_Planned("sweep" if fold is None else "in_sample", fold, group, cand, trial))
    return plan


def _best_per_group(plan: list[_Planned], store: ResultStore, metric: str) -> dict[str, _Planned]:
    """Per selection group, its successful trial with the highest ``metric`` (the first one on ties)."""
    best: dict[str, _Planned] = {}
    for p in plan:
        record = store.records.get(p.id, {})
        if p.stage == "out_of_sample" or record.get("status") != "ok":
            continue
        score = record["metrics"][metric]
        if p.group not in best or score > store.records[best[p.group].id]["metrics"][metric]:
            best[p.group] = p
    return best


def _out_of_sample(grid: SweepGrid, plan: list[_Planned], store: ResultStore) -> list[_Planned]:
    """Per fold, the best in-sample candidate (by ``grid.metric``) placed on the out-of-sample block."""
    oos = []
    for group, p in _best_per_group(plan, store, grid.metric).items():
        data, seed, broker, fold = json.loads(group)
        index = load_trial_data(data, seed, grid.data_cache_dir).index
        _, (first, last) = grid.walk_forward.windows(len(index))[fold]
        trial = make_trial({**data, "until": index[last].isoformat()}, p.candidate.strategy, p.candidate.params,
                           broker, seed, index[first].isoformat())
        oos.append(_Planned("out_of_sample", fold, group, p.candidate, trial))
    return oos


def _context(p: _Planned, window: bool = True) -> dict[str, Any]:
    """What the trials of ``p``'s selection group share: stage, fold, data, scored window (``score_from`` to
    ``until``), seed, broker terms; of a walk-forward chain (``window=False``) the data as the grid gives it."""
    data, seed, broker, fold = json.loads(p.group)
    if window:
        data = {**data, "until": p.trial["data"]["until"]}
    head = {"stage": p.stage, "fold": fold} if window else {}
    return {**head, **{k: data[k] for k in ("source", "timeframe", "since", "until", "bars")},
            **({"score_from": p.trial["score_from"]} if window else {}), "seed": seed,
            "broker": json.dumps(broker, sort_keys=True)}


def _selection(plan: list[_Planned], store: ResultStore, out: Path, metric: str
               ) -> tuple[pd.DataFrame, dict[str, np.ndarray], pd.DataFrame | None]:
    """The overfitting table (one row per selection group), the groups' CSCV logits and, for walk-forward
    optimisation, the figures over all folds per chain (the out-of-sample blocks stitched in fold order)."""
    best = _best_per_group(plan, store, metric)
    members: dict[str, list[str]] = {}
    for p in plan:
        if p.group in best and p.stage != "out_of_sample" and store.done(p.id) and returns_path(out, p.id).exists():
            members.setdefault(p.group, []).append(p.id)
    oos = {p.group: p for p in plan if p.stage == "out_of_sample" and store.done(p.id)}
    groups = []
    members = {key: list(dict.fromkeys(ids)) for key, ids in members.items()}   # a data spec listed twice
    for key, p in best.items():
        if p.id not in members.get(key, ()):   # its returns file went missing: no figures rather than wrong ones
            continue
        extra = {"strategy": p.candidate.strategy, "params": json.dumps(dict(p.candidate.params), sort_keys=True),
                 "metric": metric, "metric_value": store.records[p.id]["metrics"][metric]}
        if p.stage == "in_sample":
            extra["out_of_sample_sharpe"] = store.records[oos[key].id]["metrics"]["sharpe"] if key in oos else None
        groups.append(SelectionGroup(key, _context(p), members[key], p.id, extra))
    figures, logits = overfitting_table(groups, out)
    if not oos:
        return figures, logits, None
    chains: dict[str, list[_Planned]] = {}
    for key in sorted(oos, key=lambda k: json.loads(k)[3]):
        chains.setdefault(json.dumps(json.loads(key)[:3], sort_keys=True), []).append(oos[key])
    in_sample = {c: float(np.mean([store.records[best[p.group].id]["metrics"]["sharpe"] for p in ps]))
                 for c, ps in chains.items()}
    overall = walk_forward_overall({c: [p.id for p in ps] for c, ps in chains.items()}, in_sample,
                                   {c: _context(ps[0], window=False) for c, ps in chains.items()}, out)
    return figures, logits, overall


def _mark_selected(table: pd.DataFrame, figures: pd.DataFrame) -> pd.DataFrame:
    """sweep.csv's ``selected`` column and, on the selected rows, ``deflated_sharpe`` and ``pbo``."""
    if table.empty:
        return table
    chosen = figures.set_index("trial_id") if len(figures) else pd.DataFrame(columns=["deflated_sharpe", "pbo"])
    table["selected"] = table["trial_id"].isin(chosen.index) & (table["stage"] != "out_of_sample")
    for col in ("deflated_sharpe", "pbo"):
        table[col] = table["trial_id"].map(chosen[col]).where(table["selected"])
    return table


def _walk_forward_table(plan: list[_Planned], oos: list[_Planned], store: ResultStore, metric: str,
                        selection: pd.DataFrame) -> pd.DataFrame:
    chosen = selection.set_index("trial_id") if len(selection) else None
    is_by_group = {(p.group, p.candidate.key): p for p in plan if p.stage == "in_sample"}
    figures = dict.fromkeys([metric, "total_return", "sharpe", "max_drawdown", "n_trades"])
    rows = []
    for p in oos:
        record = store.records.get(p.id)
        if record is None:
            continue
        ins = is_by_group[(p.group, p.candidate.key)]
        m_in, m_out = store.records[ins.id]["metrics"], record.get("metrics") or {}
        row = {"fold": p.fold, "source": p.trial["data"]["source"], "seed": p.trial["seed"],
               "in_sample_from": ins.trial["score_from"], "in_sample_until": ins.trial["data"]["until"],
               "out_of_sample_from": p.trial["score_from"], "out_of_sample_until": p.trial["data"]["until"],
               "strategy": p.candidate.strategy, "params": json.dumps(dict(p.candidate.params), sort_keys=True),
               "status": record["status"]}
        for key in figures:
            row[f"in_sample_{key}"] = m_in.get(key)
            row[f"out_of_sample_{key}"] = m_out.get(key)
        row[f"out_of_sample_benchmark_{metric}"] = m_out.get(f"benchmark_{metric}")
        for key in ("deflated_sharpe", "pbo"):
            row[f"in_sample_{key}"] = chosen.at[ins.id, key] if chosen is not None and ins.id in chosen.index else None
        rows.append(row)
    return pd.DataFrame(rows)


def sweep(grid: str | os.PathLike | Mapping[str, Any] | SweepGrid, engine: str = "local", *,
          out: str | os.PathLike = "sweep", max_parallel: int | None = None, ray_address: str | None = None,
          retries: int = 2, report: bool = True) -> SweepResult:
    """Run every trial of ``grid`` (a YAML path, a mapping or a loaded :class:`SweepGrid`) on ``engine``
    (``"local"`` or ``"ray"``) and write ``results.jsonl``, ``sweep.csv``, ``sweep.html`` (unless
    ``report=False``) and, for walk-forward grids, ``walk_forward.csv`` into ``out``.

    Trials already finished in ``out/results.jsonl`` are not run again. A trial that raises is retried
    ``retries`` times and then recorded with status ``failed`` and its error.
    """
    grid = grid if isinstance(grid, SweepGrid) else load_grid(grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for data in grid.data:        # fail fast on bad data; downloads happen here once, not in every worker
        for seed in grid.seeds:
            load_trial_data(data, seed, grid.data_cache_dir)
    paths = {"results": out / "results.jsonl", "csv": out / "sweep.csv"}
    store = ResultStore(paths["results"])
    plan = _plan(grid)
    computed = 0
    options = {"model_cache_dir": grid.model_cache_dir, "data_cache_dir": grid.data_cache_dir,
               "imports": grid.imports}
    runner, parallel = make_engine(engine, options, max_parallel=max_parallel, ray_address=ray_address)

    def finished(record: dict[str, Any]) -> None:
        nonlocal computed
        computed += 1
        returns = record.pop("returns", None)
        if returns is not None:   # before the record: a trial in results.jsonl has its returns
            write_returns(out, record["id"], returns)
        store.append(record)
        _atomic_csv(_table(plan, store), paths["csv"])

    def run(stage: list[_Planned]) -> None:
        todo = {p.id: p.trial for p in stage if not (store.done(p.id) and returns_path(out, p.id).exists())}
        run_trials(todo, runner, max_parallel=parallel, retries=retries, on_finish=finished)

    try:
        run(plan)
        oos: list[_Planned] = []
        if grid.walk_forward is not None:
            oos = _out_of_sample(grid, plan, store)
            plan = plan + oos
            run(oos)
    finally:
        runner.close()
    figures, logits, overall = _selection(plan, store, out, grid.metric)
    paths["overfitting"] = out / "overfitting.csv"
    _atomic_csv(figures, paths["overfitting"])
    walk_forward = None
    if grid.walk_forward is not None:
        walk_forward = _walk_forward_table(plan, oos, store, grid.metric, figures)
        paths["walk_forward"] = out / "walk_forward.csv"
        _atomic_csv(walk_forward, paths["walk_forward"])
        if overall is not None:
            paths["walk_forward_overall"] = out / "walk_forward_overall.csv"
            _atomic_csv(overall, paths["walk_forward_overall"])
    table = _mark_selected(_table(plan, store), figures)
    _atomic_csv(table, paths["csv"])
    if report:
        paths["html"] = write_sweep_html(out / "sweep.html", table, metric=grid.metric, heatmap=grid.heatmap,
                                         walk_forward=walk_forward, overfitting=figures, logits=logits,
                                         walk_forward_overall=overall)
    return SweepResult(table=table, walk_forward=walk_forward, paths=paths, computed=computed,
                       overfitting=figures, walk_forward_overall=overall)
