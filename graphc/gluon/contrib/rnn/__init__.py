"""gluon.contrib.rnn: convolutional recurrent cells (Conv1D/2D/3D x RNN/LSTM/GRU), LSTMPCell
and VariationalDropoutCell, with MXNet 1.9's names, gate layouts and parameter names. Built on
graphc.gluon.rnn's cells, so `unroll`, containers and modifiers work with them unchanged."""
from .conv_rnn_cell import *  # noqa: F401,F403
from .rnn_cell import *  # noqa: F401,F403
from . import conv_rnn_cell as _conv, rnn_cell as _cells

__all__ = _conv.__all__ + _cells.__all__
