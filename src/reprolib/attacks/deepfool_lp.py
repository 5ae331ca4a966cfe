"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, *DeepFool: a simple and accurate method to fool
deep neural networks*, https://arxiv.org/abs/1511.04599, Algorithm 2 and §3.3 for ℓp), batched,
in the form document 001 uses it (§II, eq. 8; §IV; the authors' code,
https://github.com/ebalda/adversarialconvex).

Each iteration linearises every competing class ``j`` at the current point and steps to the
nearest linearised boundary::

    l̂ = argmin_{j≠k} |f_k − f_j| / ‖∇f_k − ∇f_j‖_q,     r_t = min_norm_step(f_k − f_l̂, ∇f_k − ∇f_l̂)

(document 001's eq. 8 with ``L = f_k − f_l̂``, :func:`~.ops.linearized.min_norm_step`). Each input
stops at the first iteration where its prediction is no longer ``y`` (per-input active mask); at
most ``steps`` (50) iterations.

Two overshoot conventions (``overshoot_mode``):

``"per_step"`` (document 001's code, the convention of its ℓ∞ experiments)
    every step is multiplied by ``1 + overshoot``: ``x_{t+1} = x_0 + Σ (1+o) r_t``; no ``1e-4``
    stabiliser.
``"total"`` (LTS4's reference DeepFool, https://github.com/LTS4/DeepFool, and Foolbox 3)
    the steps add up unscaled, with the radius of each increased by ``1e-4``, and the iterate is
    ``x_0 + (1+o) Σ r_t``.

With ``clip=True`` (the default) the iterate is clipped to the model's bounds after every step,
so the attack's results are inside the bounds. In ``"total"`` mode the sum of the raw steps is
kept and the iterate is ``clip(x_0 + (1+o) Σ r_t)``, exactly as Foolbox 3.3.4; in ``"per_step"``
mode the iterate itself is projected, ``x_{t+1} = clip(x_t + (1+o) r_t)``, and the step ignores
the coordinates that are stuck on a bound (``box_aware``; see :func:`deepfool`). ``clip=False``
follows document 001's code (no clipping; the result still reports the clipped ``x_adv`` next
to ``x_raw``).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, start
from .ops import checks
from .ops.box import pinned
from .ops.jacobian import PROXIES, difference_ratios, forward, margin_grads, regraph_pays, top_candidates
from .ops.linearized import gnii_step
from .ops.norms import lp_norm, order

OVERSHOOT_MODES = ("total", "per_step")


@attack
def deepfool(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, norm="l2", steps: int = 50,
             overshoot: float = 0.02, overshoot_mode: str = "total", candidates: int | None = 10,
             clip: bool = True, box_aware: bool | None = None, stabiliser: float | None = None,
             proxy: str = "logits") -> AttackResult:
    """Untargeted DeepFool in any ℓp norm (module text).

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the labels ``(N,)``; an input is fooled when its prediction differs from ``y`` (pass
           the model's predictions to measure the fooling ratio as document 001 does).
        targeted: must be False: DeepFool is untargeted.
        norm: ``"l2"`` (default), ``"linf"``, ``"l1"`` or any number p ≥ 1; the step is the
           minimum-ℓp one, the class is chosen with the dual norm q.
        steps: the iteration cap ≥ 0 (50 in document 001 and Foolbox).
        overshoot: o ≥ 0 (0.02).
        overshoot_mode: ``"total"`` (LTS4/Foolbox, default) or ``"per_step"`` (document 001's
           code); see the module text.
        candidates: how many classes to consider, ≥ 2, counting ``y`` itself: the top classes
           of the clean logits (Foolbox's and LTS4's ``candidates``, fixed at the start).
           ``None``: all.
        clip: clip every iterate to the bounds (default True).
        box_aware: drop from each step's gradients the coordinates that sit on a bound and would
           be pushed outside (:func:`~.ops.box.pinned`; default: on for ``clip`` with
           ``"per_step"``, off otherwise, so that ``"total"`` stays exactly Foolbox's
           algorithm). Without it, per-step DeepFool with clipping converges *to* the boundary
           without crossing it whenever clipping eats more than the 2 % overshoot of a step
           (measured on ``fcnn_mnist``: 56 % success vs 100 %).
        stabiliser: ≥ 0, added to each step's radius; default ``1e-4`` for ``"total"`` (LTS4,
           Foolbox) and 0 for ``"per_step"`` (document 001).
        proxy: ``"logits"`` (default, document 001's code) or ``"softmax"`` (the paper's f).

    Returns:
        An :class:`~.core.AttackResult`. Cost per input: one forward pass per iteration plus one
        for the final check when it stops early, and ``candidates − 1`` backward passes per
        iteration; plus, in an iteration where inputs of the batch stop, either one more forward
        pass for the inputs that go on (their graph rebuilt without the finished ones) or
        ``candidates − 1`` backward passes for the finished ones (back-propagated with the
        others), whichever costs fewer passes (:func:`~.ops.jacobian.regraph_pays`). ``info``: ``iterations`` (N,) the steps taken; ``norm`` (N,)
        ``‖x_adv − x‖_p`` and ``norm_raw`` (N,) ``‖x_raw − x‖_p``; ``fooled_in_loop`` (N,)
        whether the loop saw the label change.

    Raises:
        AttackInputError: ``targeted=True``; an unknown ``norm``, ``overshoot_mode`` or
            ``proxy``; ``steps`` < 0; a negative ``overshoot`` or ``stabiliser``;
            ``candidates`` < 2.
    """
    checks.untargeted("deepfool", targeted)
    p = order(norm, general=True)
    steps = checks.count("steps", steps, minimum=0)
    checks.nonnegative("overshoot", overshoot)
    checks.choice("overshoot_mode", overshoot_mode, OVERSHOOT_MODES)
    if candidates is not None:
        checks.count("candidates", candidates, minimum=2)
    if stabiliser is not None:
        checks.nonnegative("stabiliser", stabiliser)
    checks.choice("proxy", proxy, PROXIES)
    x, y, counter, t0 = start(model, x, y)
    if stabiliser is None:
        stabiliser = 1e-4 if overshoot_mode == "total" else 0.0
    if box_aware is None:
        box_aware = clip and overshoot_mode == "per_step"
    scale_step = 1.0 + overshoot if overshoot_mode == "per_step" else 1.0
    scale_total = 1.0 + overshoot if overshoot_mode == "total" else 1.0
    lower, upper = model.bounds
    n = len(x)
    dev = x.device

    total = torch.zeros_like(x)          # Σ of the raw steps
    x_cur = x.clone()                     # the current iterate (clipped when clip=True)
    iterations = torch.zeros(n, dtype=torch.long, device=dev)
    fooled = torch.zeros(n, dtype=torch.bool, device=dev)
    active = torch.arange(n, device=dev)
    others: Tensor | None = None          # (N, C−1) candidate classes, fixed at the clean point

    for _ in range(steps):
        if len(active) == 0:
            break
        # One forward pass on the active inputs: it checks for a label change and, for the
        # inputs still correctly classified, feeds the C − 1 backward passes of this step.
        x_req, out = forward(counter, x_cur[active], active, proxy=proxy)
        if others is None:  # candidates from the clean logits, fixed from now on (Foolbox, LTS4)
            others = top_candidates(out.detach(), y, candidates)
        done = out.detach().argmax(1) != y[active]
        fooled[active[done]] = True
        keep = (~done).nonzero().flatten()
        if len(keep) == 0:
            break
        rows, fwd_idx = keep, active
        if regraph_pays(int(done.sum()), len(keep), others.shape[1]):
            x_req, out = forward(counter, x_cur[active[keep]], active[keep], proxy=proxy)
            rows, fwd_idx = None, active[keep]
        df, dg = margin_grads(counter, x_req, out, y[active[keep]], others[active[keep]], fwd_idx, rows=rows)
        active = active[keep]
        if box_aware:
            # A step moves along −(∇f_k − ∇f_j); drop the coordinates that sit on a bound and
            # would be pushed out of the box (they would be clipped away).
            dg = dg.masked_fill(pinned(x_cur[active].unsqueeze(1), -dg, model.bounds), 0.0)
        dist = difference_ratios(df, dg, p)
        best = dist.argmin(1)
        rows = torch.arange(len(active), device=dev)
        radius = (dist[rows, best] + stabiliser) * scale_step
        g = dg[rows, best]
        step = gnii_step(g, radius, p)               # −radius · dir(∇f_k − ∇f_l̂): towards l̂
        step = torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
        if overshoot_mode == "total":
            # LTS4/Foolbox: the iterate is x0 + (1+o)·Σ r_t, clipped; the sum keeps the raw steps.
            total[active] += step
            new = x[active] + scale_total * total[active]
        else:
            # Document 001: x_{t+1} = x_t + (1+o) r_t. Clipping projects the iterate itself, so
            # no mass outside the box builds up (it would stall the iteration).
            new = x_cur[active] + step
        x_cur[active] = new.clamp(lower, upper) if clip else new
        iterations[active] += 1
    res = finish(model, x, x_cur, y, False, counter, t0, iterations=iterations, fooled_in_loop=fooled)
    res.info["norm"] = lp_norm(res.x_adv - x, p)
    res.info["norm_raw"] = lp_norm(res.x_raw - x, p)
    return res
