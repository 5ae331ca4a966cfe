"""Closed-form minimisers of a linearised margin under an ℓp budget (document 001).

Balda, Behboodi & Mathar, *On Generation of Adversarial Examples using Convex Programming*
(https://arxiv.org/abs/1803.03607 v2), §II. With the margin linearised at x, ``L(x + η) ≈ L + ηᵀg``
(``g = ∇L(x)``):

* :func:`gnii_step`: the minimiser of ``ηᵀg`` over ``‖η‖_p ≤ ε`` (GNII, eqs. 6–7, Proposition 2).
  For p = 1 eq. 6 degenerates (q = ∞); the solution, which the paper does not spell out, is the
  single coordinate ``−ε sign(g_i*) e_i*``, ``i* = argmax |g_i|``.
* :func:`gnii_value`: its optimal value ``L − ε‖g‖_q``.
* :func:`min_norm_step`: the minimum-norm solution of ``L + ηᵀg ≤ 0`` (eq. 8): the GNII direction
  at radius ``L/‖g‖_q`` (Proposition 1's bound). With ``L = f_k − f_l̂`` it is one DeepFool step.

Used by the GN attacks (:mod:`reprolib.attacks.convex`), DeepFool and the GN minimum-norm iteration.
A norm ``p`` is a name (``"linf"``, ``"l2"``, ``"l1"``) or any number p ≥ 1
(:func:`~.norms.order` with ``general=True``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .norms import dual_exponent, dual_norm, order


def _per_item(v: float | Tensor, like: Tensor) -> Tensor:
    """A scalar or (N,) radius broadcast against a batch ``like`` of shape (N, ...). Unlike
    :func:`~.norms.per_input` it lets NaN and +∞ through: :func:`min_norm_step` marks an
    infeasible problem with a NaN radius."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.dim() == 0:
        v = v.expand(len(like))
    return v.reshape((len(like),) + (1,) * (like.dim() - 1))


def gnii_step(g: Tensor, eps: float | Tensor, p=math.inf) -> Tensor:
    """The minimiser η* of ``ηᵀg`` subject to ``‖η‖_p ≤ ε`` (eqs. 6–7, Proposition 2), per item.

    Args:
        g: (N, ...) the gradients ``∇L(x)``, one per input.
        eps: the radius ε, a scalar or a (N,) tensor.
        p: the norm: ``"linf"``, ``"l2"``, ``"l1"`` or any number p ≥ 1 (default ∞).

    * p = ∞: ``−ε sign(g)`` (eq. 7);
    * p = 2: ``−ε g/‖g‖₂``;
    * p = 1: ``−ε sign(g_i*) e_i*`` with ``i* = argmax_i |g_i|`` (first such index);
    * 1 < p < ∞: ``−ε sign(g) |g|^{q−1} / ‖g‖_q^{q−1}`` (eq. 6).

    ``‖η*‖_p = ε`` and ``η*ᵀg = −ε‖g‖_q``, except where ``g = 0``, where η* = 0 (any feasible η
    is optimal, and the zero step is the only one the formulas agree on).

    Raises:
        AttackInputError: for another ``p``.
    """
    p = order(p, general=True)
    r = _per_item(eps, g)
    flat = g.flatten(1)
    if math.isinf(p):
        direction = flat.sign()
    elif p == 1:
        i = flat.abs().argmax(1, keepdim=True)
        direction = torch.zeros_like(flat).scatter(1, i, flat.gather(1, i).sign())
    elif p == 2:
        n2 = flat.norm(dim=1, keepdim=True)
        direction = torch.where(n2 > 0, flat / n2.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    else:
        q = dual_exponent(p)
        # Scale by max|g| first so that |g|^{q−1} neither overflows nor underflows.
        scale = flat.abs().amax(1, keepdim=True).clamp_min(torch.finfo(flat.dtype).tiny)
        a = (flat.abs() / scale).pow(q - 1)
        nq = (flat.abs() / scale).pow(q).sum(1, keepdim=True).pow((q - 1) / q)
        direction = torch.where(nq > 0, flat.sign() * a / nq.clamp_min(torch.finfo(flat.dtype).tiny),
                                torch.zeros_like(flat))
    return -(r * direction.reshape(g.shape))


def gnii_value(L: Tensor, g: Tensor, eps: float | Tensor, p=math.inf) -> Tensor:
    """The optimal value of GNII, ``L − ε‖g‖_q`` (Proposition 2), per item; ``p`` as in
    :func:`gnii_step`."""
    eps = torch.as_tensor(eps, dtype=g.dtype, device=g.device)
    return L - eps * dual_norm(g, p)


def min_norm_step(L: Tensor, g: Tensor, p=math.inf) -> Tensor:
    """The minimum-norm η with ``L + ηᵀg ≤ 0`` (eq. 8), per item; ``L`` (N,), ``g`` (N, ...),
    ``p`` as in :func:`gnii_step`.

    It is the GNII direction at radius ``ε* = L/‖g‖_q`` (Proposition 1's lower bound, reached):
    ``−(L/‖g‖₁) sign(g)`` for p = ∞, ``−L g/‖g‖₂²`` for p = 2. Where ``L ≤ 0`` the constraint
    already holds and η = 0; where ``g = 0`` and ``L > 0`` the problem is infeasible (the radius
    would be +∞) and η is NaN, so that no caller mistakes it for a solution.
    """
    gq = dual_norm(g, p)
    radius = torch.where(L <= 0, torch.zeros_like(L),
                         torch.where(gq > 0, L / gq.clamp_min(torch.finfo(gq.dtype).tiny),
                                     torch.full_like(L, math.nan)))
    return gnii_step(g, radius, p)
