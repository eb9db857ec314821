"""Recommendation: matrix factorisation (or neural collaborative filtering) on generated ratings.

The ratings come from a generative process written out below, so the best achievable error is
known exactly and the model's RMSE can be read against it.

Generative process (all draws from numpy's default_rng(2024), in this order):

1. 2000 users and 1000 items. Each has a latent factor vector of dimension 8 with entries drawn
   from N(0, 0.6^2) (so u.v has a standard deviation of about 1), a user bias ~ N(0, 0.3^2) and an
   item bias ~ N(0, 0.5^2). Global mean 3.4.
2. Popularity skew: user activity weights are lognormal(0, 1); item popularity weights follow a
   Zipf-like law 1 / (rank + 10)^0.9 with ranks assigned by a random permutation (popularity is
   independent of the item's factors and bias).
3. Observed pairs: (user, item) pairs are drawn with probability proportional to activity x
   popularity; repeats are dropped and the first 100,000 distinct pairs kept.
4. Rating of a pair: r = clip(round(3.4 + b_u + b_i + u.v + e), 1, 5) with e ~ N(0, 0.5^2).
5. The pairs are shuffled and split 80% train, 10% validation, 10% test.

Because the latent mean m = 3.4 + b_u + b_i + u.v of every pair is known, the noise floor is
exact: the best possible predictor of r is E[r | m] (under the rounding, clipping and Gaussian
noise), and its expected squared error is Var[r | m]. The program prints sqrt(mean Var[r | m])
over the test pairs beside a bias-only baseline (global mean + user bias + item bias, fitted by
regularised alternating least squares) and the model's RMSE.

Models (--model): `mf` predicts global bias + b_u + b_i + u.v from learned Embeddings; `ncf`
feeds the concatenated user and item embeddings through a two-layer MLP and adds the biases.
Both train with L2 loss plus an L2 penalty on the embeddings of each rating's pair, with Adam.

    .venv/bin/python examples/recommendation.py              # MF, 15 epochs
    .venv/bin/python examples/recommendation.py --model ncf
    .venv/bin/python examples/recommendation.py --quick      # seconds, for the smoke test
    .venv/bin/python examples/recommendation.py --sparse     # row_sparse gradients, lazy Adam

--sparse trains with Embedding(sparse_grad=True): each step's embedding gradients are row_sparse
(only the rows of the batch's users and items) and Adam updates lazily (only those rows and
their moments), so a step costs what the batch touches, not what the tables hold. That path runs
eagerly (a hybridized block's gradients are dense), so the program times it against the dense
eager and dense hybridized steps, at this catalogue's size and at one 100 times larger (same
batch), where the dense steps pay for whole tables and the sparse one does not.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time

import numpy as np
from scipy.special import ndtr

import graphc as mx
from graphc import nd, autograd, gluon
from graphc.gluon import nn

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:        # loaded from its file (the tests): the sibling module is beside it
    sys.path.insert(0, HERE)
from progress import progress  # noqa: E402

N_USERS, N_ITEMS, DIM, N_PAIRS = 2000, 1000, 8, 100_000
GLOBAL_MEAN, USER_BIAS_SD, ITEM_BIAS_SD, FACTOR_SD, NOISE_SD = 3.4, 0.3, 0.5, 0.6, 0.5


# -- the generated interaction set ---------------------------------------------------------------
def generate_ratings(n_users=N_USERS, n_items=N_ITEMS, n_pairs=N_PAIRS, seed=2024):
    """(users, items, ratings, latent_means) for n_pairs distinct pairs; see the module docstring."""
    rng = np.random.default_rng(seed)
    user_f = rng.normal(0.0, FACTOR_SD, (n_users, DIM))
    item_f = rng.normal(0.0, FACTOR_SD, (n_items, DIM))
    user_b = rng.normal(0.0, USER_BIAS_SD, n_users)
    item_b = rng.normal(0.0, ITEM_BIAS_SD, n_items)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.9
    p_user, p_item = activity / activity.sum(), popularity / popularity.sum()
    keys = np.empty(0, dtype=np.int64)
    while True:     # draw with repeats until enough distinct pairs; keep them in order of first draw
        draw = rng.choice(n_users, 2 * n_pairs, p=p_user) * n_items + rng.choice(n_items, 2 * n_pairs, p=p_item)
        keys = np.concatenate([keys, draw])
        _, first = np.unique(keys, return_index=True)
        if len(first) >= n_pairs:
            keys = keys[np.sort(first)[:n_pairs]]
            break
    users, items = keys // n_items, keys % n_items
    means = GLOBAL_MEAN + user_b[users] + item_b[items] + np.einsum("nd,nd->n", user_f[users], item_f[items])
    ratings = np.clip(np.round(means + rng.normal(0.0, NOISE_SD, n_pairs)), 1, 5)
    order = rng.permutation(n_pairs)
    return users[order], items[order], ratings[order], means[order]


def rating_moments(means):
    """E[r | m] and Var[r | m] for r = clip(round(m + e), 1, 5), e ~ N(0, NOISE_SD^2)."""
    edges = np.array([1.5, 2.5, 3.5, 4.5])
    cdf = ndtr((edges[None, :] - means[:, None]) / NOISE_SD)        # P(m + e < edge)
    probs = np.diff(np.concatenate([np.zeros((len(means), 1)), cdf, np.ones((len(means), 1))], axis=1), axis=1)
    values = np.arange(1.0, 6.0)
    mean = probs @ values
    return mean, probs @ values ** 2 - mean ** 2


def fit_biases(users, items, ratings, reg=5.0, sweeps=10):
    """Bias-only baseline: r ~ mu + b_u + b_i, regularised alternating least squares."""
    mu = ratings.mean()
    b_u, b_i = np.zeros(N_USERS), np.zeros(N_ITEMS)
    for _ in range(sweeps):
        resid = ratings - mu - b_i[items]
        b_u = np.bincount(users, resid, N_USERS) / (np.bincount(users, minlength=N_USERS) + reg)
        resid = ratings - mu - b_u[users]
        b_i = np.bincount(items, resid, N_ITEMS) / (np.bincount(items, minlength=N_ITEMS) + reg)
    return lambda u, i: mu + b_u[u] + b_i[i]


def rmse(pred, target):
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - target) ** 2)))


# -- the models -----------------------------------------------------------------------------------
class Recommender(nn.HybridBlock):
    """rating = global bias + user bias + item bias + interaction(user embedding, item embedding);
    the interaction is a dot product (`mf`) or an MLP over the concatenation (`ncf`)."""

    def __init__(self, kind, dim, global_mean, sparse_grad=False, n_users=N_USERS, n_items=N_ITEMS, **kwargs):
        super().__init__(**kwargs)
        self._kind = kind
        with self.name_scope():
            normal = mx.init.Normal(0.05)
            self.user_embed = nn.Embedding(n_users, dim, weight_initializer=normal, sparse_grad=sparse_grad)
            self.item_embed = nn.Embedding(n_items, dim, weight_initializer=normal, sparse_grad=sparse_grad)
            self.user_bias = nn.Embedding(n_users, 1, weight_initializer="zeros", sparse_grad=sparse_grad)
            self.item_bias = nn.Embedding(n_items, 1, weight_initializer="zeros", sparse_grad=sparse_grad)
            self.global_bias = self.params.get("global_bias", shape=(1,), init=mx.init.Constant(global_mean))
            if kind == "ncf":
                self.mlp = nn.HybridSequential()
                self.mlp.add(nn.Dense(64, activation="relu"), nn.Dense(32, activation="relu"), nn.Dense(1))

    def hybrid_forward(self, F, user, item, global_bias):
        u, v = self.user_embed(user), self.item_embed(item)
        if self._kind == "mf":
            interaction = F.sum(u * v, axis=1)
        else:
            interaction = F.reshape(self.mlp(F.concat(u, v, dim=1)), shape=(-1,))
        biases = F.reshape(self.user_bias(user) + self.item_bias(item), shape=(-1,))
        return F.broadcast_add(interaction + biases, global_bias)


# -- training -------------------------------------------------------------------------------------
class Objective(nn.HybridBlock):
    """Per-rating training loss: (prediction - r)^2 / 2 + reg * (|u|^2 + |v|^2 + b_u^2 + b_i^2).

    Regularising the embeddings of the pairs in the batch (rather than weight decay on whole
    tables) penalises a user or item once per rating it appears in, as classic MF does, so rare
    users are pulled towards the mean more than frequent ones. The embeddings are looked up a
    second time here; hybridized, common-subexpression elimination merges the two lookups."""

    def __init__(self, net, reg, **kwargs):
        super().__init__(**kwargs)
        self._reg = reg
        with self.name_scope():
            self.net = net
            self.l2 = gluon.loss.L2Loss()

    def hybrid_forward(self, F, user, item, rating):
        net = self.net
        squares = (F.sum(F.square(net.user_embed(user)), axis=1) + F.sum(F.square(net.item_embed(item)), axis=1)
                   + F.reshape(F.square(net.user_bias(user)) + F.square(net.item_bias(item)), shape=(-1,)))
        return self.l2(net(user, item), rating) + self._reg * squares


def train_step(objective, trainer, user, item, rating):
    with autograd.record():
        loss = objective(user, item, rating)
    loss.backward()
    trainer.step(user.shape[0])
    return loss


def compare_step_times(objective, make_trainer, batch, steps):
    """Fastest time of a training step eager and hybridized, on the same network and batch (the
    fastest of `steps` is the one least disturbed by other processes). The parameters are put
    back afterwards, so the timing steps do not count as training."""
    with tempfile.TemporaryDirectory(prefix="graphc-rec-") as scratch:   # removed on the way out, errors too
        saved = os.path.join(scratch, "init.params")
        objective.save_parameters(saved)
        trainer = make_trainer()

        def timed(n):
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                train_step(objective, trainer, *batch).wait_to_read()
                times.append(time.perf_counter() - t0)
            return times

        timed(2)                                          # warm-up: eager allocation paths
        eager = min(timed(steps))
        objective.hybridize(static_alloc=True, static_shape=True)
        compile_s = timed(1)[0]                           # first call traces and compiles
        compiled = min(timed(steps))
        objective.load_parameters(saved)
    return eager, compiled, compile_s


def sparse_step_times(args, batch, scale, steps):
    """Fastest training step (ms) of the dense eager, dense hybridized and sparse eager (row_sparse
    gradients + lazy Adam) paths, on fresh networks whose tables are `scale` times this catalogue,
    fed the same batch (its ids are valid at any scale >= 1)."""
    times = {}
    for label, sparse, hybridize in (("dense eager", False, False), ("dense hybridized", False, True),
                                     ("sparse eager", True, False)):
        mx.random.seed(7)
        net = Recommender(args.model, args.dim, 3.4, sparse_grad=sparse, n_users=N_USERS * scale,
                          n_items=N_ITEMS * scale, prefix=f"{args.model}_")
        net.initialize(mx.init.Xavier())
        objective = Objective(net, args.reg, prefix="objective_")
        objective(*batch)
        if hybridize:
            objective.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": args.lr})
        laps = []
        for _ in range(steps + 2):          # (the first two: warm-up, and the trace when hybridized)
            t0 = time.perf_counter()
            train_step(objective, trainer, *batch).wait_to_read()
            laps.append(time.perf_counter() - t0)
        times[label] = min(laps[2:]) * 1e3
    return times


def print_sparse_speedups(args, batch, quick):
    for scale in (1, 100):
        t = sparse_step_times(args, batch, scale, steps=3 if quick else 10)
        print(f"training step, tables of {N_USERS * scale} users x {N_ITEMS * scale} items (batch "
              f"{args.batch_size}, fastest of several): sparse eager {t['sparse eager']:.2f} ms; dense eager "
              f"{t['dense eager']:.2f} ms ({t['dense eager'] / t['sparse eager']:.1f}x the sparse time), dense "
              f"hybridized {t['dense hybridized']:.2f} ms ({t['dense hybridized'] / t['sparse eager']:.1f}x)")
    print()


def predict(net, users, items, batch=4096, ctx=None):
    out = [net(nd.array(users[i:i + batch], ctx=ctx), nd.array(items[i:i + batch], ctx=ctx)).asnumpy()
           for i in range(0, len(users), batch)]
    return np.concatenate(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["mf", "ncf"], default="mf")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--dim", type=int, default=8, help="embedding dimension (the generating factors have 8)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--reg", type=float, default=0.03, help="L2 penalty per rating on its embeddings")
    parser.add_argument("--no-hybridize", action="store_true", help="train eagerly (no compiled program)")
    parser.add_argument("--sparse", action="store_true",
                        help="row_sparse embedding gradients and lazy Adam (eager); prints its speed-up")
    parser.add_argument("--quick", action="store_true", help="a few seconds: 3 epochs, short timing")
    parser.add_argument("--out-dir", default=None, help="where to export the model (default: a temp dir)")
    parser.add_argument("--gpu", type=int, default=None, metavar="K",
                        help="train on mx.gpu(K) (GRAPHC_CUDA_SIM=1 runs it on the CUDA simulator)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="a smoke run: at most N batches per epoch, a few hundred ratings evaluated, "
                             "no timing comparison")
    args = parser.parse_args(argv)
    ctx = mx.cpu() if args.gpu is None else mx.gpu(args.gpu)
    limit = args.max_steps
    if args.sparse and args.gpu is not None:
        parser.error("--sparse (row_sparse gradients) runs on the CPU only")
    n_pairs = N_PAIRS
    epochs = min(args.epochs, 3) if args.quick else args.epochs

    users, items, ratings, means = generate_ratings(n_pairs=n_pairs)
    n_train, n_valid = int(0.8 * n_pairs), int(0.1 * n_pairs)
    train = slice(0, n_train)
    valid = slice(n_train, n_train + n_valid)
    test = slice(n_train + n_valid, n_pairs)
    if limit is not None:
        valid = slice(n_train, n_train + 256)
        test = slice(n_train + n_valid, n_train + n_valid + 512)
    print(f"ratings: {n_pairs} of {N_USERS} users x {N_ITEMS} items "
          f"({n_pairs / (N_USERS * N_ITEMS):.1%} observed), split {n_train}/{n_valid}/{n_pairs - n_train - n_valid}; "
          f"rating counts 1..5: {np.bincount(ratings.astype(int), minlength=6)[1:].tolist()}")

    best_mean, best_var = rating_moments(means[test])
    floor = float(np.sqrt(best_var.mean()))
    oracle = rmse(best_mean, ratings[test])
    baseline = fit_biases(users[train], items[train], ratings[train])
    bias_rmse = rmse(baseline(users[test], items[test]), ratings[test])
    print(f"test RMSE to beat: bias-only baseline {bias_rmse:.4f}; noise floor {floor:.4f} "
          f"(the true model's E[r|m] reaches {oracle:.4f} on these pairs)\n")

    as_f32 = lambda a: a.astype(np.float32)     # MXNet feeds Embedding indices as float32
    train_set = gluon.data.ArrayDataset(as_f32(users[train]), as_f32(items[train]), as_f32(ratings[train]))
    loader = gluon.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, last_batch="rollover")

    mx.random.seed(7)
    net = Recommender(args.model, args.dim, float(ratings[train].mean()), sparse_grad=args.sparse,
                      prefix=f"{args.model}_")
    net.initialize(mx.init.Xavier(), ctx=ctx)
    objective = Objective(net, args.reg, prefix="objective_")
    make_trainer = lambda: gluon.Trainer(net.collect_params(), "adam", {"learning_rate": args.lr})
    first_batch = [a.as_in_context(ctx) for a in next(iter(loader))]
    objective(*first_batch)                     # finishes deferred initialisation

    if args.sparse:
        print_sparse_speedups(args, first_batch, args.quick)
    elif args.no_hybridize:
        pass
    elif limit is not None:
        objective.hybridize(static_alloc=True, static_shape=True)
    else:
        eager, compiled, compile_s = compare_step_times(objective, make_trainer, first_batch,
                                                        steps=5 if args.quick else 20)
        print(f"training step (batch {args.batch_size}, fastest of several): eager {eager * 1e3:.2f} ms, "
              f"hybridized {compiled * 1e3:.2f} ms -> {eager / compiled:.1f}x faster "
              f"(first hybridized call, tracing + compiling: {compile_s:.1f} s)\n")

    trainer = make_trainer()
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        t0 = time.perf_counter()
        batches = loader if limit is None else itertools.islice(loader, limit)
        with progress(batches, total=None if limit is None else min(limit, len(loader)),
                      desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False) as bar:
            for user, item, rating in bar:
                user, item, rating = (a.as_in_context(ctx) for a in (user, item, rating))
                loss = train_step(objective, trainer, user, item, rating)
                total += float(loss.sum().asscalar())
                count += user.shape[0]
                bar.set_postfix(loss=f"{total / count:.4f}")
        valid_rmse = rmse(predict(net, users[valid], items[valid], ctx=ctx), ratings[valid])
        print(f"epoch {epoch:2d}: train loss {total / count:.4f}  valid RMSE {valid_rmse:.4f}  "
              f"({time.perf_counter() - t0:.1f} s)")

    test_pred = predict(net, users[test], items[test], ctx=ctx)
    print(f"\ntest RMSE: {args.model} {rmse(test_pred, ratings[test]):.4f}, bias-only baseline "
          f"{bias_rmse:.4f}, noise floor {floor:.4f}")

    if args.no_hybridize or args.sparse:          # export needs a traced graph
        net.hybridize()
        predict(net, users[test][:8], items[test][:8], ctx=ctx)
    with tempfile.TemporaryDirectory(prefix="graphc-rec-") as scratch:   # removed on the way out
        out_dir = args.out_dir or scratch
        os.makedirs(out_dir, exist_ok=True)
        sym_file, param_file = net.export(os.path.join(out_dir, args.model), epoch=epochs)
        print(f"\nexported {os.path.basename(sym_file)} and {os.path.basename(param_file)} to {out_dir}"
              + ("" if args.out_dir else " (a temporary folder; --out-dir keeps them)"))
        reloaded = gluon.SymbolBlock.imports(sym_file, ["data0", "data1"], param_file, ctx=ctx)
    u, i = nd.array(users[test][:512], ctx=ctx), nd.array(items[test][:512], ctx=ctx)
    before, after = net(u, i).asnumpy(), reloaded(u, i).asnumpy()
    print(f"reloaded model's first predictions: {', '.join(f'{p:.2f}' for p in after[:6])} "
          f"(true ratings {', '.join(f'{r:.0f}' for r in ratings[test][:6])})")
    print(f"identical to the trained network: {np.array_equal(before, after)}")
    return {"test_rmse": rmse(test_pred, ratings[test]), "baseline_rmse": bias_rmse, "noise_floor": floor,
            "identical": bool(np.array_equal(before, after))}


if __name__ == "__main__":
    main()
