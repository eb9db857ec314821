"""The overlapped reducer's plan (kvstore/overlap.py): buckets fixed by the keys' sizes and dtypes
in reverse parameter order, and the number of backward segments asked of a compiled block.
Training under MPI with overlap on and off is in test_dist.py."""
import numpy as np
import pytest

from graphc.dist.comm import Peer
from graphc.kvstore.overlap import backward_segments, overlap_enabled, plan_buckets


def test_big_keys_go_alone_and_small_keys_pack_across_them(monkeypatch):
    monkeypatch.setenv("GRAPHC_DIST_DIRECT_KB", "256")
    monkeypatch.setenv("GRAPHC_DIST_BUCKET_MB", "25")
    f32 = np.float32
    # reverse parameter order of an MLP 784-512-512-10: b2, w2, b1, w1, b0, w0
    entries = [(5, 10, f32), (4, 5120, f32), (3, 512, f32), (2, 512 * 512, f32), (1, 512, f32), (0, 512 * 784, f32)]
    plan = plan_buckets(entries)
    # the weights go as they arrive; the biases and the small last weight share one bucket,
    # open across the big keys, summed once the last of them arrives
    assert [(keys, direct) for _, keys, direct in plan] == [([2], True), ([0], True), ([5, 4, 3, 1], False)]


def test_buckets_are_at_most_a_quarter_of_the_model_and_split_by_dtype(monkeypatch):
    monkeypatch.setenv("GRAPHC_DIST_DIRECT_KB", "100000")     # nothing direct
    monkeypatch.setenv("GRAPHC_DIST_BUCKET_MB", "25")
    n = 64 * 1024 // 4      # 64 KB of float32 per key: the smallest cap
    entries = [(k, n, np.float32) for k in range(7, -1, -1)]
    plan = plan_buckets(entries)
    # 512 KB in all: a quarter is 128 KB, two keys per bucket
    assert [keys for _, keys, _ in plan] == [[7, 6], [5, 4], [3, 2], [1, 0]]
    mixed = plan_buckets([(2, 10, np.float32), (1, 10, np.float64), (0, 10, np.float16)])
    # float16 travels as float32, in the float32 bucket; float64 has its own
    assert [(np.dtype(w).name, keys) for w, keys, _ in mixed] == [("float32", [2, 0]), ("float64", [1])]


def test_the_plan_depends_on_sizes_and_dtypes_only(monkeypatch):
    monkeypatch.setenv("GRAPHC_DIST_BUCKET_MB", "0.001")
    rng = np.random.RandomState(0)
    sizes = rng.randint(1, 2000, 30)
    a = plan_buckets([(k, int(sizes[k]), np.float32) for k in range(29, -1, -1)])
    b = plan_buckets([(k, int(sizes[k]), np.float32) for k in range(29, -1, -1)])
    assert [keys for _, keys, _ in a] == [keys for _, keys, _ in b]
    assert sum((keys for _, keys, _ in a), []) == list(range(29, -1, -1))
    assert len(a) > 3


def test_backward_segments_follow_the_plan_capped_at_four(monkeypatch):
    monkeypatch.delenv("GRAPHC_DIST_BACKWARD_SEGMENTS", raising=False)
    monkeypatch.setenv("GRAPHC_DIST_DIRECT_KB", "256")
    monkeypatch.setenv("GRAPHC_DIST_BUCKET_MB", "25")
    f32 = "float32"
    assert backward_segments([(100, f32), (10, f32)]) == 1          # one small bucket: nothing to overlap
    mlp = [(512 * 784, f32), (512, f32), (512 * 512, f32), (512, f32), (5120, f32), (10, f32)]
    assert backward_segments(mlp) == 3     # w1, w0, then the small keys together
    assert backward_segments([(300_000, f32)] * 9) == 4
    monkeypatch.setenv("GRAPHC_DIST_BACKWARD_SEGMENTS", "2")
    assert backward_segments(mlp) == 2
    monkeypatch.setenv("GRAPHC_DIST_BACKWARD_SEGMENTS", "two")
    with pytest.raises(Exception, match="GRAPHC_DIST_BACKWARD_SEGMENTS='two'"):
        backward_segments(mlp)


class _World:
    def __init__(self, hosts):
        self.host = hosts[0]
        self.peers = [Peer(r, h, 100 + r) for r, h in enumerate(hosts)]


def test_overlap_by_default_only_where_a_core_is_spare_or_ranks_span_hosts(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "1")
    monkeypatch.delenv("GRAPHC_DIST_OVERLAP", raising=False)
    assert not overlap_enabled(_World(["a", "a"]))          # 2 ranks x 1 thread fill 2 cores
    assert overlap_enabled(_World(["a"]))                     # one rank of 1 thread: a core spare
    assert overlap_enabled(_World(["a", "b"]))                # the network moves the bytes
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert overlap_enabled(_World(["a", "a"]))
    monkeypatch.setenv("GRAPHC_NUM_THREADS", "8")
    assert not overlap_enabled(_World(["a", "a"]))
    monkeypatch.setenv("GRAPHC_DIST_OVERLAP", "1")
    assert overlap_enabled(_World(["a", "a"]))
    monkeypatch.setenv("GRAPHC_DIST_OVERLAP", "0")
    assert not overlap_enabled(_World(["a", "b"]))
    monkeypatch.setenv("GRAPHC_DIST_OVERLAP", "sometimes")
    with pytest.raises(Exception, match="GRAPHC_DIST_OVERLAP='sometimes': expected 1, 0 or auto"):
        overlap_enabled(_World(["a"]))
