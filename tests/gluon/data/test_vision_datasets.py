"""MNIST, FashionMNIST, CIFAR10/100 read from tiny files in the standard binary formats, and
ImageFolderDataset over PNGs written with Pillow."""
import gzip
import os

import numpy as np
import pytest

from graphc import nd
from graphc.gluon.data import DataLoader
from graphc.gluon.data.vision import (CIFAR10, CIFAR100, MNIST, FashionMNIST, ImageFolderDataset,
                                      transforms)

PIL = pytest.importorskip("PIL.Image")


def _idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, prefix, images, labels, gz):
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if gz:
            with gzip.open(folder / (name + ".gz"), "wb") as f:
                f.write(_idx_bytes(arr))
        else:
            (folder / name).write_bytes(_idx_bytes(arr))


@pytest.mark.parametrize("cls, gz", [(MNIST, True), (MNIST, False), (FashionMNIST, True)])
def test_mnist_formats_read_back_exactly(tmp_path, cls, gz):
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    train_y = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    test_x = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    _write_mnist(tmp_path, "train", train_x, train_y, gz)
    _write_mnist(tmp_path, "t10k", test_x, np.array([9, 2], dtype=np.uint8), gz)

    train = cls(root=str(tmp_path))
    assert len(train) == 5
    data, label = train[2]
    assert isinstance(data, nd.NDArray) and data.shape == (28, 28, 1) and data.dtype == np.uint8
    np.testing.assert_array_equal(data.asnumpy()[:, :, 0], train_x[2])
    assert label == 4 and label.dtype == np.int32

    test = cls(root=str(tmp_path), train=False)
    assert len(test) == 2 and test[1][1] == 2
    np.testing.assert_array_equal(test[0][0].asnumpy()[:, :, 0], test_x[0])


def test_mnist_transform_sees_data_and_label(tmp_path):
    _write_mnist(tmp_path, "train", np.full((2, 28, 28), 255, np.uint8), np.array([7, 8], np.uint8), True)
    ds = MNIST(root=str(tmp_path), transform=lambda d, l: (d.astype("float32") / 255, l + 1))
    data, label = ds[0]
    assert data.dtype == np.float32 and float(data.asnumpy().max()) == 1.0 and label == 8


def test_mnist_missing_files_error_names_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(root=str(tmp_path / "nowhere"))
    msg = str(info.value)
    assert str(tmp_path / "nowhere") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "does not download" in msg
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        FashionMNIST(root=str(tmp_path), train=False)


def test_mnist_rejects_a_file_that_is_not_idx(tmp_path):
    _write_mnist(tmp_path, "train", np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX label file"):
        MNIST(root=str(tmp_path))


def _cifar_records(images_hwc, *label_columns):
    planes = images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)
    labels = np.stack(label_columns, axis=1).astype(np.uint8)
    return np.concatenate([labels, planes], axis=1).astype(np.uint8).tobytes()


def test_cifar10_reads_the_binary_batches(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(10) % 10
    for i in range(5):
        (folder / f"data_batch_{i + 1}.bin").write_bytes(_cifar_records(images[2 * i:2 * i + 2], labels[2 * i:2 * i + 2]))
    (folder / "test_batch.bin").write_bytes(_cifar_records(images[:3], np.array([9, 8, 7])))

    train = CIFAR10(root=str(tmp_path))
    assert len(train) == 10
    data, label = train[7]
    assert data.shape == (32, 32, 3) and data.dtype == np.uint8 and label == 7 and label.dtype == np.int32
    np.testing.assert_array_equal(data.asnumpy(), images[7])
    test = CIFAR10(root=str(tmp_path), train=False)
    assert [int(test[i][1]) for i in range(3)] == [9, 8, 7]

    batch = next(iter(DataLoader(train.transform_first(transforms.ToTensor()), batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32) and batch[1].dtype == np.int32


def test_cifar10_missing_files_error_lists_the_batches(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        CIFAR10(root=str(tmp_path))
    msg = str(info.value)
    assert "cifar-10-batches-bin" in msg and "data_batch_5.bin" in msg


def test_cifar100_coarse_and_fine_labels(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "train.bin").write_bytes(_cifar_records(images, np.array([1, 2, 3]), np.array([41, 52, 63])))
    assert CIFAR100(root=str(tmp_path))[1][1] == 2
    fine = CIFAR100(root=str(tmp_path), fine_label=True)
    assert fine[2][1] == 63
    np.testing.assert_array_equal(fine[0][0].asnumpy(), images[0])


@pytest.mark.filterwarnings("ignore:Ignoring")
def test_image_folder_dataset(tmp_path):
    red = np.zeros((4, 6, 3), np.uint8)
    red[..., 0] = 200
    for cls, colours in (("cat", [red, red + 10]), ("dog", [red + 50])):
        (tmp_path / cls).mkdir()
        for i, img in enumerate(colours):
            PIL.fromarray(img).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "README").write_text("stray file")

    with pytest.warns(UserWarning, match="Ignoring .*README, which is not a directory"):
        ds = ImageFolderDataset(str(tmp_path))
    assert ds.synsets == ["cat", "dog"]
    assert [(os.path.basename(p), l) for p, l in ds.items] == [("0.png", 0), ("1.png", 0), ("0.png", 1)]
    img, label = ds[2]
    assert label == 1 and img.shape == (4, 6, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img.asnumpy(), red + 50)
    gray, _ = ImageFolderDataset(str(tmp_path), flag=0)[0]
    assert gray.shape == (4, 6, 1)
    flipped = ImageFolderDataset(str(tmp_path), transform=lambda d, l: (d.shape, l * 10))
    assert flipped[2] == ((4, 6, 3), 10)
