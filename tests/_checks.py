"""Test models and the checks every minimum-norm attack result must pass (C&W and L-BFGS tests)."""
from __future__ import annotations

import torch
from torch import nn

from reprolib.models import Classifier


def check_result(model: Classifier, result) -> None:
    """x_adv in bounds; success equals a fresh forward pass and the attack's own belief."""
    lo, hi = model.bounds
    assert bool((result.x_adv >= lo).all() and (result.x_adv <= hi).all())
    with torch.no_grad():
        pred = model(result.x_adv).argmax(1)
    fresh = pred == result.labels if result.targeted else pred != result.labels
    assert torch.equal(result.success, fresh)
    assert torch.equal(result.success, result.info["found"])
    failed = ~result.success
    assert torch.equal(result.x_adv[failed], result.x[failed])


class CountingNet(nn.Module):
    """Wraps a net; counts the rows it is run on and, by a hook on its input, the rows of
    every backward pass that reaches the input. Raises on call ``fail_at`` if set."""

    def __init__(self, net: nn.Module, fail_at: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.calls = self.forward_rows = self.backward_rows = 0
        self.fail_at = fail_at

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("model failure injected by the test")
        self.forward_rows += len(x)
        if x.requires_grad:
            x.register_hook(self._count_backward)
        return self.net(x)

    def _count_backward(self, grad):
        self.backward_rows += len(grad)


def affine(W, b, counting: bool = False, fail_at: int | None = None) -> Classifier:
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    net = nn.Sequential(nn.Flatten(), lin)
    net = CountingNet(net, fail_at) if counting or fail_at else net
    return Classifier(net, input_shape=(W.shape[1],), num_classes=W.shape[0]).double().eval()
