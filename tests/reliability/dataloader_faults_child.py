"""Scenarios for test_dataloader_faults.py, each run in a fresh process (a hang there fails the
test on a subprocess timeout instead of stalling the suite). Usage:

    python dataloader_faults_child.py <scenario> [thread]

prints one JSON object of facts on its last line; the test asserts on them.
"""
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np

import graphc as mx
from graphc.gluon.data import ArrayDataset, DataLoader, SimpleDataset
from graphc.gluon.data.vision import transforms


class Images(SimpleDataset):
    """Float images, a little work per sample, like a decoding dataset. A batch (400 KB) is
    bigger than a pipe's buffer, so a worker finishing one blocks until the parent reads it."""

    def __getitem__(self, idx):
        time.sleep(0.002)
        return np.full((3, 32, 32), idx, dtype=np.float32), idx


class Sleepy(SimpleDataset):
    def __init__(self, items, seconds):
        super().__init__(items)
        self.seconds = seconds

    def __getitem__(self, idx):
        time.sleep(self.seconds)
        return np.float32(idx)


class ExitsAt(SimpleDataset):
    def __getitem__(self, idx):
        if idx == 9:
            os._exit(3)
        return np.float32(idx)


class RaisesAt(SimpleDataset):
    def __getitem__(self, idx):
        if idx == 9:
            raise ValueError(f"sample {idx} cannot be decoded")
        return np.float32(idx)


def _resources():
    return {"fds": len(os.listdir("/proc/self/fd")),
            "children": len(multiprocessing.active_children()),
            "threads": threading.active_count()}


def _settle(baseline_threads, seconds=3.0):
    """Daemon worker threads finish their current sample before they exit: give them a moment."""
    deadline = time.monotonic() + seconds
    while threading.active_count() > baseline_threads and time.monotonic() < deadline:
        time.sleep(0.02)


def rounds(thread, n=10, workers=8):
    """Create an 8-worker loader, take a few batches, drop it; n times."""
    ds = Images(list(range(4000)))
    before = _resources()
    start = time.monotonic()
    slowest_delete = 0.0
    for _ in range(n):
        loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, thread_pool=thread)
        it = iter(loader)
        for _ in range(3):
            next(it)
        t = time.monotonic()
        del loader, it
        slowest_delete = max(slowest_delete, time.monotonic() - t)
    elapsed = time.monotonic() - start
    _settle(before["threads"])
    return {"elapsed": elapsed, "slowest_delete": slowest_delete, "before": before, "after": _resources()}


def rounds20(thread):
    return rounds(thread, n=20)


def _until_error(it, limit=10.0):
    """Call next(it) until it raises; a summary of the exception (never the exception itself:
    its traceback would keep the loader alive), the seconds taken and the batches received."""
    start, got = time.monotonic(), 0
    while time.monotonic() - start < limit:
        try:
            next(it)
            got += 1
        except StopIteration:
            break
        except Exception as exc:        # the thing under test
            return {"type": type(exc).__name__, "message": str(exc),
                    "cause": str(exc.__cause__) if exc.__cause__ is not None else "",
                    "notes": getattr(exc, "__notes__", []),
                    "seconds": time.monotonic() - start, "got": got}
    return {"type": None, "message": "", "seconds": time.monotonic() - start, "got": got}


def sigkill(thread):
    before = _resources()
    loader = DataLoader(Sleepy(list(range(400)), 0.02), batch_size=4, num_workers=4, timeout=60)
    it = iter(loader)
    next(it)
    victim = loader._worker_pool.processes[2].pid
    os.kill(victim, signal.SIGKILL)
    error = _until_error(it)
    again = _until_error(it)
    # the loader recovers: its next pass starts fresh workers
    fresh = [float(b.asnumpy()[0]) for b, _ in zip(loader, range(2))]
    del loader, it
    return dict(error, pid=victim, again=again["message"], fresh=fresh, before=before, after=_resources())


def os_exit(thread):
    before = _resources()
    loader = DataLoader(ExitsAt(list(range(40))), batch_size=4, num_workers=3, timeout=60)
    error = _until_error(iter(loader))
    del loader
    return dict(error, before=before, after=_resources())


def raises(thread):
    loader = DataLoader(RaisesAt(list(range(16))), batch_size=4, num_workers=3, thread_pool=thread)
    it = iter(loader)
    first = next(it).asnumpy().tolist()
    error = _until_error(it)
    rest = [b.asnumpy().tolist() for b in it]       # the pass goes on after a bad batch
    workers = loader._worker_pool.threads if thread else loader._worker_pool.processes
    del loader, it          # no reference cycle keeps the loader: its workers stop right here
    _settle(1)
    alive = sum(w.is_alive() for w in workers)
    return dict(error, first=first, rest=rest, alive_after_delete=alive)


def _augmented(n=48):
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    aug = transforms.Compose([transforms.RandomFlipLeftRight(), transforms.RandomResizedCrop(6),
                              transforms.ToTensor()])
    return ArrayDataset(mx.nd.array(images, dtype="uint8"), np.arange(n, dtype=np.int32)).transform_first(aug)


def same_as_no_workers(thread):
    ds = _augmented()
    passes = {}
    for workers in (0, 8):
        mx.random.seed(11)
        loader = DataLoader(ds, batch_size=5, shuffle=True, num_workers=workers, prefetch=3)
        passes[workers] = [[x.asnumpy().tolist() for x in batch] for batch in loader]
    return {"equal": passes[0] == passes[8], "batches": len(passes[8]),
            "labels": [b[1] for b in passes[8]]}


def huge_tasks(thread):
    """Tasks bigger than a pipe buffer queued behind large results: the parent must not
    deadlock writing tasks while a worker waits to write its batch back."""
    n = 120000      # 20000-sample tasks (100 KB) and 20000 x 32 float32 batches (2.5 MB)
    ds = ArrayDataset(np.arange(n * 32, dtype=np.float32).reshape(n, 32), np.arange(n))
    expected = [b[1].asnumpy() for b in DataLoader(ds, batch_size=20000, shuffle=False)]
    got = [b[1].asnumpy() for b in DataLoader(ds, batch_size=20000, num_workers=2, prefetch=6)]
    return {"equal": len(got) == len(expected) and all((a == b).all() for a, b in zip(got, expected))}


def timeout(thread):
    loader = DataLoader(Sleepy(list(range(4)), 30), batch_size=2, num_workers=2, timeout=0.5,
                        thread_pool=thread)
    it = iter(loader)
    error = _until_error(it, limit=5)
    t = time.monotonic()
    del loader, it
    deleted = time.monotonic() - t
    return dict(error, delete_seconds=deleted, children=len(multiprocessing.active_children()))


def stuck_delete(thread):
    """Workers deep in a 60 s sample: dropping the loader must not wait for them."""
    loader = DataLoader(Sleepy(list(range(64)), 60), batch_size=2, num_workers=8, thread_pool=thread)
    it = iter(loader)
    time.sleep(0.3)         # every worker is now inside __getitem__
    t = time.monotonic()
    del loader, it
    return {"delete_seconds": time.monotonic() - t, "children": len(multiprocessing.active_children())}


def idle_exit(thread):
    """Idle workers stop on their own when the loader goes (end of input), not by SIGTERM, even
    with another loader's workers forked after them holding copies of the parent's files."""
    ds = Images(list(range(64)))
    first = DataLoader(ds, batch_size=16, num_workers=3)
    list(first)
    second = DataLoader(ds, batch_size=16, num_workers=3)
    list(second)
    processes = first._worker_pool.processes
    t = time.monotonic()
    del first
    deleted = time.monotonic() - t
    return {"exitcodes": [p.exitcode for p in processes], "delete_seconds": deleted,
            "second_alive": all(p.is_alive() for p in second._worker_pool.processes)}


if __name__ == "__main__":
    scenario, mode = sys.argv[1], sys.argv[2:] == ["thread"]
    print(json.dumps(globals()[scenario](mode)))
