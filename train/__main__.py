"""``python -m train --config train/configs/default.yaml [--set key=value ...]``: LoRA fine-tuning.

Runs on a private local Ray cluster, or on the cluster it was submitted to
(``ray job submit --working-dir . -- python -m train --config train/configs/default.yaml``).
Config, model and data problems exit non-zero with a message before any worker starts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster.local import connect
from predator.settings import get_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).parent / "configs" / "default.yaml",
                        help="training recipe (YAML); default train/configs/default.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe key by its dotted path, e.g. optim.max_steps=50 (repeatable)")
    parser.add_argument("--data-dir", type=Path, help="platform data dir (default: PREDATOR_DATA_DIR or ./data)")
    parser.add_argument("--address", help="Ray cluster address (default: the submitting cluster, else a private one)")
    parser.add_argument("--keys", action="store_true", help="list every recipe key and exit")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"train: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from predator.llm import ModelNotFound
    from train.config import ConfigError, load_config, valid_keys
    from train.datasets import EmptyDataset

    args = parse_args(argv)
    if args.keys:
        print("\n".join(valid_keys()))
        return 0
    settings = get_settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        cfg = load_config(args.config, args.overrides)
        from train.job import prepare

        prepared = prepare(cfg, settings, progress=_say)
    except (ConfigError, ModelNotFound, EmptyDataset, FileNotFoundError) as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    connect(args.address, settings)
    from train.job import run

    summary = run(prepared, settings, progress=_say)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        _say(f"done: {summary.steps} steps, {summary.tokens} tokens in {summary.train_s:.0f} s, "
             f"{summary.restarts} restarts; MLflow run {summary.run_id}")
        for name, metrics in (("before", summary.before), ("after", summary.after)):
            shown = {k: round(v, 4) for k, v in metrics.items() if "accuracy" in k or k == "heldout_loss"}
            if shown:
                _say(f"{name}: {shown}")
        if summary.adapter:
            _say(f"adapter registered as {summary.adapter} version {summary.adapter_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
