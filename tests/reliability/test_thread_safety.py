"""Several Python threads using one hybridized block, one compiled Program, or autograd at once get
exactly what one thread would: every result is checked against the single-threaded result of
the same input (each call gets its own input, so a result computed from another thread's data
or half-overwritten working memory cannot pass). Threads start together at a barrier and every
join is bounded, so a deadlock fails the test instead of hanging it."""
import threading
import time

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.compiler import compile_graph
from graphc.gluon import nn
from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType

THREADS, CALLS = 4, 60
JOIN_S = 60


def run_threads(work, n=THREADS):
    """Run work(t) in n threads released together; re-raise the first error; fail on a hang."""
    barrier = threading.Barrier(n, timeout=JOIN_S)
    errors = []

    def body(t):
        try:
            barrier.wait()
            work(t)
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)
    threads = [threading.Thread(target=body, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + JOIN_S
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    assert not any(th.is_alive() for th in threads), f"threads still running after {JOIN_S} s (deadlock?)"
    if errors:
        raise errors[0]


def mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(128, activation="relu"), nn.Dense(64, activation="tanh"), nn.Dense(10))
    return net, (8, 64)


def cnn():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
            nn.Conv2D(16, 3, padding=1, activation="relu"), nn.GlobalAvgPool2D(), nn.Dense(10))
    return net, (4, 3, 16, 16)


def built(make, seed=0, hybridize=None):
    """A net whose deferred initialization has run (from `seed`), hybridized."""
    mx.random.seed(seed)
    net, shape = make()
    net.initialize(mx.init.Xavier())
    net(nd.zeros(shape))
    net.hybridize(**(hybridize or {}))
    return net, shape


def inputs(shape, count, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


# -- inference -----------------------------------------------------------------------------------

@pytest.mark.parametrize("static_alloc", [False, True], ids=["dynamic", "static_alloc"])
@pytest.mark.parametrize("make", [mlp, cnn])
def test_one_hybridized_block_called_from_four_threads_gives_single_threaded_results(make, static_alloc):
    net, shape = built(make, hybridize=dict(static_alloc=static_alloc, static_shape=static_alloc))
    xs = inputs(shape, THREADS * CALLS)
    want = [net(nd.array(x)).asnumpy() for x in xs]
    got = [None] * len(xs)

    def work(t):
        for i in range(t, len(xs), THREADS):
            y = net(nd.array(xs[i]))
            time.sleep(0)          # let another thread run while this result is held
            got[i] = y.asnumpy()
    run_threads(work)
    wrong = [i for i in range(len(xs)) if not np.allclose(got[i], want[i], rtol=1e-5, atol=1e-5)]
    assert not wrong, f"{len(wrong)} of {len(xs)} results differ from the single-threaded ones, e.g. call {wrong[0]}"


def test_static_alloc_never_hands_one_output_set_to_two_calls_in_flight():
    """Both calls are inside the program at once (the wrapper waits for the other before
    returning): each must write its own buffers, else one returns the other's numbers."""
    net, shape = built(mlp, hybridize=dict(static_alloc=True, static_shape=True))
    xs = inputs(shape, 2, seed=5)
    want = [net(nd.array(x)).asnumpy() for x in xs]
    entry = net._cached_op.last
    training, program = entry.forward
    overlap = threading.Barrier(2, timeout=10)

    def both_inside(arrays, outputs=None, rng=None):
        res = program(arrays, outputs, rng=rng)
        overlap.wait()
        return res
    entry.forward = (training, both_inside)
    got = [None, None]

    def work(t):
        y = net(nd.array(xs[t]))
        overlap.wait()             # the other thread has its result too before either reads
        got[t] = y.asnumpy()
    run_threads(work, 2)
    for t in range(2):
        np.testing.assert_allclose(got[t], want[t], rtol=1e-5, atol=1e-5)


def _program_graph():
    """A GEMM, a large elementwise kernel split across the worker pool, arena intermediates and
    a host-run step (sort) between native segments."""
    gb = GraphBuilder("threads")
    F = gb.F
    x = gb.var("x", TensorType((16, 96)))
    w = gb.var("w", TensorType((128, 96)), "param")
    big = gb.var("big", TensorType((1 << 17,)))
    h = F.Activation(F.FullyConnected(x, w, num_hidden=128, no_bias=True), act_type="tanh")
    s = F.sort(h * 2.0 + 1.0, axis=1)
    return gb.build([F.exp(s * 0.1) - 1.0, F.sigmoid(big) * F.tanh(big * 0.5) + 0.25])


@pytest.mark.parametrize("pass_outputs", [False, True], ids=["allocated", "caller_outputs"])
def test_one_program_called_from_four_threads_gives_single_threaded_results(pass_outputs):
    prog = compile_graph(_program_graph())
    rng = np.random.default_rng(2)
    w = rng.standard_normal((128, 96)).astype(np.float32) * 0.1
    feeds = [[rng.standard_normal((16, 96)).astype(np.float32), w,
              rng.standard_normal(1 << 17).astype(np.float32)] for _ in range(THREADS * 30)]
    want = [[o.copy() for o in prog(f)] for f in feeds]

    def work(t):
        outs = [np.empty((16, 128), np.float32), np.empty(1 << 17, np.float32)] if pass_outputs else None
        for i in range(t, len(feeds), THREADS):
            got = prog(feeds[i], outs)
            for g, ref in zip(got, want[i]):
                np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6, err_msg=f"call {i}")
    run_threads(work)


# -- autograd ------------------------------------------------------------------------------------

def test_recording_and_training_mode_are_per_thread():
    """As in MXNet: record() in one thread neither records nor switches training mode in
    another, and a new thread starts with both off."""
    inside, seen_by_other, other_recorded = threading.Event(), {}, threading.Event()
    x = nd.array([1.0, 2.0])
    x.attach_grad()

    def other():
        assert inside.wait(10)
        seen_by_other["recording"] = autograd.is_recording()
        seen_by_other["training"] = autograd.is_training()
        y = x * 3.0
        seen_by_other["taped"] = y._entry is not None
        with autograd.record():
            z = x * 5.0
        seen_by_other["own_record"] = z._entry is not None
        other_recorded.set()
    th = threading.Thread(target=other, daemon=True)
    th.start()
    with autograd.record():
        inside.set()
        assert other_recorded.wait(10)
        assert autograd.is_recording() and autograd.is_training()   # the other's exit did not end ours
        y = x * 2.0
    th.join(10)
    assert seen_by_other == {"recording": False, "training": False, "taped": False, "own_record": True}
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [2.0, 2.0])


# -- training ------------------------------------------------------------------------------------

def _train(net, batches, steps):
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.05, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses = []
    for x, y in batches[:steps]:
        with autograd.record():
            loss = loss_fn(net(nd.array(x)), nd.array(y))
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.asnumpy())
    return np.array(losses), [p.data().asnumpy() for p in net.collect_params().values()]


@pytest.mark.parametrize("make", [mlp, cnn])
def test_separate_nets_train_concurrently_as_they_train_alone(make):
    steps = 8
    _, shape = make()
    rng = np.random.default_rng(3)
    data = [[(x, rng.integers(0, 10, shape[0]).astype(np.float32)) for x in inputs(shape, steps, seed=10 + t)]
            for t in range(THREADS)]
    # every net starts from the same weights and is hybridized the same way, so they share the
    # compiled programs' machine code (the in-memory cache) as well as the worker pool
    nets = [built(make, seed=7, hybridize=dict(static_alloc=t % 2 == 0, static_shape=t % 2 == 0))[0]
            for t in range(THREADS + 1)]
    reference = nets.pop()
    start = [p.data().asnumpy() for p in reference.collect_params().values()]
    want = []
    for t in range(THREADS):
        for p, value in zip(reference.collect_params().values(), start):
            p.set_data(nd.array(value))
        want.append(_train(reference, data[t], steps))
    got = [None] * THREADS

    def work(t):
        got[t] = _train(nets[t], data[t], steps)
    run_threads(work)
    for t in range(THREADS):
        np.testing.assert_allclose(got[t][0], want[t][0], rtol=1e-4, atol=1e-5, err_msg=f"losses of net {t}")
        for p, ref in zip(got[t][1], want[t][1]):
            np.testing.assert_allclose(p, ref, rtol=1e-4, atol=1e-5, err_msg=f"parameters of net {t}")


@pytest.mark.parametrize("grad_req", ["add", "write"])
@pytest.mark.parametrize("static_alloc", [False, True], ids=["dynamic", "static_alloc"])
def test_threads_sharing_one_net_get_their_outputs_and_gradients_land_per_grad_req(static_alloc, grad_req):
    """Forward+backward of one hybridized net from four threads at once (no trainer step in
    between): each thread's outputs are its own, and with grad_req='add' the parameters'
    gradients are the sum over all calls, as if the calls had run one after another; with
    'write' each gradient is one call's, whole."""
    net, shape = built(mlp, hybridize=dict(static_alloc=static_alloc, static_shape=static_alloc))
    params = list(net.collect_params().values())
    for p in params:
        p.grad_req = grad_req
    calls = 12
    xs = inputs(shape, THREADS * calls, seed=4)

    def step(x):
        with autograd.record():
            out = net(nd.array(x))
            loss = (out * out).sum()
        loss.backward()
        return out.asnumpy()
    want_out, want_grads = [], []
    for x in xs:
        for p in params:
            p.zero_grad()
        want_out.append(step(x))
        want_grads.append([p.grad().asnumpy() for p in params])
    for p in params:
        p.zero_grad()
    got = [None] * len(xs)

    def work(t):
        for i in range(t, len(xs), THREADS):
            got[i] = step(xs[i])
    run_threads(work)
    for i in range(len(xs)):
        np.testing.assert_allclose(got[i], want_out[i], rtol=1e-5, atol=1e-5, err_msg=f"output of call {i}")
    final = [p.grad().asnumpy() for p in params]
    if grad_req == "add":
        for k, g in enumerate(final):
            np.testing.assert_allclose(g, sum(w[k] for w in want_grads), rtol=1e-4, atol=1e-4)
    else:
        # which call wrote last is up to the scheduler; whichever it was, all of its gradients
        # (not a mix of two calls' elements) are there
        match = [i for i, w in enumerate(want_grads)
                 if all(np.allclose(g, wk, rtol=1e-5, atol=1e-6) for g, wk in zip(final, w))]
        assert match, "the final gradients are not any single call's gradients"


def test_gradients_accumulated_from_several_threads_are_all_kept():
    """grad_req='add' on one leaf from four threads' backward passes: numpy's `+=` runs without
    the GIL, so unguarded, two threads read the same old gradient and one sum is lost."""
    x = nd.zeros((1 << 20,))
    x.attach_grad("add")
    scales = [1.0 + t for t in range(THREADS)]

    def work(t):
        for _ in range(CALLS):
            with autograd.record():
                y = (x * scales[t]).sum()
            y.backward()
    run_threads(work)
    lost = int((x.grad.asnumpy() != CALLS * sum(scales)).sum())
    assert lost == 0, f"{lost} of {x.size} gradient elements lost a thread's contribution"
