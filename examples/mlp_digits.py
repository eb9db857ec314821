"""The main demo: an MXNet-Gluon MLP on the handwritten digits that ship with scikit-learn.

Trains the same network eagerly and hybridized (compiled), compares their step times and
losses, exports the trained model in MXNet's file format, reloads it into a fresh SymbolBlock
and checks the predictions are identical.

    make demo            # or: .venv/bin/python examples/mlp_digits.py
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits

import graphc as mx
from graphc import nd, autograd, gluon
from graphc.gluon import nn

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:        # loaded from its file (the tests): the sibling module is beside it
    sys.path.insert(0, HERE)
from progress import progress  # noqa: E402

BATCH = 64
EPOCHS = 8


def load_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def make_net():
    net = nn.HybridSequential()
    net.add(nn.Dense(512, activation="relu"), nn.Dense(512, activation="relu"), nn.Dense(10))
    return net


def batches(x, y, rng):
    order = rng.permutation(len(x))
    for i in range(0, len(x) - BATCH + 1, BATCH):
        idx = order[i:i + BATCH]
        yield nd.array(x[idx]), nd.array(y[idx])


def train(hybridize: bool, train_set, label: str):
    mx.random.seed(7)
    net = make_net()
    net.initialize(mx.init.Xavier())
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(1)
    losses, step_times = [], []
    steps = EPOCHS * (len(train_set[0]) // BATCH)
    with progress(total=steps, desc=label, unit="step", leave=True) as bar:
        for _ in range(EPOCHS):
            for x, y in batches(*train_set, rng):
                t0 = time.perf_counter()
                with autograd.record():
                    loss = loss_fn(net(x), y)
                loss.backward()
                trainer.step(x.shape[0])
                mean = loss.mean().asscalar()
                step_times.append(time.perf_counter() - t0)
                losses.append(mean)
                bar.set_postfix(loss=f"{mean:.3f}")
                bar.update(1)
    return net, losses, float(np.median(step_times[5:]))


def accuracy(net, x, y):
    metric = mx.metric.Accuracy()
    metric.update([nd.array(y)], [net(nd.array(x))])
    return metric.get()[1]


def main():
    train_set, test_set = load_data()
    print(f"digits: {len(train_set[0])} training and {len(test_set[0])} test images, 8x8 pixels\n")
    eager, eager_losses, eager_step = train(False, train_set, "eager   ")
    net, losses, compiled_step = train(True, train_set, "compiled")
    drift = max(abs(a - b) for a, b in zip(eager_losses, losses))
    print(f"\ntest accuracy: eager {accuracy(eager, *test_set):.4f}, compiled {accuracy(net, *test_set):.4f}")
    ratio = eager_step / compiled_step
    verdict = (f"compiled {ratio:.1f}x faster" if ratio >= 1.1 else f"compiled {1 / ratio:.1f}x slower" if ratio <= 0.9
               else "about even: on a network this small the step is mostly fixed overhead, and eager "
                    "mode compiles a repeated step's backward too")
    print(f"step time (batch {BATCH}, median): eager {eager_step * 1e3:.2f} ms, "
          f"compiled {compiled_step * 1e3:.2f} ms -> {verdict}")
    print(f"largest loss difference eager vs compiled over {len(losses)} steps: {drift:.2e}")

    with tempfile.TemporaryDirectory(prefix="graphc-demo-") as out_dir:     # removed on the way out
        prefix = os.path.join(out_dir, "mlp")
        sym_file, param_file = net.export(prefix, epoch=0)
        print(f"\nexported {os.path.basename(sym_file)} and {os.path.basename(param_file)} "
              f"(MXNet 1.x format) to {out_dir} (a temporary folder)")
        reloaded = gluon.SymbolBlock.imports(sym_file, ["data"], param_file)
    x = nd.array(test_set[0][:16])
    before, after = net(x).asnumpy(), reloaded(x).asnumpy()
    print(f"reloaded predictions: {after.argmax(axis=1).tolist()}")
    print(f"identical to the trained network: {np.array_equal(before, after)}")


if __name__ == "__main__":
    main()
