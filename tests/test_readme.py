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
