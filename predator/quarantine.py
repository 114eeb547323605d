"""Quarantine file: rows that could not be read, with their source, line and reason, as JSON lines.

Each line is ``{"source", "line", "reason", "row", "quarantined_at"}``; ``row`` holds the raw cells with
values as strings (None stays null) so that any cell type serialises. Files are appended to, never
rewritten, so the quarantine of several ingest runs accumulates.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from predator.normalise import Rejection


def _stringify(row: dict[str, Any]) -> dict[str, str | None]:
    return {str(key): None if value is None else str(value) for key, value in row.items()}


class QuarantineWriter:
    """Appends rejections to a JSONL file; use as a context manager. ``count`` is rows written here."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.count = 0
        self._file = None

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def write(self, rejection: Rejection) -> None:
        """Append one rejection (the file and its folder are created on the first write)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        entry = {
            "source": rejection.source,
            "line": rejection.line,
            "reason": rejection.reason,
            "row": _stringify(rejection.row),
            "quarantined_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self._file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1

    def write_all(self, rejections: list[Rejection]) -> None:
        """Append several rejections."""
        for rejection in rejections:
            self.write(rejection)

    def close(self) -> None:
        """Flush and close the file, if one was opened."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_quarantine(path: str | Path) -> list[dict]:
    """Every entry of a quarantine file, oldest first; a missing file has none."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
