"""Which ranks are workers and which are parameter servers.

`graphc-launch -n 4 -s 2` starts 6 ranks and sets GRAPHC_NUM_SERVERS=2: the last 2 ranks are
servers (MXNet's DMLC_ROLE=server processes), ranks 0-3 are workers 0-3. Under plain
`mpiexec -n 4` no server is requested: every rank is a worker and, for 'dist_async', worker 0
also runs the server in a thread. Synchronous stores all-reduce among workers and need no
server; server ranks of a synchronous job only wait for the workers to finish.
"""
from __future__ import annotations

import os
from typing import NamedTuple

from .errors import DistributedError

__all__ = ["Roles", "roles", "SERVERS_ENV"]

SERVERS_ENV = "GRAPHC_NUM_SERVERS"


class Roles(NamedTuple):
    size: int               # ranks in the job
    num_servers: int        # dedicated server ranks (the last ones); 0: worker 0 serves in a thread

    @property
    def num_workers(self):
        return self.size - self.num_servers

    def is_server(self, rank):
        return rank >= self.num_workers

    def worker_ranks(self):
        return list(range(self.num_workers))

    def server_ranks(self):
        """The ranks that serve keys: the dedicated servers, or worker 0 when there are none."""
        return list(range(self.num_workers, self.size)) if self.num_servers else [0]


def roles(size) -> Roles:
    raw = os.environ.get(SERVERS_ENV, "0")
    try:
        servers = int(raw)
    except ValueError:
        raise DistributedError(f"{SERVERS_ENV}={raw!r}: expected a whole number of server ranks") from None
    if servers < 0 or servers >= size:
        raise DistributedError(f"{SERVERS_ENV}={servers}: a job of {size} ranks needs at least one worker, so "
                               f"0 <= servers < {size}")
    return Roles(size, servers)
