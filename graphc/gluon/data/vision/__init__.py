"""gluon.data.vision: image datasets (datasets.py) and image transforms (transforms.py)."""
from __future__ import annotations

from .datasets import MNIST, FashionMNIST, CIFAR10, CIFAR100, ImageFolderDataset  # noqa: F401
from .record_datasets import ImageRecordDataset  # noqa: F401
from . import datasets, transforms  # noqa: F401
