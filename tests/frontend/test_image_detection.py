"""mx.image.detection: ImageDetIter batches equal MXNet 1.9.1's on det.rec (fixtures_rec), and the
random box augmenters keep every box on the same pixels as the image moves under it."""
import os

import numpy as np
import pytest

pytest.importorskip("PIL")

import graphc as mx  # noqa: E402
from graphc import image  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "formats", "fixtures_rec")


def det_iter(**kwargs):
    return image.ImageDetIter(2, (3, 8, 9), path_imgrec=os.path.join(FIX, "det.rec"),
                              path_imgidx=os.path.join(FIX, "det.idx"), **kwargs)


@pytest.mark.parametrize("name", ["det_plain", "det_flip"])
def test_image_det_iter_batches_equal_mxnets(name):
    ref = np.load(os.path.join(FIX, f"{name}.npz"))
    kwargs = dict(inter_method=1) if name == "det_plain" else dict(aug_list=[
        image.DetHorizontalFlipAug(1.0), image.DetBorrowAug(image.ForceResizeAug((9, 8), 1)),
        image.DetBorrowAug(image.CastAug())])
    it = det_iter(**kwargs)
    assert tuple(it.provide_label[0].shape) == (2, 3, 5)
    batches = list(it)
    assert [b.pad for b in batches] == ref["pad"].tolist()
    np.testing.assert_allclose(np.concatenate([b.label[0].asnumpy() for b in batches]), ref["label"], atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([b.data[0].asnumpy() for b in batches]), ref["data"])


def marked_image(h, w, box):
    """An image that is 200 inside the relative box (xmin, ymin, xmax, ymax) and 10 elsewhere."""
    img = np.full((h, w, 3), 10, np.uint8)
    x0, y0, x1, y1 = box
    img[int(round(y0 * h)):int(round(y1 * h)), int(round(x0 * w)):int(round(x1 * w))] = 200
    return img


def box_pixels(img, row):
    h, w = img.shape[:2]
    return img[int(round(row[2] * h)):int(round(row[4] * h)), int(round(row[1] * w)):int(round(row[3] * w))]


def test_random_crop_keeps_boxes_on_their_pixels_and_respects_coverage():
    box = (0.25, 0.25, 0.75, 0.75)
    src = marked_image(40, 40, box)
    label = np.array([[1, *box]], np.float32)
    aug = image.DetRandomCropAug(min_object_covered=0.5, area_range=(0.2, 0.8), min_eject_coverage=0.3)
    mx.random.seed(1)
    cropped = 0
    for _ in range(30):
        out, new = aug(mx.nd.array(src, dtype="uint8"), label)
        out = out.asnumpy()
        if out.shape == src.shape:
            continue
        cropped += 1
        assert new.shape == (1, 5) and new[0, 0] == 1
        assert (box_pixels(out, new[0]) == 200).all()                  # the box still frames the object
        object_pixels = (out[:, :, 0] == 200).sum()
        assert object_pixels > 0.5 * 20 * 20 - 1                       # min_object_covered of its area
    assert cropped > 10


def test_random_pad_shrinks_boxes_with_the_image_and_fills_with_pad_val():
    box = (0.2, 0.3, 0.6, 0.9)
    src = marked_image(20, 20, box)
    label = np.array([[0, *box], [2, 0.0, 0.0, 1.0, 1.0]], np.float32)
    aug = image.DetRandomPadAug(area_range=(1.5, 3.0), pad_val=(1, 2, 3))
    mx.random.seed(2)
    for _ in range(10):
        out, new = aug(mx.nd.array(src, dtype="uint8"), label)
        out = out.asnumpy()
        h, w = out.shape[:2]
        assert 1.5 * 400 * 0.8 <= h * w <= 3.0 * 400 * 1.2
        np.testing.assert_array_equal(box_pixels(out, new[1]), src)    # the whole-image box is the image
        assert (box_pixels(out, new[0]) == 200).all()
        assert (out[0, 0] == [1, 2, 3]).all() or (out[-1, -1] == [1, 2, 3]).all()


def test_flip_mirrors_boxes_and_borrowed_augmenters_leave_them():
    label = np.array([[0, 0.1, 0.2, 0.4, 0.5]], np.float32)
    src = mx.nd.array(np.arange(2 * 4 * 3).reshape(2, 4, 3), dtype="uint8")
    out, new = image.DetHorizontalFlipAug(1.0)(src, label)
    np.testing.assert_array_equal(out.asnumpy(), src.asnumpy()[:, ::-1])
    np.testing.assert_allclose(new, [[0, 0.6, 0.2, 0.9, 0.5]], rtol=1e-6)
    assert label[0, 1] == np.float32(0.1)                                # the input is not modified
    out, new = image.DetBorrowAug(image.CastAug())(src, label)
    assert out.dtype == np.float32 and new is label
    with pytest.raises(TypeError, match="expected an mx.image.Augmenter"):
        image.DetBorrowAug(image.DetHorizontalFlipAug(0.5))


def test_create_det_augmenter_and_multi_crop_build_mxnets_lists():
    augs = image.CreateDetAugmenter((3, 30, 40), resize=50, rand_crop=0.5, rand_pad=0.4, rand_mirror=True,
                                    mean=True, std=True, brightness=0.1, hue=0.1, pca_noise=0.1, rand_gray=0.1,
                                    min_object_covered=[0.1, 0.5, 0.9])
    assert [type(a).__name__ for a in augs] == [
        "DetBorrowAug", "DetRandomSelectAug", "DetHorizontalFlipAug", "DetRandomSelectAug", "DetBorrowAug",
        "DetBorrowAug", "DetBorrowAug", "DetBorrowAug", "DetBorrowAug", "DetBorrowAug", "DetBorrowAug"]
    crops = augs[1]
    assert crops.skip_prob == 0.5 and [a.min_object_covered for a in crops.aug_list] == [0.1, 0.5, 0.9]
    mx.random.seed(3)
    src = mx.nd.array(marked_image(60, 80, (0.2, 0.2, 0.7, 0.8)), dtype="uint8")
    label = np.array([[0, 0.2, 0.2, 0.7, 0.8]], np.float32)
    for _ in range(5):
        out, lab = src, label
        for aug in augs:
            out, lab = aug(out, lab)
        assert out.shape == (30, 40, 3) and out.dtype == np.float32
        assert ((lab[:, 1:] >= 0) & (lab[:, 1:] <= 1)).all()
    with pytest.raises(ValueError, match="1 or 3 entries"):
        image.CreateMultiRandCropAugmenter(min_object_covered=[0.1, 0.2, 0.3], area_range=[(0.1, 1.0)] * 2)


def test_labels_are_validated_and_label_shapes_synchronised():
    it = det_iter(inter_method=1)
    with pytest.raises(RuntimeError, match="no valid box"):
        it._parse_label([2, 5, 0, 0.5, 0.5, 0.5, 0.9])
    with pytest.raises(RuntimeError, match="does not split"):
        it._parse_label([2, 5, 0, 0.1, 0.1, 0.5, 0.9, 7])
    other = det_iter(inter_method=1)
    it.reshape(label_shape=(6, 5))
    assert it.sync_label_shape(other) is other and other.label_shape == (6, 5)
    assert it.next().label[0].shape == (2, 6, 5)
    with pytest.raises(ValueError, match="cannot shrink"):
        it.reshape(label_shape=(2, 5))
    assert image.det.ImageDetIter is image.ImageDetIter
