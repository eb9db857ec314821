"""Seeded weights into a PyTorch CNN, in module registration order (= MXNet's parameter order):
shared by W4's ResNet-18 (torch_w.py) and W10's CNN (torch_w10.py)."""
import torch
import torch.nn as tnn

import _common as C


def assign_seeded(net, params, label):
    """Copy the flat list `params` into net's conv weights, BatchNorm (gamma, beta, mean, var)
    and Linear (weight, bias), refusing a shape that differs."""
    targets = []
    for m in net.modules():
        if isinstance(m, tnn.Conv2d):
            targets.append(m.weight)
        elif isinstance(m, tnn.BatchNorm2d):
            targets += [m.weight, m.bias, m.running_mean, m.running_var]
        elif isinstance(m, tnn.Linear):
            targets += [m.weight, m.bias]

    def put(t, a, i):
        if tuple(t.shape) != a.shape:
            raise ValueError(f"parameter {i}: shape {tuple(t.shape)} vs seeded {a.shape}")
        with torch.no_grad():
            t.copy_(torch.from_numpy(a))
    C.assign_flat(targets, params, put, label)
