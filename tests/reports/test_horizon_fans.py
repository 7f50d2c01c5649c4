"""The diagnostics page's multi-horizon fan panel: drawn when a run has ``BNNHorizons`` lines, with each horizon's
coverage counted by brute force; absent (no heading, no image) when it has none."""
import base64
import re

import numpy as np
import pandas as pd
import pytest

from btdensity.feeds import synthetic_market
from btdensity.reports import write_diagnostics

HEADING = "Multi-horizon forecast fans"
PNG = b"\x89PNG\r\n\x1a\n"


def _images(html):
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def _section(html, heading):
    start = html.index(f"<h2>{heading}</h2>")
    return html[start:html.index("</section>", start)]


def _write(tmp_path, lines, prices):
    return write_diagnostics(tmp_path, prices=prices, lines=lines, trades=pd.DataFrame({"open": [], "pnlcomm": []}),
                             positions=pd.Series(0.0, index=prices.index), title="fans").read_text()


@pytest.fixture(scope="module")
def prices():
    return synthetic_market(600, seed=4)


def test_fans_are_drawn_and_each_horizon_coverage_is_counted(prices, tmp_path):
    close = prices["close"].to_numpy()
    lines = pd.DataFrame({"LogDensity.logp": np.linspace(-1, 1, 600)}, index=prices.index)
    for h, half in ((1, 0.004), (4, 0.01), (24, 0.03)):      # fixed half-widths: some bars in, some out
        lines[f"BNNHorizons.mean_h{h}"] = 0.0
        lines[f"BNNHorizons.lower_h{h}"] = -half
        lines[f"BNNHorizons.upper_h{h}"] = half
    lines.iloc[:150, 1:] = np.nan                               # before the indicator's first fit
    section = _section(_write(tmp_path, lines, prices), HEADING)
    images = _images(section)
    assert len(images) == 1 and images[0].startswith(PNG) and len(images[0]) > 5_000
    for h, half in ((1, 0.004), (4, 0.01), (24, 0.03)):
        t = np.arange(150, 600 - h)
        realised = np.log(close[t + h] / close[t])
        inside = np.mean(np.abs(realised) <= half)
        assert 0.05 < inside < 0.995
        assert f"<tr><th>{h}</th><td>{len(t):,}</td><td>{inside:.1%}</td><td>{2e4 * half:,.4g}</td></tr>" in section


def test_no_multi_horizon_lines_no_panel(prices, tmp_path):
    lines = pd.DataFrame({"LogDensity.logp": np.linspace(-1, 1, 600)}, index=prices.index)
    html = _write(tmp_path, lines, prices)
    assert HEADING not in html and "mean_h" not in html
