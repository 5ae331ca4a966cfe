"""Norms, unit-norm directions and ε-ball projections, batched over inputs.

Every function treats the first dimension as the batch and flattens the rest into one vector
per input. A norm is named by a string (``"linf"``, ``"l2"``, ``"l1"``, ``"l0"``, and
``"l0_group"``: the number of pixels with any changed channel, channels being dimension 1) or,
where an attack supports any ℓp norm, by a number p ≥ 1 (``math.inf`` for ℓ∞).
:func:`order` turns either spelling into the float order used internally.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .checks import AttackInputError

INF = math.inf

#: Every norm name an attack may take, and the float order of those that have one.
NORMS = ("linf", "l2", "l1", "l0", "l0_group")
ORDERS = {"linf": INF, "l2": 2.0, "l1": 1.0}
_ALIASES = {"inf": "linf", "∞": "linf", "l∞": "linf", "2": "l2", "1": "l1", "0": "l0"}


def order(norm, *, general: bool = False) -> float:
    """The float order p of ``norm``: ``"linf" | "l2" | "l1"`` or a number.

    Args:
        norm: a name of :data:`ORDERS` (also ``"inf"``, ``"2"``, ``"1"``) or a number.
        general: accept any number p ≥ 1 (for attacks defined for every ℓp norm); otherwise
            only 1, 2 and ∞.

    Raises:
        AttackInputError: for any other value, naming the valid ones.
    """
    if isinstance(norm, str):
        key = _ALIASES.get(norm.strip().lower(), norm.strip().lower())
        if key in ORDERS:
            return ORDERS[key]
    elif isinstance(norm, (int, float)) and not isinstance(norm, bool):
        p = float(norm)
        if p in (1.0, 2.0, INF) or (general and p >= 1 and not math.isnan(p)):
            return p
    valid = "'linf', 'l2', 'l1' or any number p ≥ 1" if general else "'linf', 'l2' or 'l1' (or inf, 2, 1)"
    raise AttackInputError(f"norm must be {valid}, got {norm!r}.")


def name(norm) -> str:
    """The canonical name of a norm: ``"linf"``, ``"l2"``, ``"l1"``, ``"l0"``, ``"l0_group"``,
    or ``"l{p}"`` for another order p."""
    if isinstance(norm, str):
        key = _ALIASES.get(norm.strip().lower(), norm.strip().lower())
        if key in NORMS:
            return key
    p = order(norm, general=True)
    return {INF: "linf", 2.0: "l2", 1.0: "l1"}.get(p, f"l{p:g}")


def lp_norms(delta: Tensor) -> dict[str, Tensor]:
    """The l0 (number of changed values), l1, l2 and l∞ norms of each row of a batch, shape (N,)."""
    flat = delta.flatten(1)
    return {
        "l0": (flat != 0).sum(1).to(flat.dtype),
        "l1": flat.abs().sum(1),
        "l2": flat.norm(dim=1),
        "linf": flat.abs().amax(1) if flat.shape[1] else flat.sum(1),
    }


def lp_norm(v: Tensor, norm, start_dim: int = 1) -> Tensor:
    """The ``norm`` of each item of ``v``, flattening the dimensions from ``start_dim`` on.

    ``norm`` is any name of :data:`NORMS` or a number p ≥ 1. ``"l0_group"`` counts the groups
    (dimension ``start_dim``: the channels) with a non-zero entry at each remaining position.
    """
    if isinstance(norm, str) and name(norm) == "l0":
        return (v.flatten(start_dim) != 0).sum(-1).to(v.dtype)
    if isinstance(norm, str) and name(norm) == "l0_group":
        return (v != 0).any(start_dim).flatten(start_dim).sum(-1).to(v.dtype)
    p = order(norm, general=True)
    flat = v.flatten(start_dim)
    if math.isinf(p):
        return flat.abs().amax(-1) if flat.shape[-1] else flat.sum(-1)
    if p == 1:
        return flat.abs().sum(-1)
    if p == 2:
        return flat.norm(dim=-1)
    return flat.abs().pow(p).sum(-1).pow(1 / p)


def dual_exponent(p: float) -> float:
    """q with 1/p + 1/q = 1: ∞ ↔ 1, 2 ↔ 2, 1 ↔ ∞."""
    p = order(p, general=True)
    if p == 1:
        return INF
    if math.isinf(p):
        return 1.0
    return p / (p - 1)


def dual_norm(g: Tensor, p, start_dim: int = 1) -> Tensor:
    """‖g‖_q, the dual of the ℓp norm, per item (``start_dim`` as in :func:`lp_norm`)."""
    return lp_norm(g, dual_exponent(p), start_dim)


def per_input(value, n: int, like: Tensor, *, name: str = "ε") -> Tensor:
    """A number or a length-``n`` tensor as a tensor of shape ``(n, 1, ..., 1)`` that broadcasts
    against ``like``, in its dtype and on its device.

    Raises:
        AttackInputError: for another shape, or a negative or non-finite value (``name`` says
            which setting it was).
    """
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise AttackInputError(f"{name} must be a number or a tensor of shape ({n},), got shape {tuple(t.shape)}.")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise AttackInputError(f"{name} must be finite and ≥ 0, got {value!r}.")
    return t.reshape((n,) + (1,) * (like.dim() - 1))


def normalize(g: Tensor, p: float) -> Tensor:
    """``g / ‖g‖_p`` per input (``sign(g)`` for ℓ∞); rows with ‖g‖ = 0 stay 0."""
    if p == INF:
        return g.sign()
    n = lp_norm(g, p)
    n = torch.where(n > 0, n, torch.ones_like(n))
    return (g.flatten(1) / n[:, None]).view_as(g)


# ------------------------------------------------------------------------------ projections
def project_linf(delta: Tensor, eps) -> Tensor:
    """Clamp each coordinate of each row to [−ε, ε] (ε a number or one value per row)."""
    e = per_input(eps, len(delta), delta)
    return torch.maximum(torch.minimum(delta, e), -e)


def project_l2(delta: Tensor, eps) -> Tensor:
    """Euclidean projection onto {‖δ‖₂ ≤ ε}: δ·min(1, ε/‖δ‖₂) per row."""
    e = per_input(eps, len(delta), delta).flatten()
    n = lp_norm(delta, 2.0)
    factor = torch.where(n > e, e / torch.where(n > 0, n, torch.ones_like(n)), torch.ones_like(n))
    return delta * factor.reshape((-1,) + (1,) * (delta.dim() - 1))


def project_l1(delta: Tensor, eps) -> Tensor:
    """Euclidean projection onto {‖δ‖₁ ≤ ε}, per row (Duchi, Shalev-Shwartz, Singer & Chandra
    2008, Fig. 1): rows already inside are returned unchanged; otherwise, with u = |δ| sorted
    in decreasing order and ρ = max{j : u_j − (Σ_{i≤j} u_i − ε)/j > 0},
    θ = (Σ_{i≤ρ} u_i − ε)/ρ and the projection is sign(δ)·max(|δ| − θ, 0). O(d log d)."""
    shape = delta.shape
    v = delta.flatten(1)
    e = per_input(eps, len(v), v).flatten()
    a = v.abs()
    outside = a.sum(1) > e
    if not bool(outside.any()):
        return delta
    u, _ = a.sort(dim=1, descending=True)
    css = u.cumsum(1)
    j = torch.arange(1, v.shape[1] + 1, device=v.device, dtype=v.dtype)
    cond = u - (css - e[:, None]) / j > 0
    # ρ = last index where cond holds (cond holds at j = 1 whenever ε ≥ 0 and the row is outside)
    rho = (cond * j).amax(1).long().clamp(min=1)
    theta = (css.gather(1, (rho - 1)[:, None]).squeeze(1) - e) / rho.to(v.dtype)
    theta = torch.where(outside, theta.clamp(min=0), torch.zeros_like(theta))
    return (v.sign() * (a - theta[:, None]).clamp(min=0)).view(shape)


def project(delta: Tensor, eps, norm) -> Tensor:
    """Euclidean projection of each row of ``delta`` onto the ε-ball of ``norm`` (ℓ∞, ℓ2, ℓ1)."""
    return {INF: project_linf, 2.0: project_l2, 1.0: project_l1}[order(norm)](delta, eps)


def rescale(delta: Tensor, eps, norm) -> Tensor:
    """Document 002's I-FGM "ε-ball clipping" for ℓ1/ℓ2: δ·ε/‖δ‖ (also scales *up*; δ = 0 stays
    0). For ℓ∞ it clamps to [−ε, ε], as EAD's ``ifgm.py`` does."""
    p = order(norm)
    if p == INF:
        return project_linf(delta, eps)
    e = per_input(eps, len(delta), delta).flatten()
    n = lp_norm(delta, p)
    factor = torch.where(n > 0, e / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(n))
    return delta * factor.reshape((-1,) + (1,) * (delta.dim() - 1))
