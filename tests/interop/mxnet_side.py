"""Run inside Apache MXNet 1.9.1's own Python (a subprocess of the interop tests):

    python mxnet_side.py make NAME SIZE OUTDIR     -> OUTDIR/NAME.params (save_parameters),
                                                     OUTDIR/mx-symbol.json + mx-0000.params (export),
                                                     OUTDIR/io.npz (input, output)
    python mxnet_side.py run SYMBOL PARAMS INPUT.npz OUT.npz   -> runs SymbolBlock.imports on input
"""
import sys

import mxnet as mx
import numpy as np


def make(name, size, out):
    mx.random.seed(0)
    net = mx.gluon.model_zoo.vision.get_model(name)
    net.initialize(mx.init.Xavier())
    x = np.random.RandomState(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    net.hybridize()
    y = net(mx.nd.array(x)).asnumpy()
    net.save_parameters(f"{out}/{name}.params")
    net.export(f"{out}/mx")
    np.savez(f"{out}/io.npz", input=x, output=y)


def run(symbol, params, inp, out):
    x = np.load(inp)["input"]
    block = mx.gluon.SymbolBlock.imports(symbol, ["data"], params)
    np.savez(out, output=block(mx.nd.array(x)).asnumpy())


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        run(*sys.argv[2:6])
