"""Adam, the one optimiser step of the attacks that use it (C&W, EAD's baseline, ZOO, PDGD/PDPGD).

Two forms of the same algorithm (Kingma & Ba 2015, Algorithm 1), which differ only in where ε
enters:

* ``form="standard"`` (PyTorch, Foolbox): ``θ −= lr·m̂/(√v̂ + ε)`` with the bias-corrected
  moments ``m̂ = m/(1 − β₁ᵗ)``, ``v̂ = v/(1 − β₂ᵗ)``;
* ``form="tf"`` (TensorFlow's ``AdamOptimizer``, used by the reference codes of C&W, EAD, ZOO and
  the thesis of document 004): ``θ −= lr_t·m/(√v + ε)`` with ``lr_t = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)``,
  i.e. ε is added before the bias correction, so it weighs √(1 − β₂ᵗ)⁻¹ times more early on.

:func:`adam_step` is a pure function of the moments and the step count ``t`` (a number, or a
tensor that broadcasts against the gradient: one count per input or per coordinate).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: Adam's default constants (β₁, β₂) and ε (TensorFlow 1, PyTorch, Foolbox).
BETAS = (0.9, 0.999)
EPS = 1e-8
FORMS = ("standard", "tf")


def _sqrt(v):
    return torch.sqrt(v) if torch.is_tensor(v) else math.sqrt(v)


def adam_step(grad: Tensor, m: Tensor, v: Tensor, t, lr, *, betas: tuple[float, float] = BETAS,
              eps: float = EPS, form: str = "standard") -> tuple[Tensor, Tensor, Tensor]:
    """One Adam update: returns ``(step, m, v)``, to be applied as ``θ ← θ − step``.

    Args:
        grad: the gradient, any shape.
        m, v: the first and second moments before this step (same shape as ``grad``).
        t: the step count of this update, starting at 1 (a number or a broadcastable tensor).
        lr: the learning rate (a number or a broadcastable tensor).
        betas, eps: Adam's constants.
        form: ``"standard"`` or ``"tf"`` (module docstring).
    """
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    if form == "standard":
        step = lr * ((m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps))
    elif form == "tf":
        # lr times the bias correction, in this order (ZOO's; its finite differences amplify the last bit)
        step = lr * (_sqrt(1 - b2 ** t) / (1 - b1 ** t)) * m / (v.sqrt() + eps)
    else:
        raise ValueError(f"form must be one of {FORMS}, not {form!r}")
    return step, m, v
