"""Report parts written in a forked child: files arrive, failures reach the parent with the part's name, a dead
child is an error, and forking can be turned off."""
import os

import pytest

from btdensity.atomic import write_text
from btdensity.reports import background
from btdensity.reports.background import start_part

forks = pytest.mark.skipif(not background._forking(), reason="fork is not available here")


def _write(path, text):
    write_text(path, text)


def _fail(path):
    raise ValueError(f"no data for {path.name}")


def _die():
    os._exit(3)


@forks
def test_a_part_written_in_a_child_is_there_after_wait(tmp_path):
    part = start_part("tearsheet", _write, tmp_path / "t.html", "<html>ok</html>")
    assert part._process is not None and part._process.pid != os.getpid()     # it really ran elsewhere
    part.wait()
    assert (tmp_path / "t.html").read_text() == "<html>ok</html>"


@forks
def test_a_failure_in_the_child_is_raised_in_the_parent_naming_the_part(tmp_path):
    part = start_part("tearsheet", _fail, tmp_path / "t.html")
    with pytest.raises(RuntimeError, match=r"writing the tearsheet failed: ValueError: no data for t.html"):
        part.wait()
    assert not (tmp_path / "t.html").exists()


@forks
def test_a_child_that_dies_is_an_error():
    with pytest.raises(RuntimeError, match="exit code 3"):
        start_part("plot", _die).wait()


def test_forking_off_runs_the_part_here_and_raises_its_own_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BTDENSITY_REPORT_JOBS", "1")
    part = start_part("tearsheet", _write, tmp_path / "t.html", "x")
    assert part._process is None and (tmp_path / "t.html").read_text() == "x"     # written before wait()
    part.wait()
    with pytest.raises(ValueError, match="no data for t.html"):
        start_part("tearsheet", _fail, tmp_path / "t.html").wait()
