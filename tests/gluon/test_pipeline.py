"""Pipelined micro-batches (hybridize(pipeline_microbatches=M)) on partitioned blocks: forward,
parameter gradients and SGD steps equal the same block unpartitioned and unpipelined, for 2
and 3 devices, M in {1, 2, 4}, even and uneven splits; BatchNorm sees each micro-batch on its
own; bad splits are refused with the block, M and the batch in the message."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon
from graphc.ops.errors import GraphcError

RTOL, ATOL = 1e-4, 1e-5       # sums over micro-batches add in another order than one GEMM


def _mlp(ctxs, in_units=8):
    """Dense layers, layer k's parameters on cpu(ctxs[k]); the same values whatever the devices."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Dense(16, activation="relu", in_units=in_units),
                gluon.nn.Dense(12, activation="tanh", in_units=16),
                gluon.nn.Dense(4, in_units=12))
    for k, child in enumerate(net):
        mx.random.seed(11 + k)
        child.initialize(mx.init.Xavier(), ctx=mx.cpu(ctxs[k]))
    return net


def _cnn(ctxs):
    """Conv -> pool -> conv -> dense, no batch statistics; part k on cpu(ctxs[k])."""
    net = gluon.nn.HybridSequential()
    with net.name_scope():
        first = gluon.nn.HybridSequential()
        first.add(gluon.nn.Conv2D(4, 3, padding=1, in_channels=2, activation="relu"), gluon.nn.MaxPool2D(2))
        second = gluon.nn.HybridSequential()
        second.add(gluon.nn.Conv2D(6, 3, in_channels=4, activation="tanh"), gluon.nn.Flatten())
        third = gluon.nn.Dense(3, in_units=6 * 2 * 2)
        net.add(first, second, third)
    for k, child in enumerate(net):
        mx.random.seed(21 + k)
        child.initialize(mx.init.Xavier(), ctx=mx.cpu(ctxs[k]))
    return net


def _params(net):
    return [p.data(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()]


def _grads(net):
    return [p.grad(p.list_ctx()[0]).asnumpy() for p in net.collect_params().values()]


def _train(net, x, y, steps=3):
    """Per step: the loss and every parameter's gradient; then the final parameters."""
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.L2Loss()
    history = []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        history.append((loss.asnumpy(), _grads(net)))
    return history, _params(net)


def _same(a, b):
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
    else:
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def _data(shape, n_out, seed):
    rng = np.random.default_rng(seed)
    return mx.nd.array(rng.standard_normal(shape)), mx.nd.array(rng.standard_normal((shape[0], n_out)))


@pytest.mark.parametrize("ctxs", [[0, 1, 1], [0, 1, 2]], ids=["2-devices", "3-devices"])
@pytest.mark.parametrize("micro", [1, 2, 4])
def test_pipelined_mlp_trains_as_the_unpartitioned_block(ctxs, micro):
    x, y = _data((8, 8), 4, 0)
    ref, net = _mlp([0, 0, 0]), _mlp(ctxs)
    ref.hybridize()
    net.hybridize(pipeline_microbatches=micro)
    out = net(x)                                   # inference: pipelined too
    assert out.context == mx.cpu(ctxs[-1]) and out.shape == (8, 4)
    _same(out.asnumpy(), ref(x).asnumpy())
    _same(_train(net, x, y), _train(ref, x, y))
    if micro > 1:
        timeline = net._cached_op.last_pipeline["backward"]
        assert sorted({m for _, _, m, _, _ in timeline.events}) == list(range(micro + 1))   # M: whole batch
        assert {d for d, *_ in timeline.events} == set(ctxs)


@pytest.mark.parametrize("micro", [2, 4])
def test_pipelined_cnn_without_batch_statistics_trains_as_the_unpartitioned_block(micro):
    x, y = _data((4, 2, 8, 8), 3, 1)
    ref, net = _cnn([0, 0, 0]), _cnn([0, 1, 2])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=micro)
    _same(net(x).asnumpy(), ref(x).asnumpy())
    _same(_train(net, x, y, steps=2), _train(ref, x, y, steps=2))
    plan = next(iter(net._cached_op.last.pipeline_train.values()))
    assert plan.whole is not None and ("whole", 0) in plan.outputs    # conv weight gradients: whole batch


def test_uneven_micro_batches_and_the_data_gradient():
    """10 rows in 4 micro-batches (3, 3, 2, 2): two compiled sizes; the gradient of the data
    is the micro-batches' gradients put back in row order, grad_req='add' adds the sum once."""
    x, y = _data((10, 8), 4, 2)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=4)
    for n in (ref, net):
        n.collect_params().setattr("grad_req", "add")
    xs = []
    for n in (ref, net):
        xi = x.copy()
        xi.attach_grad()
        for _ in range(2):
            with autograd.record():
                loss = ((n(xi) - y) ** 2).sum()
            loss.backward()
        xs.append(xi)
    _same(xs[1].grad.asnumpy(), xs[0].grad.asnumpy())
    _same(_grads(net), _grads(ref))
    sizes = sorted(k[0] for k in net._cached_op.last.pipeline)
    assert sizes == [2, 3]


def test_weight_gradients_run_once_on_the_whole_batch_after_every_input_gradient():
    """The per-row part of each backward stage runs per micro-batch (cpu(0) starts on
    micro-batch 0 while cpu(1) does 1); the weight gradients, sums over the rows, run once on
    the rows put back together (task micro-batch number M), after all of them."""
    x, y = _data((8, 8), 4, 3)
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=4)
    with autograd.record():
        loss = ((net(x) - y) ** 2).sum()
    loss.backward()
    events = sorted(net._cached_op.last_pipeline["backward"].events, key=lambda e: e[3])
    for device in (0, 1):
        order = [m for d, label, m, _, _ in events if d == device and not label.startswith("copy")]
        assert order[-1] == 4 and sorted(set(order[:-1])) == [0, 1, 2, 3], order
    # each micro-batch's row part on cpu(0) ran after cpu(1)'s handed it over, not after all
    handed = {m: t1 for d, label, m, _, t1 in events if label.startswith("copy") and m < 4}
    started = {m: t0 for d, label, m, t0, _ in events if d == 0 and m < 4 and not label.startswith("copy")}
    assert all(started[m] >= handed[m] for m in range(4))


def test_static_alloc_reuses_the_stages_outputs_and_trains_the_same():
    """With static_alloc a stage writes into the arrays it returned for the same micro-batch
    last time once nothing holds them (no page faults per step); results stay exact."""
    x, y = _data((8, 8), 4, 6)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(static_alloc=True, pipeline_microbatches=2)
    _same(_train(net, x, y, steps=4), _train(ref, x, y, steps=4))
    plan = next(iter(net._cached_op.last.pipeline_train.values()))
    stage = next(s for s in plan.per_size[4][1].steps if getattr(s, "spare", None))
    before = {m: [id(a) for a in arrays] for m, arrays in stage.spare.items()}
    with autograd.record():
        loss = ((net(x) - y) ** 2).sum()
    loss.backward()
    assert {m: [id(a) for a in arrays] for m, arrays in stage.spare.items()} == before


def test_a_failing_stage_in_the_pipelined_backward_raises_its_error_and_the_next_step_works():
    x, y = _data((8, 8), 4, 9)
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=2)
    with autograd.record():
        ((net(x) - y) ** 2).sum().backward()
    plan = next(iter(net._cached_op.last.pipeline_train.values()))
    stage = next(s for s in plan.per_size[4][1].steps if getattr(s, "program", None) is not None)
    program = stage.program

    def broken(*args, **kw):
        raise ValueError("stage broke")
    stage.program = broken
    with autograd.record():
        loss = ((net(x) - y) ** 2).sum()
    with pytest.raises(ValueError, match="stage broke"):
        loss.backward()
    stage.program = program
    with autograd.record():
        ((net(x) - y) ** 2).sum().backward()
    assert np.isfinite(_grads(net)[0]).all()


def test_gpipe_schedule_keeps_every_stage_whole_and_trains_the_same():
    x, y = _data((8, 8), 4, 5)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=4, pipeline_schedule="gpipe")
    _same(_train(net, x, y, steps=2), _train(ref, x, y, steps=2))
    events = net._cached_op.last_pipeline["backward"].events
    assert {m for _, _, m, _, _ in events} == {0, 1, 2, 3}          # no whole-batch part
    assert not any(label.endswith("w@cpu(1)") for _, label, *_ in events)   # no handoff split


def test_unknown_pipeline_schedule_is_refused():
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=2, pipeline_schedule="1f1b")
    with pytest.raises(GraphcError, match="pipeline_schedule='1f1b'; expected one of"):
        with autograd.record():
            net(mx.nd.ones((4, 8))).sum().backward()


class _NormNet(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc0 = gluon.nn.Dense(6, in_units=5)
            self.bn = gluon.nn.BatchNorm(in_channels=6)
            self.fc1 = gluon.nn.Dense(3, in_units=6)

    def hybrid_forward(self, F, x):
        with mx.AttrScope(ctx_group="a"):
            h = F.relu(self.bn(self.fc0(x)))
        with mx.AttrScope(ctx_group="b"):
            return self.fc1(h)


def test_batchnorm_normalises_each_micro_batch_and_updates_its_statistics_in_order():
    """What M plain calls on the micro-batches one after the other compute: each micro-batch
    normalised by its own statistics, the moving mean and variance updated M times."""
    rng = np.random.default_rng(4)
    x = mx.nd.array(rng.standard_normal((8, 5)) * 2 + 1)
    nets = []
    for flags in ({}, {"group2ctx": {"a": mx.cpu(0), "b": mx.cpu(1)}, "pipeline_microbatches": 2}):
        mx.random.seed(7)
        net = _NormNet()
        net.initialize(mx.init.Xavier())
        net.hybridize(**flags)
        nets.append(net)
    ref, net = nets
    with autograd.record():
        expected = [ref(x[:4]).asnumpy(), ref(x[4:]).asnumpy()]
        got = net(x)
    _same(got.asnumpy(), np.concatenate(expected))
    for name in ("running_mean", "running_var"):
        _same(getattr(net.bn, name).data(getattr(net.bn, name).list_ctx()[0]).asnumpy(),
              getattr(ref.bn, name).data().asnumpy())


def test_batchnorm_gradients_are_the_sum_of_each_micro_batch_s_gradients():
    rng = np.random.default_rng(8)
    x = mx.nd.array(rng.standard_normal((8, 5)))
    nets = []
    for flags in ({}, {"group2ctx": {"a": mx.cpu(0), "b": mx.cpu(1)}, "pipeline_microbatches": 2}):
        mx.random.seed(7)
        net = _NormNet()
        net.initialize(mx.init.Xavier())
        net.hybridize(**flags)
        nets.append(net)
    ref, net = nets
    trained = [[p for p in n.collect_params().values() if p.grad_req != "null"] for n in nets]
    for p in trained[0]:
        p.grad_req = "add"
    for part in (x[:4], x[4:]):
        with autograd.record():
            (ref(part) ** 2).sum().backward()
    with autograd.record():
        (net(x) ** 2).sum().backward()
    _same([p.grad(p.list_ctx()[0]).asnumpy() for p in trained[1]], [p.grad().asnumpy() for p in trained[0]])


def test_more_micro_batches_than_rows_is_refused_naming_the_block():
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=4)
    with pytest.raises(GraphcError, match=r"hybridsequential\d+: pipeline_microbatches=4 .*batch size 3"):
        net(mx.nd.ones((3, 8)))


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4"])
def test_pipeline_microbatches_must_be_a_positive_integer(bad):
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=bad)
    with pytest.raises(GraphcError, match="positive integer"):
        net(mx.nd.ones((4, 8)))


class _TwoInputs(gluon.HybridBlock):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc = gluon.nn.Dense(3, in_units=4)

    def hybrid_forward(self, F, x, z):
        with mx.AttrScope(ctx_group="a"):
            h = F.tanh(x)
        with mx.AttrScope(ctx_group="b"):
            return self.fc(h) + F.sum(z)


def test_inputs_without_a_common_batch_axis_are_refused():
    net = _TwoInputs()
    net.initialize()
    net.hybridize(group2ctx={"a": mx.cpu(0), "b": mx.cpu(1)}, pipeline_microbatches=2)
    with pytest.raises(GraphcError, match=r"one batch size as their first axis; their shapes are \[\(4, 4\), \(3,\)\]"):
        net(mx.nd.ones((4, 4)), mx.nd.ones((3,)))


class _Pooled(gluon.HybridBlock):
    """Returns a value summed over the batch: it cannot be concatenated from micro-batches."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.fc = gluon.nn.Dense(3, in_units=4)

    def hybrid_forward(self, F, x):
        with mx.AttrScope(ctx_group="a"):
            h = F.tanh(x)
        with mx.AttrScope(ctx_group="b"):
            return F.sum(self.fc(h), axis=0)


def test_an_output_without_the_batch_axis_is_refused():
    net = _Pooled()
    net.initialize()
    net.hybridize(group2ctx={"a": mx.cpu(0), "b": mx.cpu(1)}, pipeline_microbatches=2)
    with pytest.raises(GraphcError, match=r"output 0 has shape \(3,\) for a batch of 4 .* first axis"):
        net(mx.nd.ones((4, 4)))


# -- gradients written into .grad, per-device SGD steps, the flag on an unpartitioned block ------
def _count_grad_copies(monkeypatch):
    from graphc.ndarray.ndarray import NDArray
    copies = []
    real = NDArray._store_grad

    def counted(self, g, req):
        copies.append(self.shape)
        return real(self, g, req)
    monkeypatch.setattr(NDArray, "_store_grad", counted)
    return copies


def test_weight_gradients_are_made_in_the_grad_arrays_and_holders_see_them(monkeypatch):
    """grad_req 'write': the whole-batch program writes each weight gradient into the
    parameter's .grad array (no copy afterwards); an NDArray taken from p.grad() before the
    step holds the new gradient, as MXNet's does."""
    x, y = _data((8, 8), 4, 7)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=4)
    held = [p.grad(p.list_ctx()[0]) for p in net.collect_params().values()]
    buffers = [h._data for h in held]
    copies = _count_grad_copies(monkeypatch)
    for n in (net, ref):
        with autograd.record():
            loss = ((n(x) - y) ** 2).sum()
        loss.backward()
    assert len(copies) == len(held)          # only the unpartitioned block's gradients were copied
    assert all(h._data is b for h, b in zip(held, buffers))
    _same([h.asnumpy() for h in held], _grads(ref))


def test_a_block_called_twice_in_one_recording_sums_both_calls_gradients():
    """Each call's backward would write the weights' gradients: neither may write into .grad
    (the second would overwrite the first before the two are summed); a penalty on a weight
    read outside the block adds a third gradient."""
    x, y = _data((8, 8), 4, 8)
    x2, _ = _data((8, 8), 4, 13)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=2)
    for n in (net, ref):
        w = n[2].weight.data(n[2].weight.list_ctx()[0])
        with autograd.record():
            loss = ((n(x) - y) ** 2).sum() + ((n(x2) - y) ** 2).sum() + (w * w).sum()   # (one device each)
        loss.backward()
    _same(_grads(net), _grads(ref))


def test_autograd_grad_and_grad_req_add_keep_the_grad_arrays_as_autograd_defines_them():
    x, y = _data((8, 8), 4, 9)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=2)
    results = []
    for n in (net, ref):
        params = list(n.collect_params().values())
        datas = [p.data(p.list_ctx()[0]) for p in params]
        with autograd.record():
            loss = ((n(x) - y) ** 2).sum()
        got = autograd.grad(loss, datas)                 # returns them, .grad untouched (zeros)
        assert all(not p.grad(p.list_ctx()[0]).asnumpy().any() for p in params)
        n.collect_params().setattr("grad_req", "add")
        for _ in range(2):
            with autograd.record():
                loss = ((n(x) - y) ** 2).sum()
            loss.backward()
        results.append(([g.asnumpy() for g in got], _grads(n)))
    _same(results[0], results[1])
    _same(results[0][1], [2 * g for g in results[0][0]])


def test_the_sgd_step_of_each_device_s_weights_runs_on_that_device():
    from graphc import engine
    x, y = _data((8, 8), 4, 10)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 1, 1])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=2)
    _same(_train(net, x, y, steps=1), _train(ref, x, y, steps=1))     # (compiles the per-device steps)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    with autograd.record():
        loss = ((net(x) - y) ** 2).sum()
    loss.backward()
    with engine.trace() as events:
        trainer.step(8)
    steps = {device for device, name, *_ in events if name.startswith("sgd step")}
    assert steps == {0, 1}


def test_other_optimizers_still_update_a_partitioned_block_as_the_unpartitioned_one():
    x, y = _data((8, 8), 4, 11)
    out = []
    for ctxs, micro in (([0, 0, 0], 1), ([0, 1, 1], 2)):
        net = _mlp(ctxs)
        net.hybridize(pipeline_microbatches=micro)
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
        for _ in range(2):
            with autograd.record():
                loss = ((net(x) - y) ** 2).sum()
            loss.backward()
            trainer.step(8)
        out.append(_params(net))
    _same(out[0], out[1])


def test_pipeline_microbatches_on_an_unpartitioned_block_warns_once_and_runs_whole():
    x, _ = _data((8, 8), 4, 12)
    ref, net = _mlp([0, 0, 0]), _mlp([0, 0, 0])
    ref.hybridize()
    net.hybridize(pipeline_microbatches=4)
    with pytest.warns(UserWarning, match=r"hybridsequential\d+: hybridize\(pipeline_microbatches=4\) pipelines "
                                         r"only a block partitioned over several devices"):
        out = net(x)
    _same(out.asnumpy(), ref(x).asnumpy())
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net(x)
    bad = _mlp([0, 0, 0])
    bad.hybridize(pipeline_microbatches=0)
    with pytest.raises(GraphcError, match=r"hybridsequential\d+: pipeline_microbatches must be a positive integer"):
        bad(x)


def test_a_failing_device_step_raises_from_trainer_step_once(monkeypatch):
    from graphc.gluon import device_updates
    x, y = _data((8, 8), 4, 14)
    net = _mlp([0, 1, 1])
    net.hybridize(pipeline_microbatches=2)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    real = device_updates._DeviceSGD.__call__

    def failing(self, opt, indices, weights, grads, states):
        if weights[0].context == mx.cpu(1):
            raise RuntimeError("sgd step failed on cpu(1)")
        return real(self, opt, indices, weights, grads, states)
    monkeypatch.setattr(device_updates._DeviceSGD, "__call__", failing)
    with autograd.record():
        loss = ((net(x) - y) ** 2).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="sgd step failed on cpu\\(1\\)"):
        trainer.step(8)
    mx.nd.waitall()                                  # (raised once, where it was read)


def test_per_device_sgd_steps_give_the_same_bits_as_one_call(monkeypatch):
    """Momentum and weight decay: the per-device compiled steps update every weight exactly as
    the one fused call would (each element reads only its own weight, gradient and momentum)."""
    import graphc.gluon.trainer as trainer_module
    real = trainer_module.update_by_device
    used, out = [], []
    for split in (True, False):
        monkeypatch.setattr(trainer_module, "update_by_device",
                            (lambda u, e: used.append(real(u, e)) or used[-1]) if split else (lambda u, e: False))
        x, y = _data((8, 8), 4, 15)
        net = _mlp([0, 1, 1])
        net.hybridize(pipeline_microbatches=2)
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3})
        for _ in range(3):
            with autograd.record():
                loss = ((net(x) - y) ** 2).sum()
            loss.backward()
            trainer.step(8)
        out.append(_params(net))
    assert used == [True] * 3
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
