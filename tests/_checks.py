"""Checks every minimum-norm attack result must pass (shared by the C&W and L-BFGS tests)."""
from __future__ import annotations

import torch

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
