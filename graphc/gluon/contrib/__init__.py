"""gluon.contrib (MXNet 1.9's `mxnet.gluon.contrib`): layers, cells, the Estimator training
loop and data helpers that MXNet shipped outside the core Gluon API. Written over graphc's
Gluon (blocks, rnn cells, Trainer, metrics, DataLoader); it adds no operator and never imports
a backend. MXNet's `contrib.cnn` (deformable convolution) is not provided."""
from . import nn, rnn, data, estimator  # noqa: F401
