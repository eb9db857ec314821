"""MXNet 1.x `.params` files: a list of named arrays (dense, row_sparse or csr), read and written
without pickle.

Layout (little-endian; see shared/formats/MXNET.md):

    u64 0x112, u64 reserved, u64 N, N x array, u64 K, K x (u64 length, UTF-8 name)
    array = u32 magic, i32 storage type, i32 ndim, i64 x ndim shape,
            i32 device type, i32 device id, i32 dtype flag, raw C-order data

The reader checks every field against what it can be and refuses a file that breaks the layout
with a FormatError naming the file, the byte offset, what was expected and what was found. It
never trusts a length before checking it against the bytes left in the file, so a corrupt
header cannot make it allocate gigabytes.

Choices where MXNet leaves room:

* V2 (0xF993FAC9) and V3 (0xF993FACA) magic are read alike. They differ in what a shape means:
  in V2 (MXNet's legacy shape semantics) ndim 0 means "unknown shape" and MXNet writes no
  device, dtype or data after it (an uninitialised NDArray); graphc refuses such a record,
  since there is no array to return. In V3 ndim 0 is a real 0-d array.
* The writer uses V2, as MXNet 1.9 does by default, except for 0-d arrays and arrays with a
  zero-length dimension: V2 cannot express those (MXNet's V2 reader takes them for unknown
  shapes and stops reading), so they get V3. MXNet loads a file holding V3 records only under
  numpy shape semantics (`mx.npx.set_np()` / `with mx.np_shape(True)`).
* bfloat16 (flag 12): numpy has no bfloat16, so the reader widens it to float32, which is
  exact (a bfloat16 is the top half of a float32). Pass `bfloat16="error"` to refuse instead.
  Writing float32 back is then not bit-identical in size; graphc never writes bfloat16.
* Sparse storage (row_sparse = 1, csr = 2) is MXNet's NDArray::Save layout: after the storage
  type comes the storage shape (the shape of the stored values: (k, ...) rows, or (nnz,)), then
  the shape, device and dtype as for dense, then per index array its dtype flag and shape
  (row_sparse: indices; csr: indptr, then indices), then the values, then each index array's
  data (the values' count comes from the index arrays, as in MXNet's loader: the storage-shape
  field may be stale). Such a record loads as a `SparseArray` (numpy parts, no graphc import here), which
  `graphc.nd.load` turns into a RowSparseNDArray / CSRNDArray; np.asarray() of it is the dense
  array, so code that wants dense values gets them. The writer writes V2 for sparse records as
  MXNet does (zero-length storage shapes, e.g. an all-zero row_sparse array, are legal there).
* The integer dtypes graphc does not have (int16, uint16, uint32, uint64) are refused.
* The legacy layout older than V2 is read too: magic 0xF993FAC8 (V1: i32 ndim, i64 dims) or no
  magic at all (the first u32 is ndim <= 32, then u32 dims); neither has a storage type.
* Names must be unique: MXNet's own loader would silently keep the last of two equal names,
  which hides a broken file.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Mapping, Sequence, Union

import numpy as np

from graphc.ops.errors import FormatError

from .atomic import atomic_write

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
MAX_NDIM = 32  # MXNet's limit on dimensions; also bounds the legacy "ndim instead of magic" form

# dtype flag -> numpy dtype (little-endian). 12 (bfloat16) is handled separately.
_FLAG_TO_DTYPE = {0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
                  4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?")}
_DTYPE_TO_FLAG = {dt.name: flag for flag, dt in _FLAG_TO_DTYPE.items()}
_UNSUPPORTED_FLAGS = {8: "int16", 9: "uint16", 10: "uint32", 11: "uint64"}
BFLOAT16_FLAG = 12
_STORAGE = {0: "dense", 1: "row_sparse", 2: "csr"}
_DEVICE_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
_CPU, _DENSE = 1, 0
_SPARSE_STYPES = {"row_sparse": 1, "csr": 2}
_AUX_NAMES = {1: ("indices",), 2: ("indptr", "indices")}


class SparseArray:
    """A sparse record of a .params file: stype ('row_sparse' | 'csr'), the logical shape, the
    stored values and the index arrays in MXNet's order (row_sparse: (indices,); csr: (indptr,
    indices)). np.asarray(record) is its dense form."""

    def __init__(self, stype: str, shape, data: np.ndarray, aux: tuple):
        if stype not in _SPARSE_STYPES:
            raise FormatError(f"SparseArray: stype must be 'row_sparse' or 'csr', got {stype!r}")
        self.stype, self.shape, self.data, self.aux = stype, tuple(int(d) for d in shape), data, tuple(aux)

    @property
    def dtype(self):
        return self.data.dtype

    def __array__(self, dtype=None, copy=None):
        out = np.zeros(self.shape, self.data.dtype)
        if self.stype == "row_sparse":
            out[self.aux[0]] = self.data
        else:
            indptr, indices = self.aux
            out[np.repeat(np.arange(self.shape[0]), np.diff(indptr)), indices] = self.data
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"SparseArray({self.stype}, shape={self.shape}, stored={self.data.shape}, dtype={self.data.dtype})"


class _Reader:
    """A cursor over a binary file that knows its offset and how many bytes remain."""

    def __init__(self, f, path: str, size: int):
        self.f, self.path, self.size, self.pos = f, path, size, 0

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def fail(self, what: str, at: int | None = None) -> FormatError:
        return FormatError(f"{self.path}: byte {self.pos if at is None else at}: {what}")

    def read(self, n: int, what: str) -> bytes:
        if n > self.remaining:
            raise self.fail(f"file ends early: expected {n} bytes of {what}, found {self.remaining}")
        data = self.f.read(n)
        if len(data) != n:  # the file shrank under us
            raise self.fail(f"file ends early: expected {n} bytes of {what}, read {len(data)}")
        self.pos += n
        return data

    def unpack(self, fmt: str, what: str):
        values = struct.unpack(fmt, self.read(struct.calcsize(fmt), what))
        return values[0] if len(values) == 1 else values

    def read_array(self, shape: tuple, dtype: np.dtype, what: str) -> np.ndarray:
        """Read the data straight into a fresh (aligned, writable) array: no second copy."""
        out = np.empty(shape, dtype)
        n = out.nbytes
        if n > self.remaining:
            raise self.fail(f"file ends early: {what} needs {n} bytes of data, {self.remaining} remain")
        if n:
            got = self.f.readinto(memoryview(out.reshape(-1)).cast("B"))
            if got != n:
                raise self.fail(f"file ends early: expected {n} bytes of {what}, read {got}")
        self.pos += n
        return out


def _read_shape(r: _Reader, magic: int, index: int) -> tuple:
    """The shape of array `index`, in the form its magic implies."""
    label = f"array {index}"
    if magic in (V2_MAGIC, V3_MAGIC, V1_MAGIC):
        at = r.pos
        ndim = r.unpack("<i", f"{label} ndim")
        if not 0 <= ndim <= MAX_NDIM:
            raise r.fail(f"{label}: expected ndim between 0 and {MAX_NDIM}, found {ndim}"
                         + (" (an unknown shape: MXNet wrote an uninitialised array)" if ndim == -1 else ""), at)
        at = r.pos
        shape = r.unpack(f"<{ndim}q", f"{label} shape") if ndim else ()
    else:  # legacy: the u32 we took for a magic was ndim, dims are u32
        ndim, at = magic, r.pos
        shape = r.unpack(f"<{ndim}I", f"{label} shape") if ndim else ()
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d < 0 for d in shape):
        raise r.fail(f"{label}: expected non-negative dimensions, found shape {shape}", at)
    if ndim == 0 and magic != V3_MAGIC:
        raise r.fail(f"{label}: ndim 0 in a {'V2' if magic == V2_MAGIC else 'legacy'} record means an "
                     "uninitialised MXNet array (no data follows); graphc cannot load it", at)
    return shape


def _read_array(r: _Reader, index: int, bfloat16: str) -> np.ndarray:
    label = f"array {index}"
    at = r.pos
    magic = r.unpack("<I", f"{label} magic")
    if magic not in (V2_MAGIC, V3_MAGIC, V1_MAGIC) and magic > MAX_NDIM:
        raise r.fail(f"{label}: bad magic: expected 0x{V2_MAGIC:08X} (V2) or 0x{V3_MAGIC:08X} (V3), "
                     f"found 0x{magic:08X}", at)
    if magic in (V2_MAGIC, V3_MAGIC):
        at = r.pos
        stype = r.unpack("<i", f"{label} storage type")
        if stype not in _STORAGE:
            raise r.fail(f"{label}: expected a storage type in {_STORAGE}, found unknown storage type {stype}", at)
        if stype != _DENSE:
            return _read_sparse(r, index, stype)
    shape = _read_shape(r, magic, index)
    _read_device(r, label)
    at = r.pos
    flag = r.unpack("<i", f"{label} dtype flag")
    widen_bf16 = flag == BFLOAT16_FLAG
    if widen_bf16:
        if bfloat16 != "float32":
            raise r.fail(f"{label}: dtype is bfloat16 (flag 12), refused (bfloat16={bfloat16!r}); "
                         "pass bfloat16='float32' to widen it exactly to float32", at)
        dtype = np.dtype("<u2")
    elif flag in _FLAG_TO_DTYPE:
        dtype = _FLAG_TO_DTYPE[flag]
    elif flag in _UNSUPPORTED_FLAGS:
        raise r.fail(f"{label}: dtype {_UNSUPPORTED_FLAGS[flag]} (flag {flag}) is not supported by graphc", at)
    else:
        raise r.fail(f"{label}: expected a dtype flag in {sorted(_FLAG_TO_DTYPE) + [BFLOAT16_FLAG]}, found {flag}", at)
    # Check the size against the bytes left before allocating: a corrupt shape must not
    # turn into a MemoryError (or an overflow) instead of a clear refusal.
    size = math.prod(shape)
    if math.prod(d for d in shape if d) * dtype.itemsize >= 1 << 63:  # numpy refuses these even when empty
        raise r.fail(f"{label}: shape {shape} overflows a 64-bit size (corrupt shape)")
    if size * dtype.itemsize > r.remaining:
        raise r.fail(f"{label}: shape {shape} of {dtype.name} needs {size * dtype.itemsize} bytes of data, "
                     f"only {r.remaining} remain in the file (truncated file or corrupt shape)")
    data = r.read_array(shape, dtype, label)
    if widen_bf16:
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data


def _read_device(r: _Reader, label: str):
    at = r.pos
    dev_type, _dev_id = r.unpack("<ii", f"{label} device")
    if dev_type not in _DEVICE_TYPES:
        raise r.fail(f"{label}: expected a device type in {_DEVICE_TYPES}, found {dev_type}", at)


def _read_sparse_shape(r: _Reader, what: str) -> tuple:
    """A shape inside a sparse record: 1 to 32 dimensions, zero-length ones allowed."""
    at = r.pos
    ndim = r.unpack("<i", f"{what} ndim")
    if not 1 <= ndim <= MAX_NDIM:
        raise r.fail(f"{what}: expected ndim between 1 and {MAX_NDIM}, found {ndim}", at)
    at = r.pos
    shape = r.unpack(f"<{ndim}q", f"{what} dims")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(d < 0 for d in shape):
        raise r.fail(f"{what}: expected non-negative dimensions, found {shape}", at)
    return shape


def _read_payload(r: _Reader, shape: tuple, dtype: np.dtype, what: str) -> np.ndarray:
    if math.prod(shape) * dtype.itemsize > r.remaining:
        raise r.fail(f"{what}: shape {shape} of {dtype.name} needs {math.prod(shape) * dtype.itemsize} bytes, "
                     f"only {r.remaining} remain in the file (truncated file or corrupt shape)")
    return r.read_array(shape, dtype, what)


def _dtype_of_flag(r: _Reader, flag: int, what: str, at: int) -> np.dtype:
    if flag in _FLAG_TO_DTYPE:
        return _FLAG_TO_DTYPE[flag]
    found = _UNSUPPORTED_FLAGS.get(flag, "bfloat16" if flag == BFLOAT16_FLAG else None)
    raise r.fail(f"{what}: expected a dtype flag in {sorted(_FLAG_TO_DTYPE)}, found {flag}"
                 + (f" ({found}, not supported in sparse records)" if found else ""), at)


def _read_sparse(r: _Reader, index: int, stype: int) -> SparseArray:
    """The rest of a row_sparse (1) or csr (2) record, after its storage type."""
    label = f"array {index} ({_STORAGE[stype]})"
    storage_shape = _read_sparse_shape(r, f"{label} storage shape")
    at = r.pos
    shape = _read_sparse_shape(r, f"{label} shape")
    if stype == 2 and len(shape) != 2:
        raise r.fail(f"{label}: csr arrays are 2-D, found shape {shape}", at)
    _read_device(r, label)
    at = r.pos
    dtype = _dtype_of_flag(r, r.unpack("<i", f"{label} dtype flag"), f"{label} values", at)
    aux_meta = []
    for name in _AUX_NAMES[stype]:
        at = r.pos
        aux_dtype = _dtype_of_flag(r, r.unpack("<i", f"{label} {name} dtype flag"), f"{label} {name}", at)
        if aux_dtype.kind not in "iu":
            raise r.fail(f"{label}: {name} must have an integer dtype, found {aux_dtype.name}", at)
        aux_meta.append((name, aux_dtype, _read_sparse_shape(r, f"{label} {name} shape")))
    values_shape = _check_sparse_shapes(r, label, stype, storage_shape, shape, {n: s for n, _, s in aux_meta})
    data = _read_payload(r, values_shape, dtype, f"{label} values")
    aux = tuple(_read_payload(r, s, dt, f"{label} {n}").astype(np.int64) for n, dt, s in aux_meta)
    _check_sparse_indices(r, label, stype, shape, aux)
    return SparseArray(_STORAGE[stype], shape, data, aux)


def _check_sparse_shapes(r, label, stype, storage_shape, shape, aux_shapes):
    """The shape of the stored values. As MXNet's loader, it comes from the index arrays: the
    storage-shape field can be stale (MXNet 1.9.1's SparseEmbedding.save_parameters writes
    (0, 3) before 6 stored rows of 3), so only its trailing dimensions are checked."""
    indices = aux_shapes["indices"]
    if len(indices) != 1:
        raise r.fail(f"{label}: indices must be 1-D, found shape {indices}")
    if stype == 1:
        if storage_shape[1:] != shape[1:]:
            raise r.fail(f"{label}: stored rows {storage_shape} do not fit shape {shape} (rows of {shape[1:]})")
        return indices + shape[1:]
    if aux_shapes["indptr"] != (shape[0] + 1,) or len(storage_shape) != 1:
        raise r.fail(f"{label}: expected indptr ({shape[0] + 1},) and 1-D values, found indptr "
                     f"{aux_shapes['indptr']} and values {storage_shape}")
    return indices


def _check_sparse_indices(r, label, stype, shape, aux):
    if stype == 1:
        (indices,) = aux
        if indices.size and (indices.min() < 0 or indices.max() >= shape[0] or np.any(np.diff(indices) <= 0)):
            raise r.fail(f"{label}: row indices must be increasing and in [0, {shape[0]}), found {indices.tolist()}")
        return
    indptr, indices = aux
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
        raise r.fail(f"{label}: indptr must rise from 0 to nnz = {len(indices)}, found {indptr.tolist()}")
    if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        raise r.fail(f"{label}: column indices must lie in [0, {shape[1]}), found {indices.tolist()}")


def load_params(path, *, bfloat16: str = "float32") -> dict[str, np.ndarray]:
    """Read an MXNet `.params` file: name -> array, in file order, names as written
    ('arg:dense0_weight', '0.weight'). An unnamed list gives keys '0', '1', ... A sparse record
    gives a SparseArray (see the module docstring).

    bfloat16: 'float32' widens bfloat16 arrays exactly to float32; 'error' refuses them."""
    if bfloat16 not in ("float32", "error"):
        raise ValueError(f"bfloat16 must be 'float32' or 'error', not {bfloat16!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        r = _Reader(f, path, os.fstat(f.fileno()).st_size)
        at = r.pos
        magic = r.unpack("<Q", "list magic")
        if magic != LIST_MAGIC:
            raise r.fail(f"bad list magic: expected 0x{LIST_MAGIC:X} (an MXNet .params file), found 0x{magic:X}", at)
        r.unpack("<Q", "reserved field")  # MXNet ignores it too
        at = r.pos
        count = r.unpack("<Q", "array count")
        # The smallest array record (legacy, 1-d, empty) takes 4+4+8+4 bytes: a bigger count
        # than that allows is corrupt, and is refused before we loop over it.
        if count * 20 > r.remaining:
            raise r.fail(f"array count {count} cannot fit in the {r.remaining} bytes that remain", at)
        arrays = [_read_array(r, i, bfloat16) for i in range(count)]
        at = r.pos
        n_names = r.unpack("<Q", "name count")
        if n_names not in (0, count):
            raise r.fail(f"expected {count} names (one per array) or 0, found {n_names}", at)
        names = []
        for i in range(n_names):
            at = r.pos
            length = r.unpack("<Q", f"length of name {i}")
            if length > r.remaining:
                raise r.fail(f"name {i}: length {length} exceeds the {r.remaining} bytes that remain", at)
            raw = r.read(length, f"name {i}")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise r.fail(f"name {i} is not UTF-8 ({exc.reason})", at + 8) from None
            if name in names:
                raise r.fail(f"name {i} {name!r} appears twice", at)
            names.append(name)
        if r.remaining:
            raise r.fail(f"expected the end of the file, found {r.remaining} trailing bytes")
    keys = names if n_names else [str(i) for i in range(count)]
    return dict(zip(keys, arrays))


def split_arg_aux(arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Split a `HybridBlock.export` / `save_checkpoint` dict into (args, auxs) by the 'arg:' and
    'aux:' prefixes, which are removed. A name with neither prefix is refused."""
    args, auxs = {}, {}
    for name, value in arrays.items():
        kind, sep, rest = name.partition(":")
        if not sep or kind not in ("arg", "aux"):
            raise FormatError(f"parameter {name!r} has no 'arg:' or 'aux:' prefix; this looks like a "
                              "Block.save_parameters file, whose names are structural")
        (args if kind == "arg" else auxs)[rest] = value
    return args, auxs


def _encode_sparse(name: str, value) -> bytes:
    data = np.asarray(value.data)
    if data.dtype.name not in _DTYPE_TO_FLAG:
        raise FormatError(f"cannot save {name!r}: dtype {data.dtype} has no MXNet equivalent; "
                          f"supported: {sorted(_DTYPE_TO_FLAG)}")
    aux = [np.ascontiguousarray(a, dtype="<i8") for a in value.aux]
    if len(aux) != len(_AUX_NAMES[_SPARSE_STYPES[value.stype]]):
        raise FormatError(f"cannot save {name!r}: a {value.stype} array has index arrays "
                          f"{_AUX_NAMES[_SPARSE_STYPES[value.stype]]}, got {len(aux)}")

    def shape_bytes(shape):
        return struct.pack(f"<i{len(shape)}q", len(shape), *shape)

    parts = [struct.pack("<Ii", V2_MAGIC, _SPARSE_STYPES[value.stype]), shape_bytes(data.shape),
             shape_bytes(value.shape), struct.pack("<iii", _CPU, 0, _DTYPE_TO_FLAG[data.dtype.name])]
    parts += [struct.pack("<i", _DTYPE_TO_FLAG["int64"]) + shape_bytes(a.shape) for a in aux]
    little = data.dtype.newbyteorder("<") if data.dtype.itemsize > 1 else data.dtype
    parts.append(np.ascontiguousarray(data, dtype=little).tobytes())
    parts += [a.tobytes() for a in aux]
    return b"".join(parts)


def _encode_array(name: str, value) -> bytes:
    if getattr(value, "stype", "default") in _SPARSE_STYPES:
        return _encode_sparse(name, value)
    array = np.asarray(value)
    dtype = array.dtype
    if dtype.name not in _DTYPE_TO_FLAG:
        raise FormatError(f"cannot save {name!r}: dtype {dtype} has no MXNet equivalent; "
                          f"supported: {sorted(_DTYPE_TO_FLAG)}")
    little = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype)
    # V2 cannot express 0-d arrays or zero-length dimensions (MXNet's V2 reader takes them for
    # an unknown shape and reads no data); only V3, numpy shape semantics, can.
    magic = V3_MAGIC if array.ndim == 0 or 0 in array.shape else V2_MAGIC
    if array.ndim > MAX_NDIM:
        raise FormatError(f"cannot save {name!r}: {array.ndim} dimensions, MXNet allows {MAX_NDIM}")
    header = struct.pack(f"<Iii{array.ndim}qiii", magic, _DENSE, array.ndim, *array.shape,
                         _CPU, 0, _DTYPE_TO_FLAG[dtype.name])
    return header + little.tobytes()


def save_params(path, arrays: Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]) -> None:
    """Write arrays in MXNet's `.params` format, atomically (the old file survives a failure).

    arrays: name -> array (names as MXNet should see them, e.g. 'arg:fc1_weight'), or a list
    for an unnamed file. A SparseArray (or anything with .stype 'row_sparse'/'csr', .shape,
    .data and .aux as numpy) is written as MXNet's sparse record."""
    if isinstance(arrays, Mapping):
        names = list(arrays)
        for name in names:
            if not isinstance(name, str):
                raise FormatError(f"cannot save parameter named {name!r}: names must be strings")
        values = [arrays[n] for n in names]
    else:
        names, values = [], list(arrays)
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(values))]
    parts += [_encode_array(names[i] if names else str(i), v) for i, v in enumerate(values)]
    parts.append(struct.pack("<Q", len(names)))
    for name in names:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)) + raw)

    def write(f):
        for part in parts:
            f.write(part)

    atomic_write(path, write)
