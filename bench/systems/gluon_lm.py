"""W5/W5b's LSTM language model and its training step through the Gluon API, one source for
graphc and MXNet 1.9.1 (`mx` is the package: graphc imported as mx, or mxnet), as gluon_w7_9.py
is for W7-W9."""
from __future__ import annotations

import numpy as np

import _common as C


def make_lm(mx, dropout=0.0):
    """W5's seeded LSTM LM, hybridized; dropout > 0 gives W5b, MXNet word_language_model's
    placement: on the embedding output, between the LSTM layers and before the decoder."""
    gluon, nn, nd = mx.gluon, mx.gluon.nn, mx.nd

    class LstmLM(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.encoder = nn.Embedding(C.W5_VOCAB, C.W5_EMBED)
                self.rnn = gluon.rnn.LSTM(C.W5_HIDDEN, num_layers=C.W5_LAYERS,
                                          input_size=C.W5_EMBED, dropout=dropout)
                self.decoder = nn.Dense(C.W5_VOCAB, in_units=C.W5_HIDDEN, flatten=False)
                if dropout:
                    self.drop_in, self.drop_out = nn.Dropout(dropout), nn.Dropout(dropout)

        def hybrid_forward(self, F, x):
            if not dropout:
                return self.decoder(self.rnn(self.encoder(x)))
            return self.decoder(self.drop_out(self.rnn(self.drop_in(self.encoder(x)))))

    net = LstmLM()
    net.initialize(mx.init.Uniform(0.1))
    p = C.lstm_lm_params()
    net.encoder.weight.set_data(nd.array(p["embedding.weight"]))
    net.decoder.weight.set_data(nd.array(p["decoder.weight"]))
    net.decoder.bias.set_data(nd.array(p["decoder.bias"]))
    done = 0
    for name, prm in net.rnn.collect_params().items():
        key = next((k for k in p if name.endswith(k)), None)
        if key is None:
            raise ValueError(f"unexpected LSTM parameter {name}")
        if tuple(prm.shape) != p[key].shape:
            raise ValueError(f"{name}: shape {prm.shape} vs seeded {p[key].shape}")
        prm.set_data(nd.array(p[key]))
        done += 1
    if done != 4 * C.W5_LAYERS:
        raise ValueError(f"{done} LSTM parameters set, expected {4 * C.W5_LAYERS}")
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def lm_stepper(mx, net):
    """(step, losses): step() runs one W5 training step of `net` (forward, summed CE, backward,
    global-norm clip, SGD) and returns (loss, norm); each step's mean loss goes into losses."""
    gluon, nd, autograd = mx.gluon, mx.nd, mx.autograd
    xn, yn = C.lstm_lm_data()
    x, y = nd.array(xn.astype(np.float32)), nd.array(yn.reshape(-1).astype(np.float32))
    params = [p for p in net.collect_params().values() if p.grad_req != "null"]
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": C.W5_LR})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize(static_alloc=True, static_shape=True)
    n_tok = C.W5_SEQ * C.W5_BATCH
    losses = []     # every step's loss, compared across systems in the report

    def step():
        with autograd.record():
            out = net(x)
            loss = loss_fn(out.reshape((-3, -1)), y)    # (seq*batch,) per-position losses
        loss.backward()
        norm = gluon.utils.clip_global_norm([p.grad() for p in params], C.W5_CLIP * n_tok)
        trainer.step(n_tok)
        losses.append(float(loss.asnumpy().mean()))
        return loss, norm
    return step, losses
