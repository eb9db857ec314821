"""gluon.model_zoo: MXNet 1.x's predefined networks (`vision.get_model('resnet18_v1')`) with
the same block structure and parameter names, so MXNet-trained parameter files load.
Pretrained weights come from local files only (model_store.get_model_file)."""
from . import model_store, vision  # noqa: F401
from .vision import get_model  # noqa: F401
