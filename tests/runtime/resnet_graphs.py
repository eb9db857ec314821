"""ResNet graphs built directly with GraphBuilder (MXNet model-zoo v1 structure) for tests and
for measuring W4: conv-BN-relu stems, BasicBlockV1 (conv3x3-BN-relu-conv3x3-BN, 1x1/stride
downsample with BN, add, relu), global average pooling, a 1000-way FullyConnected."""
import numpy as np

from graphc.ops.builder import GraphBuilder
from graphc.ops.types import TensorType


class _Net:
    def __init__(self, name, dtype):
        self.gb = GraphBuilder(name)
        self.dtype = dtype
        self.params = []

    def param(self, name, shape, kind="param"):
        h = self.gb.var(name, TensorType(shape, self.dtype), kind)
        self.params.append(h)
        return h

    def conv(self, x, name, channels, kernel, stride=1, pad=0):
        w = self.param(f"{name}_weight", (channels, x.shape[1], kernel, kernel))
        return self.gb.F.Convolution(x, w, kernel=(kernel, kernel), stride=(stride, stride), pad=(pad, pad),
                                     num_filter=channels, no_bias=True)

    def bn(self, x, name):
        c = x.shape[1]
        args = [self.param(f"{name}_gamma", (c,)), self.param(f"{name}_beta", (c,)),
                self.param(f"{name}_running_mean", (c,), "aux"), self.param(f"{name}_running_var", (c,), "aux")]
        node = self.gb.emit("BatchNorm", [x.value] + [a.value for a in args], dict(eps=1e-5, fix_gamma=False))
        return self.gb.wrap(node.out(0))

    def block(self, x, name, channels, stride):
        F = self.gb.F
        y = F.relu(self.bn(self.conv(x, f"{name}_conv0", channels, 3, stride, 1), f"{name}_bn0"))
        y = self.bn(self.conv(y, f"{name}_conv1", channels, 3, 1, 1), f"{name}_bn1")
        if stride != 1 or x.shape[1] != channels:
            x = self.bn(self.conv(x, f"{name}_down", channels, 1, stride, 0), f"{name}_downbn")
        return F.relu(y + x)


def resnet18_v1(batch=1, image=224, classes=1000, dtype="float32", stages=4):
    """The graph; inputs: data, then every parameter (random values: `random_inputs`)."""
    net = _Net("resnet18_v1", dtype)
    F = net.gb.F
    x = net.gb.var("data", TensorType((batch, 3, image, image), dtype))
    y = F.relu(net.bn(net.conv(x, "conv0", 64, 7, 2, 3), "bn0"))
    y = F.Pooling(y, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for i, ch in enumerate((64, 128, 256, 512)[:stages]):
        for j in range(2):
            y = net.block(y, f"stage{i + 1}_unit{j}", ch, 2 if (j == 0 and i > 0) else 1)
    y = F.Pooling(y, global_pool=True, pool_type="avg", kernel=(1, 1))
    w = net.param("fc_weight", (classes, y.shape[1]))
    b = net.param("fc_bias", (classes,))
    return net.gb.build([F.FullyConnected(y, w, b, num_hidden=classes)])


def basic_block(batch=1, channels=16, image=12, stride=2, dtype="float32"):
    """One downsampling BasicBlockV1 after a conv-BN-relu stem."""
    net = _Net("block", dtype)
    F = net.gb.F
    x = net.gb.var("data", TensorType((batch, 8, image, image), dtype))
    y = F.relu(net.bn(net.conv(x, "stem", channels // 2, 3, 1, 1), "stem_bn"))
    return net.gb.build([net.block(y, "unit", channels, stride)])


def random_inputs(graph, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in graph.inputs:
        t = n.types[0]
        if n.name.endswith("_running_var"):
            a = rng.uniform(0.5, 1.5, t.shape)
        elif n.name.endswith("_gamma"):
            a = rng.uniform(0.5, 1.5, t.shape)
        elif n.name.endswith("_weight"):
            fan_in = int(np.prod(t.shape[1:]))
            a = rng.standard_normal(t.shape) * np.sqrt(2.0 / fan_in)
        else:
            a = rng.standard_normal(t.shape) * (0.1 if n.name != "data" else 1.0)
        out.append(np.ascontiguousarray(a, dtype=t.dtype))
    return out
