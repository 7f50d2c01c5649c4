"""``ResultStore``: finished trials, one JSON line each in ``results.jsonl``, appended as each trial finishes.

A line is written with a single ``write`` on a file opened for appending and flushed to disk, so a killed
sweep leaves whole lines (a torn last line, if any, is ignored on reading). The latest line of a trial id
wins. A resumed sweep skips every trial whose latest status is ``ok``; failed trials run again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["ResultStore"]


class ResultStore:
    """The results file of a sweep folder: ``records`` maps trial id to its latest record."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:   # a line torn by a kill
                        continue
                    if isinstance(record, dict) and "id" in record:
                        self.records[record["id"]] = record
            with self.path.open("rb+") as fh:   # end a torn line, so the next record starts on its own line
                if fh.seek(0, os.SEEK_END):
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        fh.write(b"\n")

    def done(self, trial_id: str) -> bool:
        """Whether the trial finished successfully in this or an earlier run."""
        return self.records.get(trial_id, {}).get("status") == "ok"

    def append(self, record: Mapping[str, Any]) -> None:
        """Store one finished trial (``id``, ``status``, ...) durably."""
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.records[record["id"]] = dict(record)
