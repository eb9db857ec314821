"""What MXNet's tools/im2rec.py does, for `graphc im2rec`: list an image folder into a .lst file,
and pack the images a .lst names into a .rec/.idx pair.

The .lst is MXNet's byte for byte: the same walk (sorted; with --recursive each folder holding
images is a class, numbered in walk order), the same shuffle (Python's random seeded with 100)
and the same `index<TAB>label<TAB>path` lines with '%f' labels. Packing decodes with Pillow
(RGB), resizes the shorter edge with OpenCV's bilinear arithmetic (cv_resize) as im2rec's
cv2.resize does, and encodes JPEG (quality) or PNG (compression level) with Pillow: PNG records
decode to the pixels MXNet's tool would store; JPEG bytes differ from OpenCV's encoder.
"""
from __future__ import annotations

import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import recordio
from . import codec
from .cv_resize import resize_bilinear

__all__ = ["list_images", "write_list", "make_lists", "read_list", "encode_item", "pack_list"]

DEFAULT_EXTS = (".jpeg", ".jpg", ".png")


def list_images(root, recursive=False, exts=DEFAULT_EXTS):
    """[(index, relative path, label)] in MXNet's order; with recursive, also {folder: label}."""
    items, classes = [], {}
    if recursive:
        for path, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for fname in sorted(files):
                fpath = os.path.join(path, fname)
                if os.path.isfile(fpath) and os.path.splitext(fname)[1].lower() in exts:
                    if path not in classes:
                        classes[path] = len(classes)
                    items.append((len(items), os.path.relpath(fpath, root), classes[path]))
    else:
        for fname in sorted(os.listdir(root)):
            fpath = os.path.join(root, fname)
            if os.path.isfile(fpath) and os.path.splitext(fname)[1].lower() in exts:
                items.append((len(items), os.path.relpath(fpath, root), 0))
    return items, {os.path.relpath(k, root): v for k, v in classes.items()}


def write_list(path_out, items):
    with open(path_out, "w") as fout:
        for item in items:
            labels = "".join("%f\t" % j for j in item[2:])
            fout.write("%d\t%s%s\n" % (item[0], labels, item[1]))


def make_lists(prefix, items, shuffle=True, chunks=1, train_ratio=1.0, test_ratio=0.0):
    """Write prefix[_chunk][_train|_val|_test].lst as im2rec does; returns the paths written."""
    items = list(items)
    if shuffle:
        random.Random(100).shuffle(items)
    chunk_size = (len(items) + chunks - 1) // chunks
    written = []
    for i in range(chunks):
        chunk = items[i * chunk_size:(i + 1) * chunk_size]
        tag = f"_{i}" if chunks > 1 else ""
        sep, sep_test = int(chunk_size * train_ratio), int(chunk_size * test_ratio)
        if train_ratio == 1.0:
            parts = [(f"{prefix}{tag}.lst", chunk)]
        else:
            parts = []
            if test_ratio:
                parts.append((f"{prefix}{tag}_test.lst", chunk[:sep_test]))
            if train_ratio + test_ratio < 1.0:
                parts.append((f"{prefix}{tag}_val.lst", chunk[sep_test + sep:]))
            parts.append((f"{prefix}{tag}_train.lst", chunk[sep_test:sep_test + sep]))
        for path, part in parts:
            write_list(path, part)
            written.append(path)
    return written


def read_list(path):
    """[index, path, label...] for each well-formed line of a .lst; bad lines are reported and skipped
    (as im2rec does), with their line numbers."""
    items = []
    with open(path) as fin:
        for lineno, line in enumerate(fin, 1):
            fields = [f.strip() for f in line.strip().split("\t")]
            if len(fields) < 3:
                print(f"{path}:{lineno}: skipped: a .lst line needs index, label(s) and path, found "
                      f"{line.strip()!r}", file=sys.stderr)
                continue
            try:
                items.append([int(fields[0]), fields[-1]] + [float(v) for v in fields[1:-1]])
            except ValueError:
                print(f"{path}:{lineno}: skipped: index must be an integer and labels numbers, found "
                      f"{line.strip()!r}", file=sys.stderr)
    return items


def _center_square(img):
    h, w = img.shape[:2]
    if h > w:
        return img[(h - w) // 2:(h - w) // 2 + w]
    return img[:, (w - h) // 2:(w - h) // 2 + h]


def encode_item(root, item, resize=0, quality=95, encoding=".jpg", color=1, center_crop=False,
                pass_through=False, pack_label=False):
    """One .lst item -> the record bytes im2rec would write (None with a message if unreadable)."""
    label = item[2:] if pack_label and len(item) > 3 else item[2]
    header = recordio.IRHeader(0, label, item[0], 0)
    path = os.path.join(root, item[1])
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if pass_through:
            return recordio.pack(header, raw)
        img = codec.decode(raw, flag=0 if color == 0 else 1)
    except (OSError, ValueError) as exc:
        print(f"im2rec: skipped {path}: {exc}", file=sys.stderr)
        return None
    if center_crop:
        img = _center_square(img)
    if resize:
        h, w = img.shape[:2]
        new_w, new_h = (resize, h * resize // w) if h > w else (w * resize // h, resize)
        img = resize_bilinear(img, new_w, new_h)
    return recordio.pack(header, codec.encode(np.ascontiguousarray(img), encoding, quality))


def pack_list(lst_path, root, num_thread=1, **options):
    """Pack the images `lst_path` names into <lst stem>.rec/.idx; returns (records written, skipped)."""
    stem = os.path.splitext(lst_path)[0]
    items = read_list(lst_path)
    record = recordio.MXIndexedRecordIO(stem + ".idx", stem + ".rec", "w")
    written = 0
    try:
        threads = max(1, int(num_thread))
        window = 16 * threads       # bounded: a big list is not all in flight (or in memory) at once
        with ThreadPoolExecutor(threads) as pool:
            for start in range(0, len(items), window):
                chunk = items[start:start + window]
                # map keeps the list's order, whatever order the threads finish in
                for item, packed in zip(chunk, pool.map(lambda it: encode_item(root, it, **options), chunk)):
                    if packed is not None:
                        record.write_idx(item[0], packed)
                        written += 1
    finally:
        record.close()
    return written, len(items) - written
