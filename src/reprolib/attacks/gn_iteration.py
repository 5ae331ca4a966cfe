"""Document 001's minimum-norm problem (8), iterated until the label changes: the "GN
minimum-norm iteration" (Balda, Behboodi & Mathar, https://arxiv.org/abs/1803.03607 v2, §II,
eq. 8 and the remark after it that iterating it "recovers DeepFool"). The closed-form step is
:func:`reprolib.attacks.ops.linearized.min_norm_step`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, start
from .ops import checks
from .ops.box import pinned
from .ops.jacobian import regraph_pays
from .ops.linearized import min_norm_step
from .ops.norms import order


@attack
def min_norm_iteration(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, norm="linf",
                       steps: int = 50, overshoot: float = 0.02, clip: bool = True) -> AttackResult:
    """The minimum-norm problem (8) of document 001, iterated until the prediction changes.

    At the iterate ``x_t`` (``x_0 = x``), with ``k = y`` fixed and ``l = argmax_{j≠k} f_j(x_t)``
    the class attaining the min of the margin (eq. 3), ``L = f_k − f_l`` and::

        x_{t+1} = x_t + (1 + overshoot) · min_norm_step(L(x_t), ∇L(x_t), p)     (eq. 8)

    i.e. the smallest step that makes the linearised margin zero, 2 % further. The paper notes
    that this iteration "recovers DeepFool"; DeepFool differs in choosing ``l`` by the smallest
    ratio ``L_j/‖∇L_j‖_q`` over all classes (:func:`~reprolib.attacks.deepfool_lp.deepfool`), so
    it needs all K − 1 gradients per step where this needs one.

    Args:
        model: the classifier (logits).
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the labels k ``(N,)``; an input stops as soon as its prediction differs from ``y``.
        targeted: must be False: the iteration is untargeted.
        norm: the norm of the step: ``"linf"`` (default), ``"l2"``, ``"l1"`` or any number p ≥ 1.
        steps: the iteration cap ≥ 0.
        overshoot: the relative overshoot ≥ 0 of every step (document 001's code uses 0.02).
        clip: keep every iterate in the model's bounds (default True): the gradient coordinates
            that sit on a bound and point out of the box are dropped before the step
            (:func:`~.ops.box.pinned`; so the step is the minimum-norm one on the box's face;
            without this, clipping can eat the overshoot and leave the iterate on the boundary),
            and the iterate is clipped.

    Returns:
        An :class:`~.core.AttackResult`. Cost per input: one forward and one backward pass per
        iteration, plus one forward pass for the check that stops it; plus, in an iteration
        where more inputs of the batch stop than go on, one forward pass for each that goes on
        (its graph rebuilt without the finished ones), else one backward pass for each finished
        one (back-propagated with the others) (:func:`~.ops.jacobian.regraph_pays`). ``info["iterations"]``
        ``(N,)``: the steps taken.

    Raises:
        AttackInputError: ``targeted=True``; an unknown ``norm``; ``steps`` < 0; a negative
            ``overshoot``.
    """
    checks.untargeted("min_norm_iteration", targeted)
    p = order(norm, general=True)
    steps = checks.count("steps", steps, minimum=0)
    checks.nonnegative("overshoot", overshoot)
    x, y, counter, t0 = start(model, x, y)
    lower, upper = model.bounds
    x_cur = x.clone()
    iterations = torch.zeros(len(x), dtype=torch.long, device=x.device)
    active = torch.arange(len(x), device=x.device)
    for step in range(steps + 1):
        xa = x_cur[active].detach().requires_grad_(True)
        out = counter.logits(xa, active)
        k = y[active]
        keep = out.argmax(1) == k
        if step == steps or not bool(keep.any()):
            break
        if regraph_pays(int((~keep).sum()), int(keep.sum()), 1):
            active, k = active[keep], k[keep]
            xa = x_cur[active].detach().requires_grad_(True)
            out = counter.logits(xa, active)
            keep = torch.ones(len(active), dtype=torch.bool, device=x.device)
            fwd_idx = active
        else:
            fwd_idx, active = active, active[keep]
        others = out.detach().scatter(1, k[:, None], -math.inf)
        L = out.gather(1, k[:, None]).squeeze(1) - out.gather(1, others.argmax(1, keepdim=True)).squeeze(1)
        # the backward pass runs through every row of the forward batch, so each is charged
        g = counter.grad(L[keep], xa, fwd_idx)[keep]
        L = L.detach()[keep]
        if clip:  # box-aware: the step moves along −g; drop the coordinates it would push out
            g = g.masked_fill(pinned(x_cur[active], -g, model.bounds), 0.0)
        x_new = x_cur[active] + (1 + overshoot) * min_norm_step(L, g, p)
        x_cur[active] = x_new.clamp(lower, upper) if clip else x_new
        iterations[active] += 1
    return finish(model, x, x_cur, y, False, counter, t0, iterations=iterations)
