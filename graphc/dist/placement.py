"""Where a model-parallel stage runs when stages are processes: `rank(k)`, the k-th rank of this
process's pipeline, and `pipeline_groups(stages=S)`, which cuts the job into pipelines.

A pipeline is the group of ranks that together run one copy of a partitioned model, one stage
each; `rank(k)` names a rank *within* it, so the same script (SPMD: every rank runs it) names
its stages the same way whichever pipeline it belongs to. Without `pipeline_groups` the whole
job is one pipeline. With R*S ranks, `pipeline_groups(stages=S)` makes R pipelines (replicas)
of S stages: global rank g is stage g % S of replica g // S, and the ranks that run the same
stage in different replicas form that stage's data-parallel group (a 'dist_sync' kvstore over
it sums the gradients of that stage's parameters; `mx.kv.create('dist_sync', group=...)`).

Communicators are split from graphc.dist's World, so pipeline traffic never matches a user's or
a kvstore's messages. Every rank must create them at the same point of the script (MPI_Comm_split
is collective); the default pipeline is made on the first call of a rank-placed block, which
every rank makes.
"""
from __future__ import annotations

import re
import threading
from typing import NamedTuple

from .errors import DistributedError

__all__ = ["RankPlacement", "rank", "rank_index", "is_rank_device", "Pipeline", "pipeline", "pipeline_groups"]

_RANK = re.compile(r"rank\((\d+)\)")


class RankPlacement(NamedTuple):
    """A stage placed on rank `device_id` of this process's pipeline. It reads as a device
    ('rank(1)', device_type 'rank') so the partition pass, which treats devices as names, places
    operators on it unchanged."""
    device_id: int

    @property
    def device_type(self):
        return "rank"

    def __str__(self):
        return f"rank({self.device_id})"


def rank(k: int) -> RankPlacement:
    """The placement of a stage on rank k of the pipeline: hybridize(group2ctx={'stage2': rank(1)})."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise DistributedError(f"graphc.dist.rank: expected a rank number 0, 1, ..., got {k!r}")
    return RankPlacement(k)


def is_rank_device(device) -> bool:
    """Whether a device (a name such as 'rank(1)' or a placement object) is a pipeline rank."""
    if isinstance(device, RankPlacement):
        return True
    return isinstance(device, str) and _RANK.fullmatch(device) is not None


def rank_index(device: str) -> int:
    """'rank(3)' -> 3."""
    m = _RANK.fullmatch(str(device))
    if m is None:
        raise DistributedError(f"model parallelism across ranks: {device!r} is not a rank placement rank(k)")
    return int(m.group(1))


class Pipeline(NamedTuple):
    """This rank's place in the job: `comm` joins the ranks of its pipeline (its rank there is
    its stage); `replicas` joins the ranks running the same stage in every pipeline."""
    world: object
    comm: object            # mpi4py communicator of this pipeline's stages
    replicas: object        # mpi4py communicator of this stage's replicas
    stage: int
    replica: int
    stages: int
    num_replicas: int

    def peer(self, stage: int):
        """The World's Peer running `stage` of this pipeline (for naming it in errors)."""
        return self.world.peers[self.replica * self.stages + stage]


_lock = threading.Lock()
_current: dict = {"pipeline": None}


def pipeline_groups(stages: int) -> Pipeline:
    """Cut the job into size/stages pipelines of `stages` ranks each and make them the pipelines
    that rank(k) refers to from now on. Collective: every rank calls it, at the same point."""
    from .comm import world
    w = world()
    if not isinstance(stages, int) or stages < 1 or w.size % stages:
        raise DistributedError(f"graphc.dist.pipeline_groups: {w.size} ranks cannot be cut into pipelines of "
                               f"{stages!r} stages (the number of ranks must be a multiple of the stages)")
    stage, replica = w.rank % stages, w.rank // stages
    comm = w.split(replica, f"splitting the job into pipelines of {stages} stages")
    replicas = w.split(stage, f"grouping the replicas of stage {stage}")
    made = Pipeline(w, comm, replicas, stage, replica, stages, w.size // stages)
    with _lock:
        _current["pipeline"] = made
    return made


def pipeline() -> Pipeline:
    """The pipeline rank(k) refers to: the one pipeline_groups made, else the whole job."""
    with _lock:
        made = _current["pipeline"]
    if made is None:
        from .comm import world
        w = world()
        made = pipeline_groups(w.size)
    return made
