"""infer_shape from the data alone for Deconvolution, LayerNorm, InstanceNorm, GroupNorm and RNN
(their weights' shapes follow from the data, as FullyConnected's and Convolution's do). Expected
shapes were recorded from MXNet 1.9.1 running the same symbols."""
import pytest

import graphc as mx

S = mx.sym

CASES = {
    "deconv": (lambda d: S.Deconvolution(d, kernel=(3, 3), num_filter=4, stride=(2, 2), pad=(1, 1), adj=(1, 1),
                                         name="dc"), (2, 3, 5, 5), [(2, 3, 5, 5), (3, 4, 3, 3)], [(2, 4, 10, 10)]),
    "deconv_bias_groups": (lambda d: S.Deconvolution(d, kernel=(2, 2), num_filter=4, num_group=2, no_bias=False,
                                                     name="dc"), (2, 4, 5, 5), [(2, 4, 5, 5), (4, 2, 2, 2), (4,)],
                           [(2, 4, 6, 6)]),
    "deconv1d": (lambda d: S.Deconvolution(d, kernel=(3,), num_filter=2, name="dc"), (2, 3, 5),
                 [(2, 3, 5), (3, 2, 3)], [(2, 2, 7)]),
    "deconv_nhwc": (lambda d: S.Deconvolution(d, kernel=(3, 3), num_filter=4, layout="NHWC", name="dc"),
                    (2, 5, 5, 3), [(2, 5, 5, 3), (3, 3, 3, 4)], [(2, 7, 7, 4)]),
    "layernorm": (lambda d: S.LayerNorm(d, name="ln"), (2, 3, 5), [(2, 3, 5), (5,), (5,)], [(2, 3, 5)]),
    "layernorm_axis1": (lambda d: S.LayerNorm(d, axis=1, name="ln"), (2, 3, 5), [(2, 3, 5), (3,), (3,)],
                        [(2, 3, 5)]),
    "instancenorm": (lambda d: S.InstanceNorm(d, name="in"), (2, 3, 5, 5), [(2, 3, 5, 5), (3,), (3,)],
                     [(2, 3, 5, 5)]),
    "groupnorm": (lambda d: S.GroupNorm(d, num_groups=3, name="gn"), (2, 6, 5, 5), [(2, 6, 5, 5), (3,), (3,)],
                  [(2, 6, 5, 5)]),
    "rnn_lstm_2_layers": (lambda d: S.RNN(d, state_size=4, num_layers=2, mode="lstm", name="r"), (7, 2, 3),
                          [(7, 2, 3), (304,), (2, 2, 4), (2, 2, 4)], [(7, 2, 4)]),
    "rnn_gru_bidirectional": (lambda d: S.RNN(d, state_size=4, num_layers=1, mode="gru", bidirectional=True,
                                              name="r"), (7, 2, 3), [(7, 2, 3), (216,), (2, 2, 4)], [(7, 2, 8)]),
    "rnn_tanh": (lambda d: S.RNN(d, state_size=4, num_layers=1, mode="rnn_tanh", name="r"), (7, 2, 3),
                 [(7, 2, 3), (36,), (1, 2, 4)], [(7, 2, 4)]),
    "rnn_lstm_projection": (lambda d: S.RNN(d, state_size=4, num_layers=1, mode="lstm", projection_size=2, name="r"),
                            (7, 2, 3), [(7, 2, 3), (120,), (1, 2, 2), (1, 2, 4)], [(7, 2, 2)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_weights_are_inferred_from_the_data_as_mxnet_does(name):
    build, data_shape, arg_shapes, out_shapes = CASES[name]
    out = build(S.var("data"))
    args, outs, aux = out.infer_shape(data=data_shape)
    assert args == arg_shapes and outs == out_shapes and aux == []


def test_inferred_shapes_bind_and_run():
    out = S.LayerNorm(S.Deconvolution(S.var("data"), kernel=(2, 2), num_filter=3, name="dc"), name="ln")
    ex = out.simple_bind(mx.cpu(), data=(1, 2, 3, 3))
    assert ex.forward()[0].shape == (1, 3, 4, 4)
