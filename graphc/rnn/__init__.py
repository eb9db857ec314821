"""mx.rnn: MXNet 1.x's legacy symbolic RNN API (cells that build symbols step by step, for
Module / BucketingModule), kept for scripts written against it.

    base.py        RNNParams, BaseRNNCell, sequence normalisation, deferred begin states
    rnn_cell.py    RNNCell, LSTMCell, GRUCell (and every cell, re-exported)
    fused.py       FusedRNNCell (one RNN operator, packed parameters)
    containers.py  SequentialRNNCell, BidirectionalCell, DropoutCell, Zoneout/Residual modifiers
    conv_cells.py  ConvRNNCell, ConvLSTMCell, ConvGRUCell
    io.py          encode_sentences, BucketSentenceIter
    rnn.py         save/load/do_rnn_checkpoint (weights unpacked per gate on disk)

The Gluon recurrent layers are graphc.gluon.rnn; this package is the older symbolic one."""
from __future__ import annotations

from . import io, rnn, rnn_cell  # noqa: F401
from ..io import DataBatch, DataDesc, DataIter  # noqa: F401  (MXNet's mx.rnn re-exports these too)
from ..model import load_checkpoint, save_checkpoint  # noqa: F401
from .base import BaseRNNCell, RNNParams
from .io import BucketSentenceIter, encode_sentences
from .rnn import do_rnn_checkpoint, load_rnn_checkpoint, rnn_unroll, save_rnn_checkpoint
from .rnn_cell import (BaseConvRNNCell, BidirectionalCell, ConvGRUCell, ConvLSTMCell, ConvRNNCell, DropoutCell,
                       FusedRNNCell, GRUCell, LSTMCell, ModifierCell, ResidualCell, RNNCell, SequentialRNNCell,
                       ZoneoutCell)

__all__ = ["RNNParams", "BaseRNNCell", "RNNCell", "LSTMCell", "GRUCell", "FusedRNNCell", "SequentialRNNCell",
           "BidirectionalCell", "DropoutCell", "ModifierCell", "ZoneoutCell", "ResidualCell", "BaseConvRNNCell",
           "ConvRNNCell", "ConvLSTMCell", "ConvGRUCell", "encode_sentences", "BucketSentenceIter",
           "save_rnn_checkpoint", "load_rnn_checkpoint", "do_rnn_checkpoint", "rnn_unroll"]
