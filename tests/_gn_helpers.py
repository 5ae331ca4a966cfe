"""Shared fixtures for the attack tests: affine classifiers with closed-form answers, and a
model that counts its own forward rows and backward passes."""
from __future__ import annotations

import math

import torch
from torch import nn

from reprolib.models import Classifier

SHAPE = (1, 6, 6)
DIM = 36


class CountingNet(nn.Module):
    """Wraps a net; counts the rows of every grad-enabled forward pass and, through a tensor
    hook on the output, every backward pass and its rows (autograd runs every row of the batch,
    whether or not its gradient is zero). Forward passes under ``no_grad`` (the uncounted
    re-check of ``finish``) are not counted."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.reset()

    def reset(self) -> None:
        self.forward_rows = 0
        self.backward_calls = 0
        self.backward_rows = 0

    def forward(self, x):
        out = self.net(x)
        if torch.is_grad_enabled() and out.requires_grad:
            self.forward_rows += len(x)
            out.register_hook(self._on_backward)
        return out

    def _on_backward(self, g):
        self.backward_calls += 1
        self.backward_rows += len(g)


def affine(num_classes: int, seed: int = 0, *, counting: bool = False, scale: float = 1.0):
    """A float64 affine classifier ``logits = W x + b`` on 1×6×6 inputs in [0, 1]; returns
    (model, W, b)."""
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(DIM, num_classes).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(num_classes, DIM, generator=gen, dtype=torch.float64) * scale)
        lin.bias.copy_(torch.randn(num_classes, generator=gen, dtype=torch.float64) * scale)
    net: nn.Module = nn.Sequential(nn.Flatten(), lin)
    if counting:
        net = CountingNet(net)
    model = Classifier(net, input_shape=SHAPE, num_classes=num_classes).eval()
    return model, lin.weight.detach(), lin.bias.detach()


def mlp(num_classes: int = 5, seed: int = 0, *, counting: bool = False):
    """A small float64 ReLU MLP classifier on 1×6×6 inputs."""
    torch.manual_seed(seed)
    net: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(DIM, 24), nn.ReLU(), nn.Linear(24, num_classes)).double()
    if counting:
        net = CountingNet(net)
    return Classifier(net, input_shape=SHAPE, num_classes=num_classes).eval()


def inputs(n: int, seed: int = 1, lo: float = 0.35, hi: float = 0.65) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand((n,) + SHAPE, generator=gen, dtype=torch.float64)


def exact_distances(W, b, x, k, p: float):
    """Per input: min over j ≠ k of (f_k − f_j)/‖w_k − w_j‖_q, the exact lp distance from x to
    the region where k is not the argmax, for the affine model; and the minimising class."""
    q = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[float(p)]
    f = x.flatten(1) @ W.T + b
    fk = f.gather(1, k[:, None])
    G = W[k][:, None, :] - W[None, :, :]             # (N, K, d)
    d = (fk - f) / torch.linalg.vector_norm(G, ord=q, dim=2)
    d = d.scatter(1, k[:, None], math.inf)
    return d.min(1)


def close(actual, expected, *, rtol: float = 1e-7, atol: float = 1e-12) -> None:
    """``|actual − expected| ≤ atol + rtol·|expected|`` elementwise. (``torch.testing.assert_close``
    imports ``torch.distributed.tensor`` on first use, which takes 10–30 s on a busy 2-core box.)"""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected, dtype=actual.dtype, device=actual.device).expand_as(actual)
    err = (actual - expected).abs()
    tol = atol + rtol * expected.abs()
    bad = ~(err <= tol)
    assert not bool(bad.any()), (f"{int(bad.sum())} of {bad.numel()} values differ; worst |Δ| = "
                                 f"{float(err.max()):.3g} (atol {atol}, rtol {rtol})\nactual   {actual}\nexpected {expected}")
