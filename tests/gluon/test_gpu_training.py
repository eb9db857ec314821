"""Training on GPUs through the CUDA simulator (the real GPU under GRAPHC_TEST_REAL_GPU=1): a
few steps of each model on gpu(0), or data parallel on two GPUs, must give the losses and
weights the same steps give on the CPU, and the Trainer's update must run on the device
(gluon/gpu_step.py) without copying parameters through the host."""

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.gluon import gpu_step, nn, rnn, utils

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(autouse=True)
def gpu(cuda_device):
    yield cuda_device


def mlp(sizes=(6, 16, 3)):
    net = nn.HybridSequential()
    with net.name_scope():
        for i, n in enumerate(sizes[1:]):
            last = i == len(sizes) - 2
            net.add(nn.Dense(n, activation=None if last else "relu", in_units=sizes[i]))
    return net


def cnn():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1, in_channels=1, activation="relu"),
                nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3, in_units=4 * 4 * 4))
    return net


class LM(gluon.HybridBlock):
    """W5's word language model (Embedding, 2-layer LSTM, decoder), any size."""

    def __init__(self, vocab, emb, hidden, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.encoder = nn.Embedding(vocab, emb)
            self.rnn = rnn.LSTM(hidden, num_layers=2, input_size=emb)
            self.decoder = nn.Dense(vocab, in_units=hidden, flatten=False)

    def hybrid_forward(self, F, x):
        return self.decoder(self.rnn(self.encoder(x)))


def train(make, ctxs, batches, optimizer="sgd", opt_params=None, hybrid=True, loss="sce", kvstore="device",
          update_on_kvstore=None, clip=None):
    """Losses of each step and the final weights (of every device) of `make()` trained on
    `batches` [(x, y) numpy] over the devices `ctxs` (the batch split across them)."""
    mx.random.seed(0)
    net = make()
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    lossf = gluon.loss.L2Loss() if loss == "l2" else gluon.loss.SoftmaxCrossEntropyLoss()
    if hybrid:
        net.hybridize()
        lossf.hybridize()
    trainer = gluon.Trainer(net.collect_params(), optimizer, opt_params or {"learning_rate": 0.1},
                            kvstore=kvstore, update_on_kvstore=update_on_kvstore)
    losses = []
    for x, y in batches:
        xs, ys = utils.split_and_load(x, ctxs), utils.split_and_load(y, ctxs)
        with autograd.record():
            ls = [lossf(net(a), b) for a, b in zip(xs, ys)]
        for l in ls:
            l.backward()
        if clip is not None:
            for ctx in ctxs:
                utils.clip_global_norm([p.grad(ctx) for p in net.collect_params().values()], clip)
        trainer.step(x.shape[0] if loss != "seq" else x.size)
        losses.append(np.concatenate([l.asnumpy().reshape(-1) for l in ls]))
    weights = [[d.asnumpy() for d in p.list_data()] for p in net.collect_params().values()]
    return losses, weights, net


def batches(shape, classes, n=3, seed=1, regression=None):
    rs = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        x = rs.randn(*shape).astype(np.float32)
        y = rs.randn(shape[0], regression).astype(np.float32) if regression else \
            rs.randint(0, classes, shape[0]).astype(np.float32)
        out.append((x, y))
    return out


def assert_same_training(cpu, gpu):
    (lc, wc, _), (lg, wg, _) = cpu, gpu
    for step, (a, b) in enumerate(zip(lg, lc)):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"loss of step {step}")
    for k, (copies, ref) in enumerate(zip(wg, wc)):
        for c in copies:
            np.testing.assert_allclose(c, ref[0], rtol=RTOL, atol=ATOL, err_msg=f"parameter {k}")


def compiled_steps():
    return gpu_step.stats()["compiled_steps"]


# -- one GPU ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer,params", [
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3}),
    ("adam", {"learning_rate": 0.01, "wd": 1e-3}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True}),
])
def test_hybridized_mlp_trains_as_on_the_cpu(optimizer, params):
    data = batches((8, 6), 3)
    before = compiled_steps()
    gpu = train(mlp, [mx.gpu(0)], data, optimizer, params)
    assert compiled_steps() - before == len(data)        # every update ran on the device
    assert_same_training(train(mlp, [mx.cpu()], data, optimizer, params), gpu)


def test_hybridized_cnn_trains_as_on_the_cpu():
    data = batches((4, 1, 8, 8), 3, n=2)
    params = {"learning_rate": 0.05, "momentum": 0.9}
    assert_same_training(train(cnn, [mx.cpu()], data, "sgd", params), train(cnn, [mx.gpu(0)], data, "sgd", params))


@pytest.mark.parametrize("loss", [pytest.param("l2", marks=pytest.mark.slow), "sce"])
def test_eager_mlp_trains_as_on_the_cpu(loss):
    data = batches((8, 6), 3, n=2, regression=3 if loss == "l2" else None)
    cpu = train(mlp, [mx.cpu()], data, "adam", {"learning_rate": 0.01}, hybrid=False, loss=loss)
    gpu = train(mlp, [mx.gpu(0)], data, "adam", {"learning_rate": 0.01}, hybrid=False, loss=loss)
    assert_same_training(cpu, gpu)


@pytest.mark.slow     # (test_gpu_optimizers_rest.py runs each such optimizer; this one through Gluon)
def test_an_optimizer_without_a_compiled_rule_still_trains_on_the_gpu():
    data = batches((8, 6), 3, n=2)
    before = gpu_step.stats()["host_updates"]
    gpu = train(mlp, [mx.gpu(0)], data, "sgld", {"learning_rate": 0.01})     # (gpu_rules.py: host noise)
    assert gpu_step.stats()["host_updates"] - before == len(data)
    assert_same_training(train(mlp, [mx.cpu()], data, "sgld", {"learning_rate": 0.01}), gpu)


def test_a_training_step_keeps_parameters_on_the_device(gpu, host_traffic):
    """After the first step (which compiles), a step copies to the device only the per-step
    coefficients (and a head gradient), and to the host only the loss the caller asks for."""
    net = mlp((32, 64, 10))
    net.initialize(mx.init.Xavier(), ctx=mx.gpu(0))
    net.hybridize()
    lossf = gluon.loss.SoftmaxCrossEntropyLoss()
    lossf.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    rs = np.random.RandomState(0)
    x = nd.array(rs.randn(16, 32), ctx=mx.gpu(0))
    y = nd.array(rs.randint(0, 10, 16), ctx=mx.gpu(0))

    def step():
        with autograd.record():
            l = lossf(net(x), y)
        l.backward()
        trainer.step(16)
        return l
    step()
    moved = host_traffic(gpu)
    l = step()
    l.asnumpy()
    weights = sum(p.data().size * 4 for p in net.collect_params().values())
    assert moved["dtoh"] == 16 * 4, moved           # the loss only
    assert moved["htod"] <= 256, (moved, weights)   # coefficients (and a head gradient), not weights


def test_clip_global_norm_on_gpu_gradients_equals_the_cpu():
    rs = np.random.RandomState(4)
    arrays = [rs.randn(5, 7).astype(np.float32) * 3, rs.randn(11).astype(np.float32)]
    cpu = [nd.array(a) for a in arrays]
    gpu = [nd.array(a, ctx=mx.gpu(0)) for a in arrays]
    n_cpu = utils.clip_global_norm(cpu, 1.0)
    n_gpu = utils.clip_global_norm(gpu, 1.0)
    assert abs(n_cpu - n_gpu) <= 1e-5 * n_cpu
    for a, b in zip(gpu, cpu):
        assert a.context == mx.gpu(0)
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-7)
    assert abs(float(np.sqrt(sum((b.asnumpy() ** 2).sum() for b in gpu))) - 1.0) < 1e-5


def test_grad_req_add_accumulates_on_the_gpu():
    x = np.random.RandomState(5).randn(4, 6).astype(np.float32)
    grads = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        mx.random.seed(0)
        net = mlp()
        net.initialize(mx.init.Xavier(), ctx=ctx)
        net.hybridize()
        net.collect_params().setattr("grad_req", "add")
        net.collect_params().zero_grad()
        for k in range(2):
            with autograd.record():
                out = net(nd.array(x * (k + 1), ctx=ctx))
            out.backward()
        grads.append([p.grad(ctx).asnumpy() for p in net.collect_params().values()])
    for a, b in zip(*grads):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL)


# -- the bench workloads, tiny ------------------------------------------------------------------------

def test_w3_mlp_step_tiny():
    """W3 (MLP, softmax cross-entropy, SGD lr 0.1) at 64-32-32-10, batch 16."""
    data = batches((16, 64), 10, n=2)
    make = lambda: mlp((64, 32, 32, 10))     # noqa: E731
    assert_same_training(train(make, [mx.cpu()], data), train(make, [mx.gpu(0)], data))


@pytest.mark.slow
def test_w5_word_language_model_tiny():
    """W5 (2-layer LSTM LM, clip_global_norm(0.25), SGD) at vocab 30, sizes 8, bptt 5, batch 2."""
    rs = np.random.RandomState(6)
    data = [(rs.randint(0, 30, (5, 2)).astype(np.float32), rs.randint(0, 30, (5, 2)).astype(np.float32))
            for _ in range(2)]
    make = lambda: LM(30, 8, 8)      # noqa: E731
    kw = dict(optimizer="sgd", opt_params={"learning_rate": 1.0}, clip=0.25, loss="seq")
    cpu = train(make, [mx.cpu()], data, **kw)
    gpu = train(make, [mx.gpu(0)], data, **kw)
    assert_same_training(cpu, gpu)


# -- two GPUs, data parallel ----------------------------------------------------------------------

@pytest.mark.parametrize("kvstore,update_on_kvstore,optimizer", [
    ("device", None, "sgd"), ("local", False, "sgd"), ("device", None, "adam")])
def test_two_gpus_data_parallel_equals_one_cpu(two_gpus, kvstore, update_on_kvstore, optimizer):
    data = batches((8, 6), 3)
    params = {"learning_rate": 0.05, "momentum": 0.9} if optimizer == "sgd" else {"learning_rate": 0.01}
    cpu = train(mlp, [mx.cpu()], data, optimizer, params)
    before = compiled_steps()
    gpus = train(mlp, [mx.gpu(0), mx.gpu(1)], data, optimizer, params, kvstore=kvstore,
                 update_on_kvstore=update_on_kvstore)
    assert compiled_steps() > before
    assert_same_training(cpu, gpus)
    _, weights, net = gpus
    for p in net.collect_params().values():
        assert [d.context for d in p.list_data()] == [mx.gpu(0), mx.gpu(1)]


def test_trainer_states_saved_from_the_gpu_resume_as_on_the_cpu(tmp_path):
    """Adam's moments written from GPU arrays hold the CPU's values (to float rounding), and load
    back onto the GPU as device arrays that continue training as the CPU does."""
    data = batches((4, 6), 3, n=2)
    weights = {}
    for ctx in (mx.cpu(), mx.gpu(0)):
        _, _, net = train(mlp, [ctx], data[:1], "adam", {"learning_rate": 0.01})
        trainer = next(iter(net.collect_params().values()))._trainer     # (the one train() made)
        trainer.save_states(str(tmp_path / f"{ctx}.states"))
        net.save_parameters(str(tmp_path / f"{ctx}.params"))
        mx.random.seed(3)
        again = mlp()
        again.load_parameters(str(tmp_path / f"{ctx}.params"), ctx=ctx)
        again.hybridize()
        resumed = gluon.Trainer(again.collect_params(), "adam", {"learning_rate": 0.01})
        resumed.load_states(str(tmp_path / f"{ctx}.states"))
        x, y = (nd.array(a, ctx=ctx) for a in data[1])
        with autograd.record():
            l = gluon.loss.SoftmaxCrossEntropyLoss()(again(x), y)
        l.backward()
        resumed.step(4)
        if ctx.device_type == "gpu":
            state = next(iter(resumed._updaters[0].states.values()))
            assert all(s.context == ctx for s in state)
        weights[str(ctx)] = [p.data().asnumpy() for p in again.collect_params().values()]
    from graphc.formats.mxnet_params import load_params
    cpu_states, gpu_states = (load_params(str(tmp_path / f"{c}.states")) for c in ("cpu(0)", "gpu(0)"))
    assert sorted(cpu_states) == sorted(gpu_states) and len(cpu_states) > 2
    for k, v in cpu_states.items():
        np.testing.assert_allclose(np.asarray(gpu_states[k]), np.asarray(v), rtol=RTOL, atol=1e-7, err_msg=k)
    for a, b in zip(weights["gpu(0)"], weights["cpu(0)"]):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
