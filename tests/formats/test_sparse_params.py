"""row_sparse (stype 1) and csr (stype 2) records of MXNet's .params files (graphc/formats/
mxnet_params.py): files MXNet 1.9.1 wrote (fixtures_sparse/, made by make_fixtures.py there)
load to the same arrays and are written back byte for byte; corrupt sparse records are refused
naming the byte offset; and, where MXNet's venv exists, MXNet loads what graphc writes."""
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import graphc as mx
from graphc.formats.mxnet_params import SparseArray, V2_MAGIC, load_params, save_params
from graphc.ops.errors import FormatError

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures_sparse"
ROOT = HERE.parent.parent
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", str(ROOT / "bench" / ".venvs" / "mxnet" / "bin" / "python"))
RSP = np.array([[0, 0], [1, 2], [0, 0], [3, 4], [0, 0]], np.float32)
CSR = np.array([[1.5, 0, 2.5, 0], [0, 0, 0, 0], [0, 3.5, 0, 0]], np.float64)


def test_mxnet_written_sparse_arrays_load_with_their_storage():
    loaded = mx.nd.load(str(FIXTURES / "mxnet_mixed.params"))
    assert [(k, v.stype) for k, v in loaded.items()] == [("emb", "row_sparse"), ("x", "csr"), ("dense", "default")]
    np.testing.assert_array_equal(loaded["emb"].asnumpy(), RSP)
    np.testing.assert_array_equal(loaded["emb"].indices.asnumpy(), [1, 3])
    np.testing.assert_array_equal(loaded["x"].asnumpy(), CSR)
    assert loaded["x"].dtype == np.float64
    np.testing.assert_array_equal(loaded["x"].indptr.asnumpy(), [0, 2, 2, 3])
    (only,) = mx.nd.load(str(FIXTURES / "mxnet_rsp.params"))
    np.testing.assert_array_equal(only.asnumpy(), RSP)
    empty = mx.nd.load(str(FIXTURES / "mxnet_empty_rsp.params"))["z"]
    assert empty.stype == "row_sparse" and empty.shape == (4, 3) and empty.data.shape == (0, 3)


def test_mxnet_sparse_embedding_parameters_load_into_an_embedding():
    """MXNet writes this file's storage-shape field stale ((0, 3) before 6 rows); the index
    arrays say how many rows follow, as MXNet's own loader reads them."""
    want = np.load(FIXTURES / "mxnet_sparse_embedding_weight.npy")
    emb = mx.gluon.nn.Embedding(6, 3, sparse_grad=True)
    emb.load_parameters(str(FIXTURES / "mxnet_sparse_embedding.params"))
    np.testing.assert_array_equal(emb.weight.data().asnumpy(), want)
    weight = mx.nd.load(str(FIXTURES / "mxnet_sparse_embedding.params"))["weight"]
    assert weight.stype == "row_sparse" and weight.data.shape == (6, 3)


def test_load_params_gives_records_whose_array_is_dense():
    raw = load_params(FIXTURES / "mxnet_mixed.params")
    assert isinstance(raw["x"], SparseArray) and raw["x"].stype == "csr"
    np.testing.assert_array_equal(np.asarray(raw["x"]), CSR)
    assert isinstance(raw["dense"], np.ndarray)


@pytest.mark.parametrize("name", ["mxnet_mixed.params", "mxnet_empty_rsp.params"])
def test_writing_back_gives_mxnets_bytes(tmp_path, name):
    out = tmp_path / name
    mx.nd.save(str(out), mx.nd.load(str(FIXTURES / name)))
    assert out.read_bytes() == (FIXTURES / name).read_bytes()


@pytest.mark.parametrize("seed", range(3))
def test_random_sparse_arrays_round_trip(tmp_path, seed):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((7, 5)) < 0.3, rng.standard_normal((7, 5)), 0).astype(np.float32)
    three_d = np.where(rng.random((6, 2, 3)) < 0.3, 1.0, 0).astype(np.float64)
    arrays = {"c": mx.nd.array(dense).tostype("csr"), "r": mx.nd.array(three_d, dtype="float64").tostype("row_sparse"),
              "d": mx.nd.array(dense)}
    mx.nd.save(str(tmp_path / "a.params"), arrays)
    back = mx.nd.load(str(tmp_path / "a.params"))
    for key, value in arrays.items():
        assert back[key].stype == value.stype and back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key].asnumpy(), value.asnumpy())


def _rsp_file(tmp_path, indices=(1, 3), storage=(2, 2), shape=(5, 2), aux_flag=6, cut=0):
    data = np.arange(np.prod(storage), dtype="<f4").tobytes()
    body = struct.pack("<Ii", V2_MAGIC, 1)
    body += struct.pack(f"<i{len(storage)}q", len(storage), *storage) + struct.pack(f"<i{len(shape)}q", len(shape), *shape)
    body += struct.pack("<iii", 1, 0, 0) + struct.pack("<iiq", aux_flag, 1, len(indices))
    body += data + np.asarray(indices, "<i8").tobytes()
    blob = struct.pack("<QQQ", 0x112, 0, 1) + body + struct.pack("<Q", 1) + struct.pack("<Q", 1) + b"w"
    path = tmp_path / "bad.params"
    path.write_bytes(blob[:len(blob) - cut] if cut else blob)
    return path


@pytest.mark.parametrize("kwargs, words", [
    (dict(indices=(3, 1)), ["row indices", "increasing"]),
    (dict(indices=(1, 9)), ["row indices", "[0, 5)"]),
    (dict(storage=(2, 3)), ["do not fit"]),
    (dict(aux_flag=0), ["integer dtype", "float32"]),
    (dict(cut=30), ["truncated file", "indices"]),
])
def test_corrupt_sparse_records_are_refused_with_the_offset(tmp_path, kwargs, words):
    path = _rsp_file(tmp_path, **kwargs)
    with pytest.raises(FormatError) as err:
        load_params(path)
    message = str(err.value)
    assert str(path) in message and "byte " in message
    for word in words:
        assert word in message


def test_the_well_formed_handmade_record_loads(tmp_path):
    """The corrupt-record tests above differ from this file in one field each."""
    (value,) = load_params(_rsp_file(tmp_path)).values()
    np.testing.assert_array_equal(np.asarray(value), [[0, 0], [0, 1], [0, 0], [2, 3], [0, 0]])


def test_saving_an_unsupported_sparse_dtype_names_it(tmp_path):
    bad = SparseArray("row_sparse", (3, 2), np.zeros((1, 2), np.int16), (np.array([0]),))
    with pytest.raises(FormatError, match="int16"):
        save_params(tmp_path / "x.params", {"w": bad})


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_mxnet_loads_what_graphc_writes(tmp_path):
    rng = np.random.default_rng(7)
    dense = np.where(rng.random((6, 4)) < 0.4, rng.standard_normal((6, 4)), 0).astype(np.float32)
    path = tmp_path / "graphc.params"
    mx.nd.save(str(path), {"c": mx.nd.array(dense).tostype("csr"), "r": mx.nd.array(dense).tostype("row_sparse"),
                           "z": mx.nd.sparse.zeros("row_sparse", (3, 2))})
    script = ("import sys, json, mxnet as mx\n"
              "d = mx.nd.load(sys.argv[1])\n"
              "print(json.dumps({k: [v.stype, v.asnumpy().tolist()] for k, v in d.items()}))")
    proc = subprocess.run([MXNET_PYTHON, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["c"][0] == "csr" and got["r"][0] == "row_sparse" and got["z"][0] == "row_sparse"
    np.testing.assert_array_equal(np.asarray(got["c"][1], np.float32), dense)
    np.testing.assert_array_equal(np.asarray(got["r"][1], np.float32), dense)
    np.testing.assert_array_equal(np.asarray(got["z"][1]), np.zeros((3, 2)))
