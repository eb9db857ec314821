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
  micro     2 ranks, pipeline_microbatches in MICROS: the mlp and res cases as in 'pipeline'
  grid_micro  'grid' with pipeline_microbatches=2, also saving the keys the store holds
  batchnorm the gluon case with M=2, one recorded call and backward
  memory    Wide (2 balanced stages), M=2: parameter bytes held, gather_parameters(root=0), save
  owned_init  Wide initialized with initialize_owned: bytes held before the first call
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


def grid(out, micro=None):
    pipe = graphc.dist.pipeline_groups(stages=2)
    kv = mx.kv.create("dist_sync", group=pipe.replicas)
    assert (kv.rank, kv.num_workers) == (pipe.replica, 2), (kv.rank, kv.num_workers, pipe)
    net = build_mlp({"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)})
    if micro:
        net.hybridize(group2ctx={"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)},
                      pipeline_microbatches=micro)
    x, y = batch(rows=2 * BATCH, seed=3)
    part = slice(kv.rank * BATCH, (kv.rank + 1) * BATCH)     # this replica's half of the batch
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR, "momentum": 0.9}, kvstore=kv)
    losses = train(net, x[part], y[part], trainer, BATCH)
    saved = {f"param/{i}": params(net)[i].data().asnumpy() for i in owned(net)}
    saved["stored"] = np.array(sorted(kv._store))     # the keys the store holds a copy of
    np.savez(os.path.join(out, f"rank{graphc.dist.world().rank}.npz"), losses=losses, **saved)


MICROS = (1, 2, 4)


def micro(out):
    """pipeline_microbatches=M over 2 ranks: every case, probe and 3 SGD steps, per M."""
    rank = graphc.dist.world().rank
    saved = {}
    for label in ("mlp", "res"):
        build, groups, data = CASES[label]
        for m in MICROS:
            net = build({g: graphc.dist.rank(k) for g, k in groups.items()})
            net.hybridize(group2ctx={g: graphc.dist.rank(k) for g, k in groups.items()}, pipeline_microbatches=m)
            x, y = data()
            o, dx, grads = probe(net, x)
            tag = f"{label}/{m}"
            timeline = getattr(net._cached_op, "last_rank_pipeline", None)    # (M > 1 only)
            saved[f"{tag}/whole"] = timeline is not None and any(e[0] == "whole batch" for e in timeline["backward"])
            saved[f"{tag}/out"], saved[f"{tag}/dx"] = o, dx
            for i in owned(net):
                saved[f"{tag}/grad/{i}"] = grads[i]
            for p in params(net):
                p.zero_grad()
            trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR, "momentum": 0.9}, kvstore=None)
            saved[f"{tag}/losses"] = train(net, x, y, trainer, BATCH)
            for i in owned(net):
                saved[f"{tag}/param/{i}"] = params(net)[i].data().asnumpy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)


WIDE, LAYERS = 64, 4


def micro_reference(net, x, parts):
    """The gluon case pipelined over `parts` micro-batches, computed in one process: the block
    called on each micro-batch in order under record (BatchNorm normalizes each by its own
    statistics and updates its running ones after each), the gradients summed over them."""
    outs = []
    with autograd.record():
        for rows in np.array_split(np.arange(len(x)), parts):
            outs.append(net(mx.nd.array(x[rows])))
        y = mx.nd.concat(*outs, dim=0)
        (y * mx.nd.array(np.linspace(-1, 1, y.size).reshape(y.shape))).sum().backward()
    return y.asnumpy(), [None if p.grad_req == "null" else p.grad().asnumpy() for p in params(net)], \
        [p.data().asnumpy() for p in params(net)]


def batchnorm(out):
    """The gluon case (BatchNorm in the second stage) with pipeline_microbatches=2: one recorded
    call and backward; the output, owned gradients and every owned parameter (running
    statistics included) afterwards."""
    rank = graphc.dist.world().rank
    net = build_gluon({"first": graphc.dist.rank(0), "second": graphc.dist.rank(1)})
    net.hybridize(group2ctx={"first": graphc.dist.rank(0), "second": graphc.dist.rank(1)}, pipeline_microbatches=2)
    x = batch(seed=5)[0]
    xs = mx.nd.array(x)
    with autograd.record():
        y = net(xs)
        (y * mx.nd.array(np.linspace(-1, 1, y.size).reshape(y.shape))).sum().backward()
    saved = {"out": y.asnumpy()}
    for i in owned(net):
        p = params(net)[i]
        saved[f"param/{i}"] = p.data().asnumpy()
        if p.grad_req != "null":
            saved[f"grad/{i}"] = p.grad().asnumpy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)


class Wide(gluon.HybridBlock):
    """LAYERS Dense layers of WIDE units, the first half in ctx_group 'stage1', the rest in
    'stage2': the two stages hold the same number of parameter bytes."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.layers = [gluon.nn.Dense(WIDE, activation="relu" if k < LAYERS - 1 else None, in_units=WIDE)
                           for k in range(LAYERS)]
            for k, layer in enumerate(self.layers):
                self.register_child(layer, f"fc{k}")

    def hybrid_forward(self, F, x):
        for k, layer in enumerate(self.layers):
            with mx.AttrScope(ctx_group="stage1" if k < LAYERS // 2 else "stage2"):
                x = layer(x)
        return x


def build_wide(group2ctx=None, micro=None):
    mx.random.seed(11)
    net = Wide()
    net.initialize(mx.init.Xavier())
    flags = {"group2ctx": group2ctx} if group2ctx else {}
    if micro:
        flags["pipeline_microbatches"] = micro
    net.hybridize(**flags)
    return net


def owned_init(out):
    """initialize_owned instead of initialize: the parameter bytes held before the first call,
    the owned initial values, and the owned weights after 2 steps (M=2)."""
    from graphc.dist.param_memory import held_bytes
    from graphc.gluon.model_parallel_ranks import initialize_owned
    rank = graphc.dist.world().rank
    mx.random.seed(11)
    net = Wide()
    net.hybridize(group2ctx={"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)}, pipeline_microbatches=2)
    x, y = batch(rows=BATCH, seed=6)
    x, y = np.tile(x, (1, WIDE // IN)), np.tile(y, (1, WIDE // SIZES[-1]))
    initialize_owned(net, mx.nd.array(x), init=mx.init.Xavier())
    saved = {"before": held_bytes(net.collect_params()), "owned": np.array(owned(net))}
    for i in owned(net):
        saved[f"initial/{i}"] = params(net)[i].data().asnumpy()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR}, kvstore=None)
    saved["losses"] = train(net, x, y, trainer, BATCH)
    for i in owned(net):
        saved[f"param/{i}"] = params(net)[i].data().asnumpy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)


def memory(out):
    """Parameter bytes each rank holds before and after the first training step (M=2), the
    owned weights after 2 steps, then the whole model gathered on rank 0 only and saved there,
    then gathered on every rank."""
    from graphc.dist.param_memory import held_bytes
    rank = graphc.dist.world().rank
    net = build_wide({"stage1": graphc.dist.rank(0), "stage2": graphc.dist.rank(1)}, micro=2)
    saved = {"before": held_bytes(net.collect_params())}
    x, y = batch(rows=BATCH, seed=6)
    x = np.tile(x, (1, WIDE // IN))
    y = np.tile(y, (1, WIDE // SIZES[-1]))
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": LR}, kvstore=None)
    saved["losses"] = train(net, x, y, trainer, BATCH)
    saved["after"] = held_bytes(net.collect_params())
    saved["owned"] = np.array(owned(net))
    gather_parameters(net.collect_params(), root=0)
    saved["after_root_gather"] = held_bytes(net.collect_params())
    if rank == 0:
        net.save_parameters(os.path.join(out, "wide.params"))
    gather_parameters(net.collect_params())
    saved["after_gather"] = held_bytes(net.collect_params())
    for i, p in enumerate(params(net)):
        saved[f"gathered/{i}"] = p.data().asnumpy()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **saved)


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
    {"pipeline": lambda: pipeline(out), "grid": lambda: grid(out), "kill": kill, "skip": skip,
     "micro": lambda: micro(out), "grid_micro": lambda: grid(out, micro=2), "memory": lambda: memory(out),
     "batchnorm": lambda: batchnorm(out), "owned_init": lambda: owned_init(out)}[scenario]()


if __name__ == "__main__":
    main()
