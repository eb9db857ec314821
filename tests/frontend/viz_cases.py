"""The networks the viz tests draw and tabulate, written once for both libraries: run as
`python viz_cases.py mxnet` under MXNet 1.9.1 it prints MXNet's print_summary tables and
plot_network DOT sources as JSON (what tests/frontend/viz_mxnet_expected.json records);
imported by test_viz.py it gives graphc's."""
import contextlib
import io
import json
import os
import sys

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "fixtures", "mxnet")


def mlp(mx):
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(data, num_hidden=128, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    return mx.sym.FullyConnected(net, num_hidden=10, name="fc2")


def cnn(mx):
    data = mx.sym.var("data")
    c = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, pad=(1, 1), name="conv1")
    c = mx.sym.BatchNorm(c, name="bn1")
    c = mx.sym.Activation(c, act_type="relu", name="relu1")
    c = mx.sym.Pooling(c, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    c2 = mx.sym.Convolution(c, kernel=(1, 1), num_filter=8, no_bias=True, num_group=2, name="conv2")
    c = mx.sym.elemwise_add(c, c2, name="add1")
    c = mx.sym.Flatten(c, name="flat")
    c = mx.sym.FullyConnected(c, num_hidden=10, name="fc")
    return mx.sym.LeakyReLU(c, act_type="elu", name="elu")


def _summary(mx, sym, **kw):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        mx.viz.print_summary(sym, **kw)
    return buf.getvalue()


def summaries(mx) -> dict:
    out = {
        "mlp": _summary(mx, mlp(mx), shape={"data": (1, 784)}),
        "mlp without shapes": _summary(mx, mlp(mx)),
        "cnn": _summary(mx, cnn(mx), shape={"data": (2, 3, 8, 8)}, line_length=100),
        "cnn, absolute positions": _summary(mx, cnn(mx), shape={"data": (2, 3, 8, 8)}, line_length=70,
                                            positions=[25, 45, 55, 70]),
    }
    shapes = {"mlp": (4, 64), "cnn": (2, 3, 16, 16), "lstm": None}   # (MXNet's table fails on the LSTM with shapes)
    for name, shape in shapes.items():
        path = os.path.join(FIXTURES, f"{name}-symbol.json")
        if os.path.exists(path):
            sym = mx.sym.load(path)
            out[f"{name} file"] = _summary(mx, sym, shape={"data": shape}) if shape else _summary(mx, sym)
    return out


def dot_sources(mx) -> dict:
    return {
        "mlp": mx.viz.plot_network(mlp(mx), shape={"data": (1, 784)}).source,
        "cnn": mx.viz.plot_network(cnn(mx), shape={"data": (2, 3, 8, 8)}, dtype={"data": "float32"},
                                   hide_weights=False, title="cnn").source,
        "cnn, oval nodes": mx.viz.plot_network(cnn(mx), node_attrs={"shape": "oval", "fixedsize": "false"}).source,
        "cnn, dtypes only": mx.viz.plot_network(cnn(mx), dtype={"data": "float32"}).source,
    }


if __name__ == "__main__":
    module = __import__(sys.argv[1] if len(sys.argv) > 1 else "mxnet")
    json.dump({"summaries": summaries(module), "dot": dot_sources(module)}, sys.stdout, indent=1, sort_keys=True)
