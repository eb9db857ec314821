"""MXNet .params files: fixtures written by MXNet 1.9.1 load, graphc's writer reproduces them
byte for byte, every supported dtype round-trips bit-exactly, and every kind of corruption is
refused with the file name and byte offset."""
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from graphc.ops.errors import FormatError
from graphc.formats.atomic import atomic_write
from graphc.formats.mxnet_params import load_params, save_params, split_arg_aux, V2_MAGIC, V3_MAGIC

FIXTURES = Path("/work/shared/fixtures/mxnet")
NAMES = ["mlp", "cnn", "lstm"]


def fixture(name: str) -> Path:
    path = FIXTURES / f"{name}-0000.params"
    if not path.exists():
        pytest.skip(f"fixture {path} is missing")
    return path


def header(count: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, count)


def record(shape, flag=0, data=b"", magic=V2_MAGIC, stype=0, dev=1) -> bytes:
    return struct.pack(f"<Iii{len(shape)}qiii", magic, stype, len(shape), *shape, dev, 0, flag) + data


def names(*ns: str) -> bytes:
    out = struct.pack("<Q", len(ns))
    for n in ns:
        raw = n.encode()
        out += struct.pack("<Q", len(raw)) + raw
    return out


def write(tmp_path, data: bytes, name="bad.params") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path, *fragments):
    with pytest.raises(FormatError) as info:
        load_params(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "byte " in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# -- fixtures ----------------------------------------------------------------------------------
def test_mlp_fixture_loads_named_float32_arrays_in_file_order():
    params = load_params(fixture("mlp"))
    assert list(params) == ["arg:mlp_dense0_weight", "arg:mlp_dense0_bias", "arg:mlp_dense1_weight",
                            "arg:mlp_dense1_bias", "arg:mlp_dense2_weight", "arg:mlp_dense2_bias"]
    assert params["arg:mlp_dense0_weight"].shape == (32, 64)
    assert params["arg:mlp_dense2_bias"].shape == (10,)
    assert all(a.dtype == np.float32 and a.flags.writeable and a.flags.c_contiguous for a in params.values())


def test_cnn_fixture_marks_batchnorm_statistics_as_aux():
    args, auxs = split_arg_aux(load_params(fixture("cnn")))
    assert sorted(auxs) == ["cnn_batchnorm0_running_mean", "cnn_batchnorm0_running_var"]
    assert args["cnn_conv0_weight"].shape == (8, 3, 3, 3)


def test_split_arg_aux_refuses_unprefixed_names():
    with pytest.raises(FormatError, match="0.weight"):
        split_arg_aux({"0.weight": np.zeros(1)})


@pytest.mark.parametrize("name", NAMES)
def test_saving_a_loaded_fixture_reproduces_mxnets_bytes(tmp_path, name):
    src = fixture(name)
    save_params(tmp_path / "copy.params", load_params(src))
    assert (tmp_path / "copy.params").read_bytes() == src.read_bytes()


def test_v3_magic_reads_like_v2(tmp_path):
    data = bytearray(fixture("mlp").read_bytes())
    first = data.index(struct.pack("<I", V2_MAGIC))
    data[first:first + 4] = struct.pack("<I", V3_MAGIC)
    got = load_params(write(tmp_path, bytes(data)))
    want = load_params(fixture("mlp"))
    assert list(got) == list(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)


# -- round trips -------------------------------------------------------------------------------
DTYPES = ["float32", "float64", "float16", "uint8", "int8", "int32", "int64", "bool"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,), (2, 3, 4)])
def test_every_dtype_and_shape_round_trips_bit_exactly(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
    array = raw.view(dtype).reshape(shape) if dtype != "bool" else (raw % 2).astype(bool).reshape(shape)
    save_params(tmp_path / "a.params", {"x": array})
    got = load_params(tmp_path / "a.params")["x"]
    assert got.dtype == array.dtype and got.shape == array.shape
    assert got.tobytes() == array.tobytes()  # bit-exact, NaN payloads included


def test_zero_d_and_empty_arrays_use_v3_records_and_others_v2(tmp_path):
    save_params(tmp_path / "a.params", {"s": np.float32(1.5), "e": np.zeros((0, 3)), "m": np.ones((2,))})
    data = (tmp_path / "a.params").read_bytes()
    magics = [m for m in (V2_MAGIC, V3_MAGIC) for _ in range(data.count(struct.pack("<I", m)))]
    assert sorted(magics) == [V2_MAGIC, V3_MAGIC, V3_MAGIC]
    got = load_params(tmp_path / "a.params")
    assert got["s"].shape == () and got["s"] == np.float32(1.5)
    assert got["e"].shape == (0, 3)


def test_unnamed_list_round_trips_with_index_keys(tmp_path):
    save_params(tmp_path / "a.params", [np.arange(3), np.eye(2)])
    got = load_params(tmp_path / "a.params")
    assert list(got) == ["0", "1"]
    assert np.array_equal(got["1"], np.eye(2))


def test_non_contiguous_and_big_endian_arrays_are_written_as_little_endian_c_order(tmp_path):
    a = np.arange(12, dtype=">i4").reshape(3, 4).T
    save_params(tmp_path / "a.params", {"a": a, "ü": np.float16(2)})
    got = load_params(tmp_path / "a.params")
    assert np.array_equal(got["a"], a) and got["a"].dtype == np.int32
    assert got["ü"] == 2


def test_unsupported_dtype_is_refused_and_old_file_survives(tmp_path):
    path = tmp_path / "a.params"
    save_params(path, {"a": np.ones(2)})
    before = path.read_bytes()
    with pytest.raises(FormatError, match="complex128"):
        save_params(path, {"a": np.ones(2, complex)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.params"]


# -- atomic writes -----------------------------------------------------------------------------
def test_atomic_write_failure_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")

    def writer(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, writer)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_keeps_permissions_of_replaced_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_mode & 0o777 == 0o640


# -- legacy layouts ----------------------------------------------------------------------------
def test_legacy_v1_and_magicless_records_load(tmp_path):
    data = np.arange(6, dtype=np.float32).tobytes()
    v1 = struct.pack("<Ii2qiii", 0xF993FAC8, 2, 2, 3, 1, 0, 0) + data
    old = struct.pack("<I2Iiii", 2, 3, 2, 1, 0, 0) + data
    got = load_params(write(tmp_path, header(2) + v1 + old + names("a", "b")))
    assert np.array_equal(got["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(got["b"], np.arange(6, dtype=np.float32).reshape(3, 2))


def test_bfloat16_widens_exactly_to_float32_or_is_refused(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, np.inf], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = write(tmp_path, header(1) + record((4,), 12, bf16) + names("w"))
    got = load_params(path)["w"]
    assert got.dtype == np.float32 and np.array_equal(got, values)
    with pytest.raises(FormatError, match="bfloat16"):
        load_params(path, bfloat16="error")


# -- corruption --------------------------------------------------------------------------------
def good_file() -> bytes:
    return header(2) + record((2,), 0, np.ones(2, np.float32).tobytes()) + \
        record((1, 1), 6, np.int64(7).tobytes()) + names("a", "bb")


def test_every_truncation_is_refused(tmp_path):
    data = good_file()
    for cut in range(len(data)):
        msg = refused(write(tmp_path, data[:cut]))
        assert "ends early" in msg or "remain" in msg, msg


def test_truncated_fixture_names_file_offset_and_expectation(tmp_path):
    data = fixture("mlp").read_bytes()
    refused(write(tmp_path, data[:1000]), "byte 64", "array 0", "needs 8192 bytes", "936 remain", "truncated")


def test_flipped_list_magic(tmp_path):
    refused(write(tmp_path, b"\x13" + good_file()[1:]), "byte 0", "list magic", "0x112")


def test_flipped_array_magic(tmp_path):
    data = bytearray(good_file())
    data[24 + 3] ^= 0xFF
    refused(write(tmp_path, bytes(data)), "byte 24", "bad magic", "0xF993FAC9", "0x0693FAC9")


def test_trailing_bytes(tmp_path):
    refused(write(tmp_path, good_file() + b"\0"), "1 trailing bytes")


def test_unknown_and_unsupported_dtype_flags(tmp_path):
    refused(write(tmp_path, header(1) + record((1,), 42, b"\0" * 4) + names("a")), "dtype flag", "42")
    refused(write(tmp_path, header(1) + record((1,), 8, b"\0" * 2) + names("a")), "int16")


@pytest.mark.parametrize("stype,word", [(1, "row_sparse"), (2, "csr"), (-1, "unknown storage")])
def test_sparse_storage_is_refused(tmp_path, stype, word):
    refused(write(tmp_path, header(1) + record((1,), 0, b"\0" * 4, stype=stype) + names("a")), word)


def test_absurd_ndim(tmp_path):
    refused(write(tmp_path, header(1) + struct.pack("<Iii", V2_MAGIC, 0, 1000) + b"\0" * 64), "ndim", "1000")


def test_shape_larger_than_the_file_or_overflowing(tmp_path):
    refused(write(tmp_path, header(1) + record((1 << 40,), 0) + names("a")), "only")
    refused(write(tmp_path, header(1) + record((1 << 62, 1 << 62), 0) + names("a")), "overflows")
    refused(write(tmp_path, header(1) + record((-3,), 0) + names("a")), "non-negative")
    refused(write(tmp_path, header(1) + record((0, 1 << 62, 1 << 62), 0) + names("a")), "overflows")


def test_unknown_shape_record_is_refused(tmp_path):
    refused(write(tmp_path, header(1) + struct.pack("<Iii", V2_MAGIC, 0, 0) + names("a")), "uninitialised")


def test_name_count_mismatch(tmp_path):
    data = header(1) + record((1,), 0, b"\0" * 4) + names("a", "b")
    refused(write(tmp_path, data), "expected 1 names", "found 2")


def test_duplicate_and_non_utf8_names(tmp_path):
    one = record((1,), 0, b"\0" * 4)
    refused(write(tmp_path, header(2) + one + one + names("a", "a")), "appears twice")
    bad = struct.pack("<QQ", 1, 1) + b"\xff"
    refused(write(tmp_path, header(1) + one + bad), "not UTF-8")


def test_absurd_array_count(tmp_path):
    refused(write(tmp_path, header(1 << 60) + names()), "array count")


def test_unknown_device_type(tmp_path):
    refused(write(tmp_path, header(1) + record((1,), 0, b"\0" * 4, dev=9) + names("a")), "device type")


# -- properties --------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corruption_is_a_format_error_or_a_clean_load(tmp_path, data):
    """Flipping bytes or cutting the file never escapes as struct.error, IndexError,
    MemoryError or a numpy error: a file either loads or is refused as a FormatError."""
    raw = bytearray(good_file())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    path = write(tmp_path, bytes(raw[:cut]) if cut < len(raw) else bytes(raw))
    try:
        got = load_params(path)
    except FormatError as exc:
        assert str(path) in str(exc)
    else:
        assert all(isinstance(v, np.ndarray) for v in got.values())


_DTYPE = st.sampled_from(DTYPES)
_SHAPE = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.dictionaries(st.text(min_size=1, max_size=8), st.tuples(_DTYPE, _SHAPE), max_size=5),
       seed=st.integers(0, 2**32 - 1))
def test_random_dicts_round_trip_bit_exactly(tmp_path, specs, seed):
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, (dtype, shape) in specs.items():
        raw = rng.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
        arrays[name] = (raw % 2).astype(bool).reshape(shape) if dtype == "bool" else raw.view(dtype).reshape(shape)
    save_params(tmp_path / "r.params", arrays)
    got = load_params(tmp_path / "r.params")
    assert list(got) == list(arrays) if arrays else got == {}
    for name, array in arrays.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape
        assert got[name].tobytes() == array.tobytes()
