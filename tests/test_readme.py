"""The README's quickstart runs as written (with a small model cache of its own)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Quickstart"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("BTDENSITY_CACHE", str(tmp_path))
    exec(compile(code, "README quickstart", "exec"), {"__name__": "__main__"})  # backtrader looks classes up in sys.modules
    out = capsys.readouterr().out
    match = re.search(r"final value ([\d,.]+); gate closed on (\d+)% of bars", out)
    assert match, out
    assert 0 < int(match.group(2)) < 50
    assert any(tmp_path.iterdir())          # fitted models went to the cache named by BTDENSITY_CACHE


def test_python_backtest_section_runs(tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Backtests from Python"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.setenv("BTDENSITY_CACHE", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    exec(compile(code, "README backtests from Python", "exec"), namespace)
    summary, result = namespace["summary"], namespace["result"]
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "diagnostics.html").exists()
    assert summary["bars"] == 3000 and summary["fees_paid"] == result.fees_paid > 0
    assert "LogDensity.gate" in result.lines.columns and result.lines["LogDensity.gate"].notna().sum() > 1000
    assert any((tmp_path / "models").iterdir())
