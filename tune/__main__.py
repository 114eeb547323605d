"""``python -m tune --config tune/configs/small.yaml [--set key=value ...] [--resume] [--register-best]``.

Runs a Ray Tune sweep over the LoRA training recipe on a private local Ray cluster, or on the cluster
it was submitted to (``ray job submit --working-dir . -- python -m tune --config ...``). Prints the
trials' table at the end, writes the best recipe, and with ``--register-best`` trains and registers it.
Config, model and data problems exit 2 with a message before any trial starts; an interrupted sweep
exits 130 and continues with ``--resume``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cluster.local import connect
from predator.settings import get_settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tune", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="sweep recipe (YAML), e.g. tune/configs/small.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a sweep key (num_samples=8, scheduler.max_t=40) or fix a training key "
                             "for every trial (optim.max_steps=30); repeatable")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep of the same name")
    parser.add_argument("--register-best", action="store_true",
                        help="after the sweep, train the best configuration and register its adapter")
    parser.add_argument("--data-dir", type=Path, help="platform data dir (default: PREDATOR_DATA_DIR or ./data)")
    parser.add_argument("--address", help="Ray cluster address (default: the submitting cluster, else a private one)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def _say(message: str) -> None:
    print(f"tune: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    from predator.llm import ModelNotFound
    from train.config import ConfigError
    from train.datasets import EmptyDataset
    from train.job import prepare
    from tune.config import load
    from tune.sweep import SweepError, open_experiment

    args = parse_args(argv)
    settings = get_settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    try:
        sweep = load(args.config, args.overrides)
        if args.register_best and not sweep.base.adapter_name:
            raise ConfigError("--register-best needs adapter_name in the training recipe "
                              "(or --set adapter_name=<registry name>)")
        experiment = open_experiment(sweep, settings, args.resume)
        prepared = prepare(sweep.base, settings, progress=_say)
    except (ConfigError, SweepError, ModelNotFound, EmptyDataset, FileNotFoundError) as err:
        print(f"tune: {err}", file=sys.stderr)
        return 2
    connect(args.address, settings)
    from tune.sweep import register_best, run_sweep

    result = run_sweep(sweep, prepared, settings, experiment, progress=_say)
    print(result.table, file=sys.stderr)
    _say(f"{len(result.rows)} trials in {result.wall_s:.0f} s; table {result.path}/trials.txt; "
         f"MLflow parent run {result.parent_run_id}")
    if not result.finished:
        _say("sweep interrupted: continue it with --resume (same --config and --set)")
        code = 130
    elif result.best is None:
        _say(f"no trial completed with {result.metric}: no best configuration")
        code = 1
    else:
        _say(f"best trial {result.best.trial_id}: {result.metric} = {result.best.metric:.4g}; "
             f"recipe {result.best_config} (python -m train --config {result.best_config})")
        code = 0
        if args.register_best:
            summary = register_best(sweep, result, prepared, settings, progress=_say)
            _say(f"registered {summary.adapter} version {summary.adapter_version} (MLflow run {summary.run_id})")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
