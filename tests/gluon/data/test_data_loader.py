"""DataLoader: batching, last_batch modes, argument rules, shuffling under mx.random.seed, and
worker processes/threads giving exactly the batches the in-process loader gives."""
import gc
import multiprocessing
import time

import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon.data import (ArrayDataset, BatchSampler, DataLoader, SequentialSampler,
                               SimpleDataset, default_batchify_fn)
from graphc.gluon.data import dataloader as dl_module
from graphc.gluon.data.vision import transforms


def _numpy(batch):
    if isinstance(batch, (list, tuple)):
        return [_numpy(b) for b in batch]
    return batch.asnumpy() if isinstance(batch, nd.NDArray) else batch


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, list):
            _assert_same_batches(x, y)
        else:
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)


def _dataset(n=10):
    data = np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3)
    return ArrayDataset(nd.array(data), np.arange(n, dtype=np.int32))


def _image_dataset(n=12):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(n, 6, 5, 3), dtype=np.uint8)
    aug = transforms.Compose([transforms.RandomFlipLeftRight(), transforms.RandomResizedCrop(4),
                              transforms.ToTensor()])
    return ArrayDataset(nd.array(images, dtype="uint8"), np.arange(n, dtype=np.int32)).transform_first(aug)


def test_batches_stack_data_and_collate_labels():
    batches = [_numpy(b) for b in DataLoader(_dataset(), batch_size=4)]
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 2, 3) and batches[0][0].dtype == np.float32
    np.testing.assert_array_equal(batches[2][0], np.arange(48, 60, dtype=np.float32).reshape(2, 2, 3))
    assert batches[0][1].dtype == np.int32       # numpy labels keep their dtype, as in MXNet


def test_default_batchify_fn_follows_numpy_dtypes_for_plain_values():
    assert default_batchify_fn([1, 2, 3]).dtype == np.int64
    assert default_batchify_fn([1.0, 2.5]).dtype == np.float64
    out = default_batchify_fn([(nd.ones((2,)), 1), (nd.zeros((2,)), 0)])
    assert isinstance(out, list) and out[0].shape == (2, 2) and out[1].asnumpy().tolist() == [1, 0]


@pytest.mark.parametrize("last_batch, sizes", [("keep", [4, 4, 2]), ("discard", [4, 4]), (None, [4, 4, 2])])
def test_last_batch_keep_and_discard(last_batch, sizes):
    loader = DataLoader(_dataset(), batch_size=4, last_batch=last_batch)
    assert [len(b[1]) for b in loader] == sizes
    assert len(loader) == len(sizes)


def test_last_batch_rollover_carries_the_remainder_into_the_next_epoch():
    loader = DataLoader(_dataset(), batch_size=4, last_batch="rollover")
    assert len(loader) == 2
    first = [b[1].asnumpy().tolist() for b in loader]
    assert first == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(loader) == 3                      # 2 rolled over + 10 new samples
    second = [b[1].asnumpy().tolist() for b in loader]
    assert second == [[8, 9, 0, 1], [2, 3, 4, 5], [6, 7, 8, 9]]


def test_argument_rules_match_mxnet():
    ds = _dataset()
    with pytest.raises(ValueError, match="batch_size must be specified unless batch_sampler is specified"):
        DataLoader(ds)
    with pytest.raises(ValueError, match="shuffle must not be specified if sampler is specified"):
        DataLoader(ds, batch_size=2, shuffle=True, sampler=SequentialSampler(len(ds)))
    bs = BatchSampler(SequentialSampler(len(ds)), 3)
    with pytest.raises(ValueError, match="must not be specified if batch_sampler is specified"):
        DataLoader(ds, batch_size=3, batch_sampler=bs)
    with pytest.raises(ValueError, match="last_batch must be one of 'keep', 'discard', or 'rollover'"):
        DataLoader(ds, batch_size=3, last_batch="drop")
    with pytest.raises(ValueError, match="timeout must be positive"):
        DataLoader(ds, batch_size=3, timeout=0)
    assert [b[1].asnumpy().tolist() for b in DataLoader(ds, batch_sampler=bs)][-1] == [9]


def test_shuffle_is_a_permutation_repeatable_with_mx_random_seed():
    ds = _dataset(20)

    def epoch():
        return [i for b in DataLoader(ds, batch_size=6, shuffle=True) for i in b[1].asnumpy().tolist()]

    mx.random.seed(7)
    a, b = epoch(), epoch()
    mx.random.seed(7)
    assert epoch() == a
    assert sorted(a) == list(range(20)) and a != b and a != sorted(a)


def test_two_workers_yield_exactly_the_batches_of_no_workers():
    ds = _image_dataset()
    runs = []
    for workers in (0, 2):
        mx.random.seed(11)
        runs.append([_numpy(b) for epoch in range(2)
                     for b in DataLoader(ds, batch_size=5, shuffle=True, num_workers=workers)])
    assert len(runs[0]) == 6
    _assert_same_batches(runs[0], runs[1])
    # the random flips and crops really differ between samples (not one shared draw)
    assert not np.array_equal(runs[0][0][0][0], runs[0][0][0][1])


def _pairs_batchify(samples):
    """A custom batchify_fn returning a dict, a numpy array and an NDArray."""
    data = np.stack([s[0].asnumpy() for s in samples])
    labels = [int(s[1]) for s in samples]
    return {"data": nd.array(data), "labels": np.array(labels), "count": len(samples)}


def test_two_workers_with_a_custom_batchify_fn_match_no_workers():
    ds = _dataset(9)
    outs = [list(DataLoader(ds, batch_size=4, batchify_fn=_pairs_batchify, num_workers=w)) for w in (0, 2)]
    assert len(outs[0]) == len(outs[1]) == 3
    for a, b in zip(*outs):
        assert isinstance(b["data"], nd.NDArray) and isinstance(b["labels"], np.ndarray)
        np.testing.assert_array_equal(a["data"].asnumpy(), b["data"].asnumpy())
        np.testing.assert_array_equal(a["labels"], b["labels"])
        assert a["count"] == b["count"]


def test_lambda_batchify_fn_works_with_forked_workers():
    loader = DataLoader(_dataset(6), batch_size=3, num_workers=2,
                        batchify_fn=lambda s: nd.array([int(x[1]) * 2 for x in s]))
    assert [b.asnumpy().tolist() for b in loader] == [[0, 2, 4], [6, 8, 10]]


class _Broken(SimpleDataset):
    def __getitem__(self, idx):
        if idx == 5:
            raise KeyError(f"sample {idx} is corrupt")
        return super().__getitem__(idx)


def test_worker_exception_is_reraised_with_the_worker_traceback():
    loader = DataLoader(_Broken(list(range(8))), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).asnumpy().tolist() == [0, 1]
    assert next(it).asnumpy().tolist() == [2, 3]
    with pytest.raises(KeyError, match="sample 5 is corrupt") as info:
        next(it)
    cause = str(info.value.__cause__)
    assert "DataLoader worker process (pid" in cause and "[4, 5]" in cause
    assert "in __getitem__" in cause and "raise KeyError" in cause
    # the pool survives: a new pass works up to the broken sample again
    assert next(iter(loader)).asnumpy().tolist() == [0, 1]


def test_unpicklable_worker_exception_becomes_runtime_error_with_traceback():
    class LocalError(Exception):
        pass

    def bad(x):
        raise LocalError("cannot pickle me")

    loader = DataLoader(SimpleDataset([1, 2]).transform(bad), batch_size=2, num_workers=1)
    with pytest.raises(RuntimeError, match="LocalError: cannot pickle me"):
        next(iter(loader))


def test_thread_pool_matches_no_workers():
    ds = _dataset(11)
    a = [_numpy(b) for b in DataLoader(ds, batch_size=3)]
    b = [_numpy(b) for b in DataLoader(ds, batch_size=3, num_workers=2, thread_pool=True)]
    _assert_same_batches(a, b)
    with pytest.raises(KeyError, match="corrupt"):
        list(DataLoader(_Broken(list(range(8))), batch_size=2, num_workers=2, thread_pool=True))


@pytest.mark.parametrize("prefetch", [0, 1, 7])
def test_prefetch_depth_does_not_change_the_batches(prefetch):
    ds = _dataset(10)
    got = [b[1].asnumpy().tolist() for b in DataLoader(ds, batch_size=3, num_workers=2, prefetch=prefetch)]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_workers_shut_down_when_loader_and_iterator_are_collected():
    loader = DataLoader(_dataset(), batch_size=2, num_workers=2)
    it = iter(loader)
    next(it)
    processes = list(loader._worker_pool.processes)
    assert all(p.is_alive() for p in processes)
    del loader, it
    gc.collect()
    deadline = time.time() + 5
    while any(p.is_alive() for p in processes) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(p.is_alive() for p in processes)


class _Slow(SimpleDataset):
    def __getitem__(self, idx):
        time.sleep(3)
        return idx


def test_worker_timeout_raises_with_advice():
    loader = DataLoader(_Slow([0, 1]), batch_size=2, num_workers=1, timeout=0.3)
    with pytest.raises(multiprocessing.TimeoutError, match="timed out after 0.3 seconds"):
        next(iter(loader))


def test_spawn_start_method_loads_picklable_datasets_and_explains_unpicklable_ones(monkeypatch):
    monkeypatch.setattr(dl_module, "_start_method", lambda: "spawn")
    ds = ArrayDataset(np.arange(8, dtype=np.float32).reshape(4, 2), np.arange(4))
    got = [_numpy(b) for b in DataLoader(ds, batch_size=2, num_workers=1)]
    assert [b[1].tolist() for b in got] == [[0, 1], [2, 3]]
    # NDArrays pickle (as in MXNet), so a dataset holding them reaches spawned workers too
    got = [_numpy(b) for b in DataLoader(_dataset(4), batch_size=2, num_workers=1)]
    assert [b[1].tolist() for b in got] == [[0, 1], [2, 3]]
    with pytest.raises(RuntimeError, match="pickles the dataset"):
        next(iter(DataLoader(ds, batch_size=2, num_workers=1, batchify_fn=lambda b: b)))


def test_len_of_loader():
    assert len(DataLoader(_dataset(10), batch_size=3)) == 4
    assert len(DataLoader(_dataset(10), batch_size=3, last_batch="discard")) == 3


def test_default_batchify_fn_names_mismatched_sample_shapes():
    with pytest.raises(ValueError, match=r"different shapes .*\(2,\), \(3,\)"):
        default_batchify_fn([nd.ones((2,)), nd.ones((3,))])
    with pytest.raises(ValueError, match="different shapes"):
        default_batchify_fn([np.ones(2), np.ones(3)])
