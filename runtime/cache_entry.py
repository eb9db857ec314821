"""The byte format of one disk-cache entry: a header that says exactly what the object code is,
then the object code.

An entry is handed to the JIT only after everything in its header matches what the loader
expects: the same key (so an entry copied under another name is refused), the same graphc,
llvmlite and LLVM versions, the same target triple, CPU name and CPU features (so a cache
copied to a machine without AVX-512 never runs AVX-512 code), the payload's exact length and its
SHA-256 (so a truncated or bit-flipped file is refused instead of crashing the process or, worse,
computing a wrong answer). This module only encodes and checks bytes; it never touches the file
system or LLVM (runtime/cache_store.py reads and writes files, runtime/cache.py owns the JIT).

Layout:

    magic        8 bytes   b"\\x89GRAPHC\\n"
    format       u32 LE    FORMAT_VERSION
    header_len   u32 LE    length of the header text
    header       JSON, UTF-8, sorted keys: graphc, llvmlite, llvm, triple, cpu, features,
                 key, payload_bytes, sha256
    payload      the object code (payload_bytes bytes, nothing after it)

The SHA-256 sits in the same file, so it detects damage, not forgery: who may write an entry is
decided by the directory's and the file's owner and mode (cache_store.py).
"""
from __future__ import annotations

import hashlib
import json
import struct

# a high-bit first byte catches a 7-bit transfer, the newline catches line-ending conversion
MAGIC = b"\x89GRAPHC\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sII")
MAX_HEADER_BYTES = 1 << 16
# what the header says about the machine and toolchain the code was built for
TARGET_FIELDS = ("graphc", "llvmlite", "llvm", "triple", "cpu", "features")


class BadEntry(ValueError):
    """A cache entry that must not be loaded. `stale` marks a well-formed entry built for another
    graphc/llvmlite version or another CPU (useless here, but not damaged)."""

    def __init__(self, reason: str, stale: bool = False):
        super().__init__(reason)
        self.reason, self.stale = reason, stale


def encode_entry(key: str, obj: bytes, target: dict) -> bytes:
    """The bytes of an entry holding object code `obj` for `key`, built for `target` (a dict
    with every TARGET_FIELDS name)."""
    header = {name: str(target[name]) for name in TARGET_FIELDS}
    header.update(key=key, payload_bytes=len(obj), sha256=hashlib.sha256(obj).hexdigest())
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)) + text + obj


def read_header(data: bytes) -> tuple[dict, memoryview]:
    """(header, payload view) of an entry's bytes, after the structural checks (magic, format,
    lengths, hash); the header is not yet compared with any expectation. Raises BadEntry."""
    if len(data) < _PREFIX.size:
        raise BadEntry(f"{len(data)} bytes, shorter than the {_PREFIX.size}-byte entry prefix (truncated)")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise BadEntry(f"not a graphc cache entry (starts with {bytes(magic)!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise BadEntry(f"entry format {version}, this graphc reads format {FORMAT_VERSION}", stale=True)
    end = _PREFIX.size + header_len
    if header_len > MAX_HEADER_BYTES or end > len(data):
        raise BadEntry(f"header of {header_len} bytes does not fit in the {len(data)}-byte file (truncated)")
    try:
        header = json.loads(bytes(data[_PREFIX.size:end]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEntry(f"unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise BadEntry(f"header is a JSON {type(header).__name__}, expected an object")
    for name in TARGET_FIELDS + ("key", "sha256"):
        if not isinstance(header.get(name), str):
            raise BadEntry(f"header field {name!r} missing or not a string")
    if type(header.get("payload_bytes")) is not int:
        raise BadEntry("header field 'payload_bytes' missing or not an integer")
    payload = memoryview(data)[end:]
    if len(payload) != header["payload_bytes"]:
        raise BadEntry(f"object code is {len(payload)} bytes, the header says {header['payload_bytes']} (truncated or padded)")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != header["sha256"]:
        raise BadEntry(f"object code SHA-256 is {digest[:16]}..., the header says {header['sha256'][:16]}... (damaged)")
    return header, payload


def decode_entry(data: bytes, key: str, target: dict) -> bytes:
    """The object code in `data` if it is an intact entry for `key` built for `target`;
    otherwise raises BadEntry saying what differs. Nothing is trusted before this returns."""
    header, payload = read_header(data)
    if header["key"] != key:
        raise BadEntry(f"entry is for key {header['key'][:16]}..., not {key[:16]}... (another program's code)")
    for name in TARGET_FIELDS:
        want = str(target[name])
        if header[name] != want:
            raise BadEntry(f"built for {_difference(name, header[name], want)}", stale=True)
    return bytes(payload)


def _difference(name: str, have: str, want: str) -> str:
    """A short account of how two values of a target field differ (feature strings run to
    hundreds of characters; the few flags that differ are what a reader needs)."""
    if name == "features":
        theirs, ours = set(have.split(",")), set(want.split(","))
        return (f"CPU features {','.join(sorted(theirs - ours))[:120] or '(none)'}; this CPU has "
                f"{','.join(sorted(ours - theirs))[:120] or '(none)'} instead")
    return f"{name} {have[:60]!r}, this process has {want[:60]!r}"


__all__ = ["BadEntry", "encode_entry", "decode_entry", "read_header", "MAGIC", "FORMAT_VERSION", "TARGET_FIELDS"]
