"""DataLoader's MXNet 1.9.1 keywords beyond the basics: auto_reload (a pass starts at construction
and after each completed pass), refresh()/clean(), thread_pool, and MXNet 2's try_nopython."""
import threading
import time

import numpy as np
import pytest

import graphc as mx
from graphc.gluon.data import ArrayDataset, DataLoader


class _Counting:
    """A dataset that counts its reads, so a test can see when loading happens."""

    def __init__(self, n):
        self.n = n
        self.reads = 0
        self._lock = threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self._lock:
            self.reads += 1
        return np.float32(i)


def _wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _batches(loader):
    return [b.asnumpy().tolist() for b in loader]


def test_auto_reload_starts_loading_at_construction():
    data = _Counting(8)
    DataLoader(data, batch_size=2, num_workers=1, thread_pool=True, auto_reload=True)
    assert _wait_for(lambda: data.reads > 0), "auto_reload=True did not start a pass at construction"


def test_without_auto_reload_nothing_loads_until_iteration():
    data = _Counting(8)
    loader = DataLoader(data, batch_size=2, num_workers=1, thread_pool=True)
    time.sleep(0.2)
    assert data.reads == 0
    assert _batches(loader) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_auto_reload_prefetches_the_next_pass_when_one_ends():
    data = _Counting(6)
    loader = DataLoader(data, batch_size=2, num_workers=1, thread_pool=True, auto_reload=True, prefetch=2)
    assert _batches(loader) == [[0, 1], [2, 3], [4, 5]]
    assert _wait_for(lambda: data.reads > 6), "the next pass did not start after the first ended"
    assert _batches(loader) == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("workers", [0, 2])
def test_auto_reload_yields_the_same_batches_as_a_plain_loader(workers):
    dataset = ArrayDataset(np.arange(10, dtype=np.float32))
    mx.random.seed(11)
    plain = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=workers, thread_pool=True)
    expected = [_batches(plain) for _ in range(3)]
    mx.random.seed(11)
    reloading = DataLoader(dataset, batch_size=3, shuffle=True, num_workers=workers, thread_pool=True,
                           auto_reload=True)
    assert [_batches(reloading) for _ in range(3)] == expected
    assert len(reloading) == 4


def test_the_first_iterator_read_takes_the_prefetched_pass():
    # MXNet's documented sequence: iterators take the pass started ahead lazily, on first next()
    data = _Counting(4)
    loader = DataLoader(data, batch_size=1, num_workers=1, thread_pool=True, auto_reload=True, prefetch=4)
    assert _wait_for(lambda: data.reads == 4)
    it, it2 = iter(loader), iter(loader)
    assert next(it2).asnumpy().tolist() == [0]
    time.sleep(0.1)
    assert data.reads == 4          # it2 read what was prefetched
    assert next(it).asnumpy().tolist() == [0]
    assert _wait_for(lambda: data.reads > 4)   # `it` had to start a pass of its own


def test_refresh_and_clean():
    data = _Counting(4)
    loader = DataLoader(data, batch_size=2, num_workers=1, thread_pool=True)
    loader.refresh()
    assert _wait_for(lambda: data.reads > 0)
    assert _batches(loader) == [[0, 1], [2, 3]]
    loader.refresh()
    loader.clean()
    assert _batches(loader) == [[0, 1], [2, 3]]


def test_try_nopython_runs_the_python_pipeline():
    dataset = ArrayDataset(np.arange(5, dtype=np.float32), np.arange(5, dtype=np.float32) * 2)
    for flag in (None, True, False):
        loader = DataLoader(dataset, batch_size=2, try_nopython=flag, last_batch="discard")
        assert [[a.asnumpy().tolist(), b.asnumpy().tolist()] for a, b in loader] == \
            [[[0, 1], [0, 2]], [[2, 3], [4, 6]]]


def test_thread_pool_and_process_workers_give_the_same_batches():
    dataset = ArrayDataset(np.arange(12, dtype=np.float32).reshape(6, 2))
    mx.random.seed(3)
    threads = _batches(DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, thread_pool=True))
    mx.random.seed(3)
    processes = _batches(DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, thread_pool=False))
    assert threads == processes
    assert sorted(sum((sum(b, []) for b in threads), [])) == list(range(12))
