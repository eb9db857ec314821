"""Data-parallel training of the image-classification ResNet: MPI ranks, devices, or one device.

The network and the data are those of image_classification.py (a small ResNet on
scikit-learn's digits upsampled to 16x16), trained three ways that compute the same thing:

    # 2 worker processes, 1 thread each, gradients summed by kvstore 'dist_sync' over MPI
    GRAPHC_NUM_THREADS=1 .venv/bin/mpiexec -n 2 .venv/bin/python examples/distributed_training.py --mode mpi
    .venv/bin/python -m graphc.dist.launch -n 2 .venv/bin/python examples/distributed_training.py --mode mpi
    # 1 process, 2 devices (cpu(0), cpu(1): a core each), gradients summed by kvstore 'device'
    .venv/bin/python examples/distributed_training.py --mode devices --num-devices 2
    # 1 process, 1 device: each global batch in 2 parts, one after the other
    .venv/bin/python examples/distributed_training.py --mode single --parts 2

All three end with the same weights and the same test accuracy, because:

* Every global batch of --batch-size images is cut into P equal parts (P = workers, devices or
  --parts), and each part goes through the network on its own: BatchNorm normalises over the
  part, as it does per device in MXNet and per process in PyTorch DDP without SyncBatchNorm.
  The parts' gradients are summed (over MPI, over devices, or accumulated with grad_req='add')
  and every mode calls trainer.step(global batch size). `--mode single --parts 1` is the plain
  one-device run, whose BatchNorm sees the whole batch: close to the others, not equal.
* The epoch's order is a permutation drawn from the seed, the same in every process. MPI
  workers read their shard with gluon.data.SplitSampler(n, kv.num_workers, kv.rank), MXNet's
  way; the epoch's dataset is laid out worker-major (worker w's shard holds part w of every
  global batch, in order), so the shards' batches are exactly the parts of the global batches.
* The augmentation (a shift of up to one pixel, as in image_classification.py) is drawn per
  image and epoch from the seed, so an image moves the same way whichever process loads it.
* BatchNorm's running statistics are not gradients: each worker / device (and, in single mode,
  each part) keeps its own while training, and they are averaged once at the end so that every
  worker evaluates the same network. (The Trainer gets only the trained parameters: MXNet's,
  and graphc's, would otherwise put worker 0's statistics on every worker at the first step.)

* Every mode updates the weights with the Trainer's own optimizer step (update_on_kvstore=False:
  the store sums the gradients, each worker or device applies the summed gradient to its copy,
  as PyTorch DDP does). The store's optimizer (update_on_kvstore=True, MXNet's default for
  dist stores) computes the same update but rounds its last bit differently from the Trainer's
  fused one, and at this learning rate a one-bit difference grows to 1e-3 within 20 steps.

Each process prints its throughput (samples/s of the steps after the first, which compiles)
and the final test accuracy. `--save-params FILE` writes the trained parameters (rank 0).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import graphc as mx
from graphc import autograd, gluon, nd

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:        # loaded from its file (the tests): the sibling example is the model
    sys.path.insert(0, HERE)
from image_classification import SIZE, evaluate, load_data, resnet  # noqa: E402

SEED = 7


# -- data: the same global batches in every mode --------------------------------------------------
def shifted(images, rng):
    """Each image moved by (dy, dx) in {-1, 0, 1}^2 drawn from `rng`, edges repeated."""
    shifts = rng.integers(-1, 2, size=(len(images), 2))
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(shifts):
        out[i] = padded[i, :, 1 + dy:1 + dy + SIZE, 1 + dx:1 + dx + SIZE]
    return out


def epoch_arrays(x, y, epoch, batch, parts):
    """The epoch's training images and labels, shuffled and augmented from the seed, cut to
    whole global batches and laid out part-major: rows [w*L, (w+1)*L) (L = len / parts) hold part
    w of global batch 0, then part w of global batch 1, ... So SplitSampler's contiguous shard w,
    read in order, gives worker w part w of every global batch, and reading the arrays in order
    with the layout undone (global_order) gives the global batches themselves."""
    rng = np.random.default_rng([SEED, epoch])
    steps = len(x) // batch
    order = rng.permutation(len(x))[:steps * batch]
    images = shifted(x[order], rng)
    labels = y[order]
    part_major = np.arange(steps * batch).reshape(steps, parts, batch // parts).transpose(1, 0, 2).reshape(-1)
    return images[part_major], labels[part_major], steps


def global_order(steps, parts, batch):
    """Indices that read part-major arrays (epoch_arrays) back as consecutive global batches."""
    return np.arange(steps * batch).reshape(parts, steps, batch // parts).transpose(1, 0, 2).reshape(-1)


def loader(images, labels, batch_size, sampler):
    return gluon.data.DataLoader(gluon.data.ArrayDataset(images, labels), batch_size=batch_size,
                                 sampler=sampler, last_batch="discard")


class _Ordered(gluon.data.Sampler):
    """Yields the given indices in order (the global batches of a part-major epoch)."""

    def __init__(self, indices):
        self._indices = indices

    def __iter__(self):
        return iter(self._indices.tolist())

    def __len__(self):
        return len(self._indices)


# -- BatchNorm statistics: per worker while training, averaged at the end -------------------------
def aux_params(net):
    """The parameters that are not trained by gradients (BatchNorm's running mean and variance)."""
    return [p for p in net.collect_params().values() if p.grad_req == "null"]


def average_aux_over_devices(net):
    for p in aux_params(net):
        copies = [d.asnumpy() for d in p.list_data()]
        p.set_data(nd.array(np.sum(copies, axis=0) / len(copies)))


def average_aux_over_workers(net, num_workers):
    """The mean over workers of each running statistic, through a store without an optimizer
    (its push stores the sum over workers)."""
    params = aux_params(net)
    kv = mx.kv.create("dist_sync")
    keys = [f"aux{i}" for i in range(len(params))]
    values = [p.data() for p in params]
    kv.init(keys, [nd.zeros(v.shape) for v in values])
    sums = [nd.zeros(v.shape) for v in values]
    kv.push(keys, values)
    kv.pull(keys, out=sums)
    for p, s in zip(params, sums):
        p.set_data(s / num_workers)


class PartStatistics:
    """Single mode's stand-in for P workers' BatchNorm statistics: part k's values are swapped in
    before part k's forward pass and kept after it."""

    def __init__(self, net, parts):
        self.params = aux_params(net)
        first = [p.data().asnumpy() for p in self.params]
        self.states = [[a.copy() for a in first] for _ in range(parts)]

    def enter(self, k):
        for p, a in zip(self.params, self.states[k]):
            p.data()[:] = a

    def leave(self, k):
        self.states[k] = [p.data().asnumpy() for p in self.params]

    def average(self):
        for i, p in enumerate(self.params):
            p.set_data(nd.array(np.sum([s[i] for s in self.states], axis=0) / len(self.states)))


# -- training -------------------------------------------------------------------------------------
def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("mpi", "devices", "single"), default="single")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch (all workers together)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--num-devices", type=int, default=2, help="--mode devices: how many cpu(k)")
    parser.add_argument("--parts", type=int, default=2,
                        help="--mode single: the parts each global batch is cut into (as many workers' worth)")
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: a narrow network, at most 2 epochs (as image_classification --quick)")
    parser.add_argument("--no-hybridize", action="store_true")
    parser.add_argument("--save-params", default=None, help="write the trained parameters here (rank 0)")
    parser.add_argument("--result-json", default=None, help="write rank 0's result here as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
    return args


def main(argv=None):
    args = parse(argv)
    kv, rank, num_workers, ctx = None, 0, 1, [mx.cpu()]
    if args.mode == "mpi":
        kv = mx.kv.create("dist_sync")
        rank, num_workers = kv.rank, kv.num_workers
        parts = num_workers
    elif args.mode == "devices":
        ctx = [mx.cpu(k) for k in range(args.num_devices)]
        parts = args.num_devices
    else:
        parts = args.parts
    if args.batch_size % parts:
        raise SystemExit(f"distributed_training.py: --batch-size {args.batch_size} does not split into {parts} "
                         f"equal parts ({args.mode} mode)")
    part_batch = args.batch_size // parts
    say = print if rank == 0 else (lambda *a, **k: None)

    (x_train, y_train), (x_test, y_test) = load_data(args.train_size)
    steps_per_epoch = len(x_train) // args.batch_size
    say(f"{args.mode} mode: {parts} part(s) of {part_batch} images per global batch of {args.batch_size}; "
        f"{len(x_train)} training images, {steps_per_epoch} steps per epoch")

    mx.random.seed(SEED)
    np.random.seed(SEED)
    net = resnet(widths=(8, 8, 16) if args.quick else (16, 32, 64))
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=ctx)
    net(nd.zeros((part_batch, 1, SIZE, SIZE), ctx=ctx[0]))        # finishes deferred initialisation
    if not args.no_hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    if args.mode == "single" and parts > 1:
        for p in net.collect_params().values():
            if p.grad_req != "null":
                p.grad_req = "add"            # the parts' gradients accumulate, as a sum over workers
    statistics = PartStatistics(net, parts) if args.mode == "single" and parts > 1 else None
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    schedule = mx.lr_scheduler.CosineScheduler(max_update=max(1, args.epochs * steps_per_epoch),
                                               base_lr=args.lr, final_lr=0.0)
    # only the trained parameters (see the module docstring on BatchNorm statistics)
    trained = [p for p in net.collect_params().values() if p.grad_req != "null"]
    trainer = gluon.Trainer(trained, "sgd",
                            {"learning_rate": args.lr, "momentum": 0.9, "wd": 1e-4, "lr_scheduler": schedule},
                            kvstore=kv if kv is not None else "device", update_on_kvstore=False)

    def step(x, y):
        """One global batch's step; returns the summed loss and correct count of this process."""
        if args.mode == "devices":
            xs, ys = gluon.utils.split_and_load(x, ctx), gluon.utils.split_and_load(y, ctx)
            with autograd.record():
                outs = [net(a) for a in xs]
                losses = [loss_fn(o, b) for o, b in zip(outs, ys)]
            autograd.backward(losses)
        elif statistics is not None:
            xs, ys = gluon.utils.split_data(x, parts), gluon.utils.split_data(y, parts)
            outs, losses = [], []
            for k, (a, b) in enumerate(zip(xs, ys)):
                statistics.enter(k)
                with autograd.record():
                    outs.append(net(a))
                    losses.append(loss_fn(outs[-1], b))
                losses[-1].backward()
                statistics.leave(k)
            ys = list(ys)
        else:
            ys = [y]
            with autograd.record():
                outs = [net(x)]
                losses = [loss_fn(outs[0], y)]
            losses[0].backward()
        trainer.step(args.batch_size)
        if statistics is not None:
            net.collect_params().zero_grad()
        loss = sum(float(l.sum().asscalar()) for l in losses)
        correct = sum(int((o.argmax(axis=1) == b.as_in_context(o.context)).sum().asscalar())
                      for o, b in zip(outs, ys))
        return loss, correct

    samples_here = part_batch if args.mode == "mpi" else args.batch_size
    timed_steps, timed_s, first_step_s = 0, 0.0, None
    for epoch in range(1, args.epochs + 1):
        images, labels, steps = epoch_arrays(x_train, y_train, epoch, args.batch_size, parts)
        if args.mode == "mpi":
            batches = loader(images, labels, part_batch,
                             gluon.data.SplitSampler(len(images), num_workers, rank, shuffle=False))
        else:
            batches = loader(images, labels, args.batch_size, _Ordered(global_order(steps, parts, args.batch_size)))
        total, correct, count = 0.0, 0, 0
        t_epoch = time.perf_counter()
        for x, y in batches:
            t0 = time.perf_counter()
            loss, right = step(x, y)
            elapsed = time.perf_counter() - t0
            if first_step_s is None:
                first_step_s = elapsed                  # traces and compiles: not throughput
            else:
                timed_steps, timed_s = timed_steps + 1, timed_s + elapsed
            total, correct, count = total + loss, correct + right, count + samples_here
        say(f"epoch {epoch:2d}: train loss {total / count:.4f}  train acc {correct / count:.4f}"
            f"{' (rank 0 shard)' if args.mode == 'mpi' else ''}  lr {trainer.learning_rate:.4f}  "
            f"({time.perf_counter() - t_epoch:.1f} s)")

    if args.mode == "mpi":
        average_aux_over_workers(net, num_workers)
    elif args.mode == "devices":
        average_aux_over_devices(net)
    elif statistics is not None:
        statistics.average()
    accuracy = evaluate(net, x_test, y_test)

    throughput = timed_steps * samples_here / timed_s if timed_s > 0 else float("nan")
    who = f"rank {rank}/{num_workers}" if args.mode == "mpi" else f"{args.mode} ({len(ctx)} device(s))"
    print(f"[{who}] {throughput:.1f} samples/s over {timed_steps} steps after the first "
          f"(first step, with compilation: {first_step_s or 0:.2f} s); "
          f"test accuracy {accuracy:.4f} ({round(accuracy * len(x_test))}/{len(x_test)})", flush=True)
    if args.mode == "mpi":
        say(f"global: {throughput * num_workers:.1f} samples/s over {num_workers} workers")
    result = {"mode": args.mode, "parts": parts, "rank": rank, "num_workers": num_workers,
              "test_accuracy": accuracy, "samples_per_s": throughput, "final_train_loss": total / count}
    if rank == 0 and args.save_params:
        net.save_parameters(args.save_params)
    if rank == 0 and args.result_json:
        with open(args.result_json, "w") as f:
            json.dump(result, f)
    return result


if __name__ == "__main__":
    main()
