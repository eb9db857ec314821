"""NLP: a 2-layer LSTM word-level language model on Python's own documentation.

The corpus is the text of `pydoc_data/topics.py`, which ships with every CPython (the pages
`help()` shows for keywords and topics: "if", "with", "specialnames", "formatstrings", ...;
Python Software Foundation License). It is English prose with code samples mixed in.

Tokens are lowercase words (identifiers such as `__init__` stay whole), numbers and single
punctuation marks; a run of one repeated mark (the `-----` of reST tables) is one token, cut at
three. Words seen fewer than twice in the training text become <unk>. Each topic ends with an
<eos> token. Topics, not sentences, are split between training and validation (a seeded
shuffle, then whole topics go to validation until it holds 10-15% of the tokens), so validation
text is a page the model never saw.

Model: Embedding -> Dropout -> gluon.rnn.LSTM (2 layers, dropout between them) -> Dropout ->
Dense over the vocabulary, its weight tied to the embedding's (Press & Wolf, 2017; --untied
gives the decoder its own). Training is truncated backpropagation through time: the training
stream is cut into `batch_size` parallel columns, each batch is the next `bptt` steps, and the
LSTM state carries over from one batch to the next but is detached, so gradients stop at the
batch boundary. Gradients are clipped to a global norm with gluon.utils.clip_global_norm; the
optimiser is Adam, its learning rate divided by 4 whenever validation perplexity rises.
Perplexity is exp(mean cross-entropy per token); a unigram model (each token predicted by its
training frequency) is the baseline.

    .venv/bin/python examples/nlp_language_model.py            # 15 epochs
    .venv/bin/python examples/nlp_language_model.py --quick    # seconds, for the smoke test
"""
from __future__ import annotations

import argparse
import collections
import math
import os
import re
import sys
import tempfile
import time

import numpy as np
import pydoc_data.topics

import graphc as mx
from graphc import nd, autograd, gluon
from graphc.gluon import nn, rnn

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:        # loaded from its file (the tests): the sibling module is beside it
    sys.path.insert(0, HERE)
from progress import progress  # noqa: E402

TOKEN = re.compile(r"[a-z_][a-z0-9_]*(?:'[a-z]+)?|[0-9]+|([^\sa-z0-9_])\1*")


# -- corpus ---------------------------------------------------------------------------------------
def tokenize(text):
    tokens = []
    for match in TOKEN.finditer(text.lower()):
        token = match.group(0)
        tokens.append(token[:3] if match.group(1) else token)
    return tokens + ["<eos>"]


def load_corpus(valid_fraction=0.1, seed=0, min_count=2, max_tokens=None):
    """(train ids, valid ids, vocabulary list, validation topic names); topics split whole
    between the two; max_tokens cuts both streams short (before the vocabulary is counted)."""
    topics = pydoc_data.topics.topics
    names = sorted(topics)
    np.random.default_rng(seed).shuffle(names)
    tokenized = {name: tokenize(topics[name]) for name in names}
    total = sum(len(t) for t in tokenized.values())
    valid_names, n_valid = [], 0
    for name in names:
        if n_valid >= valid_fraction * total:
            break
        if n_valid + len(tokenized[name]) <= 1.5 * valid_fraction * total:   # no single giant page
            valid_names.append(name)
            n_valid += len(tokenized[name])
    train_tokens = [t for name in names if name not in valid_names for t in tokenized[name]]
    valid_tokens = [t for name in valid_names for t in tokenized[name]]
    if max_tokens:
        train_tokens, valid_tokens = train_tokens[:max_tokens], valid_tokens[:max_tokens // 2]
    counts = collections.Counter(train_tokens)
    vocab = ["<unk>"] + sorted((w for w, c in counts.items() if c >= min_count and w != "<unk>"),
                               key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    encode = lambda tokens: np.array([index.get(t, 0) for t in tokens], dtype=np.float32)
    return encode(train_tokens), encode(valid_tokens), vocab, valid_names


def batchify(ids, batch_size):
    """A token stream as (steps, batch_size) columns, each column a contiguous piece (TNC layout)."""
    steps = len(ids) // batch_size
    return ids[:steps * batch_size].reshape(batch_size, steps).T.copy()


def segments(columns, bptt, ctx=None, limit=None):
    """(inputs, targets) windows of exactly bptt steps on device ctx (a shorter tail is dropped:
    one shape, one compiled program); at most `limit` of them when given."""
    for k, i in enumerate(range(0, len(columns) - 1 - bptt + 1, bptt)):
        if limit is not None and k >= limit:
            return
        yield nd.array(columns[i:i + bptt], ctx=ctx), nd.array(columns[i + 1:i + 1 + bptt], ctx=ctx)


# -- the model ------------------------------------------------------------------------------------
class LanguageModel(nn.HybridBlock):
    """(tokens (T, N), h, c) -> (scores (T, N, vocab), h, c)."""

    def __init__(self, vocab_size, embed_size, hidden_size, num_layers, dropout, tied, **kwargs):
        super().__init__(**kwargs)
        if tied and embed_size != hidden_size:
            raise ValueError(f"tied weights need embed_size == hidden_size (got {embed_size} and {hidden_size})")
        with self.name_scope():
            self.embedding = nn.Embedding(vocab_size, embed_size, weight_initializer=mx.init.Uniform(0.1))
            self.drop = nn.Dropout(dropout)
            self.lstm = rnn.LSTM(hidden_size, num_layers, dropout=dropout, input_size=embed_size)
            shared = self.embedding.params if tied else None
            self.decoder = nn.Dense(vocab_size, flatten=False, in_units=hidden_size, params=shared)

    def hybrid_forward(self, F, tokens, h, c):
        out, (h, c) = self.lstm(self.drop(self.embedding(tokens)), [h, c])
        return self.decoder(self.drop(out)), h, c

    def begin_state(self, batch_size, ctx=None):
        return self.lstm.begin_state(batch_size, ctx=ctx)


# -- training -------------------------------------------------------------------------------------
def train_step(model, trainer, loss_fn, params, x, y, h, c, clip):
    """One truncated-BPTT step; returns (summed loss, new h, new c), the states detached."""
    with autograd.record():
        out, h, c = model(x, h, c)
        loss = loss_fn(out.reshape((-1, out.shape[-1])), y.reshape((-1,)))
    loss.backward()
    grads = [p.grad() for p in params]
    trainer.allreduce_grads()
    # The loss is a sum over T*N tokens and update() divides by T*N, so clip at clip * T*N
    # for a norm of `clip` on the mean gradient (MXNet's word_language_model does the same).
    gluon.utils.clip_global_norm(grads, clip * x.size)
    trainer.update(x.size)
    return loss, h.detach(), c.detach()


def compare_step_times(model, make_trainer, loss_fn, batch, states, steps, clip):
    """Fastest time of a training step eager and hybridized, on the same model and batch (the
    fastest of `steps` is the one least disturbed by other processes). The parameters are put
    back afterwards, so the timing steps do not count as training."""
    with tempfile.TemporaryDirectory(prefix="graphc-lm-") as scratch:   # removed on the way out, errors too
        saved = os.path.join(scratch, "init.params")
        model.save_parameters(saved)
        trainer = make_trainer()
        params = [p for p in model.collect_params().values() if p.grad_req != "null"]

        def timed(n):
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                loss, _, _ = train_step(model, trainer, loss_fn, params, *batch, *states, clip)
                loss.wait_to_read()
                times.append(time.perf_counter() - t0)
            return times

        timed(1)                                          # warm-up: eager allocation paths
        eager = min(timed(steps))
        model.hybridize(static_alloc=True, static_shape=True)
        compile_s = timed(1)[0]                           # first call traces and compiles
        compiled = min(timed(steps))
        model.load_parameters(saved)
    return eager, compiled, compile_s


def perplexity(model, loss_fn, columns, bptt, ctx=None, limit=None):
    h, c = model.begin_state(columns.shape[1], ctx=ctx)
    total, count = 0.0, 0
    for x, y in segments(columns, bptt, ctx, limit):
        out, h, c = model(x, h, c)
        total += float(loss_fn(out.reshape((-1, out.shape[-1])), y.reshape((-1,))).sum().asscalar())
        count += y.size
    return math.exp(total / count)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--size", type=int, default=128, help="embedding and LSTM hidden size")
    parser.add_argument("--dropout", type=float, default=0.4)
    parser.add_argument("--lr", type=float, default=0.005,
                        help="Adam learning rate (divided by 4 when validation perplexity rises)")
    parser.add_argument("--clip", type=float, default=0.25, help="global gradient norm limit")
    parser.add_argument("--untied", action="store_true", help="decoder weight not tied to the embedding")
    parser.add_argument("--no-hybridize", action="store_true", help="train eagerly (no compiled program)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: a small model, 8k training and 4k validation tokens, bptt 10, 2 epochs")
    parser.add_argument("--out-dir", default=None, help="where to export the model (default: a temp dir)")
    parser.add_argument("--gpu", type=int, default=None, metavar="K",
                        help="train on mx.gpu(K) (GRAPHC_CUDA_SIM=1 runs it on the CUDA simulator)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="a smoke run: at most N batches per epoch and per evaluation, no timing comparison")
    args = parser.parse_args(argv)
    ctx = mx.cpu() if args.gpu is None else mx.gpu(args.gpu)
    limit = args.max_steps
    if args.quick:
        args.epochs, args.size, args.bptt, args.lr = min(args.epochs, 2), 32, 10, 0.01
    epochs, size = args.epochs, args.size

    train_ids, valid_ids, vocab, valid_topics = load_corpus(max_tokens=8_000 if args.quick else None)
    print(f"pydoc_data.topics: {len(train_ids)} training and {len(valid_ids)} validation tokens, "
          f"vocabulary {len(vocab)} (<unk> {np.mean(valid_ids == 0):.1%} of validation tokens); "
          f"validation topics: {', '.join(sorted(valid_topics)[:6])}{', ...' if len(valid_topics) > 6 else ''}")
    train_cols = batchify(train_ids, args.batch_size)
    valid_cols = batchify(valid_ids, 10)
    steps_per_epoch = (len(train_cols) - 1) // args.bptt

    mx.random.seed(7)
    model = LanguageModel(len(vocab), size, size, 2, args.dropout, tied=not args.untied, prefix="lm_")
    model.initialize(mx.init.Xavier(), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    make_trainer = lambda: gluon.Trainer(model.collect_params(), "adam", {"learning_rate": args.lr})
    first = next(segments(train_cols, args.bptt, ctx))
    states = model.begin_state(args.batch_size, ctx=ctx)
    model(first[0], *states)                    # finishes deferred initialisation
    n_params = sum(int(np.prod(p.shape)) for p in model.collect_params().values())
    print(f"model: {n_params} parameters, {'tied' if not args.untied else 'untied'} embedding/decoder, "
          f"{steps_per_epoch} steps of {args.bptt}x{args.batch_size} tokens per epoch\n")

    if args.no_hybridize:
        pass
    elif limit is not None:
        model.hybridize(static_alloc=True, static_shape=True)
    else:
        eager, compiled, compile_s = compare_step_times(model, make_trainer, loss_fn, first, states,
                                                        steps=2 if args.quick else 5, clip=args.clip)
        print(f"training step ({args.bptt}x{args.batch_size} tokens, fastest of several): eager {eager * 1e3:.1f} ms, "
              f"hybridized {compiled * 1e3:.1f} ms -> {eager / compiled:.1f}x faster "
              f"(first hybridized call, tracing + compiling: {compile_s:.1f} s)\n")

    trainer = make_trainer()
    params = [p for p in model.collect_params().values() if p.grad_req != "null"]
    best = float("inf")
    for epoch in range(1, epochs + 1):
        h, c = model.begin_state(args.batch_size, ctx=ctx)
        total, count = 0.0, 0
        t0 = time.perf_counter()
        with progress(segments(train_cols, args.bptt, ctx, limit), total=min(steps_per_epoch, limit or steps_per_epoch), desc=f"epoch {epoch}/{epochs}",
                      unit="step", leave=False) as bar:
            for x, y in bar:
                loss, h, c = train_step(model, trainer, loss_fn, params, x, y, h, c, args.clip)
                total += float(loss.sum().asscalar())
                count += y.size
                bar.set_postfix(ppl=f"{math.exp(total / count):.1f}")
        valid_ppl = perplexity(model, loss_fn, valid_cols, args.bptt, ctx, limit)
        if valid_ppl > best:            # no progress on held-out text: smaller steps
            trainer.set_learning_rate(trainer.learning_rate / 4)
        best = min(best, valid_ppl)
        print(f"epoch {epoch:2d}: train perplexity {math.exp(total / count):7.2f}  "
              f"valid perplexity {valid_ppl:7.2f}  lr {trainer.learning_rate:g}  ({time.perf_counter() - t0:.1f} s)")
    print(f"\nvalidation perplexity: {valid_ppl:.2f} (best {best:.2f}; a unigram model scores "
          f"{unigram_perplexity(train_ids, valid_ids, len(vocab)):.1f})")

    if args.no_hybridize:          # export needs a traced graph
        model.hybridize()
    x = nd.array(valid_cols[:args.bptt], ctx=ctx)
    h, c = model.begin_state(valid_cols.shape[1], ctx=ctx)
    before = [a.asnumpy() for a in model(x, h, c)]
    with tempfile.TemporaryDirectory(prefix="graphc-lm-") as scratch:   # removed on the way out
        out_dir = args.out_dir or scratch
        os.makedirs(out_dir, exist_ok=True)
        sym_file, param_file = model.export(os.path.join(out_dir, "lstm_lm"), epoch=epochs)
        print(f"\nexported {os.path.basename(sym_file)} and {os.path.basename(param_file)} to {out_dir}"
              + ("" if args.out_dir else " (a temporary folder; --out-dir keeps them)"))
        reloaded = gluon.SymbolBlock.imports(sym_file, ["data0", "data1", "data2"], param_file, ctx=ctx)
    after = [a.asnumpy() for a in reloaded(x, h, c)]
    identical = all(np.array_equal(a, b) for a, b in zip(before, after))
    print(f"reloaded model's next-word guesses: "
          f"{' '.join(vocab[int(i)] for i in after[0][:12, 0].argmax(axis=-1))}")
    print(f"identical to the trained model (scores and states): {identical}")
    return {"valid_perplexity": valid_ppl, "identical": identical,
            "unigram_perplexity": unigram_perplexity(train_ids, valid_ids, len(vocab))}


def unigram_perplexity(train_ids, valid_ids, vocab_size):
    """The baseline: each token predicted by its training-set frequency (add-one smoothed)."""
    counts = np.bincount(train_ids.astype(int), minlength=vocab_size) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[valid_ids.astype(int)].mean()))


if __name__ == "__main__":
    main()
