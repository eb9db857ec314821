"""W10 for PyTorch: the same data-parallel training steps as graphc_w10.py, with
DistributedDataParallel over gloo for 2 ranks x 1 thread (started by torchrun), plus gloo's
all_reduce of the MLP's parameter buffers.

torch_w.py --workload W10 (the parent) starts one child per configuration (_w10.py); each child
measures eager and torch.compile. Only rank 0 prints records.
"""
import _common as C  # first: pins thread counts (to the configuration's, in a child)

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as tnn

import _w10 as W
from _torch_seed import assign_seeded

SYSTEM = "torch"
VARIANTS = ("eager", "compile")


def parent(quick):
    script = str(Path(__file__).resolve().parent / "torch_w.py")
    base = ["--workload", "W10", "--child"] + (["--quick"] if quick else [])
    runs = [(c, [sys.executable, script] + base + ["--variants", c], W.child_env(c)) for c in ("1x1", "1x2")]
    runs.append(("2x1", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                         script] + base + ["--variants", "2x1"], W.child_env("2x1")))
    W.run_children(SYSTEM, runs, timeout=900)


class BasicBlock(tnn.Module):
    """The image example's BasicBlock: relu(bn(conv(relu(bn(conv(x))))) + shortcut)."""

    def __init__(self, cin, ch, stride):
        super().__init__()
        self.body = tnn.Sequential(tnn.Conv2d(cin, ch, 3, stride, 1, bias=False), tnn.BatchNorm2d(ch), tnn.ReLU(),
                                   tnn.Conv2d(ch, ch, 3, 1, 1, bias=False), tnn.BatchNorm2d(ch))
        self.downsample = None
        if stride != 1:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, ch, 1, stride, bias=False), tnn.BatchNorm2d(ch))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.body(x) + shortcut)


def make_cnn():
    widths = W.CNN_WIDTHS
    layers = [tnn.Conv2d(W.CNN_IMAGE[0], widths[0], 3, 1, 1, bias=False), tnn.BatchNorm2d(widths[0]), tnn.ReLU()]
    cin = widths[0]
    for i, ch in enumerate(widths):
        layers.append(BasicBlock(cin, ch, 1 if i == 0 else 2))
        cin = ch
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(cin, W.CNN_CLASSES)]
    net = tnn.Sequential(*layers)
    assign_seeded(net, W.cnn_params(), "CNN parameters")
    return net


def child(config, quick):
    ranks = W.CONFIGS[config][0]
    torch.set_num_threads(C.THREADS)
    rank = 0
    if ranks > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo")
        rank = dist.get_rank()
    emit = C.emit if rank == 0 else (lambda rec: None)
    for variant in VARIANTS:
        for case in ("mlp", "cnn"):
            C.run_variant(SYSTEM, f"{variant}{', DDP gloo' if ranks > 1 else ''}", "W10",
                          lambda case=case, variant=variant: train(case, config, variant, rank, ranks, quick),
                          emit_fn=emit, fields={"case": case, "config": config})
    if ranks > 1:
        for rec in allreduce(quick):
            emit(rec)
        dist.destroy_process_group()


def train(case, config, variant, rank, ranks, quick):
    import torch.distributed as dist
    from torch_w import make_mlp
    x, y, batch = W.global_batch(case)
    xs, ys = W.shard(x, y, rank, ranks)
    X, Y = torch.from_numpy(np.ascontiguousarray(xs)), torch.from_numpy(ys)
    net = (make_mlp() if case == "mlp" else make_cnn()).train()
    model = net
    if ranks > 1:
        from torch.nn.parallel import DistributedDataParallel
        model = DistributedDataParallel(net)       # averages the gradients: the global batch's mean
    if variant == "compile":
        model = torch.compile(model)
    opt = torch.optim.SGD(net.parameters(), lr=C.LR)
    loss_fn = tnn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), Y)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    losses = []
    for _ in range(W.CHECK_STEPS):
        local = step().detach().double()
        if ranks > 1:
            dist.all_reduce(local)
            local /= ranks
        losses.append(float(local))
    setup = time.perf_counter() - t0
    samples = W.time_fixed(lambda: step().item(), W.BLOCK[case], quick)
    return W.training_record(SYSTEM, f"{variant}{', DDP gloo' if ranks > 1 else ''}", case, config, samples,
                             losses, setup_s=setup, threads=torch.get_num_threads(), ranks=ranks)


def allreduce(quick):
    """gloo's all_reduce (sum, in place) of the MLP's parameter buffers, one call per buffer. The
    buffers start at 1e-30 x the seeded values, so 200 doublings stay finite and normal."""
    import torch.distributed as dist
    bufs = [torch.from_numpy(b * np.float32(1e-30)) for b in W.allreduce_buffers()]
    nbytes = sum(b.numel() * 4 for b in bufs)

    def call():
        for b in bufs:
            dist.all_reduce(b)
    try:
        call()
        samples = W.time_fixed(call, W.ALLREDUCE_BLOCK, quick)
        return [W.allreduce_record(SYSTEM, "torch.distributed.all_reduce (gloo), per buffer", samples, nbytes,
                                   buffers=len(bufs))]
    except Exception as e:  # noqa: BLE001
        return [{"system": SYSTEM, "variant": "torch.distributed.all_reduce (gloo), per buffer", "workload": "W10",
                 "case": "allreduce", "config": "2x1", "error": f"{type(e).__name__}: {e}"[:500]}]
