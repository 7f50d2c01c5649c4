"""Stand-in indicators for ablations: the same lines as a model indicator, with values given up front — neutral
values ("the component says nothing"), or the component's own series shifted in time (its timing destroyed,
its distribution kept). A strategy built on ``ModelStrategy`` takes them through its ``replace`` parameter."""
from __future__ import annotations

from array import array
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

__all__ = ["NEUTRAL", "neutral_lines", "replacement", "replay_indicator", "shifted_lines"]

#: line values that carry no information, per model indicator: an open gate, a typical state, no forecast edge
NEUTRAL: dict[str, dict[str, float]] = {
    "LogDensity": {"logp": 0.0, "pvalue": 1.0, "gate": 1.0, "smooth_gate": 1.0},
    "Energy": {"energy": 0.0, "zscore": 0.0, "pvalue": 1.0},
    "ScoreDirection": {"direction": 0.0, "strength": 0.0},
    "Regime": {"regime": 2.0, "confidence": 1.0, "energy": 0.0},   # always "ranging"
}


class _Replay(bt.Indicator):
    """Lines filled from ``values`` (one row a bar of the data, one column a line): batched and bar by bar."""

    params = (("values", None),)

    def __init__(self) -> None:
        self._done = False
        valid = np.isfinite(self.p.values).all(axis=1)
        # the same minimum period as the indicator it stands in for: the strategy waits for the first value
        self.addminperiod(int(np.argmax(valid)) + 1 if valid.any() else 1)

    def oncestart(self, start: int, end: int) -> None:
        self.once(start, end)

    def once(self, start: int, end: int) -> None:
        if self._done:
            return
        self._done = True
        values = self.p.values
        n = min(self.data.buflen(), values.shape[0])
        for j in range(self.size()):
            self.lines[j].array[0:n] = array("d", np.asarray(values[:n, j], dtype=np.float64))

    def nextstart(self) -> None:
        self.next()

    def next(self) -> None:
        bar = len(self.data) - 1
        if bar < self.p.values.shape[0]:
            for j in range(self.size()):
                self.lines[j][0] = float(self.p.values[bar, j])


def replay_indicator(name: str, line_names: tuple[str, ...]) -> type[bt.Indicator]:
    """An indicator class named ``name`` (its lines are reported as ``name``'s) with ``line_names`` whose values are
    a ``values`` parameter (rows: the data's bars)."""
    return type(name, (_Replay,), {"lines": tuple(line_names), "__module__": __name__})


def neutral_lines(name: str, frame: pd.DataFrame) -> np.ndarray:
    """The neutral values of ``name``'s lines (``NEUTRAL``; lines it does not list are 0) on the bars where the
    real lines ``frame`` have values, NaN before (the same warm-up)."""
    values = NEUTRAL.get(name, {})
    line_names = [c.split(".", 1)[1] for c in frame.columns]
    out = np.tile([values.get(line, 0.0) for line in line_names], (len(frame), 1)).astype(np.float64)
    out[~np.isfinite(frame.to_numpy(dtype=np.float64)).all(axis=1)] = np.nan
    return out


def shifted_lines(frame: pd.DataFrame, shift: int) -> np.ndarray:
    """The rows of ``frame`` from its first complete row on, rotated by ``shift`` bars (circularly within that
    span; the rows before it stay NaN): the series keeps its values and their distribution, not their timing."""
    values = frame.to_numpy(dtype=np.float64, copy=True)
    ok = np.isfinite(values).all(axis=1)
    if not ok.any():
        return values
    first = int(np.argmax(ok))
    values[first:] = np.roll(values[first:], shift, axis=0)
    return values


def replacement(kind: str, name: str, lines: pd.DataFrame, shift: int = 0) -> Any:
    """What ``ModelStrategy(replace={name: ...})`` takes for ablation ``kind``: ``"without"`` (neutral values) or
    ``"shifted"`` (the run's own ``lines`` of ``name`` rotated by ``shift``) as ``(class, values)``."""
    cols = [c for c in lines.columns if c.split(".", 1)[0] == name]
    line_names = tuple(c.split(".", 1)[1] for c in cols)
    if kind == "without":
        if name not in NEUTRAL:
            raise ValueError(f"{name} has no neutral stand-in; ablate one of {sorted(NEUTRAL)} without it, or compare "
                             "it with its baseline and its time-shifted self")
        return replay_indicator(name, line_names), neutral_lines(name, lines[cols])
    return replay_indicator(name, line_names), shifted_lines(lines[cols], shift)
