"""mx.recordio: MXNet 1.9.1's Python RecordIO API (MXRecordIO, MXIndexedRecordIO, IRHeader,
pack/unpack/pack_img/unpack_img) over graphc.formats.recordio, which owns the byte layout.

Files are interchangeable with MXNet's both ways. pack_img/unpack_img keep MXNet's OpenCV
conventions (arrays in BGR order, `iscolor` -1/0/1) but encode and decode with Pillow (see
graphc.image.codec for how close that is to OpenCV: PNG exact, JPEG equal in our tests).
"""
from __future__ import annotations

import os

import numpy as np

from .formats import recordio as _fmt
from .formats.recordio import IRHeader, pack, unpack

__all__ = ["MXRecordIO", "MXIndexedRecordIO", "IRHeader", "pack", "unpack", "pack_img", "unpack_img"]

# MXNet's module-level names, which some user code reads (e.g. to skip the header by hand)
_IR_FORMAT = "IfQQ"
_IR_SIZE = _fmt.IR_SIZE


class MXRecordIO:
    """Sequential reading (flag 'r') or writing (flag 'w') of a .rec file.

    It pickles as (uri, flag) and reopens on unpickling, which is how DataLoader workers get
    their own file handle; a writer cannot be pickled (two processes appending would interleave)."""

    def __init__(self, uri, flag):
        self.uri = os.fspath(uri)
        self.flag = flag
        self.handle = None
        self.is_open = False
        self.pid = None
        self.open()

    def open(self):
        if self.flag == "w":
            self.handle = open(self.uri, "wb")
            self._writer = _fmt.RecordWriter(self.handle)
            self.writable = True
        elif self.flag == "r":
            self.handle = open(self.uri, "rb")
            self._reader = _fmt.RecordReader(self.handle, self.uri)
            self.writable = False
        else:
            raise ValueError(f"MXRecordIO: flag must be 'r' or 'w', got {self.flag!r}")
        self.pid = os.getpid()
        self.is_open = True

    def __del__(self):
        self.close()

    def __getstate__(self):
        if self.writable:
            raise TypeError(f"MXRecordIO: a writer ({self.uri!r}) cannot be pickled")
        state = self.__dict__.copy()
        for key in ("handle", "_reader", "_writer"):
            state.pop(key, None)
        state["is_open"] = False
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.handle = None
        self.open()

    def _check_pid(self, allow_reset=False):
        # a forked child shares the parent's file offset: reopen rather than race on it
        if self.pid != os.getpid():
            if not allow_reset:
                raise RuntimeError(f"MXRecordIO {self.uri!r} was opened in another process; reset() it first")
            self.reset()

    def close(self):
        if not getattr(self, "is_open", False):
            return
        self.handle.close()
        self.is_open = False
        self.pid = None

    def reset(self):
        """Back to the start (a writer truncates the file, as MXNet's does)."""
        self.close()
        self.open()

    def write(self, buf):
        if not self.writable:
            raise RuntimeError(f"MXRecordIO {self.uri!r} was opened for reading")
        self._check_pid()
        self._writer.write(bytes(buf))

    def read(self):
        """The next record's bytes, None at the end."""
        if self.writable:
            raise RuntimeError(f"MXRecordIO {self.uri!r} was opened for writing")
        self._check_pid(allow_reset=True)
        return self._reader.read()

    def tell(self):
        return self.handle.tell()


class MXIndexedRecordIO(MXRecordIO):
    """A .rec file with its .idx index for random access by key (`read_idx`, `write_idx`)."""

    def __init__(self, idx_path, uri, flag, key_type=int):
        self.idx_path = os.fspath(idx_path)
        self.idx = {}
        self.keys = []
        self.key_type = key_type
        self.fidx = None
        super().__init__(uri, flag)

    def open(self):
        super().open()
        self.idx = {}
        self.keys = []
        self.fidx = open(self.idx_path, self.flag)
        if not self.writable:
            self.idx, self.keys = _fmt.read_index(self.fidx, self.idx_path, self.key_type)

    def close(self):
        if not getattr(self, "is_open", False):
            return
        super().close()
        self.fidx.close()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("fidx", None)
        return state

    def seek(self, idx):
        """Position the reader at record `idx`."""
        if self.writable:
            raise RuntimeError(f"MXIndexedRecordIO {self.uri!r} was opened for writing")
        self._check_pid(allow_reset=True)
        if idx not in self.idx:
            raise KeyError(f"MXIndexedRecordIO: key {idx!r} is not in {self.idx_path!r}")
        self.handle.seek(self.idx[idx])

    def read_idx(self, idx):
        self.seek(idx)
        return self.read()

    def write_idx(self, idx, buf):
        key = self.key_type(idx)
        pos = self.tell()
        self.write(buf)
        self.fidx.write(_fmt.format_index_line(key, pos))
        self.idx[key] = pos
        self.keys.append(key)


def pack_img(header, img, quality=95, img_fmt=".jpg"):
    """Encode an image (HxW gray, or HxWx3 BGR as OpenCV holds it) and pack it with `header`.
    quality is JPEG quality for .jpg and the PNG compression level 0-9 for .png (MXNet's
    default 95 is clamped to 9, as OpenCV does)."""
    from .image import codec
    return pack(header, codec.encode(np.asarray(img), img_fmt, quality, bgr=True))


def unpack_img(s, iscolor=-1):
    """(IRHeader, image) from a record; image in OpenCV's layout: BGR (or BGRA) colour, HxW gray.
    iscolor: -1 as stored, 0 gray, 1 three colour channels."""
    from .image import codec
    header, payload = unpack(s)
    return header, codec.decode_cv(payload, iscolor)
