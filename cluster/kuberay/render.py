"""``python -m cluster.kuberay.render [--check]``: write serve_apps/serve_config.yaml into rayservice.yaml.

The RayService's ``serveConfigV2`` is the project's Serve config with exactly the overrides in
:data:`KUBERAY_OVERRIDES` (a pod's proxy must listen on the pod address, not loopback, and every
pod runs one). Everything else, the applications included, is copied unchanged. ``--check`` writes
nothing and exits 1 when the manifest is out of date.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = ROOT / "serve_apps" / "serve_config.yaml"
RAYSERVICE = Path(__file__).with_name("rayservice.yaml")
KUBERAY_OVERRIDES = {"proxy_location": "EveryNode", "http_options": {"host": "0.0.0.0"}}
# The block scalar under `serveConfigV2: |`, up to the next key at the same or a lower indentation.
_BLOCK = re.compile(r"^(?P<indent> *)serveConfigV2: \|\n(?P<body>(?:(?P=indent)  .*\n|\n)*)", re.MULTILINE)


def kuberay_serve_config(serve_config: dict) -> dict:
    """The Serve config as KubeRay must deploy it: ``serve_config`` with the KubeRay overrides."""
    config = copy.deepcopy(serve_config)
    config["proxy_location"] = KUBERAY_OVERRIDES["proxy_location"]
    config["http_options"] = {**config.get("http_options", {}), **KUBERAY_OVERRIDES["http_options"]}
    return config


def render(manifest: str, serve_config: dict) -> str:
    """``manifest`` with its serveConfigV2 block replaced by the KubeRay form of ``serve_config``."""
    found = _BLOCK.search(manifest)
    if found is None:
        raise ValueError("no `serveConfigV2: |` block in the RayService manifest")
    indent = found["indent"] + "  "
    text = yaml.safe_dump(kuberay_serve_config(serve_config), sort_keys=False, width=120)
    body = "".join(indent + line + "\n" if line else "\n" for line in text.splitlines())
    return manifest[:found.start("body")] + body + manifest[found.end("body"):]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.kuberay.render", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether rayservice.yaml is up to date")
    args = parser.parse_args(argv)
    current = RAYSERVICE.read_text()
    wanted = render(current, yaml.safe_load(SERVE_CONFIG.read_text()))
    if args.check:
        print("rayservice.yaml is up to date" if wanted == current else "rayservice.yaml is out of date")
        return 0 if wanted == current else 1
    RAYSERVICE.write_text(wanted)
    print(f"wrote serveConfigV2 of {RAYSERVICE} from {SERVE_CONFIG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
