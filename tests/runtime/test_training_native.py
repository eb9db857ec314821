"""Training programs of ordinary networks compile completely: no step of the hybridized forward
or backward runs an operator's numpy reference on the host (runtime.lower.HostStep), except
random operators (Dropout), which draw from the caller's generator. Compiled training matches
eager training step for step."""
import numpy as np
import pytest

from graphc import autograd, gluon, nd
from graphc.gluon import init, nn
from graphc.runtime.lower import HostStep

# ops allowed on the host in a training program: none (Dropout draws its mask in the kernel,
# runtime/dropout_kernel.py)
RANDOM_OPS = set()


class ResidualBlock(nn.HybridBlock):
    def __init__(self, channels, **kw):
        super().__init__(**kw)
        self.conv1 = nn.Conv2D(channels, 3, padding=1, use_bias=False)
        self.bn1 = nn.BatchNorm()
        self.conv2 = nn.Conv2D(channels, 3, padding=1, use_bias=False)
        self.bn2 = nn.BatchNorm()

    def hybrid_forward(self, F, x):
        y = F.Activation(self.bn1(self.conv1(x)), act_type="relu")
        return F.Activation(self.bn2(self.conv2(y)) + x, act_type="relu")


def small_resnet():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.Activation("relu"),
            nn.MaxPool2D(3, 2, 1), ResidualBlock(8), nn.AvgPool2D(2, 2),
            nn.Conv2D(8, 1), nn.BatchNorm(axis=1, scale=False), nn.Activation("relu"),
            nn.GlobalAvgPool2D(), nn.Dense(10))
    return net, (4, 3, 12, 12)


def layernorm_mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(32), nn.LayerNorm(), nn.Activation("relu"), nn.Dropout(0.2),
            nn.Dense(16), nn.LayerNorm(axis=-1), nn.Activation("tanh"), nn.Dense(10))
    return net, (8, 20)


def norm_zoo():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(8, 3), nn.InstanceNorm(), nn.Activation("relu"), nn.GroupNorm(num_groups=4),
            nn.MaxPool2D(2, 2, ceil_mode=True), nn.BatchNorm(axis=1), nn.GlobalMaxPool2D(),
            nn.Flatten(), nn.Dense(5))
    return net, (3, 2, 9, 9)


def _host_ops(program):
    return {s.node.op for s in program.steps if isinstance(s, HostStep)}


def _train(net, x, y, steps):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    losses = []
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(x.shape[0])
        losses.append(loss.asnumpy())
    return losses


@pytest.mark.parametrize("make", [small_resnet, layernorm_mlp, norm_zoo])
def test_training_programs_have_no_host_steps_and_train_like_eager(make):
    rng = np.random.default_rng(0)
    nets = []
    for hybrid in (False, True):
        net, shape = make()
        net.initialize(init.Xavier())
        nets.append(net)
    x = nd.array(rng.standard_normal(shape).astype("float32"))
    y = nd.array(rng.integers(0, 5, shape[0]).astype("float32"))
    for net in nets:
        net(x)                      # deferred shapes
    for p0, p1 in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
        p1.set_data(p0.data().copy())
    nets[1].hybridize()
    dropout = any(isinstance(b, nn.Dropout) for b in nets[0]._children.values())
    results = []
    for net in nets:
        results.append(_train(net, x, y, 3))
    entry = nets[1]._cached_op.last
    assert entry.train, "the hybridized net did not compile a training program"
    for fwd, bwd, *_ in entry.train.values():
        assert _host_ops(fwd) <= RANDOM_OPS, _host_ops(fwd)
        assert _host_ops(bwd) == set(), _host_ops(bwd)
    inference = nets[1](x)          # the inference program compiles completely too
    assert _host_ops(nets[1]._cached_op.last.forward[1]) == set()
    if not dropout:                 # eager and compiled dropout draw different masks
        for le, lh in zip(*results):
            np.testing.assert_allclose(lh, le, rtol=2e-3, atol=2e-4)
        for p0, p1 in zip(nets[0].collect_params().values(), nets[1].collect_params().values()):
            np.testing.assert_allclose(p1.data().asnumpy(), p0.data().asnumpy(), rtol=2e-3, atol=2e-4,
                                       err_msg=p0.name)
    assert np.all(np.isfinite(inference.asnumpy()))
