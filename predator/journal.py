"""An append-only journal of JSON lines in numbered segment files, rotated by size and replayed on start.

Durability (``fsync``):
- ``always``: every append is written and fsynced before :meth:`Journal.append` returns.
- ``interval`` (default): every append is written to the OS before returning (a killed process loses
  nothing it acknowledged); fsync runs at most every ``fsync_interval_s`` on the write path and from
  :meth:`Journal.sync_if_due`, so a power loss can cost up to that interval.
- ``never``: the OS decides when to write back.

Each new segment starts with the record returned by ``header()`` (the caller's checkpoint), so the
newest ``keep_segments`` segments replay on their own once older ones are deleted. A line torn by a
crash mid-write is cut off when the journal is reopened.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Literal

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "interval", "never"]
PREFIX, SUFFIX = "events-", ".jsonl"


class Journal:
    """Segments ``events-00000001.jsonl``, ``events-00000002.jsonl``, ... in ``directory``."""

    def __init__(self, directory: Path, rotate_bytes: int = 8 << 20, keep_segments: int = 4,
                 fsync: FsyncPolicy = "interval", fsync_interval_s: float = 1.0,
                 header: Callable[[], dict] | None = None):
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"unknown fsync policy {fsync!r}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = rotate_bytes
        self.keep_segments = keep_segments
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self.header = header or dict  # called for the first record of every new segment
        self._file = None
        self._size = 0
        self._dirty = False
        self._last_sync = time.monotonic()
        self.corrupt_lines = 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob(f"{PREFIX}*{SUFFIX}"))

    def replay(self) -> Iterator[dict]:
        """Every readable record, oldest first. Unreadable lines are skipped and counted."""
        for path in self.segments():
            with path.open("rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # torn tail: cut off on open
                    try:
                        yield json.loads(line)
                    except ValueError:
                        self.corrupt_lines += 1
                        log.warning("skipping unreadable journal line in %s", path.name)

    def append(self, lines: list[str]) -> None:
        """Append encoded records (one JSON document each, no newline) as one write."""
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode()
        if self._file is None:
            self._open_last()
        if self._size and self._size + len(data) > self.rotate_bytes:
            self._rotate()
        self._write(data)
        if self.fsync == "always":
            self._sync()
        else:
            self.sync_if_due()

    def sync_if_due(self) -> None:
        """Fsync now if the ``interval`` policy says so (call it from a timer too)."""
        if (self.fsync == "interval" and self._dirty
                and time.monotonic() - self._last_sync >= self.fsync_interval_s):
            self._sync()

    def close(self) -> None:
        if self._file is not None:
            if self.fsync != "never":
                self._sync()
            self._file.close()
            self._file = None

    def stats(self) -> dict:
        segments = self.segments()
        return {"dir": str(self.dir), "segments": len(segments), "current_bytes": self._size,
                "total_bytes": sum(p.stat().st_size for p in segments), "fsync": self.fsync,
                "corrupt_lines": self.corrupt_lines}

    def _open_last(self) -> None:
        segments = self.segments()
        if not segments:
            self._new_segment(1)
            return
        path = segments[-1]
        self._cut_torn_tail(path)
        self._file = path.open("ab")
        self._size = path.stat().st_size

    @staticmethod
    def _cut_torn_tail(path: Path) -> None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("cutting a torn line (%d bytes) off %s", len(data) - keep, path.name)
            with path.open("r+b") as f:
                f.truncate(keep)

    def _rotate(self) -> None:
        number = int(self.segments()[-1].name[len(PREFIX):-len(SUFFIX)]) + 1
        self._sync()
        self._file.close()
        self._new_segment(number)
        for old in self.segments()[:-self.keep_segments]:
            old.unlink()

    def _new_segment(self, number: int) -> None:
        self._file = (self.dir / f"{PREFIX}{number:08d}{SUFFIX}").open("ab")
        self._size = 0
        self._write((json.dumps(self.header(), separators=(",", ":")) + "\n").encode())

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()  # into the OS now: a killed process keeps what it acknowledged
        self._size += len(data)
        self._dirty = True

    def _sync(self) -> None:
        if self._dirty:
            os.fsync(self._file.fileno())
        self._dirty = False
        self._last_sync = time.monotonic()
