"""graphc-launch: start a distributed job on this machine, as MXNet's tools/launch.py does.

    graphc-launch -n 4 [-s 2] [--env NAME:VALUE ...] [--timeout 60] python train.py ...

starts n workers and s parameter servers (ranks n .. n+s-1, announced to graphc through
GRAPHC_NUM_SERVERS) under MPICH. The default launcher, 'local', is MPICH's gforker process
manager: when a rank dies it leaves the others running long enough that each reports the dead
rank by number itself (hydra's mpiexec kills them within a second, before they can); '--launcher
mpi' runs hydra's mpiexec (several hosts: -H hostfile). Each rank leaves its exit status in a
temporary folder, so graphc-launch exits non-zero naming the ranks that failed or were killed,
even where the process manager reports a clean end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from .comm import LAUNCHER_ENV, STATUS_ENV, TIMEOUT_ENV
from .roles import SERVERS_ENV

__all__ = ["main", "build_command"]


def _find(program):
    """`program` next to this Python (a virtual environment's bin) or on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), program)
    if os.access(here, os.X_OK):
        return here
    found = shutil.which(program)
    if found is None:
        raise SystemExit(f"graphc-launch: {program} not found next to {sys.executable} or on PATH; "
                         "install MPICH (pip install 'graphc[dist]')")
    return found


def _parse(argv):
    parser = argparse.ArgumentParser(prog="graphc-launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--num-workers", type=int, required=True, help="number of worker processes")
    parser.add_argument("-s", "--num-servers", type=int, default=0,
                        help="number of parameter-server processes (dist_async); default 0: worker 0 serves")
    parser.add_argument("--launcher", choices=("local", "mpi"), default="local",
                        help="local: MPICH gforker on this machine (survivors name a dead rank); mpi: hydra mpiexec")
    parser.add_argument("-H", "--hostfile", help="hosts file for --launcher mpi")
    parser.add_argument("--env", action="append", default=[], metavar="NAME:VALUE",
                        help="set an environment variable for every process (repeatable)")
    parser.add_argument("--timeout", type=float,
                        help=f"seconds any wait on another rank may take ({TIMEOUT_ENV}, default 60)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program to run, e.g. python train.py")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("no command given (e.g. graphc-launch -n 2 python train.py)")
    if args.num_workers < 1 or args.num_servers < 0:
        parser.error("need -n >= 1 workers and -s >= 0 servers")
    if args.hostfile and args.launcher != "mpi":
        parser.error("-H/--hostfile needs --launcher mpi")
    return args


def build_command(args):
    """The process manager's command line for `args`."""
    size = args.num_workers + args.num_servers
    if args.launcher == "local":
        return [_find("mpiexec.gforker"), "-n", str(size)] + args.command
    cmd = [_find("mpiexec"), "-n", str(size)]
    if args.hostfile:
        cmd += ["-f", args.hostfile]
    return cmd + args.command


def main(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ)
    # every rank runs on this host (gforker starts local processes only): MPICH's UCX netmod
    # then needs no network transport, and UCX's address exchange over one occasionally fails
    # MPI_Init ("failed to unpack address, invalid bandwidth 0.00", pmodels/mpich#7417)
    env.setdefault("UCX_TLS", "self,sm")
    for pair in args.env:
        name, sep, value = pair.partition(":")
        if not sep or not name:
            raise SystemExit(f"graphc-launch: --env {pair!r}: expected NAME:VALUE")
        env[name] = value
    env[SERVERS_ENV] = str(args.num_servers)
    env[LAUNCHER_ENV] = args.launcher
    if args.timeout is not None:
        env[TIMEOUT_ENV] = str(args.timeout)
    size = args.num_workers + args.num_servers
    status = tempfile.mkdtemp(prefix="graphc-launch-")
    env[STATUS_ENV] = status
    try:
        code = subprocess.call(build_command(args), env=env)
        ended = {}
        for r in range(size):
            try:
                with open(os.path.join(status, f"rank{r}")) as f:
                    ended[r] = f.read().strip()
            except OSError:
                pass
    finally:
        shutil.rmtree(status, ignore_errors=True)
    # ranks that never joined graphc.dist leave no status: only judge ranks when some left one
    failed = [r for r in range(size) if ended.get(r) != "0"] if ended else []
    if failed:
        unknown = [r for r in failed if r not in ended]
        errored = [r for r in failed if r in ended]
        parts = []
        if errored:
            parts.append(f"ranks {errored} stopped with an error")
        if unknown:
            parts.append(f"ranks {unknown} were killed or never finished")
        print(f"graphc-launch: the job failed: {'; '.join(parts)} (see the messages above)", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
