"""gluon.model_zoo.vision: MXNet 1.x's image classification networks.

`get_model(name, **kwargs)` takes every name MXNet 1.9 accepts (resnet18_v1 ... resnet152_v2,
vgg11 ... vgg19_bn, alexnet, densenet121/161/169/201, squeezenet1.0/1.1, inceptionv3,
mobilenet1.0/0.75/0.5/0.25, mobilenetv2_1.0/0.75/0.5/0.25); keywords: classes, thumbnail
(resnets), pretrained, ctx, root. The constructor functions (resnet18_v1(...)) are here too.
"""
from __future__ import annotations

# the modules first: `from .alexnet import *` then rebinds `alexnet` to the function, as in MXNet
from . import alexnet as _alexnet, densenet as _densenet, inception as _inception, mobilenet as _mobilenet
from . import resnet as _resnet, squeezenet as _squeezenet, vgg as _vgg
from .alexnet import *  # noqa: F401,F403
from .densenet import *  # noqa: F401,F403
from .inception import *  # noqa: F401,F403
from .mobilenet import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .squeezenet import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from ._common import HybridConcurrent  # noqa: F401

_models = {
    "resnet18_v1": _resnet.resnet18_v1, "resnet34_v1": _resnet.resnet34_v1, "resnet50_v1": _resnet.resnet50_v1,
    "resnet101_v1": _resnet.resnet101_v1, "resnet152_v1": _resnet.resnet152_v1,
    "resnet18_v2": _resnet.resnet18_v2, "resnet34_v2": _resnet.resnet34_v2, "resnet50_v2": _resnet.resnet50_v2,
    "resnet101_v2": _resnet.resnet101_v2, "resnet152_v2": _resnet.resnet152_v2,
    "vgg11": _vgg.vgg11, "vgg13": _vgg.vgg13, "vgg16": _vgg.vgg16, "vgg19": _vgg.vgg19,
    "vgg11_bn": _vgg.vgg11_bn, "vgg13_bn": _vgg.vgg13_bn, "vgg16_bn": _vgg.vgg16_bn, "vgg19_bn": _vgg.vgg19_bn,
    "alexnet": _alexnet.alexnet,
    "densenet121": _densenet.densenet121, "densenet161": _densenet.densenet161,
    "densenet169": _densenet.densenet169, "densenet201": _densenet.densenet201,
    "squeezenet1.0": _squeezenet.squeezenet1_0, "squeezenet1.1": _squeezenet.squeezenet1_1,
    "inceptionv3": _inception.inception_v3,
    "mobilenet1.0": _mobilenet.mobilenet1_0, "mobilenet0.75": _mobilenet.mobilenet0_75,
    "mobilenet0.5": _mobilenet.mobilenet0_5, "mobilenet0.25": _mobilenet.mobilenet0_25,
    "mobilenetv2_1.0": _mobilenet.mobilenet_v2_1_0, "mobilenetv2_0.75": _mobilenet.mobilenet_v2_0_75,
    "mobilenetv2_0.5": _mobilenet.mobilenet_v2_0_5, "mobilenetv2_0.25": _mobilenet.mobilenet_v2_0_25,
}


def get_model(name, **kwargs):
    """The network called `name` (case-insensitive), built with kwargs (classes, thumbnail,
    pretrained, ctx, root, prefix)."""
    key = name.lower()
    if key not in _models:
        raise ValueError("Model %s is not supported. Available options are\n\t%s"
                         % (name, "\n\t".join(sorted(_models))))
    return _models[key](**kwargs)


__all__ = ["get_model"] + sorted(set(_alexnet.__all__ + _densenet.__all__ + _inception.__all__ +
                                     _mobilenet.__all__ + _resnet.__all__ + _squeezenet.__all__ + _vgg.__all__))
