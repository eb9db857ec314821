"""Dataset views (transform, transform_first, filter, shard, take, sample), ArrayDataset and
the samplers."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon.data import (ArrayDataset, BatchSampler, Dataset, FilterSampler, IntervalSampler,
                               RandomSampler, SequentialSampler, SimpleDataset)


class _Counting(SimpleDataset):
    def __init__(self, data):
        super().__init__(data)
        self.reads = 0

    def __getitem__(self, idx):
        self.reads += 1
        return super().__getitem__(idx)


def test_array_dataset_zips_arrays_and_keeps_one_array_unzipped():
    x = nd.array(np.arange(12).reshape(4, 3))
    y = nd.array([0, 1, 2, 3])
    ds = ArrayDataset(x, y, ["a", "b", "c", "d"])
    data, label, name = ds[2]
    assert isinstance(data, nd.NDArray) and data.asnumpy().tolist() == [6, 7, 8]
    assert isinstance(label, np.float32) and label == 2 and name == "c"    # 1-D NDArray kept as numpy
    assert len(ds) == 4
    assert ArrayDataset([5, 6])[1] == 6


def test_array_dataset_names_the_mismatched_lengths():
    with pytest.raises(ValueError, match=r"array\[0\] has length 3, array\[1\] has length 2"):
        ArrayDataset(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="at least 1"):
        ArrayDataset()


def test_transform_is_lazy_by_default_and_unpacks_tuples():
    base = _Counting([(1, 10), (2, 20)])
    lazy = base.transform(lambda x, y: (x * 2, y + 1))
    assert base.reads == 0
    assert lazy[1] == (4, 21) and base.reads == 1
    assert lazy[1] == (4, 21) and base.reads == 2     # recomputed on every access


def test_transform_eager_applies_once_now():
    base = _Counting([1, 2, 3])
    eager = base.transform(lambda x: x * 10, lazy=False)
    assert base.reads == 3 and isinstance(eager, SimpleDataset)
    assert [eager[i] for i in range(3)] == [10, 20, 30] and base.reads == 3


def test_transform_first_touches_only_the_data():
    ds = SimpleDataset([(1, "a", 5), (2, "b", 6)])
    assert ds.transform_first(lambda x: -x)[1] == (-2, "b", 6)
    assert ds.transform_first(lambda x: -x, lazy=False)[0] == (-1, "a", 5)
    assert SimpleDataset([3, 4]).transform_first(lambda x: x + 1)[0] == 4   # non-tuple sample


def test_filter_shard_take_sample():
    ds = SimpleDataset(list(range(10)))
    assert list(ds.filter(lambda x: x % 3 == 0)) == [0, 3, 6, 9]
    shards = [list(ds.shard(3, i)) for i in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert list(ds.take(3)) == [0, 1, 2] and len(ds.take(None)) == 10 and len(ds.take(99)) == 10
    assert list(ds.sample(IntervalSampler(10, 4))) == [0, 4, 8, 1, 5, 9, 2, 6, 3, 7]
    with pytest.raises(TypeError, match="Expected gluon.data.Sampler"):
        ds.sample([1, 2])
    with pytest.raises(ValueError, match="index 3 is out of bounds for 3 shards"):
        ds.shard(3, 3)


def test_base_dataset_requires_getitem_and_len():
    with pytest.raises(NotImplementedError):
        len(Dataset())


def test_sequential_and_interval_samplers():
    assert list(SequentialSampler(3, start=5)) == [5, 6, 7]
    assert list(IntervalSampler(13, 3)) == [0, 3, 6, 9, 12, 1, 4, 7, 10, 2, 5, 8, 11]
    no_roll = IntervalSampler(13, 3, rollover=False)
    assert list(no_roll) == [0, 3, 6, 9, 12] and len(no_roll) == 5
    with pytest.raises(ValueError, match="interval 5 must be smaller than length 5"):
        IntervalSampler(5, 5)


def test_filter_sampler():
    s = FilterSampler(lambda x: x > 1, [3, 0, 2, 1])
    assert list(s) == [0, 2] and len(s) == 2


def test_random_sampler_permutes_and_follows_mx_random_seed():
    mx.random.seed(3)
    a = list(RandomSampler(50))
    mx.random.seed(3)
    assert list(RandomSampler(50)) == a
    assert sorted(a) == list(range(50)) and a != list(range(50))


def test_batch_sampler_modes():
    seq = SequentialSampler(7)
    assert list(BatchSampler(seq, 3, "keep")) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(BatchSampler(seq, 3, "discard")) == [[0, 1, 2], [3, 4, 5]]
    roll = BatchSampler(seq, 3, "rollover")
    assert list(roll) == [[0, 1, 2], [3, 4, 5]] and len(roll) == 2
    assert list(roll) == [[6, 0, 1], [2, 3, 4]] and len(roll) == 3   # [5, 6] + 7 new
    with pytest.raises(ValueError, match="last_batch must be one of"):
        BatchSampler(seq, 3, "pad")


def test_iterating_a_dataset_stops_at_its_length_even_over_ndarrays():
    ds = ArrayDataset(nd.array(np.arange(6).reshape(3, 2)), [7, 8, 9])
    assert [int(label) for _, label in ds] == [7, 8, 9]



def test_array_dataset_rows_are_copies_like_ndarray_indexing():
    x = nd.array(np.zeros((3, 2)))
    ds = ArrayDataset(x, [0, 1, 2])
    row, _ = ds[1]
    row[:] = 5
    assert x.asnumpy().sum() == 0
    assert ArrayDataset(x)[nd.array([0, 2])].shape == (2, 2)     # non-int indices: NDArray indexing
