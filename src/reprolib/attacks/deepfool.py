"""DeepFool (Moosavi-Dezfooli, Fawzi, Frossard 2016) for l2 and l∞, batched, as document 001
uses it (card ``001-convex-programming`` §2.4, §2.6, §5.4).

Each iteration linearises every competing class ``j`` at the current point and steps to the
nearest linearised boundary::

    l̂ = argmin_{j≠k} |f_k − f_j| / ‖∇f_k − ∇f_j‖_q,     r_t = min_norm_step(f_k − f_l̂, ∇f_k − ∇f_l̂)

(eq. 8 with ``L = f_k − f_l̂``). Each input stops at the first iteration where its prediction is
no longer ``y`` (per-input active mask); at most ``steps`` (50) iterations.

Two overshoot conventions (``overshoot_mode``):

``"per_step"`` (document 001's code, the default of its l∞ chapter variant)
    every step is multiplied by ``1 + overshoot``: ``x_{t+1} = x_0 + Σ (1+o) r_t``; no ``1e-4``
    stabiliser.
``"total"`` (LTS4's reference DeepFool and Foolbox 3)
    the steps add up unscaled, with the radius of each increased by ``1e-4``, and the iterate is
    ``x_0 + (1+o) Σ r_t``.

With ``clip=True`` (the default) the iterate is clipped to the model's bounds after every step,
so the attack's results are inside the bounds. In ``"total"`` mode the sum of the raw steps is
kept and the iterate is ``clip(x_0 + (1+o) Σ r_t)``, exactly as Foolbox 3.3.4; in ``"per_step"``
mode the iterate itself is projected, ``x_{t+1} = clip(x_t + (1+o) r_t)``, and the step ignores
the coordinates that are stuck on a bound (``box_aware``; see :func:`deepfool`). ``clip=False`` follows document 001's code (no clipping; ``finish`` still reports
the clipped ``x_adv`` next to ``x_raw``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .ops.linearized import gnii_step
from .core import AttackInputError, AttackResult, finish, start
from .ops.norms import lp_norms
from .ops.jacobian import difference_ratios, forward, margin_grads, top_candidates

__all__ = ["deepfool"]


def deepfool(model: Classifier, x: Tensor, y: Tensor, *, p: float = 2, steps: int = 50,
             overshoot: float = 0.02, overshoot_mode: str = "total", candidates: int | None = 10,
             clip: bool = True, box_aware: bool | None = None, stabiliser: float | None = None,
             proxy: str = "logits",
             targeted: bool = False) -> AttackResult:
    """Untargeted DeepFool in the lp norm (p = 2 or ∞; p = 1 and other p ≥ 1 also work).

    Args:
        y: the labels; an input is fooled when its prediction differs from ``y`` (pass the model's
           predictions to measure the fooling ratio as document 001 does).
        steps: the iteration cap (50 in document 001 and Foolbox).
        overshoot, overshoot_mode: see the module docstring; ``"total"`` is LTS4/Foolbox,
           ``"per_step"`` is document 001's code.
        candidates: how many classes to consider, counting ``y`` itself: the top classes of the
           clean logits (Foolbox's and LTS4's ``candidates``, fixed at the start). ``None``: all.
        clip: clip every iterate to the bounds (default True).
        box_aware: drop from each step's gradients the coordinates that sit on a bound and would
           be pushed outside (default: on for ``clip`` with ``"per_step"``, off otherwise, so that
           ``"total"`` stays exactly Foolbox's algorithm). Without it, per-step DeepFool with
           clipping converges *to* the boundary without crossing it whenever clipping eats more
           than the 2 % overshoot of a step (measured on ``fcnn_mnist``: 56 % success vs 100 %).
        stabiliser: added to each step's radius; default ``1e-4`` for ``"total"`` (LTS4, Foolbox)
           and 0 for ``"per_step"`` (document 001).

    Cost per input: one forward pass per iteration plus one for the final check when it stops
    early, and ``candidates − 1`` backward passes per iteration.

    ``info``: ``iterations`` (N,) the steps taken; ``norm`` (N,) ``‖x_adv − x‖_p`` and
    ``norm_raw`` (N,) ``‖x_raw − x‖_p``; ``fooled_in_loop`` (N,) whether the loop saw the label
    change; ``norms_raw`` (all lp norms of ``x_raw − x``).
    """
    if targeted:
        raise AttackInputError("deepfool is untargeted.")
    if overshoot_mode not in ("total", "per_step"):
        raise AttackInputError(f"overshoot_mode must be 'total' or 'per_step', not {overshoot_mode!r}.")
    if steps < 0 or overshoot < 0:
        raise AttackInputError(f"steps and overshoot must be ≥ 0, got {steps} and {overshoot}.")
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
        df, dg = margin_grads(counter, x_req, out, y[active[keep]], others[active[keep]], active, rows=keep)
        active = active[keep]
        if box_aware:
            # A step moves each coordinate along −sign(∇f_k − ∇f_j); drop the coordinates that
            # sit on a bound and would be pushed out of the box (they would be clipped away).
            xa = x_cur[active].unsqueeze(1)
            dg = dg.masked_fill(((xa <= lower) & (dg > 0)) | ((xa >= upper) & (dg < 0)), 0.0)
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
    x_raw = x_cur
    res = finish(model, x, x_raw, y, False, counter, t0, iterations=iterations, fooled_in_loop=fooled,
                 p=p, overshoot=overshoot, overshoot_mode=overshoot_mode, steps=steps, candidates=candidates,
                 clip=clip)
    norm_key = {1.0: "l1", 2.0: "l2", math.inf: "linf"}.get(float(p))
    raw_norms = lp_norms(res.x_raw - x)
    res.info["norms_raw"] = raw_norms
    if norm_key is not None:
        res.info["norm"] = res.norms[norm_key]
        res.info["norm_raw"] = raw_norms[norm_key]
    else:
        res.info["norm"] = (res.x_adv - x).flatten(1).norm(p=float(p), dim=1)
        res.info["norm_raw"] = (res.x_raw - x).flatten(1).norm(p=float(p), dim=1)
    return res
