"""Command line of the domain core: ``python -m predator sample ...`` writes sample declarations."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from predator.sample import FORMATS, generate, labels_path, write_sample


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m predator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="write realistic sample declarations with labelled anomalies")
    sample.add_argument("--rows", type=int, default=10_000, help="number of valid records (default 10000)")
    sample.add_argument("--seed", type=int, default=0, help="random seed: same seed, same file")
    sample.add_argument("--out", type=Path, required=True, help="output file; its extension picks the format")
    sample.add_argument("--format", choices=FORMATS, help="override the format given by --out's extension")
    sample.add_argument("--style", choices=("ua", "canonical"),
                        help="headers and value spelling (default: ua for csv/xlsx, canonical otherwise)")
    sample.add_argument("--anomaly-rate", type=float, default=0.03, help="share of labelled anomalous rows")
    sample.add_argument("--encoding", default="utf-8", choices=("utf-8", "utf-8-sig", "cp1251"), help="CSV encoding")
    sample.add_argument("--bad-rows", type=int, default=0, help="append this many deliberately broken rows")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        records, labels = generate(args.rows, seed=args.seed, anomaly_rate=args.anomaly_rate)
        write_sample(args.out, records, labels, fmt=args.format, style=args.style, encoding=args.encoding,
                     bad_rows=args.bad_rows, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(records)} records and {args.bad_rows} broken rows to {args.out}, "
          f"{len(labels)} labelled anomalies to {labels_path(args.out)} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
