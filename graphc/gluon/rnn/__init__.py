"""gluon.rnn: recurrent layers (RNN, LSTM, GRU over the fused `RNN` operator) and cells
(one step at a time, `unroll` for sequences), with MXNet 1.9's names and parameters."""
from .rnn_cell import *  # noqa: F401,F403
from .rnn_layer import *  # noqa: F401,F403
