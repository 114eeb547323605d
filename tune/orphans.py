"""Free the CPUs that a trial stopped by the scheduler leaves behind (Ray issue #54305).

A Train-v2 trial's TorchTrainer runs a controller actor that creates the placement group of its
workers. When the scheduler stops the trial, Tune kills the trial actor; the controller and the
workers die with it, but a placement group created by an actor lives until its creator actor *and*
its job are gone, and the job is this sweep. Ray Train's own cleaner for this case polls the State
API, which a cluster without a dashboard (every private cluster here) does not serve, so the group
keeps its CPUs and the next trial waits for workers forever.

:class:`OrphanReaper` removes, while the sweep runs, every placement group of this job whose creator
actor is dead. Nothing can use such a group any more (its creator alone could schedule into it, and
what it scheduled died with it); Tune's own trial groups are created by the driver, not by an actor.
"""
from __future__ import annotations

import sys
import time

from ray.tune import Callback


def orphaned_placement_groups() -> list[str]:
    """Hex ids of the live placement groups of this job whose creator actor has died."""
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    job = ray.get_runtime_context().get_job_id()
    # The public placement_group_table() drops the creator fields; the GCS record has them.
    found = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        group = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if (group.state != gcs_pb2.PlacementGroupTableData.REMOVED and not group.is_detached
                and group.creator_job_id.hex() == job and group.creator_actor_dead
                and not ray.ActorID(group.creator_actor_id).is_nil()):
            found.append(group.placement_group_id.hex())
    return found


def remove_orphans() -> int:
    """Remove this job's orphaned placement groups, saying so; returns how many."""
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    orphans = orphaned_placement_groups()
    for group_id in orphans:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group_id))))
        print(f"tune: freed placement group {group_id} of a stopped trial (Ray issue #54305)", file=sys.stderr,
              flush=True)
    return len(orphans)


class OrphanReaper(Callback):
    """Tune callback: at most once per ``interval_s`` of the sweep loop, remove orphaned placement groups."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self.removed = 0
        self._last = 0.0

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self.removed += remove_orphans()
