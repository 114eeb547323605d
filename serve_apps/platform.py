"""``python -m serve_apps.platform up|down|status``: the whole platform on one machine.

``up`` makes local API keys, generates sample declarations (first run only), starts a private Ray
cluster on 127.0.0.1, ingests the sample into the embedded stores, deploys the Serve applications and
prints how to query them. ``down`` stops that cluster's processes and nothing else.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from cluster.local import CLUSTER_ENV, LocalCluster
from predator.auth import ensure_local_keys
from predator.settings import Settings, get_settings

SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")


def local_cluster(settings: Settings) -> LocalCluster:
    """The cluster that belongs to this data directory (its temp dir is derived from the path)."""
    tag = hashlib.sha1(str(settings.data_dir.resolve()).encode()).hexdigest()[:8]
    return LocalCluster(temp_dir=settings.ray_temp_root / f"predator-ray-{tag}", num_cpus=settings.ray_num_cpus,
                        object_store_mb=settings.ray_object_store_mb, gcs_port=settings.ray_gcs_port,
                        dashboard_port=settings.ray_dashboard_port)


def sample_path(settings: Settings) -> Path:
    return settings.data_dir / "samples" / "declarations.csv"


def ensure_sample(settings: Settings, rows: int, seed: int, bad_rows: int) -> Path:
    """Generate the sample export once; later runs reuse it."""
    path = sample_path(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {rows} sample declarations into {path} ...", flush=True)
        _run([sys.executable, "-m", "predator", "sample", "--rows", str(rows), "--seed", str(seed),
              "--bad-rows", str(bad_rows), "--out", str(path)])
    return path


def ingested_marker(settings: Settings) -> Path:
    return settings.index_dir / "SAMPLE_INGESTED"


def ensure_ingested(settings: Settings, sample: Path, cluster: LocalCluster) -> None:
    """Ingest the sample into the embedded stores unless this very file was ingested already."""
    marker = ingested_marker(settings)
    stamp = f"{sample.resolve()} {sample.stat().st_mtime_ns}"
    if marker.exists() and marker.read_text() == stamp:
        print("sample already ingested; skipping ingest", flush=True)
        return
    _run([sys.executable, "-m", "ingest", str(sample), "--data-dir", str(settings.data_dir),
          "--address", cluster.address])
    marker.write_text(stamp)


def deploy(settings: Settings, cluster: LocalCluster) -> Path:
    """Deploy the Serve config with this machine's host and port; returns the config actually used."""
    config = yaml.safe_load(SERVE_CONFIG.read_text())
    config["http_options"] = {"host": settings.host, "port": settings.http_port}
    used = settings.data_dir / "serve_config.local.yaml"
    used.write_text(yaml.safe_dump(config, sort_keys=False))
    _run([str(Path(sys.executable).with_name("serve")), "run", str(used), "--non-blocking",
          "--address", cluster.address])
    return used


def wait_ready(base_url: str, key: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"platform: the search app at {base_url} did not become ready in {timeout_s:.0f} s")


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env={**os.environ, **CLUSTER_ENV})
    if done.returncode != 0:
        raise SystemExit(f"platform: step failed ({done.returncode}): {' '.join(cmd)}")


def up(settings: Settings, rows: int, seed: int, bad_rows: int) -> None:
    keys = ensure_local_keys(settings.keys_path, settings.data_dir / "secrets")
    sample = ensure_sample(settings, rows, seed, bad_rows)
    cluster = local_cluster(settings)
    print(f"starting a private Ray cluster at {cluster.address} (temp dir {cluster.temp_dir}) ...", flush=True)
    cluster.start()
    ensure_ingested(settings, sample, cluster)
    deploy(settings, cluster)
    base = f"http://{settings.host}:{settings.http_port}"
    wait_ready(base, keys["admin"])
    print_welcome(settings, base, cluster, keys)


def print_welcome(settings: Settings, base: str, cluster: LocalCluster, keys: dict[str, str]) -> None:
    secrets_dir = settings.data_dir / "secrets"
    print(f"""
Predator Analytics is up.
  search API:      {base}/search      (OpenAPI: {base}/docs)
  live events:     ws://{settings.host}:{settings.http_port}/ws/events, or in a terminal:
                   PREDATOR_API_KEY=$(cat {secrets_dir}/viewer.key) .venv/bin/python -m actors.watch --channels ingest,jobs
  diagnostics:     {base}/diagnostics/ui?key={keys['viewer']}   (JSON: {base}/diagnostics)
  copilot:         {base}/copilot/chat   (OpenAI clients: base_url {base}/copilot/v1; docs/COPILOT.md)
  Ray dashboard:   {cluster.dashboard_url}
  admin API key:   {keys['admin']}
  other keys:      {secrets_dir}/viewer.key, {secrets_dir}/analyst.key

Try:
  curl -s {base}/search -H 'Authorization: Bearer {keys['admin']}' -H 'Content-Type: application/json' \\
       -d '{{"q": "laptop computers", "limit": 3, "facets": ["hs_chapter"]}}'

Stop it with: make stop""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_apps.platform", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the platform with sample data")
    start.add_argument("--rows", type=int, default=20_000, help="sample declarations to generate on first run")
    start.add_argument("--seed", type=int, default=7)
    start.add_argument("--bad-rows", type=int, default=12, help="broken rows appended to show the quarantine")
    sub.add_parser("down", help="stop this platform's private cluster")
    sub.add_parser("status", help="say whether this platform's cluster runs")
    args = parser.parse_args(argv)

    settings = get_settings()
    # Absolute, so that the cluster's workers and Serve replicas see the same data directory.
    settings.data_dir = settings.data_dir.resolve()
    os.environ["PREDATOR_DATA_DIR"] = str(settings.data_dir)
    cluster = local_cluster(settings)
    if args.command == "up":
        up(settings, args.rows, args.seed, args.bad_rows)
    elif args.command == "down":
        print(f"stopped {cluster.stop()} processes of the cluster in {cluster.temp_dir}")
    else:
        print(f"cluster {cluster.address}: {'running' if cluster.is_running() else 'not running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
