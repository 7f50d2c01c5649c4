"""The building blocks of btdensity's self-contained HTML pages (diagnostics, scorecard): one style sheet, number
formatting, tables, inline PNG images and panels, and the page around them. No network: images are base64."""
from __future__ import annotations

import base64
import html
import math

import numpy as np
import pandas as pd

__all__ = ["STYLE", "fmt", "frame_table", "image", "key_table", "page", "panel"]

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1150px; margin: 2em auto;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #444; margin: 0.3em 0 0.8em; } p.missing { color: #888; font-style: italic; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
"""


def fmt(value: object, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.4g}" if abs(float(value)) < 1e4 else f"{float(value):,.0f}"
    return html.escape(str(value))


def key_table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def frame_table(frame: pd.DataFrame, kinds: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or ""] + list(frame.columns))
    rows = "".join("<tr><th>" + fmt(i) + "</th>" + "".join(f"<td>{fmt(r[c], kinds.get(c, 'num'))}</td>"
                                                          for c in frame.columns) + "</tr>"
                   for i, r in frame.iterrows())
    return f"<table><tr>{head}</tr>{rows}</table>"


def image(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def panel(heading: str, note: str, body: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2><p class='note'>{note}</p>{body}</section>"


def page(title: str, intro: str, body: str) -> str:
    """A whole page: ``title`` as heading, an ``intro`` note (HTML) and the ``body`` (HTML)."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p class='note'>{intro}</p>"
            f"{body}</body></html>\n")
