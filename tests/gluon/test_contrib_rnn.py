"""gluon.contrib.rnn against Apache MXNet 1.9.1 (recorded answers, live where MXNet's venv
exists; cases in gluon_contrib_cases.py: the nine convolutional cells, LSTMPCell and
VariationalDropoutCell unrolled, eager and hybridized, with parameter names, prefixes and
reprs), and what MXNet cannot check: dropout masks shared along time, channels-last layouts,
valid_length, and the cells' errors."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd
from graphc.gluon import rnn
from graphc.gluon.contrib import rnn as crnn
from graphc.ops.errors import GraphcError

import gluon_contrib_cases as cases

SECTION = "rnn"


@pytest.mark.parametrize("mode,case", cases.recorded_cases(SECTION))
def test_graphc_matches_recorded_mxnet(mode, case):
    cases.assert_same(f"{mode}.{case}", cases.graphc_answers(SECTION, mode)[case], cases.recorded(SECTION)[mode][case])


def test_every_case_is_recorded():
    for mode in cases.MODES:
        assert sorted(cases.graphc_answers(SECTION, mode)) == sorted(cases.recorded(SECTION)[mode])


@pytest.mark.skipif(not cases.HAVE_MXNET, reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers():
    live = cases.live_mxnet(SECTION)
    for mode in cases.MODES:
        cases.assert_same(mode, cases.recorded(SECTION)[mode], live[mode])


class _Echo(rnn.HybridRecurrentCell):
    """A cell whose output is its input: what a dropout wrapper does to it shows directly."""

    def state_info(self, batch_size=0):
        return [{"shape": (batch_size, 6), "__layout__": "NC"}]

    def hybrid_forward(self, F, inputs, states):
        return inputs, states


@pytest.mark.parametrize("drop_states", [0.0, 0.5])
def test_variational_dropout_uses_one_mask_for_every_step_of_a_sequence(drop_states):
    cell = crnn.VariationalDropoutCell(_Echo(), drop_inputs=0.5, drop_states=drop_states, drop_outputs=0.3)
    x = mx.nd.ones((4, 5, 6))
    with autograd.record():
        first, _ = cell.unroll(5, x, merge_outputs=True)
        second, _ = cell.unroll(5, x, merge_outputs=True)
    kept = first.asnumpy() != 0
    assert (kept == kept[:, :1, :]).all(), "the mask changed between time steps"
    assert 0 < kept.mean() < 1
    values = first.asnumpy()[kept]
    np.testing.assert_allclose(values, 1 / (0.5 * 0.7), rtol=1e-6)      # scaled by both keep rates
    assert (second.asnumpy() != 0).tolist() != kept.tolist(), "a new sequence must draw new masks"
    step_by_step = crnn.VariationalDropoutCell(_Echo(), drop_inputs=0.5)
    with autograd.record():
        outs, _ = step_by_step.unroll(5, x, merge_outputs=False)
    masks = [o.asnumpy() != 0 for o in outs]
    assert all((m == masks[0]).all() for m in masks)


def test_plain_dropout_cell_draws_a_mask_per_step_which_the_variational_one_does_not():
    cell = rnn.DropoutCell(0.5)
    with autograd.record():
        out, _ = cell.unroll(5, mx.nd.ones((4, 5, 6)), merge_outputs=True)
    kept = out.asnumpy() != 0
    assert not (kept == kept[:, :1, :]).all()


def test_variational_dropout_masks_the_padded_steps_with_valid_length():
    base = rnn.GRUCell(3, input_size=2)
    cell = crnn.VariationalDropoutCell(base, drop_outputs=0.5)
    cell.initialize()
    x = mx.nd.array(np.random.default_rng(0).normal(size=(2, 4, 2)).astype(np.float32))
    out, _ = cell.unroll(4, x, merge_outputs=True, valid_length=mx.nd.array([2, 4]))   # inference: no dropout
    base._modified = False
    full, _ = base.unroll(4, x, merge_outputs=True)
    out, full = out.asnumpy(), full.asnumpy()
    assert (out[0, 2:] == 0).all()
    np.testing.assert_allclose(out[0, :2], full[0, :2], rtol=1e-6)
    np.testing.assert_allclose(out[1], full[1], rtol=1e-6)


def _nchw_to_nhwc_weight(w):
    return np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1)))


def test_conv_lstm_channels_last_computes_what_channels_first_does():
    first = crnn.Conv2DLSTMCell((3, 5, 4), 2, i2h_kernel=3, h2h_kernel=3, i2h_pad=1)
    last = crnn.Conv2DLSTMCell((5, 4, 3), 2, i2h_kernel=3, h2h_kernel=3, i2h_pad=1, conv_layout="NHWC")
    first.initialize(mx.init.Uniform(0.5))
    last.initialize()
    for name in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias"):
        value = getattr(first, name).data().asnumpy()
        getattr(last, name).set_data(_nchw_to_nhwc_weight(value) if value.ndim == 4 else value)
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 5, 4)).astype(np.float32)
    out_first, states_first = first.unroll(3, mx.nd.array(x), merge_outputs=True)
    out_last, states_last = last.unroll(3, mx.nd.array(np.transpose(x, (0, 1, 3, 4, 2))), merge_outputs=True)
    np.testing.assert_allclose(np.transpose(out_last.asnumpy(), (0, 1, 4, 2, 3)), out_first.asnumpy(), rtol=1e-5,
                               atol=1e-6)
    assert states_last[1].shape == (2, 5, 4, 2)


def test_conv_cell_state_shape_follows_the_i2h_convolution():
    cell = crnn.Conv1DGRUCell((4, 10), 3, i2h_kernel=3, h2h_kernel=5, i2h_dilate=2)
    assert cell.state_info(7) == [{"shape": (7, 3, 6), "__layout__": "NCW"}]
    assert cell.h2h_weight.shape == (9, 3, 5)


def test_conv_cells_refuse_even_h2h_kernels_and_wrong_ranks():
    with pytest.raises(GraphcError, match="h2h_kernel must be odd"):
        crnn.Conv2DRNNCell((3, 5, 5), 2, i2h_kernel=3, h2h_kernel=(3, 2))
    with pytest.raises(GraphcError, match="i2h_kernel must be an int or 3 ints"):
        crnn.Conv3DLSTMCell((3, 5, 5, 5), 2, i2h_kernel=(3, 3), h2h_kernel=3)


def test_lstmp_infers_its_input_size_and_unrolls_in_tnc():
    cell = crnn.LSTMPCell(6, 2)
    cell.initialize()
    out, (r, c) = cell.unroll(3, mx.nd.ones((3, 4, 5)), layout="TNC", merge_outputs=True)
    assert out.shape == (3, 4, 2) and r.shape == (4, 2) and c.shape == (4, 6)
    assert cell.i2h_weight.shape == (24, 5)
    np.testing.assert_allclose(out.asnumpy()[-1], r.asnumpy())
