"""Regenerates the ONNX fixtures written by a different exporter (PyTorch's TorchScript-based
torch.onnx.export), with inputs and PyTorch's outputs beside each model:

    bench/.venvs/torch/bin/python tests/formats/fixtures_onnx/make_fixtures.py

Networks are narrow so each file stays well under 1 MB; weights and BatchNorm statistics are
randomised (a fixed seed) so that every parameter changes the outputs.
"""
import os

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class CNN(nn.Module):
    """Conv/BN/ReLU/MaxPool, a BatchNorm after a ReLU (PyTorch cannot fold it into the conv), ceil-mode AvgPool, a `view` flatten (Shape/Gather chains), softmax."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, stride=1, padding=0, bias=False), nn.ReLU(), nn.BatchNorm2d(16),
            nn.AvgPool2d(2, ceil_mode=True))
        self.fc = nn.Linear(16 * 3 * 3, 10)

    def forward(self, x):
        x = self.features(x)
        return torch.softmax(self.fc(x.view(x.size(0), -1)), dim=1)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18Narrow(nn.Module):
    """ResNet-18's shape (stem, 4 stages of 2 basic blocks, global average pool, linear) at widths 4-32."""

    def __init__(self, widths=(4, 8, 16, 32), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers += [Block(cin, w, 1 if i == 0 else 2), Block(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


class Misc(nn.Module):
    """Sequence ops: MatMul of a 3-D input with a weight, permute, concat, reductions, clip,
    leaky ReLU, sigmoid/tanh, arithmetic with constants, unsqueeze/squeeze, log-softmax."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 5))
        self.proj = nn.Linear(5, 4)

    def forward(self, x):                       # x: (N, T, 6)
        h = torch.tanh(x @ self.w)              # (N, T, 5)
        g = torch.sigmoid(self.proj(h))         # (N, T, 4)
        p = g.permute(0, 2, 1)                  # (N, 4, T)
        m = p.mean(dim=2, keepdim=True)         # (N, 4, 1)
        c = torch.cat([p - m, nn.functional.leaky_relu(p * 2.0 - 1.0, 0.1)], dim=1)   # (N, 8, T)
        c = torch.clamp(c, -0.5, 0.75).unsqueeze(1).squeeze(1)
        s = c.sum(dim=2) / 3.0                  # (N, 8)
        return torch.log_softmax(s, dim=-1), c.max(dim=1).values


def randomise(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def export(name, model, inputs, opset, dynamic_axes=None):
    names = [f"input{i}" for i in range(len(inputs))]
    path = os.path.join(HERE, f"{name}.onnx")
    with torch.no_grad():
        outs = model(*inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.onnx.export(model, tuple(inputs), path, dynamo=False, opset_version=opset, input_names=names,
                          output_names=[f"output{i}" for i in range(len(outs))], dynamic_axes=dynamic_axes)
    arrays = {f"in_{n}": x.numpy() for n, x in zip(names, inputs)}
    arrays.update({f"out_{i}": o.numpy() for i, o in enumerate(outs)})
    np.savez(os.path.join(HERE, f"{name}.npz"), **arrays)
    print(name, os.path.getsize(path), "bytes")


def main():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    export("torch_mlp", mlp, [torch.randn(4, 20)], 13, dynamic_axes={"input0": {0: "batch"}})
    export("torch_cnn", randomise(CNN(), 1), [torch.randn(2, 3, 14, 14)], 13, dynamic_axes={"input0": {0: "batch"}})
    export("torch_resnet18_narrow", randomise(ResNet18Narrow(), 2), [torch.randn(2, 3, 64, 64)], 17)
    torch.manual_seed(3)
    export("torch_misc", Misc().eval(), [torch.randn(2, 7, 6)], 17)


if __name__ == "__main__":
    main()
