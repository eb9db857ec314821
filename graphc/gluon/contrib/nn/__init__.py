"""gluon.contrib.nn: Concurrent, HybridConcurrent, Identity, SparseEmbedding, SyncBatchNorm,
PixelShuffle1D/2D/3D (MXNet 1.9's names, parameters and defaults)."""
from .basic_layers import *  # noqa: F401,F403
from .pixel_shuffle import *  # noqa: F401,F403
from .sync_batch_norm import *  # noqa: F401,F403
from . import basic_layers as _basic, pixel_shuffle as _pixel, sync_batch_norm as _sync

__all__ = _basic.__all__ + _pixel.__all__ + _sync.__all__
