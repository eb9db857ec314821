"""Vision datasets (`gluon.data.vision`): MNIST, FashionMNIST, CIFAR10, CIFAR100 from their
standard binary files, and ImageFolderDataset over a folder of class subfolders.

graphc never downloads: the files must already be in `root` (by default where MXNet keeps them,
$MXNET_HOME/datasets/<name>, MXNET_HOME defaulting to ~/.mxnet), and a missing file is an
error that names the folder and the files to put there. Samples are MXNet's: an HWC uint8
NDArray and an int32 label; `transform(data, label)` sees both.
"""
from __future__ import annotations

import gzip
import os
import warnings

import numpy as np

from ....ndarray import NDArray
from ..dataset import Dataset
from . import _image

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "ImageFolderDataset"]


def _data_dir():
    return os.getenv("MXNET_HOME", os.path.join(os.path.expanduser("~"), ".mxnet"))


class _DownloadedDataset(Dataset):
    """Base of the file-backed datasets: `_get_data()` fills `_data` (an NDArray of images) and
    `_label` (a numpy array of labels)."""

    def __init__(self, root, transform):
        super().__init__()
        self._transform = transform
        self._data = None
        self._label = None
        self._root = os.path.expanduser(root)
        self._get_data()

    def __getitem__(self, idx):
        data = NDArray(self._data._data[idx].copy(), self._data.context)
        label = self._label[idx]
        if self._transform is not None:
            return self._transform(data, label)
        return data, label

    def __len__(self):
        return len(self._label)

    def _get_data(self):
        raise NotImplementedError

    def _missing(self, names, folder=None, how=""):
        folder = folder or self._root
        listing = "\n".join(f"    {n}" for n in names)
        return FileNotFoundError(
            f"{type(self).__name__}: data files not found in {folder!r}. graphc does not download "
            f"datasets; put these files in that folder{how}:\n{listing}\n"
            f"(or pass root=<folder that holds them>)")


def _open_maybe_gz(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _read_idx(path, kind):
    """Read an IDX file (LeCun's MNIST format): big-endian magic (0, 0, dtype 0x08 = ubyte,
    number of dimensions), one big-endian uint32 per dimension, then the data."""
    with _open_maybe_gz(path) as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX {kind} file (magic bytes {raw[:4]!r})")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {dims} ({int(np.prod(dims))} bytes) but the file "
                         f"holds {data.size} bytes of data")
    return data.reshape(dims)


class MNIST(_DownloadedDataset):
    """MNIST handwritten digits: samples are ((28, 28, 1) uint8 NDArray, int32 label).

    root holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz
    and t10k-labels-idx1-ubyte.gz (or the same names without .gz). transform(data, label), if
    given, is applied to every sample."""

    _files = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

    def __init__(self, root=os.path.join(_data_dir(), "datasets", "mnist"), train=True, transform=None):
        self._train = train
        super().__init__(root, transform)

    def _find(self, name):
        for candidate in (name + ".gz", name):
            path = os.path.join(self._root, candidate)
            if os.path.isfile(path):
                return path
        return None

    def _get_data(self):
        names = self._files[bool(self._train)]
        paths = [self._find(n) for n in names]
        if None in paths:
            raise self._missing([n + ".gz" for n in names], how=" (gzipped, or uncompressed without .gz)")
        images = _read_idx(paths[0], "image")
        labels = _read_idx(paths[1], "label")
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{type(self).__name__}: {paths[0]} holds images of shape {images.shape} and "
                             f"{paths[1]} labels of shape {labels.shape}; expected (N, rows, cols) and (N,)")
        self._data = NDArray(np.ascontiguousarray(images[:, :, :, None]))
        self._label = labels.astype(np.int32)


class FashionMNIST(MNIST):
    """Fashion-MNIST clothing images: the same files and format as MNIST, in a different root."""

    def __init__(self, root=os.path.join(_data_dir(), "datasets", "fashion-mnist"), train=True, transform=None):
        super().__init__(root, train, transform)


class CIFAR10(_DownloadedDataset):
    """CIFAR-10 (binary version): samples are ((32, 32, 3) uint8 NDArray, int32 label).

    root holds cifar-10-batches-bin/ with data_batch_1.bin ... data_batch_5.bin and
    test_batch.bin (the folder cifar-10-binary.tar.gz unpacks to; the .bin files directly in
    root work too). Each record is one label byte and 3072 pixel bytes (R, G, B planes of 32x32)."""

    _folder = "cifar-10-batches-bin"
    _train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    _test_files = ["test_batch.bin"]
    _label_bytes = 1

    def __init__(self, root=os.path.join(_data_dir(), "datasets", "cifar10"), train=True, transform=None):
        self._train = train
        super().__init__(root, transform)

    def _read_batch(self, path):
        with open(path, "rb") as f:
            raw = np.frombuffer(f.read(), dtype=np.uint8)
        record = self._label_bytes + 3072
        if raw.size % record:
            raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR records")
        raw = raw.reshape(-1, record)
        images = raw[:, self._label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return images, raw[:, self._label_index()].astype(np.int32)

    def _label_index(self):
        return 0

    def _get_data(self):
        names = self._train_files if self._train else self._test_files
        folder = next((d for d in (os.path.join(self._root, self._folder), self._root)
                       if all(os.path.isfile(os.path.join(d, n)) for n in names)), None)
        if folder is None:
            raise self._missing(names, os.path.join(self._root, self._folder))
        parts = [self._read_batch(os.path.join(folder, n)) for n in names]
        self._data = NDArray(np.ascontiguousarray(np.concatenate([p[0] for p in parts])))
        self._label = np.concatenate([p[1] for p in parts])


class CIFAR100(CIFAR10):
    """CIFAR-100 (binary version): root holds cifar-100-binary/ with train.bin and test.bin,
    records of a coarse label byte, a fine label byte and 3072 pixel bytes. fine_label chooses
    the 100 fine classes over the 20 coarse ones."""

    _folder = "cifar-100-binary"
    _train_files = ["train.bin"]
    _test_files = ["test.bin"]
    _label_bytes = 2

    def __init__(self, root=os.path.join(_data_dir(), "datasets", "cifar100"), fine_label=False, train=True,
                 transform=None):
        self._fine_label = fine_label
        super().__init__(root, train, transform)

    def _label_index(self):
        return 1 if self._fine_label else 0


class ImageFolderDataset(Dataset):
    """Images in class folders: root/<class name>/<image>.{jpg,jpeg,png}. Class labels number
    the subfolders in sorted order; `synsets` lists their names and `items` the
    (path, label) pairs. flag=1 loads 3-channel RGB, flag=0 one gray channel, as HWC uint8
    NDArrays. transform(data, label), if given, is applied to every sample."""

    def __init__(self, root, flag=1, transform=None):
        self._root = os.path.expanduser(root)
        self._flag = flag
        self._transform = transform
        self._exts = [".jpg", ".jpeg", ".png"]
        self._list_images(self._root)

    def _list_images(self, root):
        self.synsets = []
        self.items = []
        if not os.path.isdir(root):
            raise FileNotFoundError(f"ImageFolderDataset: {root!r} is not a directory")
        for folder in sorted(os.listdir(root)):
            path = os.path.join(root, folder)
            if not os.path.isdir(path):
                warnings.warn(f"Ignoring {path}, which is not a directory.", stacklevel=3)
                continue
            label = len(self.synsets)
            self.synsets.append(folder)
            for filename in sorted(os.listdir(path)):
                filename = os.path.join(path, filename)
                ext = os.path.splitext(filename)[1]
                if ext.lower() not in self._exts:
                    warnings.warn(f"Ignoring {filename} of type {ext}. Only support {', '.join(self._exts)}",
                                  stacklevel=3)
                    continue
                self.items.append((filename, label))

    def __getitem__(self, idx):
        path, label = self.items[idx]
        img = NDArray(_image.imread(path, self._flag))
        if self._transform is not None:
            return self._transform(img, label)
        return img, label

    def __len__(self):
        return len(self.items)
