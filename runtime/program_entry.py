"""The payload of a program-cache entry (runtime/program_cache.py): what the passes and the
lowering decided for one graph, as plain data, so that a warm process can build its Program
without running either.

It is decoded with json and numpy.frombuffer only, never pickle: a cache file is data, and
reading one must not be able to run code. Every field is checked for type and range before use,
and anything off raises BadEntry (the caller recompiles). The entry around this payload is an
ordinary cache entry (runtime/cache_entry.py: key, graphc/LLVM versions, CPU, length, SHA-256),
so damage is caught there first; these checks catch a payload that is intact but not one this
graphc wrote. This module only encodes and checks bytes.

Layout:

    magic      8 bytes   b"GCPROGR\\n"
    json_len   u32 LE    length of the JSON text
    JSON       UTF-8: format, object_key (the object-code entry's key), symbols (the native
               entries, in run order), arena [[device, bytes]], inputs/outputs [[shape, dtype,
               device]], consts [{dtype, shape, offset, nbytes}], nthreads
    constants  the constants' bytes, at the offsets the JSON gives (nothing after the last)

Constants are the graph's own literal arrays and what the passes folded from them (their
values are part of the key); parameters are program inputs and never appear here.
"""
from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass

import numpy as np

from .cache_entry import BadEntry

MAGIC = b"GCPROGR\n"
FORMAT = 1
_PREFIX = struct.Struct("<8sI")
_MAX_JSON = 1 << 24
_KEY_RE = re.compile(r"[0-9a-f]{16,64}")
_SYMBOL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,200}")
_MAX_BYTES = 1 << 48          # an arena or constant larger than this is damage, not a program


@dataclass(frozen=True)
class ProgramLayout:
    """What a Program needs besides its graph and machine code."""
    object_key: str          # runtime/cache.py key of the object code
    symbols: tuple           # native entry names, in the order the program calls them
    arena_size: dict         # device name -> bytes
    in_types: tuple          # ((shape, dtype, device), ...) of the graph's inputs
    out_types: tuple         # the same for its outputs
    consts: tuple            # numpy arrays, in the plan's 'const' index order
    nthreads: int


def type_triples(types) -> tuple:
    """TensorTypes as the (shape, dtype, device) triples a layout stores."""
    return tuple((tuple(int(d) for d in t.shape), str(t.dtype), str(t.device)) for t in types)


def encode_layout(layout: ProgramLayout) -> bytes:
    consts, blobs, at = [], [], 0
    for arr in layout.consts:
        arr = np.require(arr, requirements="C")       # (ascontiguousarray makes a 0-d array 1-d)
        _plain_dtype(arr.dtype.name, "constant")
        data = arr.tobytes()
        consts.append({"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": at, "nbytes": len(data)})
        blobs.append(data)
        at += len(data)
    doc = {"format": FORMAT, "object_key": layout.object_key, "symbols": list(layout.symbols),
           "arena": [[dev, int(n)] for dev, n in layout.arena_size.items()],
           "inputs": [[list(s), d, dev] for s, d, dev in layout.in_types],
           "outputs": [[list(s), d, dev] for s, d, dev in layout.out_types],
           "consts": consts, "nthreads": int(layout.nthreads)}
    text = json.dumps(doc, sort_keys=True).encode("utf-8")
    return _PREFIX.pack(MAGIC, len(text)) + text + b"".join(blobs)


def decode_layout(payload) -> ProgramLayout:
    """The layout in `payload`; BadEntry naming the first field that is not as this graphc
    writes it."""
    data = bytes(payload)
    if len(data) < _PREFIX.size:
        raise BadEntry(f"program entry of {len(data)} bytes is shorter than its {_PREFIX.size}-byte prefix")
    magic, n = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadEntry(f"not a program entry (starts with {magic!r}, expected {MAGIC!r})")
    end = _PREFIX.size + n
    if n > _MAX_JSON or end > len(data):
        raise BadEntry(f"program description of {n} bytes does not fit in the {len(data)}-byte payload")
    try:
        doc = json.loads(data[_PREFIX.size:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEntry(f"unreadable program description ({exc})") from None
    if not isinstance(doc, dict):
        raise BadEntry(f"program description is a JSON {type(doc).__name__}, expected an object")
    if doc.get("format") != FORMAT:
        raise BadEntry(f"program entry format {doc.get('format')!r}, this graphc reads {FORMAT}", stale=True)
    key = doc.get("object_key")
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise BadEntry(f"program entry's object_key {str(key)[:80]!r} is not a cache key")
    symbols = doc.get("symbols")
    if not isinstance(symbols, list) or not symbols or \
            not all(isinstance(s, str) and _SYMBOL_RE.fullmatch(s) for s in symbols):
        raise BadEntry(f"program entry's symbols {str(symbols)[:80]} are not entry names")
    arena = doc.get("arena")
    if not isinstance(arena, list) or not all(isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
                                              and _count(a[1]) for a in arena):
        raise BadEntry(f"program entry's arena {str(arena)[:80]} is not a list of [device, bytes]")
    nthreads = doc.get("nthreads")
    if not _count(nthreads) or nthreads < 1:
        raise BadEntry(f"program entry's nthreads {nthreads!r} is not a positive integer")
    blob = memoryview(data)[end:]
    return ProgramLayout(object_key=key, symbols=tuple(symbols), arena_size={d: n for d, n in arena},
                         in_types=_types(doc.get("inputs"), "inputs"), out_types=_types(doc.get("outputs"), "outputs"),
                         consts=_consts(doc.get("consts"), blob), nthreads=nthreads)


def _count(v) -> bool:
    return type(v) is int and 0 <= v < _MAX_BYTES


def _types(items, what: str) -> tuple:
    if not isinstance(items, list):
        raise BadEntry(f"program entry's {what} is not a list")
    out = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], list)
                and all(_count(d) for d in item[0]) and isinstance(item[1], str) and isinstance(item[2], str)):
            raise BadEntry(f"program entry's {what} entry {str(item)[:80]} is not [shape, dtype, device]")
        out.append((tuple(item[0]), item[1], item[2]))
    return tuple(out)


def _plain_dtype(name, what: str) -> np.dtype:
    """A numeric or boolean dtype by its canonical name; anything else (objects, records,
    strings a numpy version spells differently) is refused."""
    try:
        dt = np.dtype(name) if isinstance(name, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biufc" or dt.hasobject or dt.name != name:
        raise BadEntry(f"program entry's {what} dtype {str(name)[:40]!r} is not a plain numeric dtype")
    return dt


def _consts(items, blob: memoryview) -> tuple:
    if not isinstance(items, list):
        raise BadEntry("program entry's consts is not a list")
    out, at = [], 0
    for i, c in enumerate(items):
        if not (isinstance(c, dict) and isinstance(c.get("shape"), list) and all(_count(d) for d in c["shape"])
                and _count(c.get("offset")) and _count(c.get("nbytes"))):
            raise BadEntry(f"program entry's constant {i} {str(c)[:80]} is not {{dtype, shape, offset, nbytes}}")
        dt = _plain_dtype(c.get("dtype"), f"constant {i}")
        shape = tuple(c["shape"])
        want = math.prod(shape) * dt.itemsize
        if c["nbytes"] != want or c["offset"] != at or at + want > len(blob):
            raise BadEntry(f"program entry's constant {i} ({dt.name}{list(shape)}, {c['nbytes']} bytes at "
                           f"{c['offset']}) does not match its shape or the {len(blob)} bytes of constants")
        out.append(np.frombuffer(blob[at:at + want], dtype=dt).reshape(shape).copy())
        at += want
    if at != len(blob):
        raise BadEntry(f"program entry has {len(blob) - at} bytes after its last constant")
    return tuple(out)


__all__ = ["ProgramLayout", "encode_layout", "decode_layout", "type_triples", "MAGIC", "FORMAT"]
