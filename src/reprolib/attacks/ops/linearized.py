"""Closed-form minimisers of a linearised margin under an ℓp budget (document 001).

Balda, Behboodi & Mathar, *On Generation of Adversarial Examples using Convex Programming*
(arXiv:1803.03607 v2), §II–III. With the margin linearised at x, ``L(x + η) ≈ L + ηᵀg``
(``g = ∇L(x)``):

* :func:`gnii_step`: the minimiser of ``ηᵀg`` over ``‖η‖_p ≤ ε`` (GNII, eqs. 6–7, Proposition 2).
  For p = 1 eq. 6 degenerates; the solution is the single coordinate ``−ε sign(g_i*) e_i*``,
  ``i* = argmax |g_i|``.
* :func:`gnii_value`: its optimal value ``L − ε‖g‖_q``.
* :func:`min_norm_step`: the minimum-norm solution of ``L + ηᵀg ≤ 0`` (eq. 8): the GNII direction
  at radius ``L/‖g‖_q`` (Proposition 1's bound). With ``L = f_k − f_l̂`` it is one DeepFool step.

Used by the GN attacks (:mod:`reprolib.attacks.convex`), DeepFool and the GN minimum-norm iteration.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .norms import dual_exponent, dual_norm


def _per_item(v: float | Tensor, like: Tensor) -> Tensor:
    """A scalar or (N,) radius broadcast against a batch ``like`` of shape (N, ...)."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if v.dim() == 0:
        v = v.expand(len(like))
    return v.reshape((len(like),) + (1,) * (like.dim() - 1))


def gnii_step(g: Tensor, eps: float | Tensor, p: float = math.inf) -> Tensor:
    """The minimiser η* of ``ηᵀg`` subject to ``‖η‖_p ≤ ε`` (eq. 6; card §2.3), per item.

    Args:
        g: (N, ...) the gradients ``∇L(x)``, one per input.
        eps: the radius ε, a scalar or a (N,) tensor.
        p: 1, 2, ∞ or any p > 1.

    * p = ∞: ``−ε sign(g)`` (eq. 7);
    * p = 2: ``−ε g/‖g‖₂``;
    * p = 1: ``−ε sign(g_i*) e_i*`` with ``i* = argmax_i |g_i|`` (first such index);
    * 1 < p < ∞: ``−ε sign(g) |g|^{q−1} / ‖g‖_q^{q−1}`` (eq. 6).

    ``‖η*‖_p = ε`` and ``η*ᵀg = −ε‖g‖_q``, except where ``g = 0``, where η* = 0 (any feasible η
    is optimal, and the zero step is the only one the formulas agree on).
    """
    p = float(p)
    if p < 1:
        raise ValueError(f"p must be ≥ 1, got {p}.")
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


def gnii_value(L: Tensor, g: Tensor, eps: float | Tensor, p: float = math.inf) -> Tensor:
    """The optimal value of GNII, ``L − ε‖g‖_q`` (Proposition 2), per item."""
    eps = torch.as_tensor(eps, dtype=g.dtype, device=g.device)
    return L - eps * dual_norm(g, p)


def min_norm_step(L: Tensor, g: Tensor, p: float = math.inf) -> Tensor:
    """The minimum-norm η with ``L + ηᵀg ≤ 0`` (eq. 8), per item.

    It is the GNII direction at radius ``ε* = L/‖g‖_q`` (Proposition 1's lower bound, reached):
    ``−(L/‖g‖₁) sign(g)`` for p = ∞, ``−L g/‖g‖₂²`` for p = 2. Where ``L ≤ 0`` the constraint
    already holds and η = 0; where ``g = 0`` and ``L > 0`` the problem is infeasible and the
    radius is +∞ (η is NaN there, so that no caller mistakes it for a solution).
    """
    gq = dual_norm(g, p)
    radius = torch.where(L <= 0, torch.zeros_like(L),
                         torch.where(gq > 0, L / gq.clamp_min(torch.finfo(gq.dtype).tiny),
                                     torch.full_like(L, math.nan)))
    return gnii_step(g, radius, p)
