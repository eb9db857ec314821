"""Writes the RecordIO fixtures with MXNet 1.9.1 (the oracle), so graphc's reader is tested on
files it did not write:

    bench/.venvs/mxnet/bin/python tests/formats/fixtures_rec/make_fixtures.py

* misc.rec/.idx: raw records (no IRHeader) chosen to exercise the byte layout: empty, lengths
  that need padding, the magic word at aligned offsets (multi-part records), at an unaligned
  offset (not split), and at the very end. Their payloads are in expected.npz as rec_<i>.
* images.rec/.idx: IRHeader + PNG records of varied sizes, scalar labels and one with a label
  array (flag 2); the RGB pixels are in expected.npz as img_<i>.
* multilabel.rec/.idx: three PNG records with two float labels each (IRHeader flag 2).
* iter_*.npz: MXNet's ImageRecordIter batches over images.rec with augmentation off.
* imageiter_*.npz: mx.image.ImageIter (Python, default augmenters = centre crop) over images.rec
  with its .idx, for each last_batch_handle.
* geometry.npz: mx.image.copyMakeBorder for each border type and mx.image.imrotate (plain,
  zoom_in, zoom_out, a batch with one angle each).
* graphc_read.npz: what MXNet reads from graphc.rec/.idx (written by make_graphc_rec.py with
  graphc): every record's bytes (rec_<i>), the image records' headers, and ImageRecordIter's
  batches over the image records (a copy holding only those, graphc_images.rec).
* det.rec/.idx and det_*.npz: detection records (PNG, label [2, 5, objects...]) and
  mx.image.ImageDetIter's batches over them: default augmenters with bilinear resizing
  (det_plain), and a forced mirror (det_flip).
* resize.npz: mx.image.imresize(interp=1) (OpenCV's bilinear) of random images, src_<i>/out_<i>.

The MXNet venv has no Pillow or cv2 module, so the PNGs are made by the tiny encoder below.
"""
import os
import struct
import zlib

import numpy as np
import mxnet as mx

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = struct.pack("<I", 0xCED7230A)


def png(rgb):
    """An 8-bit RGB PNG of an HxWx3 uint8 array (filter 0 on every row)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def misc_records():
    rng = np.random.RandomState(0)
    body = lambda n: rng.randint(0, 256, n).astype(np.uint8).tobytes()  # noqa: E731
    return [b"", b"a", b"abcd", body(7), MAGIC, body(8) + MAGIC + body(5), MAGIC + MAGIC + body(3),
            body(2) + MAGIC + body(6), body(12) + MAGIC, MAGIC + body(4) + MAGIC + body(4) + MAGIC, body(1000)]


def write_misc(out):
    w = mx.recordio.MXIndexedRecordIO(os.path.join(HERE, "misc.idx"), os.path.join(HERE, "misc.rec"), "w")
    for i, rec in enumerate(misc_records()):
        w.write_idx(i, rec)
        out[f"rec_{i}"] = np.frombuffer(rec, np.uint8)
    w.close()


def write_images(out):
    rng = np.random.RandomState(1)
    sizes = [(10, 12), (9, 9), (16, 11), (8, 8), (12, 20), (11, 10), (13, 9)]
    w = mx.recordio.MXIndexedRecordIO(os.path.join(HERE, "images.idx"), os.path.join(HERE, "images.rec"), "w")
    for i, (h, wd) in enumerate(sizes):
        img = rng.randint(0, 256, (h, wd, 3)).astype(np.uint8)
        label = float(i % 3)
        header = mx.recordio.IRHeader(0, label, i, 0)
        w.write_idx(i, mx.recordio.pack(header, png(img)))
        out[f"img_{i}"] = img
    w.close()
    # label arrays (flag 2): ImageRecordIter needs label_width=2 for these
    w = mx.recordio.MXIndexedRecordIO(os.path.join(HERE, "multilabel.idx"), os.path.join(HERE, "multilabel.rec"), "w")
    for i in range(3):
        img = rng.randint(0, 256, (9, 8 + i, 3)).astype(np.uint8)
        w.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, [float(i), 0.25 * i], i, 7), png(img)))
        out[f"multi_{i}"] = img
    w.close()


def iter_batches(rec="images.rec", runs=7, **kwargs):
    """The most frequent result of several runs: MXNet's prefetching thread can race with
    reset() on a loaded machine and now and then start an epoch at another record."""
    results = [one_run(rec, **kwargs) for _ in range(runs)]
    keys = [tuple(r["pad"].tolist()) + tuple(r["label"].ravel().tolist()) for r in results]
    return results[max(range(runs), key=keys.count)]


def one_run(rec, **kwargs):
    it = mx.io.ImageRecordIter(path_imgrec=os.path.join(HERE, rec), **kwargs)
    data, label, pad = [], [], []
    for epoch in range(3):    # epochs after the first start where the last filler stopped
        if epoch:
            it.reset()
        for batch in it:
            data.append(batch.data[0].asnumpy())
            label.append(batch.label[0].asnumpy())
            pad.append(batch.pad)
        data.append(np.zeros((0,) + data[-1].shape[1:], np.float32))    # epoch separator
        label.append(np.zeros((0,) + label[-1].shape[1:], np.float32))
        pad.append(-1)
    return dict(data=np.concatenate(data), label=np.concatenate(label), pad=np.array(pad),
                sizes=np.array([len(d) for d in data]))


ITER_CASES = {
    "iter_plain": dict(data_shape=(3, 8, 8), batch_size=3),
    "iter_norm": dict(data_shape=(3, 8, 8), batch_size=4, mean_r=120.0, mean_g=110.5, mean_b=100.0,
                      std_r=60.0, std_g=50.0, std_b=70.0, scale=1.0 / 2),
    "iter_noround": dict(data_shape=(3, 8, 8), batch_size=3, round_batch=False),
    "iter_part0": dict(data_shape=(3, 8, 8), batch_size=2, num_parts=2, part_index=0),
    "iter_part1": dict(data_shape=(3, 8, 8), batch_size=2, num_parts=2, part_index=1),
    "iter_big": dict(data_shape=(3, 8, 8), batch_size=5),
    "iter_multilabel": dict(rec="multilabel.rec", data_shape=(3, 8, 8), batch_size=2, label_width=2),
    "iter_resize": dict(data_shape=(3, 8, 8), batch_size=4, resize=14),
    "iter_small": dict(data_shape=(3, 12, 12), batch_size=7),     # images smaller than data_shape
    "iter_gray": dict(data_shape=(1, 8, 8), batch_size=4),
}


RESIZES = [(10, 12, 12, 14), (16, 11, 17, 12), (9, 9, 12, 12), (20, 30, 14, 21), (40, 33, 16, 16),
           (7, 50, 13, 90), (64, 48, 30, 20), (32, 32, 16, 16), (24, 36, 12, 18), (5, 5, 1, 1), (1, 8, 3, 4),
           (33, 17, 33, 17), (100, 80, 37, 29)]


def write_resizes():
    rng = np.random.RandomState(2)
    out = {}
    for i, (h, w, oh, ow) in enumerate(RESIZES):
        src = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        out[f"src_{i}"] = src
        out[f"out_{i}"] = mx.image.imresize(mx.nd.array(src, dtype="uint8"), ow, oh, interp=1).asnumpy()
    np.savez(os.path.join(HERE, "resize.npz"), **out)


def image_iter_batches(handle):
    it = mx.image.ImageIter(batch_size=3, data_shape=(3, 8, 8), path_imgrec=os.path.join(HERE, "images.rec"),
                            path_imgidx=os.path.join(HERE, "images.idx"), last_batch_handle=handle)
    data, label, pad = [], [], []
    for epoch in range(3):
        if epoch:
            it.reset()
        for batch in it:
            data.append(batch.data[0].asnumpy())
            label.append(batch.label[0].asnumpy())
            pad.append(batch.pad)
        pad.append(-1)
    return dict(data=np.concatenate(data), label=np.concatenate(label), pad=np.array(pad))


def write_geometry():
    rng = np.random.RandomState(3)
    img = rng.randint(0, 256, (7, 9, 3)).astype(np.uint8)
    out = {"border_src": img}
    for kind in range(5):
        out[f"border_{kind}"] = mx.image.copyMakeBorder(mx.nd.array(img, dtype="uint8"), 2, 3, 4, 1, type=kind,
                                                        values=[10.0, 20.0, 30.0]).asnumpy()
    chw = rng.uniform(0, 255, (3, 10, 13)).astype(np.float32)
    batch = rng.uniform(0, 255, (3, 2, 8, 8)).astype(np.float32)
    out["rot_src"], out["rot_batch_src"] = chw, batch
    out["rot_plain"] = mx.image.imrotate(mx.nd.array(chw), 30).asnumpy()
    out["rot_zoom_in"] = mx.image.imrotate(mx.nd.array(chw), -50, zoom_in=True).asnumpy()
    out["rot_zoom_out"] = mx.image.imrotate(mx.nd.array(chw), 75, zoom_out=True).asnumpy()
    out["rot_batch"] = mx.image.imrotate(mx.nd.array(batch), mx.nd.array([0.0, 90.0, 200.0])).asnumpy()
    np.savez(os.path.join(HERE, "geometry.npz"), **out)


def read_graphc_rec():
    """MXNet's reading of the file graphc wrote (make_graphc_rec.py must have run first)."""
    src = mx.recordio.MXIndexedRecordIO(os.path.join(HERE, "graphc.idx"), os.path.join(HERE, "graphc.rec"), "r")
    out, images = {}, []
    for key in src.keys:
        raw = src.read_idx(key)
        out[f"rec_{key}"] = np.frombuffer(raw, np.uint8)
        if raw[32:36] == b"\x89PNG":      # IRHeader (24 bytes) + two float32 labels, then the PNG
            header, _ = mx.recordio.unpack(raw)
            out[f"header_{key}"] = np.array([header.flag, header.id, header.id2] + list(header.label), np.float64)
            images.append(raw)
    dst = mx.recordio.MXRecordIO(os.path.join(HERE, "graphc_images.rec"), "w")
    for raw in images:
        dst.write(raw)
    dst.close()
    it = mx.io.ImageRecordIter(path_imgrec=os.path.join(HERE, "graphc_images.rec"), data_shape=(3, 8, 8),
                               batch_size=2, label_width=2)
    batches = [b for b in it]
    out["iter_data"] = np.concatenate([b.data[0].asnumpy() for b in batches])
    out["iter_label"] = np.concatenate([b.label[0].asnumpy() for b in batches])
    os.remove(os.path.join(HERE, "graphc_images.rec"))
    np.savez(os.path.join(HERE, "graphc_read.npz"), **out)


DET_OBJECTS = [[[0, 0.1, 0.2, 0.5, 0.6]], [[1, 0.0, 0.0, 1.0, 1.0], [2, 0.3, 0.3, 0.4, 0.9]],
               [[0, 0.5, 0.5, 0.9, 0.8], [1, 0.2, 0.1, 0.3, 0.2], [2, 0.6, 0.0, 0.7, 0.3]],
               [[3, 0.25, 0.25, 0.75, 0.75], [0, 0.4, 0.4, 0.4, 0.9]], [[1, 0.05, 0.1, 0.95, 0.9]]]


def write_detection():
    rng = np.random.RandomState(4)
    w = mx.recordio.MXIndexedRecordIO(os.path.join(HERE, "det.idx"), os.path.join(HERE, "det.rec"), "w")
    for i, objects in enumerate(DET_OBJECTS):
        img = rng.randint(0, 256, (12 + i, 15 - i, 3)).astype(np.uint8)
        label = [2, 5] + [v for obj in objects for v in obj]
        w.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, label, i, 0), png(img)))
    w.close()
    cases = {"det_plain": dict(inter_method=1),
             "det_flip": dict(aug_list=[mx.image.DetHorizontalFlipAug(1.0),
                                        mx.image.DetBorrowAug(mx.image.ForceResizeAug((9, 8), 1)),
                                        mx.image.DetBorrowAug(mx.image.CastAug())])}
    for name, kwargs in cases.items():
        it = mx.image.ImageDetIter(2, (3, 8, 9), path_imgrec=os.path.join(HERE, "det.rec"),
                                   path_imgidx=os.path.join(HERE, "det.idx"), **kwargs)
        batches = [b for b in it]
        np.savez(os.path.join(HERE, f"{name}.npz"), data=np.concatenate([b.data[0].asnumpy() for b in batches]),
                 label=np.concatenate([b.label[0].asnumpy() for b in batches]),
                 pad=np.array([b.pad for b in batches]))


def main():
    write_detection()
    read_graphc_rec()
    write_geometry()
    write_resizes()
    out = {}
    write_misc(out)
    write_images(out)
    np.savez(os.path.join(HERE, "expected.npz"), **out)
    for name, kwargs in ITER_CASES.items():
        np.savez(os.path.join(HERE, f"{name}.npz"), **iter_batches(**kwargs))
    for handle in ("pad", "discard", "roll_over"):
        np.savez(os.path.join(HERE, f"imageiter_{handle}.npz"), **image_iter_batches(handle))
    print("wrote", sorted(os.listdir(HERE)))


if __name__ == "__main__":
    main()
