"""W5 against W5b (issue 14: "W5b within 10% of W5"): the same seeded 2-layer LSTM language-model
training step without and with MXNet word_language_model's dropout 0.5 (embedding output,
between the LSTM layers, before the decoder). The two are timed in alternating blocks, so a
machine shared with other work slows both alike; prints steps/s of each and the ratio.

    .venv/bin/python bench/w5b_dropout_ab.py [--blocks 6] [--steps 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "systems"))
import _common as C                 # noqa: E402
import graphc_w                     # noqa: E402
from graphc import autograd, gluon, nd      # noqa: E402
from graphc.gluon import nn         # noqa: E402
from graphc.runtime.lower import HostStep   # noqa: E402


class LstmLMDropout(gluon.HybridBlock):
    def __init__(self, p, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.encoder = nn.Embedding(C.W5_VOCAB, C.W5_EMBED)
            self.drop_in = nn.Dropout(p)
            self.rnn = gluon.rnn.LSTM(C.W5_HIDDEN, num_layers=C.W5_LAYERS, input_size=C.W5_EMBED, dropout=p)
            self.drop_out = nn.Dropout(p)
            self.decoder = nn.Dense(C.W5_VOCAB, in_units=C.W5_HIDDEN, flatten=False)

    def hybrid_forward(self, F, x):
        return self.decoder(self.drop_out(self.rnn(self.drop_in(self.encoder(x)))))


def make_w5b():
    """W5b with W5's seeded weights (copied in parameter order, shapes checked)."""
    ref = graphc_w.make_lm()
    net = LstmLMDropout(0.5)
    net.initialize()
    for (name, dst), src in zip(net.collect_params().items(), ref.collect_params().values()):
        if dst.shape != src.shape:
            raise ValueError(f"W5b parameter {name}: shape {dst.shape} vs W5's {src.shape}")
        dst.set_data(src.data())
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def stepper(net):
    xn, yn = C.lstm_lm_data()
    x, y = nd.array(xn.astype(np.float32)), nd.array(yn.reshape(-1).astype(np.float32))
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": C.W5_LR})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    n_tok = C.W5_SEQ * C.W5_BATCH

    def step():
        with autograd.record():
            loss = loss_fn(net(x).reshape((-3, -1)), y)
        loss.backward()
        gluon.utils.clip_global_norm([p.grad() for p in params], C.W5_CLIP * n_tok)
        trainer.step(n_tok)
        return float(loss.asnumpy().mean())
    return step


def host_ops(net) -> set:
    return {s.node.op for fw, bw, *_ in net._cached_op.last.train.values() for p in (fw, bw)
            for s in p.steps if isinstance(s, HostStep)}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--blocks", type=int, default=6)
    a.add_argument("--steps", type=int, default=5)
    args = a.parse_args()
    nets = {"W5": graphc_w.make_lm(), "W5b": make_w5b()}
    steps = {k: stepper(n) for k, n in nets.items()}
    for k, s in steps.items():
        s()
        s()       # compiled and warm
        print(f"{k}: host steps in the training programs: {sorted(host_ops(nets[k])) or 'none'}")
    times = {k: [] for k in steps}
    for _ in range(args.blocks):
        for k, s in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s()
            times[k].append((time.perf_counter() - t0) / args.steps)
    rate = {k: 1.0 / float(np.median(v)) for k, v in times.items()}
    for k, r in rate.items():
        print(f"{k}: {r:.2f} steps/s (median of {args.blocks} blocks of {args.steps} steps; "
              f"blocks {', '.join(f'{1 / t:.2f}' for t in times[k])})")
    print(f"W5b / W5 = {rate['W5b'] / rate['W5']:.3f}")


if __name__ == "__main__":
    main()
