"""vision.transforms against numpy expectations: exact for ToTensor, Normalize, crops and
flips; shapes and dtypes for resampling; repeatable randomness under mx.random.seed."""
import numpy as np
import pytest

import graphc as mx
from graphc import nd
from graphc.gluon import Block, HybridBlock
from graphc.gluon.data.vision import transforms as T

pytest.importorskip("PIL")


def _image(h=6, w=8, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_to_tensor_hwc_and_nhwc():
    img = _image()
    out = T.ToTensor()(nd.array(img, dtype="uint8"))
    assert isinstance(out, nd.NDArray) and out.dtype == np.float32 and out.shape == (3, 6, 8)
    np.testing.assert_allclose(out.asnumpy(), img.transpose(2, 0, 1) / np.float32(255), rtol=1e-6)
    batch = np.stack([img, _image(seed=1)])
    out = T.ToTensor()(nd.array(batch, dtype="uint8"))
    assert out.shape == (2, 3, 6, 8)
    np.testing.assert_allclose(out.asnumpy(), batch.transpose(0, 3, 1, 2) / np.float32(255), rtol=1e-6)
    with pytest.raises(ValueError, match="expected an image of shape"):
        T.ToTensor()(nd.zeros((4, 4)))


def test_normalize_per_channel_and_scalar():
    x = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = T.Normalize(mean, std)(nd.array(x))
    expect = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out.asnumpy(), expect, rtol=1e-6)
    assert out.dtype == np.float32
    batched = T.Normalize(0.5, 2.0)(nd.array(np.stack([x, x])))
    np.testing.assert_allclose(batched.asnumpy()[1], (x - 0.5) / 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="mean has 2 values but the input has 3 channels"):
        T.Normalize((0.1, 0.2), 1.0)(nd.array(x))


def test_cast():
    out = T.Cast("float16")(nd.array(_image(), dtype="uint8"))
    assert out.dtype == np.float16


def test_center_crop_is_an_exact_window():
    img = _image(7, 9)
    out = T.CenterCrop((4, 3))(nd.array(img, dtype="uint8"))     # (width, height)
    np.testing.assert_array_equal(out.asnumpy(), img[2:5, 2:6])
    np.testing.assert_array_equal(T.CenterCrop(5)(nd.array(img, dtype="uint8")).asnumpy(), img[1:6, 2:7])
    # larger than the image: the biggest window of that aspect ratio, resized up
    assert T.CenterCrop(12)(nd.array(img, dtype="uint8")).shape == (12, 12, 3)


def test_crop_resize():
    img = _image(7, 9)
    np.testing.assert_array_equal(T.CropResize(1, 2, 4, 3)(nd.array(img, dtype="uint8")).asnumpy(), img[2:5, 1:5])
    assert T.CropResize(1, 2, 4, 3, size=(8, 6))(nd.array(img, dtype="uint8")).shape == (6, 8, 3)
    with pytest.raises(ValueError, match="does not fit"):
        T.CropResize(5, 0, 9, 3)(nd.array(img, dtype="uint8"))


@pytest.mark.parametrize("size, keep, shape", [(4, False, (4, 4, 3)), ((5, 3), False, (3, 5, 3)),
                                               (3, True, (3, 4, 3)), ((10, 2), True, (2, 10, 3))])
def test_resize_shapes(size, keep, shape):
    out = T.Resize(size, keep_ratio=keep)(nd.array(_image(6, 8), dtype="uint8"))
    assert out.shape == shape and out.dtype == np.uint8


def test_resize_batches_other_dtypes_and_channels_and_nearest_is_exact():
    batch = nd.array(np.stack([_image(6, 8, 1), _image(6, 8, 1, seed=2)]), dtype="uint8")
    assert T.Resize((4, 3))(batch).shape == (2, 3, 4, 1)
    floats = np.random.default_rng(0).random((6, 8, 2), dtype=np.float32)
    out = T.Resize((4, 3), interpolation=2)(nd.array(floats))
    assert out.shape == (3, 4, 2) and out.dtype == np.float32
    img = _image(4, 4)
    up = T.Resize(8, interpolation=0)(nd.array(img, dtype="uint8")).asnumpy()
    np.testing.assert_array_equal(up, img.repeat(2, axis=0).repeat(2, axis=1))
    constant = np.full((6, 8, 3), 77, np.uint8)
    for interp in (1, 2, 3, 4, 9):
        np.testing.assert_array_equal(T.Resize((5, 4), interpolation=interp)(nd.array(constant, dtype="uint8"))
                                      .asnumpy(), np.full((4, 5, 3), 77, np.uint8))
    with pytest.raises(ValueError, match="interpolation must be one of"):
        T.Resize(4, interpolation=7)(nd.array(img, dtype="uint8"))


def test_random_flips_are_seeded_and_flip_the_right_axis():
    img = nd.array(_image(), dtype="uint8")

    def draws(block):
        mx.random.seed(5)
        return [block(img).asnumpy() for _ in range(12)]

    for block, axis in ((T.RandomFlipLeftRight(), 1), (T.RandomFlipTopBottom(), 0)):
        first, second = draws(block), draws(block)
        flipped = [np.array_equal(o, np.flip(img.asnumpy(), axis)) for o in first]
        kept = [np.array_equal(o, img.asnumpy()) for o in first]
        assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
        assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_random_resized_crop_shape_and_seed():
    img = nd.array(_image(20, 30), dtype="uint8")
    block = T.RandomResizedCrop((8, 6), scale=(0.2, 1.0))
    mx.random.seed(1)
    a = block(img).asnumpy()
    mx.random.seed(1)
    assert a.shape == (6, 8, 3) and np.array_equal(a, block(img).asnumpy())


def test_color_transforms_keep_dtype_and_identity_at_zero():
    img = nd.array(_image(), dtype="uint8")
    for block in (T.RandomBrightness(0), T.RandomContrast(0), T.RandomSaturation(0), T.RandomHue(0),
                  T.RandomColorJitter(), T.RandomLighting(0)):
        out = block(img)
        assert out.dtype == np.uint8
        np.testing.assert_allclose(out.asnumpy().astype(int), img.asnumpy().astype(int), atol=1)
    gray = np.full((2, 2, 3), 100, np.uint8)
    mx.random.seed(0)
    out = T.RandomBrightness(0.5)(nd.array(gray, dtype="uint8")).asnumpy()
    assert len(np.unique(out)) == 1 and out[0, 0, 0] != 100
    jitter = T.RandomColorJitter(0.3, 0.3, 0.3, 0.1)
    mx.random.seed(2)
    a = jitter(img).asnumpy()
    mx.random.seed(2)
    assert np.array_equal(a, jitter(img).asnumpy())


def test_compose_chains_blocks_and_callables_and_survives_hybridize():
    pipeline = T.Compose([T.CenterCrop(4), lambda x: x.astype("float32") * 2, T.ToTensor(),
                          T.Normalize(0.5, 0.5)])
    assert isinstance(pipeline, Block) and isinstance(T.ToTensor(), HybridBlock)
    img = _image()
    pipeline.hybridize()
    out = pipeline(nd.array(img, dtype="uint8")).asnumpy()
    expect = (img[1:5, 2:6].astype(np.float32) * 2).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(out, (expect - 0.5) / 0.5, rtol=1e-5)


def test_numpy_input_gives_numpy_output():
    out = T.ToTensor()(_image())
    assert isinstance(out, np.ndarray) and out.shape == (3, 6, 8)


def test_brightness_factor_never_goes_negative():
    img = nd.array(np.full((2, 2, 3), 100.0, np.float32))
    mx.random.seed(0)
    outs = [float(T.RandomBrightness(3.0)(img).asnumpy()[0, 0, 0]) for _ in range(40)]
    assert min(outs) >= 0 and max(outs) > 300 and min(outs) < 50
