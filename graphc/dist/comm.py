"""The MPI job as graphc sees it: who the ranks are, and waiting on them without ever hanging.

One `World` per process (`world()`), created on first use, serves every kind of parallelism
(the distributed kvstores today, model parallelism later). It owns the three things that make
a multi-process run fail loudly instead of hanging:

* Joining with a deadline. MPI_Init blocks until every rank has called it, holding the GIL
  (through mpi4py), so graphc calls MPI_Init_thread through ctypes on a helper thread (ctypes
  releases the GIL) and the main thread waits at most GRAPHC_DIST_TIMEOUT seconds (default 60).
  Before that, each rank leaves a check-in file next to its launcher's pid, so a rank that never
  joins is named by the others. Then every rank sends (host, pid) to every other one; a rank
  whose message does not arrive in time is named as missing.
* Deadlines on every wait. `World.wait(requests, what)` polls nonblocking MPI requests
  (Iallreduce, Ibcast, Ibarrier, Isend/Irecv) and raises DistributedError naming the operation
  once the deadline passes.
* Death detection. A watchdog thread looks at the same-host peers' processes in /proc every
  0.1 s (a killed rank is a zombie or gone at once); a dead peer makes every wait raise
  "rank 1 (pid 1234 on host vm) died". If the main thread does not reach a wait within the
  deadline, the watchdog prints the error and ends the process itself. Peers on other hosts are
  covered by the deadline only (no heartbeat yet).

After a failure the process exits without MPI_Finalize (which would wait for the dead rank).
Under plain hydra `mpiexec` a dying rank makes hydra SIGKILL the others within about a second,
before they can speak; rank 0 therefore prints the rank -> pid table at startup there, so
hydra's "PID 1234 ... EXIT CODE: 9" can be matched to a rank. `graphc-launch` runs MPICH's
gforker process manager instead, under which the survivors report the dead rank themselves.

This module never imports a kvstore or a model: it is the layer those stand on.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import NamedTuple

import numpy as np

from .errors import DistributedError
from .settings import number_setting

__all__ = ["World", "Peer", "world", "timeout_seconds", "TIMEOUT_ENV"]

TIMEOUT_ENV = "GRAPHC_DIST_TIMEOUT"
VERBOSE_ENV = "GRAPHC_DIST_VERBOSE"
LAUNCHER_ENV = "GRAPHC_LAUNCHER"        # set by graphc-launch
_HELLO_TAG = 0x4743                     # 'GC': graphc's join message on COMM_WORLD
_HOST_BYTES = 64
_WATCH_PERIOD_S = 0.1
# a failing rank stays alive this long after printing its error: process managers (gforker,
# hydra) kill every rank once one exits with an error, and the ranks that fail a moment later
# (their deadline a little behind, or their watchdog's next look) should still get to say why
_FAILURE_LINGER_S = 1.0
# World.wait polls without sleeping this long before it backs off to short sleeps: MPICH moves a
# nonblocking collective on only while some MPI call runs, so a rank asleep between tests stalls
# the transfer for both (a 2.7 MB Iallreduce ran at a third of a blocking Allreduce's speed
# when the poll slept after 200 tests); after this the wait is for a late peer, not for bytes.
# Between tests it yields the core, as MPICH's own blocking wait does, so that on a busy machine
# the peer it waits for can run.
_SPIN_S = 0.05


def timeout_seconds() -> float:
    """GRAPHC_DIST_TIMEOUT (seconds, default 60): how long any wait on other ranks may take."""
    return number_setting(TIMEOUT_ENV, "60", "seconds")


class Peer(NamedTuple):
    rank: int
    host: str
    pid: int

    def __str__(self):
        return f"rank {self.rank} (pid {self.pid} on host {self.host})"


def _load_mpi():
    """mpi4py's MPI module, imported without initialising MPI (graphc does that, see _init)."""
    try:
        import mpi4py
    except ImportError:
        raise DistributedError("distributed training needs mpi4py and an MPI library: "
                               "pip install 'graphc[dist]' and launch with graphc-launch or mpiexec") from None
    mpi4py.rc.initialize = False
    mpi4py.rc.finalize = False
    from mpi4py import MPI
    return MPI


def _libmpi_path():
    """The MPI library mpi4py loaded into this process (found in /proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libmpi" in path and ".so" in path:
                return path
    return None


class _CheckIn:
    """Files under the temp folder, one per rank that reached graphc's MPI start, in a folder
    named for the launcher process (gforker's mpiexec or hydra's per-host proxy: the parent of
    every rank on this host), so a rank stuck before MPI_Init can be named from this host."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size
        self.folder = os.path.join(tempfile.gettempdir(), f"graphc-dist-{os.getuid()}-{os.getppid()}")
        self.path = os.path.join(self.folder, str(rank))
        try:
            os.makedirs(self.folder, exist_ok=True)
            with open(self.path, "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            self.folder = None

    def missing(self):
        if self.folder is None:
            return None
        try:
            present = {int(n) for n in os.listdir(self.folder) if n.isdigit()}
        except OSError:
            return None
        return [r for r in range(self.size) if r not in present]

    def remove(self):
        if self.folder is None:
            return
        for op, path in ((os.remove, self.path), (os.rmdir, self.folder)):
            try:
                op(path)
            except OSError:
                pass        # another rank removes the folder, or it still holds files


def _init_mpi(MPI, timeout):
    """MPI_Init_thread(MPI_THREAD_MULTIPLE) with a deadline (see the module docstring)."""
    if MPI.Is_initialized():
        return
    rank = int(os.environ.get("PMI_RANK", "0"))
    size = int(os.environ.get("PMI_SIZE", "1"))
    checkin = _CheckIn(rank, size)
    path = _libmpi_path()
    if path is None:        # cannot release the GIL: initialise directly, without a deadline
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
        checkin.remove()
        return
    lib = ctypes.CDLL(path)
    provided = ctypes.c_int(-1)
    result = {}

    def init():
        result["rc"] = lib.MPI_Init_thread(None, None, ctypes.c_int(MPI.THREAD_MULTIPLE), ctypes.byref(provided))

    thread = threading.Thread(target=init, name="graphc-mpi-init", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        missing = checkin.missing()
        local = os.environ.get("MPI_LOCALNRANKS")
        where = ""
        if local is not None and int(local) < size:
            where = " (only ranks on this host are visible here; the others may be on other hosts)"
        who = (f"ranks {missing} never started the distributed runtime{where}" if missing
               else "the other ranks started but MPI_Init did not complete")
        _fail_fast(DistributedError(f"graphc.dist: rank {rank} of {size} on host {socket.gethostname()}: "
                                    f"joining the job timed out after {timeout:g} s ({TIMEOUT_ENV}): {who}"))
    checkin.remove()
    if result.get("rc") != 0:
        raise DistributedError(f"graphc.dist: MPI_Init_thread failed with error code {result.get('rc')}")
    if provided.value < MPI.THREAD_MULTIPLE:
        raise DistributedError(f"graphc.dist: the MPI library gives thread level {provided.value}, but graphc "
                               f"needs MPI_THREAD_MULTIPLE ({MPI.THREAD_MULTIPLE}) for its watchdog and servers")


def _fail_fast(error):
    """Raise `error` and make sure the process then exits without MPI_Finalize (which would
    wait on the dead or missing rank)."""
    _mark_failed()
    _install_exit_hook()
    raise error


_exit_state = {"failed": False, "hooked": False, "world": None}


def _mark_failed():
    """This rank will end in failure: tell graphc-launch now, not only at exit. Once one rank has
    failed, the process manager kills the others, and a survivor still reporting the death it saw
    may be killed before its exit handler runs (then the launcher counted it as killed)."""
    _exit_state["failed"] = True
    _leave_status(1)


def _install_exit_hook():
    if _exit_state["hooked"]:
        return
    _exit_state["hooked"] = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def hook(kind, value, tb):
        # an unhandled exception: the others will see this rank die; finalising would wait on them
        _mark_failed()
        if isinstance(value, DistributedError):
            _log_line(str(value))
        previous(kind, value, tb)

    sys.excepthook = hook


STATUS_ENV = "GRAPHC_LAUNCH_STATUS_DIR"     # set by graphc-launch: each rank leaves its exit status
LOG_ENV = "GRAPHC_DIST_LOG_DIR"


def _log_line(message: str) -> None:
    """Append a failure message to $GRAPHC_DIST_LOG_DIR/rank<r>.log. A process manager relays the
    ranks' stderr through its own reads (MPICH's gforker splits lines mid-way when several ranks
    write at once), so a rank's own file is the one place its message is never interleaved."""
    folder, rank = os.environ.get(LOG_ENV), os.environ.get("PMI_RANK")
    if not folder or rank is None:
        return
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"rank{rank}.log"), "a") as f:
            f.write(message.rstrip("\n") + "\n")
    except OSError:
        pass


def report(message: str) -> None:
    """A failure message: to stderr at once, and to this rank's log file when one is asked for."""
    print(message, file=sys.stderr, flush=True)
    _log_line(message)


def _leave_status(code):
    """Tell graphc-launch how this rank ended (process managers report a rank killed by their
    own clean-up signal as a success, so graphc-launch counts these files instead)."""
    folder = os.environ.get(STATUS_ENV)
    rank = os.environ.get("PMI_RANK")
    if folder and rank is not None:
        try:
            with open(os.path.join(folder, f"rank{rank}"), "w") as f:
                f.write(str(code))
        except OSError:
            pass


def _at_exit():
    w = _exit_state["world"]
    if not _exit_state["failed"] and w is not None:
        try:
            w.finish()
            _leave_status(0)
            return
        except DistributedError as e:
            report(f"{e}")
    _leave_status(1)
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the launcher's "stop" must not cut the linger short
    time.sleep(_FAILURE_LINGER_S)
    os._exit(1)


def _process_dead(pid) -> bool:
    """Whether `pid` has exited (gone, or a zombie its launcher has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    except OSError:
        return False
    return state in ("Z", "X", "x")


class World:
    """The ranks of this MPI job, and deadline-bounded waits on them. Use `world()`."""

    def __init__(self):
        self.timeout = timeout_seconds()
        MPI = self.MPI = _load_mpi()
        _install_exit_hook()
        _init_mpi(MPI, self.timeout)
        base = MPI.COMM_WORLD
        self.rank, self.size = base.Get_rank(), base.Get_size()
        self.host = socket.gethostname()
        self.me = Peer(self.rank, self.host, os.getpid())
        self._failure = None
        self._at_finish = []
        self._failure_seen = threading.Event()
        self._lock = threading.Lock()
        self.peers = self._join(base)
        # graphc's own communication context: a user's MPI traffic on COMM_WORLD never matches it
        comm, request = base.Idup()
        self.wait([request], "creating graphc's communicator (MPI_Comm_idup)")
        self.comm = comm
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="graphc-dist-watchdog", daemon=True)
        self._watchdog.start()
        _exit_state["world"] = self
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._on_interrupt)
        if self.rank == 0 and self.size > 1 and self._print_table():
            table = ", ".join(f"{p.rank}:{p.pid}@{p.host}" for p in self.peers)
            print(f"graphc.dist: {self.size} ranks (rank:pid@host): {table}", file=sys.stderr, flush=True)

    def __repr__(self):
        return f"<graphc.dist World: rank {self.rank} of {self.size} on {self.host}>"

    @staticmethod
    def _print_table():
        """The rank -> pid table goes to stderr where survivors cannot report a death (hydra
        mpiexec kills them first), or when GRAPHC_DIST_VERBOSE=1; GRAPHC_DIST_VERBOSE=0 silences it."""
        verbose = os.environ.get(VERBOSE_ENV)
        if verbose is not None:
            return verbose not in ("", "0")
        return LAUNCHER_ENV not in os.environ and "HYDI_CONTROL_FD" in os.environ

    # -- joining --------------------------------------------------------------------------------
    def _join(self, base):
        """Every rank's (host, pid), exchanged point to point so that a rank that does not show
        up within the deadline can be named."""
        MPI = self.MPI
        mine = np.zeros(_HOST_BYTES + 8, np.uint8)
        mine[:8] = np.frombuffer(np.int64(os.getpid()).tobytes(), np.uint8)
        host = self.host.encode()[:_HOST_BYTES]
        mine[8:8 + len(host)] = np.frombuffer(host, np.uint8)
        others = [r for r in range(self.size) if r != self.rank]
        boxes = {r: np.zeros_like(mine) for r in others}
        recvs = {r: base.Irecv(boxes[r], source=r, tag=_HELLO_TAG) for r in others}
        sends = [base.Isend(mine, dest=r, tag=_HELLO_TAG) for r in others]
        deadline = time.monotonic() + self.timeout
        pending = dict(recvs)
        while pending:
            for r in [r for r, req in pending.items() if req.Test()]:
                del pending[r]
            if pending and time.monotonic() > deadline:
                _fail_fast(DistributedError(
                    f"graphc.dist: {self.me}: joining the job timed out after {self.timeout:g} s ({TIMEOUT_ENV}): "
                    f"ranks {sorted(pending)} never joined (they did not start the distributed runtime)"))
            if pending:
                time.sleep(0.001)
        MPI.Request.Waitall(sends)
        peers = []
        for r in range(self.size):
            box = mine if r == self.rank else boxes[r]
            pid = int(np.frombuffer(box[:8].tobytes(), np.int64)[0])
            name = box[8:].tobytes().rstrip(b"\0").decode(errors="replace")
            peers.append(Peer(r, name, pid))
        return peers

    # -- failures -------------------------------------------------------------------------------
    def _on_interrupt(self, signum, frame):
        """Process managers interrupt every rank once one has died: say why, not just
        KeyboardInterrupt, when a peer is dead (the signal may beat the watchdog's next look)."""
        self._scan()
        if self._failure is not None:
            self._failure_seen.set()
            raise self._failure
        raise KeyboardInterrupt

    def _watch(self):
        """The watchdog thread: same-host peers' processes, every 0.1 s."""
        while not self._stop.wait(_WATCH_PERIOD_S):
            if self._scan():
                # the main thread raises at its next wait; if it never gets there, end here
                if not self._failure_seen.wait(self.timeout):
                    report(f"graphc.dist: {self.me}: the main thread did not reach graphc within {self.timeout:g} s "
                           "of the failure; exiting")
                    sys.stderr.flush()
                    os._exit(1)
                return

    def _scan(self):
        """Look at the same-host peers once; record (and print, once) the first death seen."""
        if self._failure is not None:
            return True
        dead = [p for p in self.peers if p.host == self.host and p.rank != self.rank and _process_dead(p.pid)]
        if not dead:
            return False
        names = ", ".join(str(p) for p in dead)
        with self._lock:
            first = self._failure is None
            if first:
                self._failure = DistributedError(f"graphc.dist: {self.me}: {names} died")
                _mark_failed()
        if first:
            report(f"graphc.dist: {self.me}: {names} died; this rank stops")
        return True

    def _record(self, error):
        with self._lock:
            if self._failure is None:
                self._failure = error
                _mark_failed()

    def check(self):
        """Raise the recorded failure (a dead peer), if any."""
        if self._failure is not None:
            self._failure_seen.set()
            raise self._failure

    def fail(self, error):
        """Record `error` as this job's failure (the process then exits without finalising) and
        raise it."""
        self._record(error)
        self._failure_seen.set()
        raise error

    # -- waiting ----------------------------------------------------------------------------------
    def wait(self, requests, what, suspects=None):
        """Poll `requests` (MPI requests) until all complete; raise DistributedError on a dead
        peer or after the deadline. `what` names the operation (and key) in the message;
        `suspects()` may name the ranks likely at fault when the deadline passes."""
        MPI = self.MPI
        requests = list(requests)
        if not requests:
            return
        start = time.monotonic()
        deadline = start + self.timeout
        spin_until = start + _SPIN_S
        spins = naps = 0
        while True:
            if MPI.Request.Testall(requests):
                return
            self.check()
            spins += 1
            if spins % 64:
                os.sched_yield()
                continue
            now = time.monotonic()
            if now > deadline:
                break
            if now > spin_until:
                naps += 1
                time.sleep(min(0.001, 0.00002 * naps))
        detail = suspects() if suspects is not None else None
        if detail is None:
            alive = [p.rank for p in self.peers if p.rank != self.rank and p.host == self.host]
            remote = [p.rank for p in self.peers if p.host != self.host]
            detail = ("the other ranks did not reach the matching call (every same-host rank "
                      f"{alive} is still alive: one is stuck, or they called collectives in a different order"
                      + (f"; ranks {remote} on other hosts may have died" if remote else "") + ")")
        self.fail(DistributedError(f"graphc.dist: {self.me}: {what} did not complete within {self.timeout:g} s "
                                   f"({TIMEOUT_ENV}): {detail}"))

    def split(self, color, what):
        """A communicator of the ranks that pass the same `color` (MPI_Comm_split, which has no
        nonblocking form: a barrier with a deadline first makes sure every rank is there)."""
        self.wait([self.comm.Ibarrier()], f"the barrier before {what}")
        return self.comm.Split(color, self.rank)

    def at_finish(self, callback):
        """Call `callback()` at a clean exit, before the exit barrier (e.g. a worker telling
        the servers it is done)."""
        self._at_finish.append(callback)

    def finish(self):
        """At a clean exit: run the at_finish callbacks, wait until every rank gets here (so no
        rank's exit looks like a death to the others' watchdogs; ranks may finish minutes apart,
        one saving a checkpoint, so this wait gets ten times the deadline), stop the watchdog
        and finalise MPI."""
        for callback in self._at_finish:
            callback()
        if self.size > 1:
            timeout, self.timeout = self.timeout, 10 * self.timeout
            try:
                self.wait([self.comm.Ibarrier()], "the barrier at exit (a rank has not finished)")
            finally:
                self.timeout = timeout
        self._stop.set()
        self.comm.Free()
        self.MPI.Finalize()


_world_lock = threading.Lock()


def world() -> World:
    """This process's World, joining the MPI job on first call."""
    with _world_lock:
        w = _exit_state["world"]
        if w is None:
            w = World()
        return w
