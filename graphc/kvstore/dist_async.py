"""'dist_async': MXNet's asynchronous parameter server over MPI point-to-point messages.

Server ranks hold the weights and run the optimizer; a worker pushes its gradient (summed over
its devices) and the server updates the weight at once, with no barrier between workers; a pull
returns whatever the weight is by then. Messages between one worker and one server arrive in
order, so a worker's pull always sees its own earlier pushes.

Which ranks serve is graphc.dist.roles' business: with dedicated servers (`graphc-launch -s 2`)
the server ranks never return from `kv.create` (they serve until every worker has finished and
then exit, like MXNet's server processes); without, worker 0 runs the server in a thread. Keys
are spread over the servers by their init order. Worker 0 alone initialises the weights and
sends the optimizer (as MXNet's rank 0 does), then the workers meet at a barrier.

Every worker-side wait has graphc.dist's deadline; a server waits for work without one (the
workers may compute for a long time between pushes) but stops when a worker dies.
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

from ..dist.errors import DistributedError
from ..ndarray import NDArray
from ..ops.errors import GraphcError
from . import optimizer_wire
from .store import KVStore

__all__ = ["AsyncKVStore", "serve"]

_TAG_REQUEST = 0x4b56       # 'KV'
_TAG_REPLY = 0x4b57


class _Server:
    """The keys one server rank holds, and the loop that answers workers."""

    def __init__(self, world, roles):
        self.world = world
        self.roles = roles
        self.weights: dict = {}
        self.updater = None
        self.done = set()

    def run(self):
        comm = self.world.comm
        status = self.world.MPI.Status()
        while len(self.done) < self.roles.num_workers:
            message = comm.improbe(tag=_TAG_REQUEST, status=status)
            if message is None:
                self.world.check()
                time.sleep(0.0005)
                continue
            source = status.Get_source()
            self.handle(source, message.recv())

    def handle(self, source, request):
        op = request[0]
        if op == "push":
            _, key, grad = request
            weight = self.weights.get(key)
            if weight is None:
                raise DistributedError(f"dist_async server {self.world.me}: worker {source} pushed key {key!r} "
                                       "before it was initialised")
            if self.updater is None:
                weight._data[...] = grad
            else:
                self.updater(key.encode() if isinstance(key, str) else key, NDArray(grad, weight.context), weight)
        elif op == "pull":
            self.reply(source, ("value", self.weights[request[1]]._data))
        elif op == "init":
            _, key, value = request
            self.weights[key] = NDArray(np.array(value, copy=True))
            self.reply(source, ("ok",))
        elif op == "optimizer":
            from ..gluon import optimizer as opt
            self.updater = opt.get_updater(optimizer_wire.loads(request[1]))
            self.reply(source, ("ok",))
        elif op == "bye":
            self.done.add(source)
        else:
            raise DistributedError(f"dist_async server {self.world.me}: unknown request {op!r} from rank {source}")

    def reply(self, dest, payload):
        # a reply is small or a weight; the worker is waiting for it, so this completes
        self.world.wait([self.world.comm.isend(payload, dest=dest, tag=_TAG_REPLY)],
                        f"dist_async server reply to worker {dest}")


def serve(world, roles):
    """Run a dedicated server rank's loop until every worker has finished, then exit."""
    _Server(world, roles).run()
    sys.exit(0)


class AsyncKVStore(KVStore):
    """The worker side of 'dist_async' (kv.create('dist_async') on a worker rank)."""

    def __init__(self, name, world, roles, transport, reduction):
        super().__init__(name, transport, reduction)
        self._world = world
        self._roles = roles
        self._servers = roles.server_ranks()
        self._server_thread = None
        if roles.num_servers == 0 and world.rank == 0:
            server = _Server(world, roles)
            self._server_thread = threading.Thread(target=self._serve_in_thread, args=(server,),
                                                   name="graphc-kvstore-server", daemon=True)
            self._server_thread.start()
        world.at_finish(self._finish)

    def _serve_in_thread(self, server):
        try:
            server.run()
        except DistributedError as e:
            self._world._record(e)
        except Exception as e:      # a failing server must not leave the workers waiting
            self._world._record(DistributedError(f"dist_async server thread on {self._world.me} failed: "
                                                 f"{type(e).__name__}: {e}"))

    def _finish(self):
        """At exit: tell every server this worker is done; worker 0 then waits for its server
        thread, which ends once every worker is done (no deadline: others may still train)."""
        for server in self._servers:
            self._send(server, ("bye",), "sending 'done' to the servers")
        if self._server_thread is not None:
            while self._server_thread.is_alive():
                self._world.check()
                self._server_thread.join(0.05)

    # -- messages -------------------------------------------------------------------------------
    def _server_of(self, key):
        return self._servers[self._order[key] % len(self._servers)]

    def _send(self, server, payload, what):
        self._world.wait([self._world.comm.isend(payload, dest=server, tag=_TAG_REQUEST)],
                         f"dist_async {what} (to server rank {server})")

    def _receive(self, server, what):
        request = self._world.comm.irecv(source=server, tag=_TAG_REPLY)
        deadline = time.monotonic() + self._world.timeout
        while True:
            done, value = request.test()
            if done:
                return value
            self._world.check()
            if time.monotonic() > deadline:
                self._world.fail(DistributedError(
                    f"graphc.dist: {self._world.me}: dist_async {what}: server rank {server} did not answer within "
                    f"{self._world.timeout:g} s"))
            time.sleep(0.0002)

    # -- the API ----------------------------------------------------------------------------------
    def init(self, key, value):
        pairs, kind = self._pairs("init", key, value)
        for k, _ in pairs:
            if k in self._store:
                raise GraphcError(f"kvstore.init: duplicate init of key {k!r}; call kv.init or kv.broadcast once "
                                  "per key")
        self._transport.agree("kvstore.init", [(k, f"shape {tuple(v.shape)} {np.dtype(v._data.dtype).name}")
                                               for k, v in pairs])
        for k, v in pairs:
            self._store[k] = NDArray(np.array(v._data, copy=True), v.context)
            self._order[k] = k if kind == "int" else len(self._order)
            if self.rank == 0:
                server = self._server_of(k)
                self._send(server, ("init", k, np.asarray(v._data)), f"init of key {k!r}")
                self._receive(server, f"init of key {k!r}")
        if kind is not None:
            self._key_type = kind
        self._transport.barrier()

    def push(self, key, value, priority=0):
        pairs, _ = self._pairs("push", key, value)
        groups = self._grouped("push", pairs)
        for k, values in groups:
            stored = self._stored("push", k)
            for slot, v in enumerate(values):
                self._check_shape("push", k, stored, v, f"the value pushed from {v.context} (#{slot})")
        for k, merged in self._device_sums(groups[::-1]):
            self._send(self._server_of(k), ("push", k, merged), f"push of key {k!r}")

    def pushpull(self, key, value, out=None, priority=0):
        """push then pull: the servers own the values, so nothing is summed in place here."""
        self.push(key, value, priority)
        self.pull(key, out=value if out is None else out, priority=priority)

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        if out is None:
            raise GraphcError("kvstore.pull: out= is required (the NDArray or list of NDArrays to fill)")
        pairs, _ = self._pairs("pull", key, out, "output")
        fresh = {}
        for k, o in pairs:
            stored = self._stored("pull", k)
            self._check_shape("pull", k, stored, o, f"the output on {o.context}")
            if k not in fresh:
                server = self._server_of(k)
                self._send(server, ("pull", k), f"pull of key {k!r}")
                fresh[k] = self._receive(server, f"pull of key {k!r}")[1]
                stored._data[...] = fresh[k]
            o._data[...] = fresh[k]

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        keys = key if isinstance(key, (list, tuple)) else [key]
        for k in keys:      # refresh the local copies, then select rows from them
            self.pull(k, out=self._stored("row_sparse_pull", k))
        super().row_sparse_pull(key, out=out, priority=priority, row_ids=row_ids)

    def set_optimizer(self, optimizer):
        """Send the optimizer to every server (worker 0 does; the others wait at a barrier)."""
        if self.rank == 0:
            text = optimizer_wire.dumps(optimizer)
            for server in self._servers:
                self._send(server, ("optimizer", text), "sending the optimizer")
                self._receive(server, "sending the optimizer")
        self._updater = optimizer
        self._transport.barrier()

    def _set_updater(self, updater):
        raise GraphcError("kvstore 'dist_async': updates run on the server ranks, which cannot run a Python "
                          "function from a worker; use kv.set_optimizer(optimizer)")

    set_updater = _set_updater

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise GraphcError("kvstore 'dist_async': the optimizer states live on the server ranks; saving them is "
                          "not supported (MXNet's dist stores cannot either)")

    def load_optimizer_states(self, fname):
        raise GraphcError("kvstore 'dist_async': the optimizer states live on the server ranks; loading them is "
                          "not supported (MXNet's dist stores cannot either)")

    def set_gradient_compression(self, compression_params):
        raise GraphcError("kvstore 'dist_async': gradient compression is supported on 'device' and "
                          "'dist_sync' stores only")
