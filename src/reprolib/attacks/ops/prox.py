"""Proximal operators of the l_p norms and EAD's shrinkage-thresholding, batched over inputs.

``prox_{t·f}(v) = argmin_u f(u) + ||u − v||² / (2t)``, applied to each input of a batch
independently (the first dimension is the batch; every other dimension is flattened into
one vector per input). ``t`` is a number or a tensor of shape ``(N,)``, one threshold per
input; ``t = 0`` gives the identity.

Matyasko (2020), Ch. 5, eqs. 5.11–5.16:

* l1: soft thresholding ``sign(v)·max(|v| − t, 0)`` (the thesis prints ``sign(x)(x − λ)_+``, a typo);
* l2: block soft thresholding ``(1 − t/||v||₂)_+ · v``;
* l∞: Moreau decomposition ``v − t·Π_{l1-ball of radius 1}(v / t)``, with the sort-based l1-ball
  projection of Duchi et al. (2008) (:func:`reprolib.attacks.ops.norms.project_l1`, re-exported
  here as ``project_l1_ball``; it returns rows already inside the ball unchanged, signs kept — the
  reference code returned ``|v|`` there);
* l0: hard thresholding at ``√(2t)`` (keep ``v_i`` iff ``|v_i| > √(2t)``);
* group l0 (pixels): zero every channel of a pixel iff ``max_c |v_c| ≤ √(2t)``; the channels are
  dimension 1 of an input batch ``(N, C, ...)``.

The box constraint is handled as in the thesis's code: prox first, then clip ``x + u`` to the
box (:func:`project_box`). This is not the exact prox of (norm + box indicator), only an
approximation of it; for l0/l1 the clip can shrink an entry but never makes a zero non-zero.

:func:`shrinkage_threshold` is EAD's projected shrinkage-thresholding S_β (document 002, Ch. 4,
eq. 18; Chen et al., https://arxiv.org/abs/1709.04114): the exact prox of ``β‖· − x0‖₁`` plus
the box indicator, element-wise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .box import project_box
from .norms import NORMS, per_input
from .norms import project_l1 as project_l1_ball


def soft_threshold(v: Tensor, t: float | Tensor) -> Tensor:
    """``sign(v)·max(|v| − t, 0)`` elementwise, with one threshold per input."""
    t = per_input(t, len(v), v)
    return v.sign() * (v.abs() - t).clamp_min(0)


def hard_threshold(v: Tensor, th: float | Tensor) -> Tensor:
    """Keep ``v_i`` where ``|v_i| > th``, else 0 (one threshold per input)."""
    th = per_input(th, len(v), v)
    return torch.where(v.abs() > th, v, torch.zeros_like(v))


def prox_l1(v: Tensor, t: float | Tensor) -> Tensor:
    """prox of ``t·||·||₁``: soft thresholding (eq. 5.13)."""
    return soft_threshold(v, t)


def prox_l2(v: Tensor, t: float | Tensor) -> Tensor:
    """prox of ``t·||·||₂``: block soft thresholding ``(1 − t/||v||₂)_+ · v`` (eq. 5.12)."""
    t = per_input(t, len(v), v)
    norm = v.flatten(1).norm(dim=1).reshape(t.shape)
    scale = (1 - t / norm.clamp_min(torch.finfo(v.dtype).tiny)).clamp_min(0)
    return scale * v


def prox_linf(v: Tensor, t: float | Tensor) -> Tensor:
    """prox of ``t·||·||_∞`` by Moreau decomposition: ``v − t·Π_{B₁}(v/t)`` (eq. 5.11)."""
    tt = per_input(t, len(v), v)
    safe = torch.where(tt > 0, tt, torch.ones_like(tt))
    out = v - safe * project_l1_ball(v / safe, 1.0)
    return torch.where(tt > 0, out, v)


def prox_l0(v: Tensor, t: float | Tensor) -> Tensor:
    """prox of ``t·||·||₀``: hard thresholding at ``√(2t)`` (eq. 5.14)."""
    return hard_threshold(v, torch.sqrt(2 * per_input(t, len(v), v).flatten()))


def prox_l0_group(v: Tensor, t: float | Tensor) -> Tensor:
    """prox of ``t·||·||_{0,G}`` with the groups = the channels (dim 1) of each pixel (eq. 5.16).

    ``||u||_{0,G}`` counts the pixels with any non-zero channel. A pixel is kept whole iff its
    largest channel magnitude exceeds ``√(2t)``: keeping it costs 1 and saves ``||v_g||²/(2t)``,
    and ``||v_g||² ≥ max_c v_c²``, so the exact rule compares ``||v_g||₂`` with ``√(2t)``.
    The thesis (5.16) and its code compare the *largest* channel instead; that rule is the one
    implemented here (it equals the exact prox when the group has one channel).
    """
    if v.dim() < 2:
        raise ValueError("prox_l0_group needs inputs of shape (N, C, ...); channels are dimension 1")
    th = torch.sqrt(2 * per_input(t, len(v), v))
    keep = v.abs().amax(1, keepdim=True) > th
    return torch.where(keep, v, torch.zeros_like(v))


_PROX = {"linf": prox_linf, "l2": prox_l2, "l1": prox_l1, "l0": prox_l0, "l0_group": prox_l0_group}


def prox(norm: str, v: Tensor, t: float | Tensor) -> Tensor:
    """The prox of ``t·||·||`` for ``norm`` in ``linf``, ``l2``, ``l1``, ``l0``, ``l0_group``."""
    try:
        return _PROX[norm](v, t)
    except KeyError:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}") from None


def prox_box(norm: str, x: Tensor, v: Tensor, t: float | Tensor, bounds: tuple[float, float]) -> Tensor:
    """Prox of the norm followed by the box clip, as the thesis's code does (an approximation
    of the prox of norm + box indicator)."""
    return project_box(x, prox(norm, v, t), bounds)


def shrinkage_threshold(z: Tensor, x0: Tensor, beta: float, lower: float, upper: float) -> Tensor:
    """EAD's projected shrinkage-thresholding operator S_β (document 002, eq. 18), element-wise:

    ``min(z − β, upper)`` where ``z − x0 > β``; ``x0`` where ``|z − x0| ≤ β``;
    ``max(z + β, lower)`` where ``z − x0 < −β``.

    It is the proximal operator of β‖· − x0‖₁ plus the indicator of the box [lower, upper]
    (for x0 in the box). EAD applies it with the threshold β at every step, whatever the step
    size (the authors' code, ``ysharma1126/EAD_Attack``; the prox of the step's α·β‖·‖₁ would
    threshold at α·β).

    Args:
        z: the point after the gradient step, any shape.
        x0: the clean input, the shape of ``z``.
        beta: the threshold β ≥ 0 (β = 0 is the box projection).
        lower, upper: the box.
    """
    diff = z - x0
    out = torch.where(diff > beta, (z - beta).clamp(max=upper), x0)
    return torch.where(diff < -beta, (z + beta).clamp(min=lower), out)
