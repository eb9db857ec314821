"""Writes graphc.rec/.idx with graphc (run before make_fixtures.py, which reads them with MXNet):

    .venv/bin/python tests/formats/fixtures_rec/make_graphc_rec.py

The records are chosen for the layout's corners (empty, magic words inside, label arrays) and
as images for ImageRecordIter. test_recordio.py writes the records MXNet read back from this file
(graphc_read.npz) with graphc's writer and checks that the result is this file, byte for byte.
"""
import os
import struct

import numpy as np

import graphc as mx

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = struct.pack("<I", 0xCED7230A)


def graphc_records():
    """The payloads, in order: a few raw byte strings, then IRHeader + PNG image records."""
    rng = np.random.RandomState(11)
    records = [b"", b"xyz", MAGIC, b"abcd" + MAGIC + b"efg", MAGIC * 3 + b"z"]
    for i, (h, w) in enumerate([(9, 12), (14, 9), (8, 8), (10, 10)]):
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        label = [float(i), -0.5] if i % 2 else [float(i), 2.0]
        records.append(mx.recordio.pack((0, label, 100 + i, 3), mx.image.imencode(img, ".png")))
    return records


def write(prefix):
    rec = mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")
    for i, payload in enumerate(graphc_records()):
        rec.write_idx(i, payload)
    rec.close()


if __name__ == "__main__":
    write(os.path.join(HERE, "graphc"))
