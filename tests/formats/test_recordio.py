"""RecordIO (.rec/.idx) against files MXNet 1.9.1 wrote (fixtures_rec/, made by make_fixtures.py):
graphc reads them record for record, writes the same bytes, and refuses damaged files with a
FormatError naming the file and the byte offset."""
import os
import pickle
import shutil
import struct
import subprocess

import numpy as np
import pytest

import graphc as mx
from graphc.formats import recordio as fmt
from graphc.ops.errors import FormatError

pytest.importorskip("PIL")

HERE = os.path.join(os.path.dirname(__file__), "fixtures_rec")
EXPECTED = np.load(os.path.join(HERE, "expected.npz"))
MISC = [EXPECTED[f"rec_{i}"].tobytes() for i in range(len([k for k in EXPECTED.files if k.startswith("rec_")]))]
MAGIC = struct.pack("<I", 0xCED7230A)
MXNET_PY = os.path.join(os.path.dirname(__file__), "..", "..", "bench", ".venvs", "mxnet", "bin", "python")


def fixture(name):
    return os.path.join(HERE, name)


def test_indexed_reader_returns_every_mxnet_record_byte_for_byte():
    rec = mx.recordio.MXIndexedRecordIO(fixture("misc.idx"), fixture("misc.rec"), "r")
    assert rec.keys == list(range(len(MISC)))
    for key in reversed(rec.keys):            # random access, not just in order
        assert rec.read_idx(key) == MISC[key]
    rec.close()


def test_sequential_reader_reads_all_records_then_none():
    rec = mx.recordio.MXRecordIO(fixture("misc.rec"), "r")
    got = [rec.read() for _ in range(len(MISC))]
    assert got == MISC
    assert rec.read() is None
    rec.reset()
    assert rec.read() == MISC[0]


def test_writer_produces_mxnets_rec_and_idx_bytes(tmp_path):
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "m.idx"), str(tmp_path / "m.rec"), "w")
    for i, payload in enumerate(MISC):
        rec.write_idx(i, payload)
    rec.close()
    assert (tmp_path / "m.rec").read_bytes() == open(fixture("misc.rec"), "rb").read()
    assert (tmp_path / "m.idx").read_text() == open(fixture("misc.idx")).read()


def test_magic_inside_a_payload_splits_the_record_at_aligned_offsets_only():
    body = b"abcd" + MAGIC + b"xy"
    assert fmt.encode_record(body) == (MAGIC + struct.pack("<I", (1 << 29) | 4) + b"abcd"
                                       + MAGIC + struct.pack("<I", (3 << 29) | 2) + b"xy\0\0")
    unaligned = b"ab" + MAGIC + b"cd"
    assert fmt.encode_record(unaligned) == MAGIC + struct.pack("<I", 8) + unaligned


def test_image_records_unpack_to_mxnets_headers_and_pixels():
    rec = mx.recordio.MXIndexedRecordIO(fixture("images.idx"), fixture("images.rec"), "r")
    for key in rec.keys:
        header, payload = mx.recordio.unpack(rec.read_idx(key))
        assert header == mx.recordio.IRHeader(0, float(key % 3), key, 0)
        np.testing.assert_array_equal(mx.image.imdecode(payload).asnumpy(), EXPECTED[f"img_{key}"])


def test_label_arrays_unpack_and_pack_back_to_the_same_bytes():
    rec = mx.recordio.MXIndexedRecordIO(fixture("multilabel.idx"), fixture("multilabel.rec"), "r")
    for key in rec.keys:
        raw = rec.read_idx(key)
        header, payload = mx.recordio.unpack(raw)
        assert header.flag == 2 and header.id == key and header.id2 == 7
        np.testing.assert_array_equal(header.label, np.array([key, 0.25 * key], np.float32))
        assert mx.recordio.pack(mx.recordio.IRHeader(0, header.label, key, 7), payload) == raw


def test_pack_img_png_round_trips_exactly_in_opencv_channel_order():
    bgr = np.random.RandomState(0).randint(0, 256, (7, 5, 3)).astype(np.uint8)
    packed = mx.recordio.pack_img(mx.recordio.IRHeader(0, 3.0, 1, 0), bgr, quality=3, img_fmt=".png")
    header, img = mx.recordio.unpack_img(packed, iscolor=1)
    assert header.label == 3.0
    np.testing.assert_array_equal(img, bgr)
    # the bytes are an ordinary PNG whose RGB pixels are the BGR array reversed
    np.testing.assert_array_equal(mx.image.imdecode(mx.recordio.unpack(packed)[1]).asnumpy(), bgr[:, :, ::-1])
    _, gray = mx.recordio.unpack_img(packed, iscolor=0)
    assert gray.shape == (7, 5)


def test_pack_img_jpeg_stays_within_jpeg_tolerance():
    rng = np.random.RandomState(1)
    smooth = np.clip(np.linspace(0, 255, 32)[None, :, None] + rng.randint(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
    _, img = mx.recordio.unpack_img(mx.recordio.pack_img((0, 0.0, 0, 0), smooth, quality=95))
    assert img.shape == smooth.shape
    assert np.abs(img.astype(int) - smooth).mean() < 3


def test_reader_pickles_by_reopening_the_file():
    rec = mx.recordio.MXIndexedRecordIO(fixture("misc.idx"), fixture("misc.rec"), "r")
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.read_idx(5) == MISC[5]
    writer = mx.recordio.MXRecordIO(os.devnull, "w")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(writer)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\xff" + b[1:], "byte 0: expected the RecordIO magic 0xced7230a, found 0xced723ff"),
    (lambda b: b[:-3], "cut short"),
    (lambda b: b[:24] + struct.pack("<I", (2 << 29) | 4) + b[28:], "byte 24: .*continuation flag 2"),
    (lambda b: b + b"\x0a\x23", "byte 1220: RecordIO part header cut short"),
])
def test_damaged_files_are_refused_naming_file_and_offset(tmp_path, damage, message):
    path = tmp_path / "bad.rec"
    path.write_bytes(damage(open(fixture("misc.rec"), "rb").read()))
    rec = mx.recordio.MXRecordIO(str(path), "r")
    with pytest.raises(FormatError, match=message) as info:
        while rec.read() is not None:
            pass
    assert "bad.rec" in str(info.value)
    with open(path, "rb") as fh, pytest.raises(FormatError, match="bad.rec"):
        fmt.record_offsets(fh, str(path))


def test_a_multipart_record_missing_its_last_part_is_refused(tmp_path):
    path = tmp_path / "cut.rec"
    path.write_bytes(fmt.encode_record(b"abcd" + MAGIC + b"efgh")[:12])
    with pytest.raises(FormatError, match="cut.rec: byte 12: .*multi-part"):
        mx.recordio.MXRecordIO(str(path), "r").read()


def test_malformed_index_lines_and_short_headers_are_refused(tmp_path):
    (tmp_path / "x.idx").write_text("0\t0\n1\tten\n")
    shutil.copy(fixture("misc.rec"), tmp_path / "x.rec")
    with pytest.raises(FormatError, match="x.idx: line 2"):
        mx.recordio.MXIndexedRecordIO(str(tmp_path / "x.idx"), str(tmp_path / "x.rec"), "r")
    with pytest.raises(FormatError, match="24-byte IRHeader"):
        mx.recordio.unpack(b"short")
    with pytest.raises(FormatError, match="flag 3 promises 12 bytes"):
        mx.recordio.unpack(struct.pack("<IfQQ", 3, 0.0, 0, 0) + b"1234")


def test_graphc_writes_the_very_file_mxnet_read_back_record_for_record(tmp_path):
    # graphc.rec was written by graphc (make_graphc_rec.py); graphc_read.npz is what MXNet read
    # from it. Writing MXNet's reading again must give the same file: the two agree both ways.
    read_by_mxnet = np.load(fixture("graphc_read.npz"))
    payloads = [read_by_mxnet[f"rec_{i}"].tobytes()
                for i in range(len([k for k in read_by_mxnet.files if k.startswith("rec_")]))]
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "g.idx"), str(tmp_path / "g.rec"), "w")
    for i, payload in enumerate(payloads):
        rec.write_idx(i, payload)
    rec.close()
    assert (tmp_path / "g.rec").read_bytes() == open(fixture("graphc.rec"), "rb").read()
    assert (tmp_path / "g.idx").read_bytes() == open(fixture("graphc.idx"), "rb").read()
    images = [p for p in payloads if p[32:36] == b"\x89PNG"]
    assert len(images) == 4
    for i, payload in enumerate(payloads):
        if payload in images:
            header, _ = mx.recordio.unpack(payload)
            np.testing.assert_array_equal(read_by_mxnet[f"header_{i}"],
                                          [header.flag, header.id, header.id2] + list(header.label))
    # MXNet's ImageRecordIter decoded the image records to what graphc's does
    rec = mx.recordio.MXRecordIO(str(tmp_path / "images.rec"), "w")
    for payload in images:
        rec.write(payload)
    rec.close()
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "images.rec"), data_shape=(3, 8, 8), batch_size=2,
                               label_width=2)
    batches = list(it)
    np.testing.assert_array_equal(np.concatenate([b.data[0].asnumpy() for b in batches]), read_by_mxnet["iter_data"])
    np.testing.assert_array_equal(np.concatenate([b.label[0].asnumpy() for b in batches]), read_by_mxnet["iter_label"])


@pytest.mark.skipif(not os.path.exists(MXNET_PY), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not built")
def test_mxnet_reads_files_graphc_wrote(tmp_path):
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "g.idx"), str(tmp_path / "g.rec"), "w")
    payloads = MISC + [mx.recordio.pack((0, [1.5, 2.5, 3.5], 9, 4), b"tail" + MAGIC)]
    for i, payload in enumerate(payloads):
        rec.write_idx(i, payload)
    rec.close()
    script = ("import sys, mxnet as mx\n"
              "r = mx.recordio.MXIndexedRecordIO(sys.argv[1] + '.idx', sys.argv[1] + '.rec', 'r')\n"
              "for k in r.keys: print(r.read_idx(k).hex())\n"
              "h, _ = mx.recordio.unpack(r.read_idx(r.keys[-1])); print(h.flag, list(h.label), h.id, h.id2)\n")
    out = subprocess.run([MXNET_PY, "-c", script, str(tmp_path / "g")], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split("\n")
    assert [bytes.fromhex(line) for line in out[:len(payloads)]] == payloads
    assert out[len(payloads)] == "3 [1.5, 2.5, 3.5] 9 4"


def test_random_payloads_with_embedded_magic_words_round_trip(tmp_path):
    rng = np.random.RandomState(7)
    payloads = []
    for _ in range(200):
        parts = [rng.randint(0, 256, rng.randint(0, 12)).astype(np.uint8).tobytes() for _ in range(rng.randint(1, 5))]
        payloads.append(MAGIC.join(parts) if rng.rand() < 0.7 else b"".join(parts))
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "r.idx"), str(tmp_path / "r.rec"), "w")
    for i, payload in enumerate(payloads):
        rec.write_idx(i, payload)
    rec.close()
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "r.idx"), str(tmp_path / "r.rec"), "r")
    assert [rec.read_idx(i) for i in range(len(payloads))] == payloads
    with open(tmp_path / "r.rec", "rb") as fh:
        assert fmt.record_offsets(fh, "r.rec") == [rec.idx[i] for i in range(len(payloads))]
    assert os.path.getsize(tmp_path / "r.rec") % 4 == 0
