"""One-step gradient attacks: FGSM (ℓ∞ sign step) and FGM (ℓ1/ℓ2 normalised gradient step).

Document 002 §2.5 (eqs. 7–8, EAD's CleverHans-derived ``fgm.py``):

* targeted:   x' = clip(x0 − ε·d), d from ∇J(x0, t), J = softmax cross-entropy on the logits;
* untargeted: x' = clip(x0 + ε·d), d from ∇J(x0, y);
* d = sign(∇J) (ℓ∞, FGSM), ∇J/‖∇J‖₂ (ℓ2), ∇J/‖∇J‖₁ (ℓ1, the *dense* ℓ1-normalised gradient,
  not the sparse steepest-ascent direction).

Here the sign convention lives in the loss (:mod:`.losses`: every objective is ascended), so
both cases are ``x0 + ε·d(∇ objective)``. Before the box clip the step has ℓp norm exactly ε
whenever the gradient is not all zero; a zero gradient gives a zero step. ``eps`` may be a float or one value per input (for document 002's ε grid
scan, which reuses one gradient for many ε: call :func:`direction` once).

Document 002's "rescale to ε" (η ← η·ε/‖η‖) only matters for the *iterative* I-FGM, where the
accumulated η can be shorter than ε; it is :func:`reprolib.attacks.pgd.ifgm`'s
``ball="rescale"``. For one step, ‖η‖ = ε already, so FGM needs no such option.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .ops import losses
from .core import AttackResult, Counter, finish, start
from .ops.norms import normalize, per_input
from .ops.norms import order as norm_order

def direction(counter: Counter, x: Tensor, y: Tensor, *, norm="l2", targeted: bool = False,
              loss="ce", **loss_kw) -> Tensor:
    """The unit-norm step direction d of FGM at ``x``: one forward and one backward pass,
    charged to ``counter`` (a :class:`Counter` from :func:`start`)."""
    loss = losses.get(loss)
    _, _, g = losses.objective_and_grad(counter, x, y, loss, targeted, **loss_kw)
    return normalize(g.sign() if loss.sign else g, norm_order(norm))


def fgm(model: Classifier, x: Tensor, y: Tensor, *, eps, norm="l2", targeted: bool = False,
        loss="ce", **loss_kw) -> AttackResult:
    """Fast gradient method: one step ``x + ε·d`` with d = ∇/‖∇‖_p (p ∈ {1, 2}) or sign(∇) (ℓ∞),
    then clip to the model's bounds. One forward and one backward pass per input.

    ``loss`` names an objective of :mod:`.losses` (``"ce"`` by default, as in document 002);
    ``loss_kw`` goes to it (e.g. ``kappa`` for ``"mlogit"``). ``info["direction"]`` holds d.
    """
    x, y, counter, t0 = start(model, x, y)
    d = direction(counter, x, y, norm=norm, targeted=targeted, loss=loss, **loss_kw)
    x_raw = x + per_input(eps, len(x), x) * d
    return finish(model, x, x_raw, y, targeted, counter, t0, attack="fgm", norm=str(norm),
                  loss=losses.get(loss).name, eps=eps, direction=d)


def fgsm(model: Classifier, x: Tensor, y: Tensor, *, eps, targeted: bool = False, loss="ce",
         **loss_kw) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al.): ``clip(x + ε·sign(∇ objective))``.
    Untargeted with ``loss="ce"`` this is x + ε·sign(∇CE(y)); targeted, x − ε·sign(∇CE(t))."""
    res = fgm(model, x, y, eps=eps, norm="linf", targeted=targeted, loss=loss, **loss_kw)
    res.info["attack"] = "fgsm"
    return res
