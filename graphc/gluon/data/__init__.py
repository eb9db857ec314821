"""gluon.data: datasets, samplers and the DataLoader (MXNet 1.x's names and behaviour), and
`vision` (MNIST, CIFAR, image folders, image transforms)."""
from __future__ import annotations

import importlib

from .dataset import Dataset, SimpleDataset, ArrayDataset  # noqa: F401
from .sampler import (Sampler, SequentialSampler, RandomSampler, FilterSampler,  # noqa: F401
                      BatchSampler, IntervalSampler, SplitSampler)
from .dataloader import DataLoader, default_batchify_fn, default_mp_batchify_fn  # noqa: F401
from .record_dataset import RecordFileDataset  # noqa: F401
from . import dataset, sampler, dataloader  # noqa: F401


def __getattr__(name):
    # vision imports Pillow lazily, but is loaded on first use to keep `import graphc` light
    if name == "vision":
        module = importlib.import_module(".vision", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'graphc.gluon.data' has no attribute {name!r}")
