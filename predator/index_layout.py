"""Versioned on-disk layout of the embedded indexes.

::

    root/                    (settings.index_dir)
      CURRENT                "v000003" - the live version, replaced atomically
      v000002/{keyword,vectors}
      v000003/{keyword,vectors}
      v000004/...            a version being built (not yet published)

Why: the embedded vector engine (qdrant-edge) cannot be shared between a writer and readers in
other processes (with its WAL on, a second process cannot even open it), and tantivy readers
should not see half an ingest. So a writer never touches the live version: ``begin_version``
copies it to a new directory (tantivy's immutable segment files are hard-linked, the vector
shard is copied because its files change in place), the ingest writes there, and ``publish``
switches ``CURRENT`` with one atomic rename. Search replicas notice a newer version by re-reading
the tiny ``CURRENT`` file and reopen.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_VERSION = re.compile(r"^v(\d{6})$")
KEYWORD_DIR = "keyword"
VECTORS_DIR = "vectors"
RECORDS_FILE = "records.parquet"  # the version's records as one table, for analytics
LIVE = "live"  # the version name of server backends, which are written in place


def records_path(index_dir: str | os.PathLike, version: str) -> Path:
    """Where the records table of ``version`` lives (server backends keep theirs under ``live/``)."""
    return Path(index_dir) / version / RECORDS_FILE
# Lock files belong to the process that holds them; a copy must start without them.
_LOCKS = shutil.ignore_patterns(".tantivy-*.lock", "*.lock")


class IndexLayout:
    """Versions of the embedded indexes under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, version: str) -> Path:
        """Directory of ``version`` (holding ``keyword/`` and ``vectors/``)."""
        if not _VERSION.match(version):
            raise ValueError(f"not a version name: {version!r}")
        return self.root / version

    def current(self) -> str | None:
        """The published version, or None before the first publish. Cheap: one tiny file read."""
        try:
            name = (self.root / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def versions(self) -> list[str]:
        """Every version directory, oldest first (published or not)."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name))

    def begin_version(self) -> tuple[str, Path]:
        """Create the next version as a copy of the current one; return its name and path.

        Copying makes re-ingest incremental and idempotent: upserts replace records by id in the
        copy, and the live version keeps serving until :meth:`publish`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        source = self.current()
        while True:
            existing = self.versions()
            number = int(existing[-1][1:]) + 1 if existing else 1
            version = f"v{number:06d}"
            try:
                os.mkdir(self.root / version)  # atomic: two writers never get the same version
                break
            except FileExistsError:
                continue
        target = self.root / version
        if source is not None:
            self._copy(self.path(source), target)
        return version, target

    def publish(self, version: str) -> None:
        """Make ``version`` the live one (atomic replace of ``CURRENT``)."""
        if not self.path(version).is_dir():
            raise FileNotFoundError(f"no index version {version} under {self.root}")
        tmp = self.root / f".CURRENT.{os.getpid()}.tmp"
        tmp.write_text(version + "\n")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / "CURRENT")

    def prune(self, keep: int = 2) -> list[str]:
        """Delete published-and-superseded versions beyond the newest ``keep``; return the removed.

        Never removes the current version nor anything newer (a version may be under construction).
        Readers that still have an old version open keep their open files (POSIX semantics).
        """
        if keep < 1:
            raise ValueError("keep must be >= 1 (the current version stays)")
        current = self.current()
        if current is None:
            return []
        older = [v for v in self.versions() if v <= current]
        removed = older[:-keep] if len(older) > keep else []
        for version in removed:
            shutil.rmtree(self.path(version), ignore_errors=True)
        return removed

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        keyword = source / KEYWORD_DIR
        if keyword.exists():
            # tantivy never rewrites a segment file, so the new version may share them (hard links).
            shutil.copytree(keyword, target / KEYWORD_DIR, copy_function=_link_or_copy, ignore=_LOCKS)
        vectors = source / VECTORS_DIR
        if vectors.exists():
            shutil.copytree(vectors, target / VECTORS_DIR, ignore=_LOCKS)
        for item in source.iterdir():  # anything else the ingest keeps beside the indexes
            if item.name not in (KEYWORD_DIR, VECTORS_DIR):
                copy = shutil.copytree if item.is_dir() else shutil.copy2
                copy(item, target / item.name)


def _link_or_copy(src: str, dst: str) -> None:
    # meta.json and .managed.json are replaced by rename in tantivy, never written in place,
    # so linking them is as safe as linking segments.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
