"""Write one part of a report in a forked child process while the parent writes the others.

The parts of a report (tearsheet, plot, diagnostics) are independent files; on a machine with two cores the
tearsheet (QuantStats' import and its figures, about three seconds) runs beside the plot and the diagnostics page.
Each part writes its files atomically, so a child that dies leaves no half-written file. Where ``fork`` is not
available (Windows, macOS's default) or ``BTDENSITY_REPORT_JOBS=1`` the part runs in the calling process.
"""
from __future__ import annotations

import multiprocessing
import os
import traceback
from typing import Any, Callable

__all__ = ["Background", "start_part"]


class Background:
    """A report part running in a child process; :meth:`wait` raises the child's error in the parent."""

    def __init__(self, name: str, process: Any = None, reader: Any = None, error: BaseException | None = None):
        self.name, self._process, self._reader, self._error = name, process, reader, error

    def wait(self) -> None:
        """Wait for the part; a failure in the child raises a RuntimeError naming the part and the child's error."""
        if self._error is not None:
            raise self._error
        if self._process is None:
            return
        try:
            message = self._reader.recv()
        except EOFError:                 # the child died before it could say anything
            message = None
        self._process.join()
        self._reader.close()
        code, self._process = self._process.exitcode, None
        if message:
            raise RuntimeError(f"writing the {self.name} failed: {message}")
        if code != 0:
            raise RuntimeError(f"writing the {self.name} failed: its process ended with exit code {code}")


def _forking() -> bool:
    return os.environ.get("BTDENSITY_REPORT_JOBS", "") != "1" and "fork" in multiprocessing.get_all_start_methods()


def _child(writer: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        fn(*args, **kwargs)
        writer.send("")
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        writer.send(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    finally:
        writer.close()


def start_part(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Background:
    """Start ``fn(*args, **kwargs)`` in a forked child (or run it now where forking is off); call ``wait()`` on the
    result before using what it writes."""
    if not _forking():
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - raised again by wait(), in the same place as a child's
            return Background(name, error=exc)
        return Background(name)
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(writer, fn, args, kwargs), name=f"btdensity-{name}", daemon=True)
    process.start()
    writer.close()
    return Background(name, process, reader)
