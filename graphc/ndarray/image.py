"""nd.image: MXNet's image operators (`_image_*`, ops/declarations/image_ops.py) under their short
names, on HWC images and NHWC batches: nd.image.to_tensor(img), nd.image.normalize(t, mean, std)..."""
from __future__ import annotations

from ..op_functions import PrefixNamespace
from .ndarray import _NAMESPACE

_IMAGE = PrefixNamespace(_NAMESPACE, "_image_")


def __getattr__(name):
    return getattr(_IMAGE, name)


def __dir__():
    return dir(_IMAGE)
