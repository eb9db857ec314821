"""One rank of the model-parallel-over-MPI tests (test_mpi_stages.py launches it under mpiexec).

    python mpi_stages_worker.py SCENARIO OUT_DIR

Scenarios (every rank runs the same script, SPMD):
  pipeline  2 ranks, one stage each: an MLP, a residual block (rank(0) -> rank(1) -> rank(0)) and
            a Gluon block placing its layers with AttrScope;
            writes each rank's outputs, data gradient, parameter gradients and losses/weights of
            3 SGD steps, for the parameters this rank owns, and every weight after gather_parameters
  grid      4 ranks = 2 stages x 2 data-parallel replicas (pipeline_groups + a 'dist_sync' store
            over each stage's replicas); writes the owned parameters after 3 steps
  kill      2 ranks; rank 1 is SIGKILLed after the first training step
  skip      2 ranks; rank 1 stops calling the block (alive) after the first call
The test builds the same models in one process (CASES, build_mlp) as the reference. Parameters
are saved by their position in collect_params().
"""
import os
import signal
import sys
import time

import numpy as np

import graphc as mx
from graphc import autograd, gluon
import graphc.dist
from graphc.gluon.model_parallel_ranks import gather_parameters

IN, SIZES, BATCH, STEPS, LR = 8, (16, 12, 4), 6, 3, 0.1


def build_mlp(group2ctx=None):
    """Dense layers: layer 0 in ctx_group 'stage1', layers 1-2 in 'stage2'."""
    data = mx.sym.var("data")
    h, n_in = data, IN
    for k, (group, n) in enumerate(zip(("stage1", "stage2", "stage2"), SIZES)):
        with mx.AttrScope(ctx_group=group):
            w = mx.sym.var(f"fc{k}_weight", shape=(n, n_in))
            b = mx.sym.var(f"fc{k}_bias", shape=(n,))
            h = mx.sym.FullyConnected(h, w, b, num_hidden=n, name=f"fc{k}")
            if k < len(SIZES) - 1:
                h = mx.sym.Activation(h, act_type="relu")
        n_in = n
    return _block(h, data, 3, group2ctx)


def build_residual(group2ctx=None):
    """'a' -> 'b' -> back to 'a', with 'a' also reading its first value and 'b' reading the data
    batch itself: the output is made on the first stage, values cross the cut both ways, and
    the data gradient is summed from both ranks."""
    data = mx.sym.var("data")
    with mx.AttrScope(ctx_group="a"):
        h = mx.sym.Activation(mx.sym.FullyConnected(data, mx.sym.var("w0", shape=(IN, IN)),
                                                    mx.sym.var("b0", shape=(IN,)), num_hidden=IN, name="r0"),
                              act_type="tanh")
    with mx.AttrScope(ctx_group="b"):
        g = mx.sym.FullyConnected(h, mx.sym.var("w1", shape=(IN, IN)), mx.sym.var("b1", shape=(IN,)),
                                  num_hidden=IN, name="r1") * data
    with mx.AttrScope(ctx_group="a"):
        out = g * h + h
    return _block(out, data, 5, group2ctx)


class Staged(gluon.HybridBlock):
    """Gluon layers placed by AttrScope inside hybrid_forward: their parameters carry no group
    of their own, so the second stage's move to the rank that reads them, BatchNorm's running
    statistics (auxiliary states, updated by the forward) included."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc0 = gluon.nn.Dense(10, activation="relu", in_units=IN)
            self.bn = gluon.nn.BatchNorm(in_channels=10)
            self.fc1 = gluon.nn.Dense(SIZES[-1], in_units=10)

    def hybrid_forward(self, F, x):
        with mx.AttrScope(ctx_group="first"):
            h = self.fc0(x)
        with mx.AttrScope(ctx_group="second"):
            return self.fc1(self.bn(h))


def build_gluon(group2ctx=None):
    mx.random.seed(9)
    net = Staged()
    net.initialize(mx.init.Xavier())
    net.hybridize(**({"group2ctx": group2ctx} if group2ctx else {}))
    return net


def params(net):
    """Parameters by position (Gluon names carry a per-process counter)."""
    return list(net.collect_params().values())


def _block(out, data, seed, group2ctx):
    net = gluon.SymbolBlock(out, data)
    mx.random.seed(seed)
    net.initialize(mx.init.Normal(0.5))
    net.hybridize(**({"group2ctx": group2ctx} if group2ctx else {}))
    return net


def batch(rows=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, IN)).astype(np.float32), rng.standard_normal((rows, SIZES[-1])).astype(np.float32)


def probe(net, x):
    """Output, d(sum(out * x_weights))/dx and each parameter's gradient (by position; None for
    auxiliary states)."""
    xs = mx.nd.array(x)
    out = net(xs).asnumpy()
    xs.attach_grad()
    with autograd.record():
        y = net(xs)
        (y * mx.nd.array(np.linspace(-1, 1, y.size).reshape(y.shape))).sum().backward()
    grads = [None if p.grad_req == "null" else p.grad().asnumpy() for p in params(net)]
    return out, xs.grad.asnumpy(), grads


def train(net, x, y, trainer, batch_size):
    loss_fn = gluon.loss.L2Loss()
    losses = []
    for _ in range(STEPS):
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x)), mx.nd.array(y))
        loss.backward()
        trainer.step(batch_size)
        losses.append(loss.asnumpy())
    return np.stack(losses)


def owned(net):
    """The positions of the parameters this rank trains."""
    return [i for i, p in enumerate(params(net)) if not getattr(p, "_stage_elsewhere", False)]


CASES = {"mlp": (build_mlp, {"stage1": 0, "stage2": 1}, lambda: batch(seed=1)),
         "res": (build_residual, {"a": 0, "b": 1}, lambda: (batch(seed=2)[0], batch(seed=4)[0])),
         "gluon": (build_gluon, {"first": 0, "second": 1}, lambda: batch(seed=5))}


def pipeline(out):
    rank = graphc.dist.world().rank
    saved = {}
    for label, (build, groups, data) in CASES.items():
        net = build({g: graphc.dist.rank(k) for g, k in groups.items()})
        x, y = data()
        o, dx, grads = probe(net, x)
        saved[f"{label}/out"], saved[f"{label}/dx"] = o, dx
        for i in owned(net):
            if grads[i] is not None:
                saved[f"{label}/grad/{i}"] = grads[i]
        for p in params(net):
            p.zero_grad()
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR, "momentum": 0.9}, kvstore=None)
        saved[f"{label}/losses"] = train(net, x, y, trainer, BATCH)
        for i in owned(net):
            saved[f"{label}/param/{i}"] = params(net)[i].data().asnumpy()
        gather_parameters(net.collect_params())
        for i, p in enumerate(params(net)):
            saved[f"{label}/gathered/{i}"] = p.data().asnumpy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)


def grid(out):
    pipe = graphc.dist.pipeline_groups(stages=2)
    kv = mx.kv.create("dist_sync", group=pipe.replicas)
    assert (kv.rank, kv.num_workers) == (pipe.replica, 2), (kv.rank, kv.num_workers, pipe)
    net = build_mlp({"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)})
    x, y = batch(rows=2 * BATCH, seed=3)
    part = slice(kv.rank * BATCH, (kv.rank + 1) * BATCH)     # this replica's half of the batch
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR, "momentum": 0.9}, kvstore=kv)
    losses = train(net, x[part], y[part], trainer, BATCH)
    saved = {f"param/{i}": params(net)[i].data().asnumpy() for i in owned(net)}
    np.savez(os.path.join(out, f"rank{graphc.dist.world().rank}.npz"), losses=losses, **saved)


def kill():
    rank = graphc.dist.world().rank
    net = build_mlp({"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)})
    x, y = batch()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR}, kvstore=None)
    for step in range(10 ** 6):
        if rank == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        train(net, x, y, trainer, BATCH)


def skip():
    """Rank 1's script stops calling the block (alive, but elsewhere) after one call."""
    rank = graphc.dist.world().rank
    net = build_mlp({"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)})
    x = mx.nd.array(batch()[0])
    net(x).wait_to_read()
    if rank == 1:
        time.sleep(120)     # the test's deadline ends the job long before this
    net(x).wait_to_read()


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    {"pipeline": lambda: pipeline(out), "grid": lambda: grid(out), "kill": kill, "skip": skip}[scenario]()


if __name__ == "__main__":
    main()
