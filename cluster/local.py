"""Start and stop a private local Ray cluster without touching anybody else's.

Two forms:
- :func:`init_private` starts an in-process cluster (``ray.init("local", ...)``) for tests, benches and
  one-shot jobs; ``ray.shutdown()`` ends exactly it.
- :class:`LocalCluster` runs ``ray start --head`` in its own temp dir for long-lived use (``make run``).
  :meth:`LocalCluster.stop` signals only the processes whose command line names that temp dir.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

# Keeps every Ray component on loopback (Ray otherwise binds the machine's network address).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# For a `ray start` cluster and every process that joins it by address: token auth on explicitly.
# Ray reads this when it is imported, so a joining process needs it before `import ray`.
CLUSTER_ENV = {**LOOPBACK_ENV, "RAY_AUTH_MODE": "token"}
LOOPBACK = "127.0.0.1"


def prepare_env(joining: bool = False) -> None:
    """Put the loopback environment (and, to join a cluster by address, token auth) into this process.

    A private in-process cluster leaves auth to Ray's default for new local clusters (token auth on),
    which also configures this process; forcing the variable after ``import ray`` would not.
    """
    for key, value in (CLUSTER_ENV if joining else LOOPBACK_ENV).items():
        os.environ.setdefault(key, value)


def init_private(num_cpus: int = 2, object_store_mb: int = 256, temp_dir: str | None = None,
                 runtime_env: dict | None = None):
    """Start a private in-process Ray cluster on loopback and return ``ray.init``'s context."""
    prepare_env()
    import ray
    from ray._private import ray_constants

    # Ray reads the loopback switch when it is first imported; an earlier import missed the env var.
    ray_constants.ENABLE_RAY_CLUSTER = False
    return ray.init(
        "local",
        num_cpus=num_cpus,
        num_gpus=0,
        include_dashboard=False,
        object_store_memory=object_store_mb * 1024 * 1024,
        _temp_dir=temp_dir,
        _node_ip_address=LOOPBACK,
        runtime_env=runtime_env,
        log_to_driver=False,
        configure_logging=False,
    )


@dataclass
class LocalCluster:
    """A ``ray start --head`` cluster owned by this project, identified by its temp dir."""

    temp_dir: Path
    num_cpus: int = 2
    object_store_mb: int = 512
    gcs_port: int = 6390
    dashboard_port: int = 8265

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    def own_processes(self) -> list[psutil.Process]:
        """Processes whose command line names this cluster's temp dir, and all their descendants.

        Descendants count because some Ray processes (agents, workers) retitle themselves
        (``ray::DashboardAgent``) and so lose the temp dir from their command line.
        """
        marker = str(self.temp_dir.resolve())
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if marker in cmdline and proc.pid != os.getpid():
                found[proc.pid] = proc
        for proc in list(found.values()):
            try:
                found.update({child.pid: child for child in proc.children(recursive=True)})
            except psutil.NoSuchProcess:
                pass
        found.pop(os.getpid(), None)
        return list(found.values())

    def is_running(self) -> bool:
        return any("gcs_server" in " ".join(p.cmdline()) for p in self._alive(self.own_processes()))

    def start(self) -> None:
        """Start the head node unless it already runs. Raises with Ray's output on failure."""
        if self.is_running():
            return
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [
            str(ray_bin), "start", "--head",
            f"--node-ip-address={LOOPBACK}", f"--port={self.gcs_port}",
            f"--temp-dir={self.temp_dir.resolve()}", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
            f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
            "--include-dashboard=true", f"--dashboard-host={LOOPBACK}", f"--dashboard-port={self.dashboard_port}",
            "--disable-usage-stats",
        ]
        env = {**os.environ, **CLUSTER_ENV}
        # Job entrypoints (`ray job submit -- python -m ingest ...`) run with the cluster's PATH:
        # put this interpreter's folder first so that `python` is the project's environment.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def stop(self, grace_s: float = 10.0) -> int:
        """Terminate this cluster's processes (SIGTERM, then SIGKILL after ``grace_s``); return how many."""
        procs = self.own_processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        deadline = time.monotonic() + grace_s
        while self._alive(procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        stubborn = self._alive(procs)
        for proc in stubborn:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(stubborn, timeout=5)
        return len(procs)

    @staticmethod
    def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
        alive = []
        for proc in procs:
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.NoSuchProcess:
                pass
        return alive


def connect(address: str | None, settings) -> None:
    """Join the cluster a job runs on (argument, setting or RAY_ADDRESS), or start a private local one."""
    target = address or settings.ray_address or os.environ.get("RAY_ADDRESS")
    if target:
        prepare_env(joining=True)  # before `import ray`: Ray reads it at import
        import ray

        ray.init(address=target, log_to_driver=False)
    else:
        init_private(num_cpus=settings.ray_num_cpus, object_store_mb=settings.ray_object_store_mb)


def main(argv: list[str] | None = None) -> int:
    """``python -m cluster.local stop --temp-dir DIR``: end the Ray started with that temp dir, nothing else.

    The launcher configs (cluster.yaml) run it before ``ray start --temp-dir DIR`` instead of ``ray stop``,
    which would end every Ray process of the machine's user.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cluster.local", description=main.__doc__.splitlines()[0])
    parser.add_argument("action", choices=["stop"])
    parser.add_argument("--temp-dir", type=Path, required=True, help="the --temp-dir the Ray node was started with")
    args = parser.parse_args(argv)
    stopped = LocalCluster(args.temp_dir).stop()
    print(f"stopped {stopped} processes of the Ray node in {args.temp_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
