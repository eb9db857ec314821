"""Image classification: a small ResNet on scikit-learn's handwritten digits.

The 1797 8x8 digit images that ship with scikit-learn are upsampled to 16x16 (bilinear, in
numpy), normalised, and fed through gluon.data.ArrayDataset and DataLoader (training images get
a random shift of up to one pixel). The network is a ResNet in the style of He et al. (2016):
a 3x3 convolution stem, three stages of BasicBlocks (two 3x3 Conv2D + BatchNorm, a residual add,
relu; stages two and three halve the resolution and project the shortcut with a 1x1
convolution), GlobalAvgPool2D and a Dense classifier. SGD with momentum and a cosine schedule.

The program times a few training steps of the same network eagerly and hybridized (compiled to
native code), trains hybridized, reports loss and accuracy per epoch, exports the network in
MXNet 1.x's file format and reloads it with SymbolBlock.imports to check its predictions.

    .venv/bin/python examples/image_classification.py            # 12 epochs
    .venv/bin/python examples/image_classification.py --quick    # seconds, for the smoke test
    .venv/bin/python examples/image_classification.py --rec      # from a .rec built from the digits
"""
from __future__ import annotations

import argparse
import itertools
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

SIZE = 16


# -- data -----------------------------------------------------------------------------------------
def upsample_bilinear(images, size):
    """(N, h, w) -> (N, size, size), bilinear with pixel centres aligned (as cv2.resize)."""
    n, h, w = images.shape

    def axis(src, dst):
        pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    (y0, y1, fy), (x0, x1, fx) = axis(h, size), axis(w, size)
    rows = images[:, y0, :] * (1 - fy)[None, :, None] + images[:, y1, :] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]


def load_data(n_train=None):
    """Train and test sets, (N, 1, SIZE, SIZE) float32 images and float32 labels; a fixed 80/20
    split, normalised with the training set's mean and standard deviation."""
    digits = load_digits()
    images = upsample_bilinear(digits.images.astype(np.float32) / 16.0, SIZE)[:, None]
    labels = digits.target.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
    split = int(0.8 * len(images))
    mean, std = images[:split].mean(), images[:split].std()
    images = (images - mean) / std
    train = (images[:split][:n_train], labels[:split][:n_train])
    return train, (images[split:], labels[split:])


def random_shift(image, label):
    """Training augmentation: move the digit by up to one pixel in each direction (edge padded)."""
    dy, dx = np.random.randint(-1, 2, size=2)
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return padded[:, 1 + dy:1 + dy + SIZE, 1 + dx:1 + dx + SIZE], label


# -- --rec: the same training set through a RecordIO file ----------------------------------------
def build_digits_rec(folder, x_train, y_train):
    """Write the training digits as 18x18 gray PNGs (16x16 plus the one-pixel edge padding that
    random_shift uses) in one subfolder per class, then list and pack them as `graphc im2rec
    --list --recursive` and `graphc im2rec --encoding .png --color 0` would. Pixels map the
    normalised values linearly onto 0..255; returns the .rec path and the (mean, std) that map
    them back, for ImageRecordIter's mean_r/std_r."""
    from graphc.image import im2rec
    lo, hi = float(x_train.min()), float(x_train.max())
    root = os.path.join(folder, "digits")
    for i, (image, label) in enumerate(zip(x_train, y_train)):
        pixels = np.rint((np.pad(image[0], 1, mode="edge") - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        os.makedirs(os.path.join(root, str(int(label))), exist_ok=True)
        with open(os.path.join(root, str(int(label)), f"{i:05d}.png"), "wb") as fh:
            fh.write(mx.image.imencode(pixels[:, :, None], ".png"))
    items, _ = im2rec.list_images(root, recursive=True)     # folders 0..9 sort to labels 0..9
    lst, = im2rec.make_lists(os.path.join(folder, "digits"), items)
    written, skipped = im2rec.pack_list(lst, root, num_thread=2, encoding=".png", color=0)
    assert skipped == 0, f"{skipped} digit images could not be packed"
    return os.path.splitext(lst)[0] + ".rec", (-lo * 255.0 / (hi - lo), 255.0 / (hi - lo))


class RecordBatches:
    """An ImageRecordIter as the (data, label) iterable the training loop reads: one pass, one epoch."""

    def __init__(self, it, count):
        self.it, self.count = it, count

    def __len__(self):
        return -(-self.count // self.it.batch_size)

    def __iter__(self):
        # reset first, not last: a pass abandoned early (the first batch taken for timing) must
        # not shorten the next epoch
        self.it.reset()
        for batch in self.it:
            yield batch.data[0], batch.label[0]


# -- the network ----------------------------------------------------------------------------------
class BasicBlock(nn.HybridBlock):
    """relu(x' + bn(conv(relu(bn(conv(x)))))), x' = x or a strided 1x1 projection of x."""

    def __init__(self, channels, stride, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential(prefix="")
            self.body.add(nn.Conv2D(channels, 3, stride, 1, use_bias=False), nn.BatchNorm(),
                          nn.Activation("relu"),
                          nn.Conv2D(channels, 3, 1, 1, use_bias=False), nn.BatchNorm())
            self.downsample = None
            if stride != 1:
                self.downsample = nn.HybridSequential(prefix="")
                self.downsample.add(nn.Conv2D(channels, 1, stride, use_bias=False), nn.BatchNorm())

    def hybrid_forward(self, F, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.Activation(self.body(x) + shortcut, act_type="relu")


def resnet(widths=(16, 32, 64), classes=10):
    net = nn.HybridSequential(prefix="resnet_")
    with net.name_scope():
        net.add(nn.Conv2D(widths[0], 3, 1, 1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"))
        for i, width in enumerate(widths):
            net.add(BasicBlock(width, stride=1 if i == 0 else 2))
        net.add(nn.GlobalAvgPool2D(), nn.Dense(classes))
    return net


# -- training -------------------------------------------------------------------------------------
def train_step(net, trainer, loss_fn, x, y):
    with autograd.record():
        loss = loss_fn(net(x), y)
    loss.backward()
    trainer.step(x.shape[0])
    return loss


def compare_step_times(net, make_trainer, loss_fn, batch, steps):
    """Fastest time of a training step eager and hybridized, on the same network and batch (the
    fastest of `steps` is the one least disturbed by other processes). The parameters
    (BatchNorm's running statistics included) are put back afterwards, so the timing steps do
    not count as training."""
    with tempfile.TemporaryDirectory(prefix="graphc-resnet-") as scratch:   # removed on the way out, errors too
        saved = os.path.join(scratch, "init.params")
        net.save_parameters(saved)
        trainer = make_trainer()

        def timed(n):
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                train_step(net, trainer, loss_fn, *batch).wait_to_read()
                times.append(time.perf_counter() - t0)
            return times

        timed(1)                                          # warm-up: eager allocation paths
        eager = min(timed(steps))
        net.hybridize(static_alloc=True, static_shape=True)
        compile_s = timed(1)[0]                           # first call traces and compiles
        compiled = min(timed(steps))
        net.load_parameters(saved)
    return eager, compiled, compile_s


def evaluate(net, x, y, batch=256, ctx=None):
    metric = mx.metric.Accuracy()
    for i in range(0, len(x), batch):
        metric.update([nd.array(y[i:i + batch], ctx=ctx)], [net(nd.array(x[i:i + batch], ctx=ctx))])
    return metric.get()[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--no-hybridize", action="store_true", help="train eagerly (no compiled program)")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: a narrow network, 2 epochs")
    parser.add_argument("--out-dir", default=None, help="where to export the model (default: a temp dir)")
    parser.add_argument("--rec", action="store_true",
                        help="train from a .rec file built from the digits (im2rec + ImageRecordIter, random "
                             "crops for the shifts) in a temporary folder")
    parser.add_argument("--gpu", type=int, default=None, metavar="K",
                        help="train on mx.gpu(K) (GRAPHC_CUDA_SIM=1 runs it on the CUDA simulator)")
    parser.add_argument("--max-steps", type=int, default=None, metavar="N",
                        help="a smoke run: at most N batches per epoch and per evaluation, no timing comparison")
    args = parser.parse_args(argv)
    epochs = min(args.epochs, 2) if args.quick else args.epochs
    ctx = mx.cpu() if args.gpu is None else mx.gpu(args.gpu)
    limit = args.max_steps

    (x_train, y_train), (x_test, y_test) = load_data()
    if limit is not None:           # a smoke run evaluates as many images as it trains on per epoch
        x_test, y_test = x_test[:limit * args.batch_size], y_test[:limit * args.batch_size]
    print(f"digits: {len(x_train)} training and {len(x_test)} test images, 8x8 upsampled to {SIZE}x{SIZE}")
    train_set = gluon.data.ArrayDataset(x_train, y_train).transform(random_shift)
    loader = gluon.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, last_batch="discard")
    rec_dir = None
    if args.rec:
        # removed at the end of main, or by its finalizer if training fails
        rec_dir = tempfile.TemporaryDirectory(prefix="graphc-digits-rec-")
        t0 = time.perf_counter()
        rec_path, (mean, std) = build_digits_rec(rec_dir.name, x_train, y_train)
        print(f"built {os.path.basename(rec_path)} ({os.path.getsize(rec_path) // 1024} KiB, {len(x_train)} PNG "
              f"records) in {time.perf_counter() - t0:.1f} s; training reads it through ImageRecordIter")
        loader = RecordBatches(mx.io.ImageRecordIter(
            path_imgrec=rec_path, data_shape=(1, SIZE, SIZE), batch_size=args.batch_size, shuffle=True,
            rand_crop=True, mean_r=mean, std_r=std, seed=7, preprocess_threads=2), len(x_train))

    mx.random.seed(7)
    np.random.seed(7)
    net = resnet(widths=(8, 8, 16) if args.quick else (16, 32, 64))
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=ctx)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps_total = epochs * len(loader)
    schedule = mx.lr_scheduler.CosineScheduler(max_update=steps_total, base_lr=args.lr, final_lr=0.0)

    def make_trainer(lr_scheduler=None):
        return gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": args.lr, "momentum": 0.9, "wd": 1e-4,
                                                           "lr_scheduler": lr_scheduler})

    first_batch = [a.as_in_context(ctx) for a in next(iter(loader))]
    net(first_batch[0])                         # finishes deferred initialisation
    n_params = sum(int(np.prod(p.shape)) for p in net.collect_params().values())
    print(f"ResNet: {n_params} parameters\n")

    if args.no_hybridize:
        pass
    elif limit is not None:
        net.hybridize(static_alloc=True, static_shape=True)
    else:
        eager, compiled, compile_s = compare_step_times(net, make_trainer, loss_fn, first_batch,
                                                        steps=2 if args.quick else 5)
        print(f"training step (batch {args.batch_size}, fastest of several): eager {eager * 1e3:.1f} ms, "
              f"hybridized {compiled * 1e3:.1f} ms -> {eager / compiled:.1f}x faster "
              f"(first hybridized call, tracing + compiling: {compile_s:.1f} s)\n")

    trainer = make_trainer(schedule)
    for epoch in range(1, epochs + 1):
        total, correct, count = 0.0, 0, 0
        t0 = time.perf_counter()
        batches = loader if limit is None else itertools.islice(loader, limit)
        with progress(batches, total=None if limit is None else min(limit, len(loader)),
                      desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False) as bar:
            for x, y in bar:
                x, y = x.as_in_context(ctx), y.as_in_context(ctx)
                with autograd.record():
                    out = net(x)
                    loss = loss_fn(out, y)
                loss.backward()
                trainer.step(x.shape[0])
                total += float(loss.sum().asscalar())
                correct += int((out.argmax(axis=1) == y).sum().asscalar())
                count += x.shape[0]
                bar.set_postfix(loss=f"{total / count:.3f}", acc=f"{correct / count:.3f}")
        print(f"epoch {epoch:2d}: train loss {total / count:.4f}  train acc {correct / count:.4f}  "
              f"test acc {evaluate(net, x_test, y_test, ctx=ctx):.4f}  lr {trainer.learning_rate:.4f}  "
              f"({time.perf_counter() - t0:.1f} s)")

    accuracy = evaluate(net, x_test, y_test, ctx=ctx)
    print(f"\ntest accuracy: {accuracy:.4f} ({round(accuracy * len(x_test))}/{len(x_test)})")

    if args.no_hybridize:          # export needs a traced graph
        net.hybridize()
        net(nd.array(x_test[:8], ctx=ctx))
    with tempfile.TemporaryDirectory(prefix="graphc-resnet-") as scratch:   # removed on the way out
        out_dir = args.out_dir or scratch
        os.makedirs(out_dir, exist_ok=True)
        sym_file, param_file = net.export(os.path.join(out_dir, "resnet_digits"), epoch=epochs)
        print(f"\nexported {os.path.basename(sym_file)} and {os.path.basename(param_file)} to {out_dir}"
              + ("" if args.out_dir else " (a temporary folder; --out-dir keeps them)"))
        reloaded = gluon.SymbolBlock.imports(sym_file, ["data"], param_file, ctx=ctx)
    x = nd.array(x_test[:32], ctx=ctx)
    before, after = net(x).asnumpy(), reloaded(x).asnumpy()
    print(f"reloaded predictions: {after.argmax(axis=1).tolist()}")
    print(f"identical to the trained network: {np.array_equal(before, after)}")
    if rec_dir is not None:
        rec_dir.cleanup()
    return {"test_accuracy": accuracy, "identical": bool(np.array_equal(before, after))}


if __name__ == "__main__":
    main()
