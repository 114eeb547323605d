"""``python -m ingest PATH... [--data-dir DIR]``: index declaration exports.

Runs on a private local Ray cluster, or on the cluster it was submitted to
(``ray job submit --working-dir . -- python -m ingest /abs/path/file.csv --data-dir /abs/data``).
Exits non-zero with a message when nothing could be read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster.local import connect
from predator.settings import get_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="CSV, XLSX, JSONL or Parquet files, or folders of them")
    parser.add_argument("--data-dir", type=Path, help="where the indexes live (default: PREDATOR_DATA_DIR or ./data)")
    parser.add_argument("--embed-actors", type=int, help="size of the embedding actor pool")
    parser.add_argument("--address", help="Ray cluster address (default: the submitting cluster, else a private one)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


SUFFIXES = {".csv", ".xlsx", ".jsonl", ".ndjson", ".parquet"}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, and the readable files inside given folders; missing paths are an error."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"ingest: no such file or folder: {', '.join(missing)}")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES)
        else:
            files.append(path)
    if not files:
        raise SystemExit("ingest: no CSV, XLSX, JSONL or Parquet files in the given folders")
    return [f.resolve() for f in files]


def announce(kind: str, payload: dict) -> None:
    """One event to the ``ingest`` channel and one to ``jobs``; never blocks, never raises."""
    from predator.events import publish_event

    publish_event("ingest", kind, payload, source="ingest")
    publish_event("jobs", f"ingest.{kind}", payload, source="ingest")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {k: v for k, v in {"data_dir": args.data_dir, "ingest_embed_actors": args.embed_actors}.items() if v}
    settings = get_settings(**overrides)
    files = expand(args.paths)
    connect(args.address, settings)

    from actors.event_hub import get_or_create_hub
    from ingest.pipeline import run_ingest
    from ingest.sink import IndexSink

    get_or_create_hub(settings)
    announce("started", {"files": [str(f) for f in files]})

    def progress(summary) -> None:
        announce("progress", summary.to_dict())
        print(f"ingest: {summary.rows_read} rows read, {summary.rows_indexed} indexed, "
              f"{summary.rows_quarantined} quarantined, {summary.rows_per_s:.0f} rows/s", file=sys.stderr, flush=True)

    try:
        with IndexSink.open(settings) as sink:
            summary = run_ingest(files, settings, sink, on_progress=progress)
    except Exception as err:
        announce("failed", {"files": [str(f) for f in files], "error": f"{type(err).__name__}: {err}"})
        raise
    announce("completed", summary.to_dict())
    print(json.dumps(summary.to_dict(), indent=1, ensure_ascii=False) if args.json else summary.render())
    if summary.rows_indexed == 0:
        print("ingest: nothing could be read: no row was indexed (see the quarantine file for reasons)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
