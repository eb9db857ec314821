"""MXNet's RecordIO files (dmlc-core's recordio, as MXNet 1.9.1 writes them), byte for byte.

A `.rec` file is a sequence of records. Each record is one or more parts; each part is

    uint32 magic 0xced7230a | uint32 lrec = cflag << 29 | length | payload | zero padding to 4 bytes

(little-endian). A payload that itself holds the magic word at a 4-byte-aligned offset is cut
there, and the magic dropped, so that a reader can always find record starts by scanning for
the magic: cflag 0 is a whole record, 1 the first part, 2 a middle part, 3 the last part; the
reader joins parts with the magic word between them.

A `.idx` file is text, one `key<TAB>byte offset` line per record (MXIndexedRecordIO).

A record of an image `.rec` starts with MXNet's IRHeader, struct 'IfQQ' (flag, label, id, id2,
24 bytes). flag 0: `label` is the one float label. flag n > 0: `label` holds 0 and the n float32
labels follow the header, before the image bytes.

Readers refuse a malformed file with a FormatError naming the file and the byte offset; nothing
here executes or unpickles anything.
"""
from __future__ import annotations

import numbers
import struct
from collections import namedtuple

import numpy as np

from ..ops.errors import FormatError

__all__ = ["MAGIC", "IRHeader", "IR_SIZE", "encode_record", "RecordReader", "RecordWriter", "read_index",
           "format_index_line", "record_offsets", "pack", "unpack"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_LIMIT = 1 << 29          # the length field has 29 bits
_IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(_IR_FORMAT)   # 24

IRHeader = namedtuple("HEADER", ["flag", "label", "id", "id2"])
IRHeader.__doc__ = "An image record's header: flag (number of float labels, 0 for one), label, id, id2."


def _error(path: str, offset: int, what: str) -> FormatError:
    return FormatError(f"{path}: byte {offset}: {what}")


def _part(cflag: int, payload: bytes) -> bytes:
    pad = (-len(payload)) % 4
    return _MAGIC_BYTES + struct.pack("<I", (cflag << 29) | len(payload)) + payload + b"\0" * pad


def encode_record(payload: bytes) -> bytes:
    """The bytes dmlc's RecordIOWriter::WriteRecord writes for one record."""
    payload = bytes(payload)
    if len(payload) >= _LENGTH_LIMIT:
        raise ValueError(f"RecordIO: a record must be shorter than 2**29 bytes, got {len(payload)}")
    # the magic word is looked for only at aligned offsets, and only in the aligned prefix
    aligned = len(payload) - len(payload) % 4
    parts, start = [], 0
    for i in range(0, aligned, 4):
        if payload[i:i + 4] == _MAGIC_BYTES:
            parts.append(_part(1 if start == 0 else 2, payload[start:i]))
            start = i + 4
    parts.append(_part(3 if start != 0 else 0, payload[start:]))
    return b"".join(parts)


class RecordWriter:
    """Appends records to a binary file object; `tell()` is the offset the next record starts at."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, payload: bytes) -> None:
        self._fh.write(encode_record(payload))

    def tell(self) -> int:
        return self._fh.tell()


class RecordReader:
    """Reads records from a binary file object, checking every part header."""

    def __init__(self, fh, path: str):
        self._fh = fh
        self._path = path

    def seek(self, offset: int) -> None:
        self._fh.seek(offset)

    def tell(self) -> int:
        return self._fh.tell()

    def _fail(self, offset: int, what: str) -> FormatError:
        return _error(self._path, offset, what)

    def read(self) -> bytes | None:
        """The next record's payload, or None at the end of the file."""
        chunks = []
        first = True
        while True:
            at = self._fh.tell()
            head = self._fh.read(8)
            if not head and first:
                return None
            if len(head) != 8:
                raise self._fail(at, f"RecordIO part header cut short: expected 8 bytes, found {len(head)}"
                                 + ("" if first else " (a multi-part record is missing its last part)"))
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise self._fail(at, f"expected the RecordIO magic 0x{MAGIC:08x}, found 0x{magic:08x}; "
                                 "not a RecordIO file, or an offset that is not a record start")
            cflag, length = lrec >> 29, lrec & (_LENGTH_LIMIT - 1)
            if cflag > 3:
                raise self._fail(at + 4, f"RecordIO continuation flag must be 0..3, found {cflag}")
            if first and cflag not in (0, 1):
                raise self._fail(at + 4, f"a record must start with a whole (0) or first (1) part, found "
                                 f"continuation flag {cflag}")
            if not first and cflag not in (2, 3):
                raise self._fail(at + 4, f"a multi-part record must go on with a middle (2) or last (3) part, "
                                 f"found continuation flag {cflag}")
            padded = length + (-length) % 4
            body = self._fh.read(padded)
            if len(body) != padded:
                raise self._fail(at + 8, f"record payload cut short: expected {padded} bytes, found {len(body)}")
            chunks.append(body[:length])
            if cflag in (0, 3):
                return _MAGIC_BYTES.join(chunks)
            first = False


def record_offsets(fh, path: str) -> list[int]:
    """The byte offset of every record in a .rec file, found by walking the part headers (the
    payloads are skipped, not read); the same checks as RecordReader.read."""
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(0)
    offsets, at, first = [], 0, True
    while at < size:
        head = fh.read(8)
        if len(head) != 8:
            raise _error(path, at, f"RecordIO part header cut short: expected 8 bytes, found {len(head)}")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise _error(path, at, f"expected the RecordIO magic 0x{MAGIC:08x}, found 0x{magic:08x}")
        cflag, length = lrec >> 29, lrec & (_LENGTH_LIMIT - 1)
        if cflag not in ((0, 1) if first else (2, 3)):
            raise _error(path, at + 4, f"unexpected continuation flag {cflag} "
                               f"({'a record must start with 0 or 1' if first else 'a record goes on with 2 or 3'})")
        if first:
            offsets.append(at)
        first = cflag in (0, 3)
        at += 8 + length + (-length) % 4
        if at > size:
            raise _error(path, at - length - (-length) % 4, f"record payload cut short: {length} bytes promised, "
                               f"the file ends {at - size} bytes early")
        fh.seek(at)
    if not first:
        raise _error(path, at, "the file ends inside a multi-part record")
    return offsets


def read_index(fh, path: str, key_type=int) -> tuple[dict, list]:
    """A `.idx` file's {key: offset} and its keys in file order."""
    idx, keys = {}, []
    for lineno, line in enumerate(fh, 1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) != 2:
            raise FormatError(f"{path}: line {lineno}: expected 'key<TAB>offset', found {line.strip()!r}")
        try:
            key, offset = key_type(fields[0]), int(fields[1])
        except ValueError:
            raise FormatError(f"{path}: line {lineno}: key must be {key_type.__name__} and offset an integer, "
                              f"found {line.strip()!r}") from None
        if offset < 0:
            raise FormatError(f"{path}: line {lineno}: offset must not be negative, found {offset}")
        idx[key] = offset
        keys.append(key)
    return idx, keys


def format_index_line(key, offset: int) -> str:
    return f"{key}\t{offset}\n"


def pack(header, payload: bytes) -> bytes:
    """An IRHeader (or a 4-tuple) and payload bytes -> a record; a non-scalar label is stored as
    flag = its size, float32 values before the payload (MXNet's recordio.pack)."""
    header = IRHeader(*header)
    if isinstance(header.label, numbers.Number):
        header = header._replace(flag=0)
    else:
        label = np.asarray(header.label, dtype=np.float32)
        header = header._replace(flag=label.size, label=0)
        payload = label.astype("<f4").tobytes() + bytes(payload)
    return struct.pack(_IR_FORMAT, int(header.flag), float(header.label), int(header.id), int(header.id2)) \
        + bytes(payload)


def unpack(record: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """A record -> (IRHeader, payload); with flag > 0 the label is a float32 array."""
    if len(record) < IR_SIZE:
        raise FormatError(f"{where}: an image record starts with a {IR_SIZE}-byte IRHeader, but the record "
                          f"has {len(record)} bytes")
    header = IRHeader(*struct.unpack(_IR_FORMAT, record[:IR_SIZE]))
    rest = record[IR_SIZE:]
    if header.flag > 0:
        need = header.flag * 4
        if len(rest) < need:
            raise FormatError(f"{where}: IRHeader flag {header.flag} promises {need} bytes of float32 labels, "
                              f"but only {len(rest)} bytes follow the header")
        header = header._replace(label=np.frombuffer(rest, "<f4", header.flag).astype(np.float32))
        rest = rest[need:]
    return header, rest
