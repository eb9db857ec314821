"""Summing per-device partial results across the devices of one process, for layers that must
see the whole batch while each device holds a slice of it (SyncBatchNorm).

Each device's dispatcher thread (graphc/engine.py) calls `exchange(key, device, parts)` with its
partial sums and blocks until all `ndev` devices of that key have called it for the same round,
then every caller gets the element-wise totals. A device's n-th call for a key joins round n, so
devices may run ahead or behind each other by whole rounds. Totals add in device order, so every
device gets bit-identical numbers whatever order they arrived in. Every wait has a deadline: a
device that never comes (a mismatched ndev, work that was never queued on it) becomes an error
naming the key, the devices that came and the ones missing, never a hang; the key's state is
then dropped so that the next round starts clean. This module knows numbers and threads only."""
from __future__ import annotations

import os
import threading

import numpy as np

from ....ops.errors import GraphcError

__all__ = ["exchange", "timeout_seconds", "forget"]

_cond = threading.Condition()
_calls: dict = {}      # (key, device) -> rounds this device has joined
_rounds: dict = {}     # (key, round) -> {"parts": {device: [arrays]}, "totals": list | None, "left": int}


def timeout_seconds() -> float:
    """How long a device waits for the others (GRAPHC_SYNC_TIMEOUT, default 120 s)."""
    return float(os.environ.get("GRAPHC_SYNC_TIMEOUT", "120"))


def forget(key=None) -> None:
    """Drop the state of `key` (all keys when None): a fresh start after a failed round."""
    with _cond:
        for table in (_calls, _rounds):
            for k in [k for k in table if key is None or k[0] == key]:
                del table[k]
        _cond.notify_all()


def exchange(key, device: int, ndev: int, parts, what: str):
    """Totals over the `ndev` devices of `key` of the arrays `parts` this device contributes."""
    deadline = timeout_seconds()
    with _cond:
        n = _calls.get((key, device), 0)
        _calls[(key, device)] = n + 1
        entry = _rounds.setdefault((key, n), {"parts": {}, "totals": None, "left": ndev})
        entry["parts"][device] = [np.asarray(p, np.float64) for p in parts]
        if len(entry["parts"]) == ndev:
            ordered = [entry["parts"][d] for d in sorted(entry["parts"])]
            entry["totals"] = [sum(values) for values in zip(*ordered)]
            _cond.notify_all()
        elif not _cond.wait_for(lambda: entry["totals"] is not None or (key, n) not in _rounds, deadline):
            came = sorted(entry["parts"])
            forget(key)
            raise GraphcError(f"{what}: device {device} waited {deadline:g} s (GRAPHC_SYNC_TIMEOUT) for the "
                              f"statistics of {ndev} devices (num_devices={ndev}, key {key!r}, round {n}); only "
                              f"devices {came} came. Every device of the batch must run this layer the same "
                              f"number of times, and num_devices must be the number of devices in use.")
        if entry["totals"] is None:       # another device timed out and dropped the round
            raise GraphcError(f"{what}: the round {n} of key {key!r} was abandoned after a timeout on another "
                              f"device")
        totals = entry["totals"]
        entry["left"] -= 1
        if entry["left"] == 0:
            _rounds.pop((key, n), None)
        return totals
