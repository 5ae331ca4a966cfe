"""The CIFAR-10 architectures of the five documents. All take 3×32×32 inputs in [0, 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Per-channel statistics used by document 001's NIN (mean and std of the training set).
CIFAR_MEAN = (125.307 / 255, 122.95 / 255, 113.865 / 255)
CIFAR_STD = (62.9932 / 255, 62.0887 / 255, 66.7048 / 255)


def cw_cifar() -> nn.Sequential:
    """The C&W CIFAR CNN (Carlini & Wagner 2017, Table 1): conv3-64, conv3-64, pool,
    conv3-128, conv3-128, pool, FC 256, dropout 0.5, FC 256, FC 10."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Conv2d(128, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3200, 256), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10),
    )


def logistic_regression() -> nn.Sequential:
    """Document 000, model M4: one affine layer 3072 → 10 on the standardised pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))


def nin(width: float = 1.0, dropout: float = 0.5, batch_norm: bool = False) -> nn.Sequential:
    """Network-in-Network as released with document 001 (§IV; the authors' code). ``width`` scales every
    hidden channel count (192/160/96); ``width=0.5`` is the CPU variant. ``batch_norm`` puts a
    batch norm between each convolution and its ReLU (the convolutions then have no bias): the
    same function class at test time, where each batch norm is a fixed affine map, and far fewer
    epochs to train on a CPU.

    Convolutions get Kaiming-normal weights and zero biases: with PyTorch's default init the
    nine ReLU layers (no batch norm) shrink the signal to nothing and training never starts."""
    c192, c160, c96 = (max(1, round(c * width)) for c in (192, 160, 96))

    def conv(i, o, k):
        if batch_norm:
            return [nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
        return [nn.Conv2d(i, o, k, padding=k // 2), nn.ReLU()]

    net = nn.Sequential(
        *conv(3, c192, 5), *conv(c192, c160, 1), *conv(c160, c96, 1),
        nn.MaxPool2d(3, 2, padding=1), nn.Dropout(dropout),
        *conv(c96, c192, 5), *conv(c192, c192, 1), *conv(c192, c192, 1),
        nn.MaxPool2d(3, 2, padding=1), nn.Dropout(dropout),
        *conv(c192, c192, 3), *conv(c192, c192, 1), *conv(c192, 10, 1),  # the last ReLU is the authors'
        nn.AvgPool2d(8), nn.Flatten(),
    )
    for layer in net:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return net


class _DenseLayer(nn.Module):
    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


def densenet(depth: int = 40, growth: int = 12) -> nn.Sequential:
    """DenseNet (Huang et al.) without bottleneck or compression, as in document 001:
    three dense blocks of (depth − 4)/3 BN–ReLU–Conv3×3 layers, BN–ReLU–Conv1×1–AvgPool
    transitions, then BN–ReLU–global average pool–FC. ``depth=40`` is the paper's DenseNet-40;
    ``depth=22`` is the CPU variant."""
    if (depth - 4) % 3:
        raise ValueError(f"depth must be 3n + 4, got {depth}.")
    per_block = (depth - 4) // 3
    channels = 16
    layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1, bias=False)]
    for block in range(3):
        for _ in range(per_block):
            layers.append(_DenseLayer(channels, growth))
            channels += growth
        if block < 2:
            layers += [nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.Conv2d(channels, channels, 1, bias=False), nn.AvgPool2d(2)]
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(channels, 10)]
    return nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet(depth: int = 20) -> nn.Sequential:
    """The CIFAR ResNet of He et al. (2016): 6n + 2 layers, widths 16/32/64. ``depth=20`` is
    document 003's stand-in for ResNet-50; ``depth=8`` is its budget option."""
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2, got {depth}.")
    n = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage, cout in enumerate((16, 32, 64)):
        for i in range(n):
            layers.append(_BasicBlock(cin, cout, 2 if stage and i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)
