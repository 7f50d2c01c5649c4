"""``RiskScale``: the risk overlay's continuous exposure scale, from a volatility estimate and the model indicators.

``scale = vol_scale × density_scale × energy_scale`` (each 1 when its part is off):

- ``vol_scale`` (volatility targeting) = ``min(reference / σ, max_scale)``. ``σ`` is the square root of an
  exponentially weighted mean (half-life ``vol_halflife`` bars) of squared per-bar risk: the data's squared log
  returns (``risk=None``, a trailing realised volatility), or the square of a risk line of an indicator
  (``BNNUncertainty.std``, ``GarchForecast.std``, a VaR / CVaR line: any measure proportional to the return's
  scale, since only its ratio to its own reference counts). ``reference`` is ``target_vol`` when given, else the
  median of ``σ`` over the last ``reference_bars`` bars: full exposure in a typical state, less when risk is
  above its usual level, on any market without a number to tune. The median, not the mean, so that a crash does
  not lift the reference (and exposure) for months after it.
- ``density_scale`` = 1 while the smooth density gate (:func:`~btdensity.indicators.density.gate_step` on the
  ``pvalue`` line of ``density``: closes at ``alpha``, reopens after ``reopen_bars`` bars above ``reopen``) is
  open, ``closed_scale`` while it is closed.
- ``energy_scale`` falls linearly from 1 at ``z_low`` to ``energy_floor`` at ``z_high`` of the energy z-score
  (``energy``'s ``zscore`` line), smoothed with a half-life of ``energy_halflife`` bars (1: not smoothed).

Every line is NaN on a bar where a model input used is NaN (warm-up, bad bars) and until ``σ`` has
``vol_halflife`` bars of history; the recursion itself runs through them. The batched (``once``) and bar-by-bar
(``next``) paths run the same step per bar (identical values); a bar seen again (replay) is recomputed from the
state before it.
"""
from __future__ import annotations

import bisect
import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import numpy as np

from btdensity.indicators.density import default_reopen, gate_step

__all__ = ["RiskScale"]

_RISK_LINES = ("std", "var", "cvar")


def _line(obj: Any, names: tuple[str, ...], what: str) -> Any:
    """The first of ``names`` that ``obj`` has as a line (``obj`` itself when it is a line)."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    if isinstance(obj, bt.LineSingle):
        return obj
    raise ValueError(f"RiskScale: {type(obj).__name__} has none of the lines {names}; pass {what}")


@dataclass
class _State:
    """The recursion's state after a bar."""

    close: float = math.nan        # last valid close (trailing volatility)
    var: float = math.nan          # EWMA of squared risk
    window: deque = field(default_factory=deque)   # σ of the last reference_bars bars, in order
    ranked: list = field(default_factory=list)     # the same, sorted
    gate: float = math.nan
    run: int = 0
    z: float = math.nan            # smoothed energy z-score
    added: float = math.nan        # what the last step put into the window and took out of it (to undo it)
    removed: float = math.nan

    def snapshot(self) -> tuple:
        """The scalars (the window is undone from ``added`` / ``removed``)."""
        return (self.close, self.var, self.gate, self.run, self.z)

    def undo(self, scalars: tuple) -> None:
        """Back to the state before the last step, whose scalars were ``scalars``."""
        if not math.isnan(self.added):
            self.window.pop()
            del self.ranked[bisect.bisect_left(self.ranked, self.added)]
        if not math.isnan(self.removed):
            self.window.appendleft(self.removed)
            bisect.insort(self.ranked, self.removed)
        self.close, self.var, self.gate, self.run, self.z = scalars


class RiskScale(bt.Indicator):
    """The risk overlay's exposure scale (see the module docstring); lines ``scale``, ``vol_scale``,
    ``density_scale``, ``energy_scale``. ``vol=False`` leaves volatility out; with neither ``density`` nor
    ``energy`` either, the scale is 1 on every bar (a constant scale)."""

    lines = ("scale", "vol_scale", "density_scale", "energy_scale")
    params = (
        ("vol", True), ("risk", None), ("vol_halflife", 168), ("reference_bars", 2000), ("target_vol", None),
        ("max_scale", 1.0),
        ("density", None), ("alpha", None), ("reopen", None), ("reopen_bars", 3), ("closed_scale", 0.5),
        ("energy", None), ("z_low", 1.5), ("z_high", 3.0), ("energy_floor", 0.5), ("energy_halflife", 24),
    )
    plotinfo = dict(subplot=True, plotname="Risk scale", plotymargin=0.05, plothlines=[0.0, 1.0])
    plotlines = dict(scale=dict(color="#d62728", linewidth=1.2), vol_scale=dict(_plotskip=True),
                     density_scale=dict(_plotskip=True), energy_scale=dict(_plotskip=True))

    def __init__(self) -> None:
        p = self.p
        self._check()
        self.risk_line = None if p.risk is None else _line(p.risk, _RISK_LINES, "an indicator with a std line")
        self.pvalue = None if p.density is None else _line(p.density, ("pvalue",), "an indicator with a pvalue line")
        self.zscore = None if p.energy is None else _line(p.energy, ("zscore",), "an indicator with a zscore line")
        alpha = p.alpha if p.alpha is not None else getattr(getattr(p.density, "p", None), "alpha", 0.05)
        self.alpha = float(alpha)
        self.reopen = default_reopen(self.alpha) if p.reopen is None else float(p.reopen)
        self._vol_weight = 1.0 - 0.5 ** (1.0 / p.vol_halflife)
        self._z_weight = 1.0 - 0.5 ** (1.0 / p.energy_halflife)
        self._state = _State()
        self._bar = -1
        self._before: tuple | None = None
        self._once_done = False

    def _plotlabel(self) -> list:
        """What backtrader's plot shows after the name: the parts in use, not every parameter."""
        return [name for name, on in (("volatility", self.p.vol), ("density", self.pvalue is not None),
                                      ("energy", self.zscore is not None)) if on]

    def _check(self) -> None:
        p = self.p
        for name in ("vol_halflife", "reference_bars", "reopen_bars", "energy_halflife"):
            value = getattr(p, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RiskScale({name}={value!r}): a positive number of bars")
        if p.target_vol is not None and not p.target_vol > 0:
            raise ValueError(f"RiskScale(target_vol={p.target_vol}): a positive per-bar standard deviation")
        if not p.max_scale > 0:
            raise ValueError(f"RiskScale(max_scale={p.max_scale}): must be positive")
        for name in ("closed_scale", "energy_floor"):
            if not 0.0 <= getattr(p, name) <= 1.0:
                raise ValueError(f"RiskScale({name}={getattr(p, name)}): a fraction in [0, 1]")
        if not p.z_low < p.z_high:
            raise ValueError(f"RiskScale: z_low ({p.z_low}) must be below z_high ({p.z_high})")

    # ------------------------------------------------------------------ the step
    def _step(self, s: _State, close: float, risk: float, pvalue: float, z: float) -> tuple[float, ...]:
        """Advance ``s`` by one bar; the line values of the bar."""
        p = self.p
        vol_scale = 1.0
        if p.vol:
            if self.risk_line is None:
                x = math.log(close / s.close) ** 2 if close > 0 and s.close > 0 else math.nan
                if close > 0:
                    s.close = close
            else:
                x = risk * risk
            if math.isfinite(x):
                s.var = x if math.isnan(s.var) else s.var + self._vol_weight * (x - s.var)
            sigma = math.sqrt(s.var) if s.var >= 0 else math.nan
            vol_scale = self._vol_scale(s, sigma)
        density_scale = 1.0
        if self.pvalue is not None:
            s.run = s.run + 1 if pvalue > self.reopen else 0
            s.gate = gate_step(s.gate, pvalue, s.run, self.alpha, self.reopen, p.reopen_bars)
            density_scale = math.nan if math.isnan(s.gate) else 1.0 if s.gate > 0 else float(p.closed_scale)
        energy_scale = 1.0
        if self.zscore is not None:
            if math.isfinite(z):
                s.z = z if math.isnan(s.z) else s.z + self._z_weight * (z - s.z)
            share = (s.z - p.z_low) / (p.z_high - p.z_low)
            energy_scale = min(max(1.0 - (1.0 - p.energy_floor) * share, p.energy_floor), 1.0)
        if (self.risk_line is not None and p.vol and not math.isfinite(risk)) or \
                (self.pvalue is not None and not math.isfinite(pvalue)) or \
                (self.zscore is not None and not math.isfinite(z)):
            return (math.nan,) * 4
        return vol_scale * density_scale * energy_scale, vol_scale, density_scale, energy_scale

    def _vol_scale(self, s: _State, sigma: float) -> float:
        """Record ``sigma`` in the reference window; ``min(reference / sigma, max_scale)``."""
        p = self.p
        s.added = s.removed = math.nan
        if not math.isfinite(sigma):
            return math.nan
        s.window.append(sigma)
        bisect.insort(s.ranked, sigma)
        s.added = sigma
        if len(s.window) > p.reference_bars:
            s.removed = s.window.popleft()
            del s.ranked[bisect.bisect_left(s.ranked, s.removed)]
        if p.target_vol is not None:
            reference = float(p.target_vol)
        elif len(s.ranked) >= min(p.vol_halflife, p.reference_bars):
            reference = s.ranked[len(s.ranked) // 2]
        else:
            return math.nan
        return min(reference / sigma, float(p.max_scale)) if sigma > 0 else float(p.max_scale)

    # ------------------------------------------------------------------ both paths
    def _inputs(self, ago_or_index: int, batched: bool) -> tuple[float, float, float, float]:
        def read(line: Any) -> float:
            if line is None:
                return math.nan
            return float(line.array[ago_or_index]) if batched else float(line[0])

        return (read(self.data.close), read(self.risk_line), read(self.pvalue), read(self.zscore))

    def oncestart(self, start: int, end: int) -> None:
        self.once(start, end)

    def once(self, start: int, end: int) -> None:
        if self._once_done:   # backtrader calls oncestart and once: the work is done on the first call
            return
        self._once_done = True
        n = self.data.buflen()
        out = np.full((n, self.size()), np.nan)
        state = _State()
        for i in range(n):
            out[i] = self._step(state, *self._inputs(i, batched=True))
        for j in range(self.size()):
            self.lines[j].array[0:n] = array("d", out[:, j])

    def nextstart(self) -> None:
        self.next()

    def next(self) -> None:
        bar = len(self.data) - 1
        if bar == self._bar and self._before is not None:   # the same bar again (replay): start from before it
            self._state.undo(self._before)
        else:
            self._bar = bar
        self._before = self._state.snapshot()
        values = self._step(self._state, *self._inputs(0, batched=False))
        for j in range(self.size()):
            self.lines[j][0] = values[j]
