"""mx.io.ImageRecordIter: with augmentation off, batches (pixels, labels, pads, epochs) equal
MXNet 1.9.1's on the fixtures in tests/formats/fixtures_rec (and, when the MXNet venv exists, on
a .rec file graphc writes); with augmentation on, every image is a window of its source."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("PIL")

import graphc as mx  # noqa: E402
from graphc.io.image_record_iter import part_offsets  # noqa: E402
from graphc.ops.errors import FormatError  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "formats", "fixtures_rec")
EXPECTED = np.load(os.path.join(FIX, "expected.npz"))
MXNET_PY = os.path.join(os.path.dirname(__file__), "..", "..", "bench", ".venvs", "mxnet", "bin", "python")

# the cases make_fixtures.py ran through MXNet (same names, same arguments)
CASES = {
    "iter_plain": dict(data_shape=(3, 8, 8), batch_size=3),
    "iter_norm": dict(data_shape=(3, 8, 8), batch_size=4, mean_r=120.0, mean_g=110.5, mean_b=100.0,
                      std_r=60.0, std_g=50.0, std_b=70.0, scale=1.0 / 2),
    "iter_part0": dict(data_shape=(3, 8, 8), batch_size=2, num_parts=2, part_index=0),
    "iter_part1": dict(data_shape=(3, 8, 8), batch_size=2, num_parts=2, part_index=1),
    "iter_big": dict(data_shape=(3, 8, 8), batch_size=5),
    "iter_multilabel": dict(rec="multilabel.rec", data_shape=(3, 8, 8), batch_size=2, label_width=2),
    "iter_resize": dict(data_shape=(3, 8, 8), batch_size=4, resize=14),
    "iter_small": dict(data_shape=(3, 12, 12), batch_size=7),
    "iter_gray": dict(data_shape=(1, 8, 8), batch_size=4),
}


def make_iter(rec="images.rec", **kwargs):
    return mx.io.ImageRecordIter(path_imgrec=os.path.join(FIX, rec), **kwargs)


def collect(it, epochs=3):
    """Batches of `epochs` epochs, each epoch ended by an empty block and pad -1 (the fixtures' layout)."""
    data, label, pad = [], [], []
    for epoch in range(epochs):
        if epoch:
            it.reset()
        for batch in it:
            data.append(batch.data[0].asnumpy())
            label.append(batch.label[0].asnumpy())
            pad.append(batch.pad)
        data.append(np.zeros((0,) + tuple(it.provide_data[0].shape[1:]), np.float32))
        label.append(np.zeros((0,) + tuple(it.provide_label[0].shape[1:]), np.float32))
        pad.append(-1)
    return data, label, pad


@pytest.mark.parametrize("name", sorted(CASES))
def test_batches_equal_mxnets_with_augmentation_off(name):
    ref = np.load(os.path.join(FIX, f"{name}.npz"))
    data, label, pad = collect(make_iter(**CASES[name]))
    assert pad == ref["pad"].tolist()
    assert [len(d) for d in data] == ref["sizes"].tolist()
    np.testing.assert_array_equal(np.concatenate(label), ref["label"])
    np.testing.assert_array_equal(np.concatenate(data), ref["data"])


def test_round_batch_off_returns_the_short_batch_with_its_true_pad():
    # MXNet reports pad 0 and leaves stale rows in the tail; graphc zeroes them and counts them
    ref = np.load(os.path.join(FIX, "iter_noround.npz"))
    data, label, pad = collect(make_iter(data_shape=(3, 8, 8), batch_size=3, round_batch=False))
    assert pad == [0, 0, 2, -1] * 3
    for epoch in range(3):
        got = np.concatenate(data[epoch * 4:epoch * 4 + 3])
        want = ref["data"][epoch * 9:epoch * 9 + 9]
        np.testing.assert_array_equal(got[:7], want[:7])
        assert not got[7:].any()
        np.testing.assert_array_equal(np.concatenate(label[epoch * 4:epoch * 4 + 3])[:7],
                                      ref["label"][epoch * 9:epoch * 9 + 7])


def test_provide_data_and_label_describe_the_batches():
    it = make_iter(data_shape=(3, 8, 8), batch_size=3, data_name="img", label_name="y")
    assert it.provide_data[0].name == "img" and tuple(it.provide_data[0].shape) == (3, 3, 8, 8)
    assert it.provide_label[0].name == "y" and tuple(it.provide_label[0].shape) == (3,)


def windows(img, rows, cols):
    """Every rows x cols window of img and of its mirror image, as CHW float32."""
    out = []
    for src in (img, img[:, ::-1]):
        for y in range(img.shape[0] - rows + 1):
            for x in range(img.shape[1] - cols + 1):
                out.append(np.transpose(src[y:y + rows, x:x + cols], (2, 0, 1)).astype(np.float32))
    return out


def test_random_crop_and_mirror_give_windows_of_the_source_and_vary():
    it = make_iter(data_shape=(3, 8, 8), batch_size=7, rand_crop=True, rand_mirror=True, seed=3)
    seen = set()
    for _ in range(4):
        it.reset()
        batch = it.next().data[0].asnumpy()
        for k in range(7):
            matches = [i for i, w in enumerate(windows(EXPECTED[f"img_{k}"], 8, 8)) if np.array_equal(w, batch[k])]
            assert matches, f"image {k} is not a window of its source"
            seen.add((k, matches[0]))
    assert len(seen) > 14


def test_results_do_not_depend_on_the_thread_count():
    kwargs = dict(data_shape=(3, 8, 8), batch_size=3, rand_crop=True, rand_mirror=True, shuffle=True, seed=7)
    one = collect(make_iter(preprocess_threads=1, **kwargs))
    four = collect(make_iter(preprocess_threads=4, **kwargs))
    for a, b in zip(one[0] + one[1], four[0] + four[1]):
        np.testing.assert_array_equal(a, b)


def test_shuffle_visits_every_record_once_per_epoch_in_a_new_order():
    it = make_iter(data_shape=(3, 8, 8), batch_size=3, shuffle=True, seed=1)     # 7 records: 2 fillers
    centre = {k: np.transpose(EXPECTED[f"img_{k}"][(h - 8) // 2:(h - 8) // 2 + 8, (w - 8) // 2:(w - 8) // 2 + 8],
                              (2, 0, 1)).astype(np.float32).tobytes()
              for k in range(7) for h, w in [EXPECTED[f"img_{k}"].shape[:2]]}
    lookup = {v: k for k, v in centre.items()}
    orders = []
    for _ in range(3):
        it.reset()
        epoch = np.concatenate([b.data[0].asnumpy() for b in it])
        orders.append([lookup[img.tobytes()] for img in epoch])
        assert len(orders[-1]) == 9 and sorted(orders[-1][:7]) == list(range(7))
        assert orders[-1][7:] == orders[-1][:2]          # the filler comes from the epoch's head
    assert len({tuple(o) for o in orders}) > 1


def test_label_width_mismatch_and_unsupported_options_are_refused():
    with pytest.raises(ValueError, match="provides 2 labels but label_width is 1"):
        make_iter(rec="multilabel.rec", data_shape=(3, 8, 8), batch_size=2).next()
    with pytest.raises(NotImplementedError, match="max_rotate_angle"):
        make_iter(data_shape=(3, 8, 8), batch_size=2, max_rotate_angle=10)
    with pytest.raises(TypeError, match="unknown arguments"):
        make_iter(data_shape=(3, 8, 8), batch_size=2, data_shap=(3, 8, 8))
    with pytest.raises(ValueError, match="bigger than the batch size"):
        collect(make_iter(data_shape=(3, 8, 8), batch_size=10), epochs=3)


def test_parts_split_the_file_by_bytes_as_dmlc_does():
    offsets = [0, 472, 824, 1468, 1768, 2600, 3044]            # images.idx
    assert part_offsets(offsets, 3508, 0, 2) == offsets[:4]     # step 1756: record 4 starts at 1768
    assert part_offsets(offsets, 3508, 1, 2) == offsets[4:]
    assert sum((part_offsets(offsets, 3508, k, 3) for k in range(3)), []) == offsets


@pytest.mark.skipif(not os.path.exists(MXNET_PY), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not built")
def test_live_mxnet_reads_a_rec_graphc_wrote_into_the_same_batches(tmp_path):
    rng = np.random.RandomState(5)
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "g.idx"), str(tmp_path / "g.rec"), "w")
    for i, (h, w) in enumerate([(30, 24), (17, 40), (20, 20), (9, 31), (26, 13)]):
        img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
        rec.write_idx(i, mx.recordio.pack((0, float(i), i, 0), mx.image.imencode(img, ".png")))
    rec.close()
    kwargs = dict(data_shape=(3, 12, 12), batch_size=2, resize=15, mean_r=10.0, std_g=3.0)
    script = ("import sys, json, numpy as np, mxnet as mx\n"
              "it = mx.io.ImageRecordIter(path_imgrec=sys.argv[1], **json.loads(sys.argv[2]))\n"
              "out = []\n"
              "out += [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in it]\n"
              "np.savez(sys.argv[3], data=np.stack([o[0] for o in out]), label=np.stack([o[1] for o in out]),"
              " pad=np.array([o[2] for o in out]))\n")
    import json
    subprocess.run([MXNET_PY, "-c", script, str(tmp_path / "g.rec"), json.dumps(kwargs), str(tmp_path / "ref.npz")],
                   check=True, timeout=120, capture_output=True)
    ref = np.load(tmp_path / "ref.npz")
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "g.rec"), **kwargs)
    # one epoch: MXNet's prefetcher can race with reset() on a loaded machine (the fixtures keep
    # the majority of several runs for the epochs after the first)
    got = [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in it]
    assert [g[2] for g in got] == ref["pad"].tolist()
    np.testing.assert_array_equal(np.stack([g[1] for g in got]), ref["label"])
    np.testing.assert_array_equal(np.stack([g[0] for g in got]), ref["data"])
    assert sys.modules.get("mxnet") is None     # the oracle ran in its own process


def test_path_imglist_overrides_the_labels_by_record_id(tmp_path):
    lst = tmp_path / "labels.lst"
    lst.write_text("".join(f"{i}\t{10 + i}.0\t{i}.png\n" for i in range(7)))
    it = make_iter(data_shape=(3, 8, 8), batch_size=7, path_imglist=str(lst))
    np.testing.assert_array_equal(it.next().label[0].asnumpy(), np.arange(10, 17))


@pytest.mark.skipif(not os.path.exists(MXNET_PY), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not built")
def test_live_jpeg_records_decode_within_two_levels_of_mxnets(tmp_path):
    # Pillow and OpenCV both decode with libjpeg(-turbo); on this project's machines the batches
    # are identical, the tolerance allows for a different libjpeg build
    rng = np.random.RandomState(0)
    y, x = np.mgrid[0:40, 0:50]
    rec = mx.recordio.MXIndexedRecordIO(str(tmp_path / "j.idx"), str(tmp_path / "j.rec"), "w")
    for i in range(4):
        img = np.stack([128 + 100 * np.sin(x / 7 + i), 128 + 80 * np.cos(y / 5), 128 + 60 * np.sin((x + y) / 9)], -1)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        rec.write_idx(i, mx.recordio.pack((0, float(i), i, 0), mx.image.imencode(img, ".jpg", quality=90)))
    rec.close()
    script = ("import sys, numpy as np, mxnet as mx\n"
              "it = mx.io.ImageRecordIter(path_imgrec=sys.argv[1], data_shape=(3, 32, 32), batch_size=4, resize=36)\n"
              "np.save(sys.argv[2], next(it).data[0].asnumpy())\n")
    subprocess.run([MXNET_PY, "-c", script, str(tmp_path / "j.rec"), str(tmp_path / "ref.npy")], check=True,
                   timeout=120, capture_output=True)
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "j.rec"), data_shape=(3, 32, 32), batch_size=4, resize=36)
    diff = np.abs(it.next().data[0].asnumpy() - np.load(tmp_path / "ref.npy"))
    assert diff.max() <= 2


def test_a_record_that_is_no_image_is_named_by_file_and_offset(tmp_path):
    rec = mx.recordio.MXRecordIO(str(tmp_path / "bad.rec"), "w")
    rec.write(mx.recordio.pack((0, 1.0, 0, 0), b"not an image at all"))
    rec.close()
    it = mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "bad.rec"), data_shape=(3, 8, 8), batch_size=1)
    with pytest.raises(ValueError, match=r"bad.rec: record at byte 0: imdecode: could not decode 19 bytes"):
        it.next()
    (tmp_path / "cut.rec").write_bytes((tmp_path / "bad.rec").read_bytes()[:-6])
    with pytest.raises(FormatError, match="cut.rec: byte 8: record payload cut short"):
        mx.io.ImageRecordIter(path_imgrec=str(tmp_path / "cut.rec"), data_shape=(3, 8, 8), batch_size=1)


def test_a_reset_mid_epoch_ignores_the_batch_decoding_ahead():
    # after two batches the third (with the filler that moves the next epoch's start) is already
    # decoding; the caller never saw it, so the reset starts again from record 0
    ref = np.load(os.path.join(FIX, "iter_plain.npz"))
    it = make_iter(data_shape=(3, 8, 8), batch_size=3)
    it.next()
    it.next()
    it.reset()
    np.testing.assert_array_equal(it.next().data[0].asnumpy(), ref["data"][:3])
