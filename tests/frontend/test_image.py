"""mx.image: decoding, resizing, crops, augmenters and ImageIter, against MXNet 1.9.1's outputs
(tests/formats/fixtures_rec) where MXNet is deterministic, and numpy formulas elsewhere."""
import os

import numpy as np
import pytest

pytest.importorskip("PIL")

import graphc as mx  # noqa: E402
from graphc import image  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "formats", "fixtures_rec")
EXPECTED = np.load(os.path.join(FIX, "expected.npz"))
RESIZE = np.load(os.path.join(FIX, "resize.npz"))


def record_image(key):
    rec = mx.recordio.MXIndexedRecordIO(os.path.join(FIX, "images.idx"), os.path.join(FIX, "images.rec"), "r")
    return mx.recordio.unpack(rec.read_idx(key))[1]


def rgb(seed=0, shape=(12, 10, 3)):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


# -- decoding -----------------------------------------------------------------------------------
def test_imdecode_gives_rgb_bgr_and_gray_hwc_uint8():
    buf = record_image(2)
    img = image.imdecode(buf)
    assert img.dtype == np.uint8 and img.shape == (16, 11, 3)
    np.testing.assert_array_equal(img.asnumpy(), EXPECTED["img_2"])
    np.testing.assert_array_equal(image.imdecode(buf, to_rgb=False).asnumpy(), EXPECTED["img_2"][:, :, ::-1])
    gray = image.imdecode(np.frombuffer(buf, np.uint8), flag=0).asnumpy()
    ref = EXPECTED["img_2"].astype(np.float64) @ [0.299, 0.587, 0.114]
    # truncated, as OpenCV's PNG reader does (exactness vs MXNet: test_image_record_iter's gray case)
    assert gray.shape == (16, 11, 1) and np.abs(gray[:, :, 0] - ref).max() < 1.01


def test_imread_and_imencode_round_trip_png(tmp_path):
    src = rgb(1)
    path = tmp_path / "x.png"
    path.write_bytes(image.imencode(src, ".png"))
    np.testing.assert_array_equal(image.imread(str(path)).asnumpy(), src)
    np.testing.assert_array_equal(image.imread(str(path), to_rgb=False).asnumpy(), src[:, :, ::-1])


def test_imdecode_refuses_bytes_that_are_no_image():
    with pytest.raises(ValueError, match="could not decode 5 bytes"):
        image.imdecode(b"hello")


# -- resizing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", range(len([k for k in RESIZE.files if k.startswith("src_")])))
def test_bilinear_imresize_equals_mxnets_opencv_pixel_for_pixel(case):
    src, ref = RESIZE[f"src_{case}"], RESIZE[f"out_{case}"]
    out = image.imresize(mx.nd.array(src, dtype="uint8"), ref.shape[1], ref.shape[0], interp=1)
    np.testing.assert_array_equal(out.asnumpy(), ref)


def test_nearest_upscale_repeats_pixels_and_other_filters_keep_shape_and_dtype():
    src = rgb(2, (3, 4, 3))
    np.testing.assert_array_equal(image.imresize(src, 8, 6, interp=0).asnumpy(), src.repeat(2, 0).repeat(2, 1))
    for interp in (2, 3, 4):
        out = image.imresize(src, 7, 5, interp=interp)
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8


def test_resize_short_uses_integer_division_for_the_long_edge():
    assert image.resize_short(rgb(0, (10, 15, 3)), 4).shape == (4, 6, 3)
    assert image.resize_short(rgb(0, (15, 10, 3)), 7).shape == (10, 7, 3)


# -- crops --------------------------------------------------------------------------------------
def test_fixed_and_center_crop_take_the_right_window():
    src = rgb(3, (10, 12, 3))
    np.testing.assert_array_equal(image.fixed_crop(src, 2, 3, 5, 4).asnumpy(), src[3:7, 2:7])
    out, box = image.center_crop(src, (6, 4))
    assert box == (3, 3, 6, 4)
    np.testing.assert_array_equal(out.asnumpy(), src[3:7, 3:9])
    # a crop bigger than the image is scaled down to fit, then resized up
    out, box = image.center_crop(src, (24, 10))
    assert box == (0, 2, 12, 5) and out.shape == (10, 24, 3)
    assert image.scale_down((12, 10), (24, 10)) == (12, 5)


def test_random_crop_is_a_window_of_the_image():
    src = rgb(4, (10, 12, 3))
    mx.random.seed(3)
    seen = set()
    for _ in range(20):
        out, (x0, y0, w, h) = image.random_crop(src, (5, 4))
        assert (w, h) == (5, 4)
        np.testing.assert_array_equal(out.asnumpy(), src[y0:y0 + 4, x0:x0 + 5])
        seen.add((x0, y0))
    assert len(seen) > 5


def test_random_size_crop_covers_the_requested_area_range():
    src = rgb(5, (40, 40, 3))
    mx.random.seed(0)
    for _ in range(20):
        out, (x0, y0, w, h) = image.random_size_crop(src, (8, 8), (0.2, 0.6), (0.75, 1.33))
        assert out.shape == (8, 8, 3)
        assert 0.2 * 1600 * 0.9 <= w * h <= 0.6 * 1600 * 1.1
        assert 0 <= x0 <= 40 - w and 0 <= y0 <= 40 - h


def test_color_normalize_subtracts_mean_and_divides_by_std():
    src = rgb(6).astype(np.float32)
    mean, std = np.array([1.0, 2.0, 3.0], np.float32), np.array([2.0, 4.0, 8.0], np.float32)
    np.testing.assert_allclose(image.color_normalize(mx.nd.array(src), mx.nd.array(mean), mx.nd.array(std)).asnumpy(),
                               (src - mean) / std)


# -- augmenters: the random draws replayed from the same seed -----------------------------------
def replay(seed):
    return np.random.default_rng(seed)


def test_brightness_contrast_saturation_follow_mxnets_formulas():
    src = rgb(7).astype(np.float32)
    coef = np.array([0.299, 0.587, 0.114], np.float32)
    mx.random.seed(11)
    out = image.BrightnessJitterAug(0.3)(mx.nd.array(src)).asnumpy()
    np.testing.assert_allclose(out, src * (1 + replay(11).uniform(-0.3, 0.3)), rtol=1e-6)

    mx.random.seed(12)
    out = image.ContrastJitterAug(0.4)(mx.nd.array(src)).asnumpy()
    alpha = 1 + replay(12).uniform(-0.4, 0.4)
    gray = 3.0 * (1 - alpha) / src.size * (src * coef).sum()
    np.testing.assert_allclose(out, src * alpha + gray, rtol=1e-5)

    mx.random.seed(13)
    out = image.SaturationJitterAug(0.5)(mx.nd.array(src)).asnumpy()
    alpha = 1 + replay(13).uniform(-0.5, 0.5)
    np.testing.assert_allclose(out, src * alpha + (src * coef).sum(2, keepdims=True) * (1 - alpha), rtol=1e-5)


def test_hue_jitter_rotates_in_yiq_and_keeps_gray_pixels_gray():
    src = rgb(8).astype(np.float32)
    mx.random.seed(5)
    out = image.HueJitterAug(0.2)(mx.nd.array(src)).asnumpy()
    a = replay(5).uniform(-0.2, 0.2)
    tyiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
    ityiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])
    bt = np.array([[1, 0, 0], [0, np.cos(a * np.pi), -np.sin(a * np.pi)], [0, np.sin(a * np.pi), np.cos(a * np.pi)]])
    np.testing.assert_allclose(out, src @ (ityiq @ bt @ tyiq).T, rtol=1e-4, atol=1e-3)
    gray = np.full((2, 2, 3), 100.0, np.float32)
    np.testing.assert_allclose(image.HueJitterAug(0.5)(mx.nd.array(gray)).asnumpy(), gray, atol=0.5)


def test_lighting_gray_flip_and_cast():
    src = rgb(9).astype(np.float32)
    eigval, eigvec = np.array([55.46, 4.794, 1.148]), np.eye(3)
    mx.random.seed(2)
    out = image.LightingAug(0.1, eigval, eigvec)(mx.nd.array(src)).asnumpy()
    np.testing.assert_allclose(out, src + (eigvec * replay(2).normal(0, 0.1, 3)) @ eigval, rtol=1e-5)
    out = image.RandomGrayAug(1.0)(mx.nd.array(src)).asnumpy()
    np.testing.assert_allclose(out, np.repeat(src @ [[0.21], [0.72], [0.07]], 3, axis=2), rtol=1e-5)
    np.testing.assert_array_equal(image.HorizontalFlipAug(1.0)(mx.nd.array(src)).asnumpy(), src[:, ::-1])
    np.testing.assert_array_equal(image.HorizontalFlipAug(0.0)(mx.nd.array(src)).asnumpy(), src)
    assert image.CastAug("float16")(mx.nd.array(src)).dtype == np.float16


def test_create_augmenter_builds_mxnets_list_in_mxnets_order():
    augs = image.CreateAugmenter((3, 8, 8), resize=10, rand_crop=True, rand_resize=True, rand_mirror=True,
                                 mean=True, std=True, brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1,
                                 pca_noise=0.1, rand_gray=0.2)
    assert [type(a).__name__ for a in augs] == [
        "ResizeAug", "RandomSizedCropAug", "HorizontalFlipAug", "CastAug", "ColorJitterAug", "HueJitterAug",
        "LightingAug", "RandomGrayAug", "ColorNormalizeAug"]
    assert [type(a).__name__ for a in image.CreateAugmenter((3, 8, 8))] == ["CenterCropAug", "CastAug"]
    mx.random.seed(0)
    out = rgb(10, (20, 30, 3))
    for aug in augs:
        out = aug(out)
    assert out.shape == (8, 8, 3) and out.dtype == np.float32
    assert image.ResizeAug(10, 1).dumps() == '["resizeaug", {"size": 10, "interp": 1}]'
    with pytest.raises(ValueError, match="rand_resize needs rand_crop"):
        image.CreateAugmenter((3, 8, 8), rand_resize=True)


# -- ImageIter ----------------------------------------------------------------------------------
def collect(it, epochs=3):
    data, label, pad = [], [], []
    for epoch in range(epochs):
        if epoch:
            it.reset()
        for batch in it:
            data.append(batch.data[0].asnumpy())
            label.append(batch.label[0].asnumpy())
            pad.append(batch.pad)
        pad.append(-1)
    return np.concatenate(data), np.concatenate(label), pad


@pytest.mark.parametrize("handle", ["pad", "discard", "roll_over"])
def test_image_iter_batches_equal_mxnets(handle):
    ref = np.load(os.path.join(FIX, f"imageiter_{handle}.npz"))
    it = image.ImageIter(batch_size=3, data_shape=(3, 8, 8), path_imgrec=os.path.join(FIX, "images.rec"),
                         path_imgidx=os.path.join(FIX, "images.idx"), last_batch_handle=handle)
    data, label, pad = collect(it)
    assert pad == ref["pad"].tolist()
    np.testing.assert_array_equal(label, ref["label"])
    np.testing.assert_array_equal(data, ref["data"])


def test_image_iter_reads_an_image_list_under_a_root_and_shuffles(tmp_path):
    lines = []
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(image.imencode(np.full((9, 9, 3), 10 * i, np.uint8), ".png"))
        lines.append(f"{i}\t{i}.0\t{2 * i}.0\t{i}.png\n")
    (tmp_path / "l.lst").write_text("".join(lines))
    it = image.ImageIter(batch_size=5, data_shape=(3, 8, 8), label_width=2, path_imglist=str(tmp_path / "l.lst"),
                         path_root=str(tmp_path), shuffle=True)
    mx.random.seed(4)
    it.reset()
    batch = it.next()
    label = batch.label[0].asnumpy()
    order = label[:, 0].astype(int)
    assert sorted(order) == list(range(5))
    np.testing.assert_array_equal(label[:, 1], 2 * order)
    np.testing.assert_array_equal(batch.data[0].asnumpy()[:, 0, 0, 0], 10 * order)


# -- borders and rotation -----------------------------------------------------------------------
GEOMETRY = np.load(os.path.join(FIX, "geometry.npz"))


@pytest.mark.parametrize("kind", range(5))
def test_copy_make_border_equals_mxnets_for_every_border_type(kind):
    out = image.copyMakeBorder(GEOMETRY["border_src"], 2, 3, 4, 1, type=kind, values=[10.0, 20.0, 30.0])
    np.testing.assert_array_equal(out.asnumpy(), GEOMETRY[f"border_{kind}"])


def test_imrotate_equals_mxnets_bilinear_sampler():
    src = GEOMETRY["rot_src"]
    for name, out in [("rot_plain", image.imrotate(src, 30)), ("rot_zoom_in", image.imrotate(src, -50, zoom_in=True)),
                      ("rot_zoom_out", image.imrotate(src, 75, zoom_out=True)),
                      ("rot_batch", image.imrotate(GEOMETRY["rot_batch_src"], np.array([0.0, 90.0, 200.0])))]:
        np.testing.assert_allclose(out.asnumpy(), GEOMETRY[name], rtol=1e-5, atol=1e-3, err_msg=name)
    with pytest.raises(TypeError, match="only float32"):
        image.imrotate(src.astype(np.uint8), 10)


def test_random_rotate_draws_one_angle_per_image_within_limits():
    batch = GEOMETRY["rot_batch_src"]
    mx.random.seed(9)
    out = image.random_rotate(batch, (-20, 20)).asnumpy()
    angles = replay(9).uniform(-20, 20, size=3)
    np.testing.assert_allclose(out, image.imrotate(batch, angles).asnumpy(), rtol=1e-6)


def test_image_iter_takes_a_python_image_list_in_each_of_mxnets_forms(tmp_path):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(image.imencode(np.full((8, 8, 3), 50 * i, np.uint8), ".png"))
    for imglist, width, want in [([[0.0, "0.png"], [1.0, "1.png"], [2.0, "2.png"]], 1, [0, 1, 2]),
                                 ([[[0.0, 5.0], "0.png"], [[1.0, 6.0], "1.png"], [[2.0, 7.0], "2.png"]], 2,
                                  [[0, 5], [1, 6], [2, 7]]),
                                 ([[0.0, 5.0, "0.png"], [1.0, 6.0, "1.png"], [2.0, 7.0, "2.png"]], 2,
                                  [[0, 5], [1, 6], [2, 7]])]:
        it = image.ImageIter(batch_size=3, data_shape=(3, 8, 8), label_width=width, imglist=imglist,
                             path_root=str(tmp_path))
        batch = it.next()
        np.testing.assert_array_equal(batch.label[0].asnumpy(), want)
        np.testing.assert_array_equal(batch.data[0].asnumpy()[:, 1, 2, 3], [0, 50, 100])


def test_auto_interpolation_picks_by_direction_as_mxnet():
    # 9: bicubic when enlarging both edges, area when shrinking both, bilinear (OpenCV's) otherwise
    src = RESIZE["src_0"]                                          # 10 x 12
    mixed = image.imresize(src, 14, 8, interp=9).asnumpy()
    np.testing.assert_array_equal(mixed, image.imresize(src, 14, 8, interp=1).asnumpy())
    np.testing.assert_array_equal(image.imresize(src, 6, 5, interp=9).asnumpy(),
                                  image.imresize(src, 6, 5, interp=3).asnumpy())
    np.testing.assert_array_equal(image.imresize(src, 24, 20, interp=9).asnumpy(),
                                  image.imresize(src, 24, 20, interp=2).asnumpy())


def test_image_iter_takes_labels_from_a_list_and_pixels_from_the_rec(tmp_path):
    (tmp_path / "l.lst").write_text("".join(f"{i}\t{10 + i}.0\tunused/{i}.png\n" for i in range(7)))
    it = image.ImageIter(batch_size=7, data_shape=(3, 8, 8), path_imgrec=os.path.join(FIX, "images.rec"),
                         path_imgidx=os.path.join(FIX, "images.idx"), path_imglist=str(tmp_path / "l.lst"))
    batch = it.next()
    np.testing.assert_array_equal(batch.label[0].asnumpy(), np.arange(10, 17))
    ref = np.load(os.path.join(FIX, "imageiter_pad.npz"))["data"]
    np.testing.assert_array_equal(batch.data[0].asnumpy()[:6], ref[:6])
