"""A `ray start` cluster owned by the project: loopback only, and stopping it ends exactly its processes."""
import tempfile
from pathlib import Path

import psutil
import pytest

from cluster.local import LocalCluster
from tests.conftest import free_port

pytestmark = pytest.mark.cluster


def test_a_local_cluster_listens_on_loopback_and_stop_ends_all_its_processes():
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="pa-rc-", dir="/tmp")), num_cpus=1, object_store_mb=128,
                           gcs_port=free_port(), dashboard_port=free_port())
    bystander = psutil.Popen(["sleep", "60"])
    try:
        cluster.start()
        assert cluster.is_running()
        processes = cluster.own_processes()
        pids = {p.pid for p in processes}
        listening = {c.laddr.ip for p in processes for c in p.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
        assert cluster.stop() == len(pids)
        assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert not cluster.is_running()
        assert bystander.is_running()
    finally:
        cluster.stop()
        bystander.kill()
