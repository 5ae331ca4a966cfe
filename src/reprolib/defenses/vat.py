"""Virtual adversarial training (Miyato, Maeda, Koyama & Ishii 2018).

Miyato et al., *Virtual Adversarial Training: A Regularization Method for Supervised and
Semi-Supervised Learning* (https://arxiv.org/abs/1704.03976, §3; the thesis's eqs. 2.23–2.24,
document 004). With p(·|x) the model's softmax and D the KL divergence,

    LDS(x) = D[ p(·|x) ‖ p(·|x + r_vadv) ],      r_vadv = argmax_{‖r‖₂ ≤ ε} D[ p(·|x) ‖ p(·|x + r) ],   (eq. 2.24)

and the training loss is ℓ(f(x), y) + α·LDS(x) (eq. 2.23 has α = 1). p(·|x) is a constant
(no gradient flows through it). To second order, D[p(x) ‖ p(x + r)] ≈ ½ rᵀH(x)r with H the
Hessian at r = 0 (the gradient vanishes there), so r_vadv ≈ ε·u with u the dominant eigenvector
of H. Miyato et al. (§3.3) find u by **power iteration** with finite differences:
starting from a random unit d,

    d ← g / ‖g‖₂,    g = ∇_r D[ p(·|x) ‖ p(·|x + r) ] at r = ξ·d,

repeated K times (K = 1 is enough in their experiments), then r_vadv = ε·d. Each iteration costs
one forward and one backward pass. Their defaults: ξ = 1e-6, K = 1; document 004's reference
code for the MNIST MLP: ε = 2.0 (ℓ2), ξ = 1e-6, K = 1, α = 1.

Here the power iteration runs in eval mode (like every reprolib attack; the mode is restored),
the target p(·|x) is that eval-mode prediction, and p(·|x + r_vadv) and the supervised term are
computed in train mode. For a network without dropout or batch norm the modes agree. x + r_vadv
is not clipped to the input box (Miyato et al. do not clip). The power iteration is a
per-example ℓ2 normalisation; with float32 and ξ = 1e-6 the finite difference is near rounding,
which Miyato et al.'s code accepts (a larger ξ, e.g. 1e-2·‖x‖, is more robust in float32).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.classifier import eval_mode
from ..train import Step


def _check(name: str, value, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '≥ 0'}, got {value!r}.")
    return float(value)


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return value


def _unit(d: Tensor) -> Tensor:
    """Each example's ``d`` divided by its ℓ2 norm (a zero row stays zero)."""
    norms = d.flatten(1).norm(dim=1).clamp_min(1e-30)
    return d / norms.view(-1, *([1] * (d.dim() - 1)))


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """D[p ‖ q] = Σ_i p_i (log p_i − log q_i) per example ``(N,)``, from logits ``(N, K)``."""
    log_p, log_q = F.log_softmax(p_logits, dim=1), F.log_softmax(q_logits, dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def power_iteration(model: nn.Module, x: Tensor, *, xi: float = 1e-6, iterations: int = 1,
                    generator: torch.Generator | None = None, clean_logits: Tensor | None = None) -> Tensor:
    """The unit direction u of the largest curvature of r ↦ D[p(·|x) ‖ p(·|x + r)] at r = 0,
    per example, by ``iterations`` finite-difference power-iteration steps (Miyato et al. §3.3).

    Args:
        model: the network (logits); it runs as it is (set its mode before).
        x: inputs ``(N, ...)``.
        xi: ξ > 0, the finite-difference length (input units).
        iterations: K ≥ 1.
        generator: the CPU generator of the random start d ~ N(0, I); ``None`` uses torch's
            global one.
        clean_logits: the model's logits at ``x`` if already computed (detached), else one
            forward pass computes them.

    Returns:
        ``(N, ...)``, the shape of ``x``: one unit-ℓ2 direction per example.

    Raises:
        ValueError: ``xi`` not > 0 or ``iterations`` < 1.
    """
    xi = _check("xi", xi)
    iterations = _count("iterations", iterations, 1)
    x = x.detach()
    with torch.no_grad():
        p = model(x) if clean_logits is None else clean_logits
    p = p.detach()
    d = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    d = _unit(d)
    for _ in range(iterations):
        r = (xi * d).requires_grad_(True)
        with torch.enable_grad():
            div = kl_divergence(p, model(x + r)).sum()
            (g,) = torch.autograd.grad(div, r)
        d = _unit(g.detach())
    return d


def virtual_adversarial_perturbation(model: nn.Module, x: Tensor, *, eps: float, xi: float = 1e-6,
                                     iterations: int = 1, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """r_vadv = ε·u (eq. 2.24), with u from :func:`power_iteration` run in eval mode.

    Args:
        model: the network (logits); its mode is restored afterwards.
        x: inputs ``(N, ...)``.
        eps: ε > 0, the ℓ2 radius (input units).
        xi, iterations: as in :func:`power_iteration`.
        seed: seed of the random start (a fresh CPU generator); ``None`` for torch's global one.

    Returns:
        ``(r_vadv, clean_logits)``: the perturbation (shape of ``x``, ‖r‖₂ = ε per example,
        detached) and the eval-mode logits at ``x`` (detached), the target p(·|x).

    Raises:
        ValueError: ``eps`` or ``xi`` not > 0, ``iterations`` < 1.
    """
    eps = _check("eps", eps)
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    with eval_mode(model):
        with torch.no_grad():
            clean = model(x.detach())
        u = power_iteration(model, x, xi=xi, iterations=iterations, generator=generator, clean_logits=clean)
    return eps * u, clean.detach()


class VATLoss:
    """ℓ(f(x), y) + α·LDS(x) (eqs. 2.23–2.24): a ``batch_loss`` for :func:`reprolib.train.fit`.

    Args:
        eps: ε > 0, the ℓ2 radius of r_vadv (input units; document 004's MNIST MLP: 2.0).
        xi: ξ > 0 (Miyato et al.: 1e-6).
        iterations: power iterations K ≥ 1 (Miyato et al.: 1).
        weight: α ≥ 0, the weight of LDS (eq. 2.23: 1).
        supervised: include the supervised cross-entropy term (``False``: LDS alone, the
            unsupervised part of semi-supervised VAT).

    Calling it as ``loss(model, x, y, step)`` returns the scalar loss; the random start of the
    power iteration is seeded by ``step.seed`` (torch's global generator when ``step`` is
    ``None``). ``last`` holds the batch's cross-entropy and LDS (floats).

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(self, *, eps: float, xi: float = 1e-6, iterations: int = 1, weight: float = 1.0,
                 supervised: bool = True) -> None:
        self.eps = _check("eps", eps)
        self.xi = _check("xi", xi)
        self.iterations = _count("iterations", iterations, 1)
        self.weight = _check("weight", weight, positive=False)
        self.supervised = bool(supervised)
        self.last: dict = {}

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, step: Step | None = None) -> Tensor:
        r, clean_eval = virtual_adversarial_perturbation(model, x, eps=self.eps, xi=self.xi,
                                                         iterations=self.iterations,
                                                         seed=None if step is None else step.seed)
        lds = kl_divergence(clean_eval, model(x.detach() + r)).mean()
        total = self.weight * lds
        self.last = {"lds": float(lds.detach())}
        if self.supervised:
            ce = F.cross_entropy(model(x), y)
            total = total + ce
            self.last["ce"] = float(ce.detach())
        return total

    def as_dict(self) -> dict:
        """The settings, for resume states and model metadata."""
        return {"defense": "vat", "eps": self.eps, "xi": self.xi, "iterations": self.iterations,
                "weight": self.weight, "supervised": self.supervised}

    def __repr__(self) -> str:
        return f"VATLoss({self.as_dict()})"
