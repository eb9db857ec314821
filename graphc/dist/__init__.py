"""graphc.dist: the multi-process layer (MPI through mpi4py) under every kind of parallelism.

    comm.World      the ranks of the job, joining with a deadline, deadline-bounded waits, a
                    watchdog that names a dead rank (comm.py)
    roles           which ranks are workers and which are parameter servers (roles.py)
    launch          `graphc-launch -n 4 [-s 2] python train.py` (launch.py)
    placement       rank(k): a model-parallel stage on rank k of this rank's pipeline;
                    pipeline_groups(stages): pipelines x data-parallel replicas (placement.py)
    stage_program   one rank's share of a graph partitioned over ranks (stage_program.py)

Data parallelism (graphc.kvstore's 'dist_*' stores) and model parallelism over ranks
(gluon/model_parallel_ranks.py) are built on it; nothing here knows about kvstores or Gluon.
mpi4py is imported only when a World is created, so `import graphc` never needs it.
"""
from __future__ import annotations

from .errors import DistributedError
from .comm import World, Peer, world, timeout_seconds, TIMEOUT_ENV
from .roles import Roles, roles
from .placement import rank, pipeline_groups, Pipeline, RankPlacement

__all__ = ["DistributedError", "World", "Peer", "world", "timeout_seconds", "TIMEOUT_ENV", "Roles", "roles",
           "rank", "pipeline_groups", "Pipeline", "RankPlacement"]
