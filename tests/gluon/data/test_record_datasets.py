"""gluon.data.RecordFileDataset and vision.ImageRecordDataset over MXNet-written .rec fixtures,
including through DataLoader worker processes (each reopens the file)."""
import os

import numpy as np
import pytest

pytest.importorskip("PIL")

import graphc as mx  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "formats", "fixtures_rec")
EXPECTED = np.load(os.path.join(FIX, "expected.npz"))


def test_record_file_dataset_returns_raw_records_by_position():
    ds = mx.gluon.data.RecordFileDataset(os.path.join(FIX, "misc.rec"))
    n = len([k for k in EXPECTED.files if k.startswith("rec_")])
    assert len(ds) == n
    assert [ds[i] for i in range(n)] == [EXPECTED[f"rec_{i}"].tobytes() for i in range(n)]
    assert ds[-1] == EXPECTED[f"rec_{n - 1}"].tobytes()
    with pytest.raises(IndexError, match="out of range for 11 records"):
        ds[n]


def test_image_record_dataset_decodes_images_and_labels():
    ds = mx.gluon.data.vision.ImageRecordDataset(os.path.join(FIX, "images.rec"))
    for i in range(len(ds)):
        img, label = ds[i]
        np.testing.assert_array_equal(img.asnumpy(), EXPECTED[f"img_{i}"])
        assert label == float(i % 3)
    gray, _ = mx.gluon.data.vision.ImageRecordDataset(os.path.join(FIX, "images.rec"), flag=0)[0]
    assert gray.shape == EXPECTED["img_0"].shape[:2] + (1,)
    multi = mx.gluon.data.vision.ImageRecordDataset(os.path.join(FIX, "multilabel.rec"))
    np.testing.assert_array_equal(multi[2][1], [2.0, 0.5])


def test_image_record_dataset_feeds_a_multiprocess_dataloader():
    ds = mx.gluon.data.vision.ImageRecordDataset(
        os.path.join(FIX, "images.rec"),
        transform=lambda img, label: (mx.image.center_crop(img, (8, 8))[0].astype("float32"), label))
    loader = mx.gluon.data.DataLoader(ds, batch_size=3, num_workers=2)
    data = np.concatenate([d.asnumpy() for d, _ in loader])
    labels = np.concatenate([lab.asnumpy() for _, lab in loader])
    np.testing.assert_array_equal(labels, [i % 3 for i in range(7)])
    for i in range(7):
        h, w = EXPECTED[f"img_{i}"].shape[:2]
        y, x = (h - 8) // 2, (w - 8) // 2
        np.testing.assert_array_equal(data[i], EXPECTED[f"img_{i}"][y:y + 8, x:x + 8])
