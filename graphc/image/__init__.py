"""mx.image: image decoding, resizing, cropping and augmentation on HWC NDArrays (MXNet 1.9.1's
API on Pillow), and ImageIter.

    codec.py       bytes <-> arrays (the only Pillow decoding/encoding)
    cv_resize.py   OpenCV's bilinear resize, bit for bit (what MXNet's C++ pipeline uses)
    functions.py   imread, imdecode, imresize, crops, color_normalize, borders, rotation
    augmenters.py  the Augmenter classes and CreateAugmenter
    image_iter.py  ImageIter (.rec / .lst / list -> NCHW batches)
    detection.py   box-aware augmenters, CreateDetAugmenter, ImageDetIter (mx.image.det)
    im2rec.py      tools/im2rec.py's listing and packing, for `graphc im2rec`
"""
from __future__ import annotations

from .functions import (imread, imdecode, imencode, imresize, resize_short, scale_down, fixed_crop,  # noqa: F401
                        center_crop, random_crop, random_size_crop, color_normalize, copyMakeBorder,
                        imrotate, random_rotate)
from .augmenters import (Augmenter, SequentialAug, RandomOrderAug, ResizeAug, ForceResizeAug,  # noqa: F401
                         RandomCropAug, RandomSizedCropAug, CenterCropAug, BrightnessJitterAug,
                         ContrastJitterAug, SaturationJitterAug, HueJitterAug, ColorJitterAug, LightingAug,
                         ColorNormalizeAug, RandomGrayAug, HorizontalFlipAug, CastAug, CreateAugmenter)
from .image_iter import ImageIter  # noqa: F401
from .detection import (DetAugmenter, DetBorrowAug, DetRandomSelectAug, DetHorizontalFlipAug,  # noqa: F401
                        DetRandomCropAug, DetRandomPadAug, CreateMultiRandCropAugmenter, CreateDetAugmenter,
                        ImageDetIter)
from . import detection  # noqa: F401
det = detection      # MXNet's short name: mx.image.det.CreateDetAugmenter
