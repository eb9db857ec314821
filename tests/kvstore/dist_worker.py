"""One rank of the distributed-kvstore tests (test_dist.py launches it under mpiexec).

    python dist_worker.py SCENARIO OUT_DIR [options]

Scenarios: sync (Trainer over a dist_sync store; writes each rank's weights), overlap (sync with
the overlapped reducer's events recorded too), compressed
(2-bit dist_sync pushes; writes the sums and the pushed gradients), async (dist_async training;
writes losses), kill (rank 1 is SIGKILLed mid-training), mismatch (rank 1 initialises a
different shape), nojoin (rank 1 never joins).
"""
import os
import signal
import sys
import time

import numpy as np

import graphc as mx
from graphc import autograd, gluon, nd

IN, HIDDEN, OUT, LOCAL_BATCH, STEPS = 6, 8, 3, 4, 5


def data(num_workers):
    """The whole data set: STEPS batches of LOCAL_BATCH rows per worker."""
    rng = np.random.RandomState(7)
    n = STEPS * LOCAL_BATCH * num_workers
    return rng.randn(n, IN).astype(np.float32), rng.randint(0, OUT, n).astype(np.float32)


def build(seed):
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(HIDDEN, activation="relu", in_units=IN), gluon.nn.Dense(OUT, in_units=HIDDEN))
    net.initialize(mx.init.Xavier())
    return net


def batches(x, y, num_parts, part):
    """This worker's batches: its SplitSampler shard, in order, LOCAL_BATCH rows at a time."""
    sampler = gluon.data.BatchSampler(gluon.data.SplitSampler(len(x), num_parts, part, shuffle=False),
                                      LOCAL_BATCH)
    for idx in sampler:
        yield nd.array(x[idx]), nd.array(y[idx])


def train(net, trainer, x, y, num_parts, part, hybridize=False):
    if hybridize:
        net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for xb, yb in batches(x, y, num_parts, part):
        with autograd.record():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        trainer.step(LOCAL_BATCH)
        losses.append(float(loss.mean().asscalar()))
    return losses


def weights(net):
    """Parameters by position (names carry a per-process counter)."""
    return {f"param{i}": p.data().asnumpy() for i, p in enumerate(net.collect_params().values())}


def sync(out, update_on_kvstore, hybridize):
    kv = mx.kv.create("dist_sync")
    net = build(seed=100)       # as in MXNet, the store takes worker 0's weights at the first step,
    # after each worker has computed its first gradient with its own: so all start equal
    x, y = data(kv.num_workers)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9}, kvstore=kv,
                            update_on_kvstore=update_on_kvstore)
    train(net, trainer, x, y, kv.num_workers, kv.rank, hybridize)
    np.savez(os.path.join(out, f"rank{kv.rank}.npz"), **weights(net))


def overlap(out, update_on_kvstore, mode):
    """sync's training with the Trainer's overlapped reducer's events recorded (which keys became
    ready and which buckets started, in order) and whether it ran at all. mode 'twice': eager,
    and each step first runs a backward pass on a wrong batch, whose gradients the right one's
    backward then overwrites (the reducer must notice and sum the second pass's)."""
    hybridize = mode == "hybrid"
    kv = mx.kv.create("dist_sync")
    net = build(seed=100)
    x, y = data(kv.num_workers)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.5, "momentum": 0.9}, kvstore=kv,
                            update_on_kvstore=update_on_kvstore)
    if hybridize:
        net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    events = []
    for step, (xb, yb) in enumerate(batches(x, y, kv.num_workers, kv.rank)):
        if mode == "twice":
            with autograd.record():
                loss = loss_fn(net(xb * 3 + 1), yb)
            loss.backward()
        with autograd.record():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        trainer.step(LOCAL_BATCH)
        if step == 0 and trainer._overlap is not None:
            trainer._overlap.trace = []
    reducer = trainer._overlap
    if reducer is not None:
        events = [f"{event} {detail}" for _, event, detail in reducer.trace]
        segments = [v for c in net._cached_op._cache.values() for k, v in c.train.items()
                    if k[0] == "segments" and v is not None] if hybridize else []
        events.append(f"segments {len(segments[0][0]) if segments else 0}")
        events.append(f"plan {[b.keys for b in reducer.plan]}")
    np.savez(os.path.join(out, f"rank{kv.rank}.npz"), events=np.array(events), **weights(net))


def compressed(out):
    kv = mx.kv.create("dist_sync")
    kv.set_gradient_compression({"type": "2bit", "threshold": 0.3})
    shape = (5, 7)
    kv.init(0, nd.zeros(shape))
    rng = np.random.RandomState(kv.rank)
    pushed, sums = [], []
    for _ in range(3):
        g = (rng.randn(*shape) * 0.4).astype(np.float32)
        pushed.append(g)
        result = nd.zeros(shape)
        kv.pushpull(0, nd.array(g), out=result)
        sums.append(result.asnumpy())
    np.savez(os.path.join(out, f"rank{kv.rank}.npz"), pushed=np.stack(pushed), sums=np.stack(sums))


def async_train(out):
    kv = mx.kv.create("dist_async")
    net = build(seed=3)
    x, y = data(kv.num_workers)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.3}, kvstore=kv)
    losses = []
    for _ in range(6):
        losses += train(net, trainer, x, y, kv.num_workers, kv.rank)
    np.save(os.path.join(out, f"rank{kv.rank}.npy"), np.array(losses))


def kill():
    kv = mx.kv.create("dist_sync")
    net = build(seed=1)
    x, y = data(kv.num_workers)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore=kv)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(10 ** 6):
        if kv.rank == 1 and step == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        xb, yb = nd.array(x[:LOCAL_BATCH]), nd.array(y[:LOCAL_BATCH])
        with autograd.record():
            loss = loss_fn(net(xb), yb)
        loss.backward()
        trainer.step(LOCAL_BATCH)


def mismatch():
    kv = mx.kv.create("dist_sync")
    rows = 3 if kv.rank == 1 else 4
    kv.init([0, 1], [nd.zeros((2, 2)), nd.zeros((rows, 5))])


def nojoin():
    if int(os.environ.get("PMI_RANK", "0")) == 1:
        time.sleep(120)         # the test ends the job long before this
    mx.kv.create("dist_sync")


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    if scenario == "sync":
        sync(out, {"none": None, "true": True, "false": False}[sys.argv[3]], sys.argv[4] == "hybrid")
    elif scenario == "overlap":
        overlap(out, {"none": None, "true": True, "false": False}[sys.argv[3]], sys.argv[4])
    elif scenario == "compressed":
        compressed(out)
    elif scenario == "async":
        async_train(out)
    elif scenario == "kill":
        kill()
    elif scenario == "mismatch":
        mismatch()
    elif scenario == "nojoin":
        nojoin()
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main()
