"""mx.io against Apache MXNet 1.9.1, plus the iterators' own contracts.

io_scenarios.py runs the same code with graphc and with MXNet; mxnet_io_reference.json is
MXNet's output, so the comparisons run without MXNet. Where MXNet is installed
(bench/.venvs/mxnet or $GRAPHC_MXNET_PYTHON) test_reference_is_still_what_mxnet_says re-records
it and checks the committed file."""
import gc
import json
import os
import struct
import subprocess
import threading

import numpy as np
import pytest

import graphc as mx
import io_scenarios

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
needs_mxnet = pytest.mark.skipif(not os.path.exists(MXNET_PYTHON),
                                 reason="Apache MXNet 1.9.1 is not installed here (make bench installs it)")

with open(os.path.join(HERE, "mxnet_io_reference.json")) as f:
    REFERENCE = json.load(f)


def _plain(x):
    return json.loads(json.dumps(x, default=float))


@pytest.mark.parametrize("scenario", io_scenarios.SCENARIOS, ids=lambda fn: fn.__name__)
def test_scenario_gives_what_mxnet_gives(scenario):
    ours, expected = _plain(scenario(mx)), REFERENCE[scenario.__name__]
    assert sorted(ours) == sorted(expected)
    for key in expected:
        assert ours[key] == expected[key], key      # exact: iterators only move data


@needs_mxnet
def test_reference_is_still_what_mxnet_says(tmp_path):
    out = tmp_path / "ref.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "record_io_reference.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=HERE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(out.read_text()) == REFERENCE


# -- contracts that need no MXNet ------------------------------------------------------------------

def test_roll_over_carries_the_short_batch_into_the_next_epoch():
    it = mx.io.NDArrayIter(np.arange(5.0), np.arange(5.0), batch_size=2, last_batch_handle="roll_over")
    first = [b.data[0].asnumpy().tolist() for b in it]
    it.reset()
    second = [(b.data[0].asnumpy().tolist(), b.pad) for b in it]
    assert first == [[0, 1], [2, 3]]
    # example 4 heads epoch 2 (pad counts it) and the epoch then ends on a full batch
    assert second == [([4, 0], 1), ([1, 2], 0), ([3, 4], 0)]


def test_roll_over_that_cannot_fill_a_batch_says_so():
    it = mx.io.NDArrayIter(np.arange(2.0), batch_size=5, last_batch_handle="roll_over")
    assert list(it) == []
    it.reset()
    with pytest.raises(ValueError, match="roll_over cannot fill a batch of 5 from 2"):
        next(it)


def test_unknown_last_batch_handle_and_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="last_batch_handle must be one of"):
        mx.io.NDArrayIter(np.zeros(4), last_batch_handle="wrap")
    with pytest.raises(ValueError, match="'softmax_label' has 3 examples.*'data' has 4"):
        mx.io.NDArrayIter(np.zeros(4), np.zeros(3))


def test_csv_row_of_the_wrong_width_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: data row has 2 values, but data_shape \(3,\) needs 3"):
        mx.io.CSVIter(data_csv=str(path), data_shape=(3,), batch_size=1)


def _mnist_files(folder, n, compress):
    return io_scenarios._write_mnist(str(folder), n, compress)


def test_mnist_reads_gzip_files_like_plain_ones(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = mx.io.MNISTIter(*_mnist_files(tmp_path / "a", 6, False), batch_size=2, shuffle=False)
    zipped = mx.io.MNISTIter(*_mnist_files(tmp_path / "b", 6, True), batch_size=2, shuffle=False)
    for p, z in zip(plain, zipped):
        np.testing.assert_array_equal(p.data[0].asnumpy(), z.data[0].asnumpy())
        np.testing.assert_array_equal(p.label[0].asnumpy(), z.label[0].asnumpy())


def test_mnist_shuffle_is_a_seeded_permutation_of_the_examples(tmp_path):
    image, label = _mnist_files(tmp_path, 8, False)
    ordered = mx.io.MNISTIter(image, label, batch_size=8, shuffle=False, flat=True).next()
    a = mx.io.MNISTIter(image, label, batch_size=8, shuffle=True, seed=3, flat=True).next()
    b = mx.io.MNISTIter(image, label, batch_size=8, shuffle=True, seed=3, flat=True).next()
    np.testing.assert_array_equal(a.data[0].asnumpy(), b.data[0].asnumpy())
    perm = [int(np.flatnonzero((ordered.data[0].asnumpy() == row).all(axis=1))[0]) for row in a.data[0].asnumpy()]
    assert sorted(perm) == list(range(8)) and perm != list(range(8))
    np.testing.assert_array_equal(a.label[0].asnumpy(), ordered.label[0].asnumpy()[perm])


def test_mnist_refuses_a_file_of_the_wrong_kind(tmp_path):
    image, label = _mnist_files(tmp_path, 2, False)
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        mx.io.MNISTIter(image=label, label=label)
    with open(image, "r+b") as f:
        f.write(struct.pack(">IIII", 2051, 5, 28, 28))      # claims more images than it holds
    with pytest.raises(ValueError, match="header says"):
        mx.io.MNISTIter(image=image, label=label)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("graphc-prefetch")]


def test_prefetching_iter_threads_end_on_close_and_on_drop():
    before = len(_prefetch_threads())
    with mx.io.PrefetchingIter(mx.io.NDArrayIter(np.arange(8.0), batch_size=2)) as p:
        assert len(list(p)) == 4
        assert len(_prefetch_threads()) == before + 1
    assert len(_prefetch_threads()) == before
    p = mx.io.PrefetchingIter([mx.io.NDArrayIter(np.arange(8.0), batch_size=2)] * 1)
    next(p)
    del p
    gc.collect()
    assert len(_prefetch_threads()) == before      # dropped without close(): still joined


def test_prefetching_iter_hands_a_reader_error_to_the_consumer():
    class Broken(mx.io.DataIter):
        provide_data = [mx.io.DataDesc("data", (2,))]
        provide_label = []

        def next(self):
            raise OSError("disk gone")

    with mx.io.PrefetchingIter(Broken()) as p:
        with pytest.raises(OSError, match="disk gone"):
            next(p)


def test_databatch_refuses_a_bare_array_and_prints_shapes():
    with pytest.raises(TypeError, match="data must be a list"):
        mx.io.DataBatch(mx.nd.zeros((2, 3)))
    b = mx.io.DataBatch([mx.nd.zeros((2, 3))], [mx.nd.zeros((2,))])
    assert str(b) == "DataBatch: data shapes: [(2, 3)] label shapes: [(2,)]"
    d = mx.io.DataDesc("data", (2, 3), layout="NTC")
    assert d == ("data", (2, 3)) and mx.io.DataDesc.get_batch_axis(d.layout) == 0
    assert mx.io.DataDesc.get_batch_axis("TNC") == 1
