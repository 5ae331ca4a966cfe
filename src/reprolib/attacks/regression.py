"""Document 001, Section III: attacks on regressors (Balda, Behboodi & Mathar,
https://arxiv.org/abs/1803.03607 v2, §III, eq. 9; the paper runs no experiment with them).

The linearised objective (eq. 9) is ``max ‖J_f(x) η‖₂²`` subject to ``‖η‖_p ≤ ε``; its optimum is
``ε ‖J_f(x)‖_{p→2}`` on the boundary of the ball.

* p = 2 (:func:`l2_attack`): ``η = ε v_max``, the top right-singular vector of ``J_f``, found by
  power iteration ``v ← J_fᵀ(J_f v)`` with one JVP and one VJP per iteration (no full Jacobian).
  The first-order gain is ``ε σ_max``. The sign of ``v`` is arbitrary (both give the same gain).
* p = 1 (:func:`l1_attack`): ``‖J‖_{1→2} = max_i ‖J_{:,i}‖₂``, so ``η = ±ε e_i*`` with ``i*`` the
  input coordinate with the largest Jacobian column: a single-pixel attack. Needs the full
  Jacobian: one forward and ``m_L`` (number of outputs) backward passes.
* p = ∞ is NP-hard (the paper cites an SDP relaxation); not implemented.

These work for any ``nn.Module`` mapping a batch ``(N, *input_shape)`` to outputs ``(N, *out_shape)``
whose rows do not interact (eval mode), so they are not classifier attacks (no ``@attack``)
and return a :class:`RegressionAttackResult`. Passes are counted per input; the fresh forward
pass that measures the actual output change is not charged. Bad arguments raise
:class:`~.ops.checks.AttackInputError` before any model pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .core import Counter
from .ops import checks
from .ops.checks import AttackInputError


class _PassCounter(Counter):
    """A :class:`Counter` for any module (no logits check: regressors output anything)."""

    def logits(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        out = self.model(x)
        self._add(self.forwards, idx, len(x))
        return out


@dataclass
class RegressionAttackResult:
    """Per input: ``eta`` (the perturbation, ‖η‖_p = ε), ``x_adv`` (``x + η`` clipped to the
    bounds) and ``x_raw`` (unclipped), ``gain_first_order`` (``‖J η‖₂``, the linearised output
    change), ``gain`` and ``gain_raw`` (the actual ``‖f(x_adv) − f(x)‖₂`` and for ``x_raw``, by a fresh
    uncounted forward pass), ``operator_norm`` (the estimate of ``‖J‖_{p→2}``), pass counts."""

    x: Tensor
    eta: Tensor
    x_adv: Tensor
    x_raw: Tensor
    gain_first_order: Tensor
    gain: Tensor
    gain_raw: Tensor
    operator_norm: Tensor
    forwards: Tensor
    backwards: Tensor
    seconds: float
    info: dict = field(default_factory=dict)


def _check(model: nn.Module, x: Tensor, eps: float, bounds: tuple[float, float] | None) -> float:
    """Check the model, the batch, ε and the bounds; return ε as a float."""
    if not isinstance(model, nn.Module):
        raise AttackInputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() < 2:
        raise AttackInputError("x must be a floating-point batch of shape (N, ...).")
    if not torch.isfinite(x).all():
        raise AttackInputError("x holds NaN or infinite values.")
    eps = checks.nonnegative("eps", eps)
    if bounds is not None:
        lo, hi = bounds
        if float(x.min()) < lo or float(x.max()) > hi:
            raise AttackInputError(f"x spans [{float(x.min()):.4g}, {float(x.max()):.4g}], outside bounds {bounds}.")
    return eps


def _finish(model, x, eta, bounds, gain_first_order, opnorm, counter, t0, **info) -> RegressionAttackResult:
    x_raw = (x + eta).detach()
    x_adv = x_raw if bounds is None else x_raw.clamp(*bounds)
    with torch.no_grad():
        f0 = model(x).flatten(1)
        gain = (model(x_adv).flatten(1) - f0).norm(dim=1)
        gain_raw = gain if torch.equal(x_adv, x_raw) else (model(x_raw).flatten(1) - f0).norm(dim=1)
    return RegressionAttackResult(x=x, eta=eta.detach(), x_adv=x_adv, x_raw=x_raw,
                                  gain_first_order=gain_first_order.detach(), gain=gain, gain_raw=gain_raw,
                                  operator_norm=opnorm.detach(), forwards=counter.forwards,
                                  backwards=counter.backwards, seconds=time.perf_counter() - t0, info=info)


def l2_attack(model: nn.Module, x: Tensor, eps: float, *, steps: int = 20, tol: float = 0.0,
              bounds: tuple[float, float] | None = (0.0, 1.0), seed: int = 0) -> RegressionAttackResult:
    """``η = ε v_max`` by power iteration on ``v ← J_fᵀ(J_f v)``, per input (eq. 9, p = 2).

    Each iteration is one JVP and one VJP, both through the graph of one initial forward pass:
    the VJP is a backward pass; the JVP differentiates ``Jᵀu`` (built once by a backward pass with
    ``create_graph``) with respect to the dummy ``u``, a pass through the linearised network
    counted as a forward. (``torch.func.jvp`` and ``torch.autograd.forward_ad`` give the same
    product but import ``torch._dynamo`` on first use: tens of seconds on a busy 2-core box.)

    Args:
        model: any module mapping ``(N, *input_shape)`` to ``(N, *out_shape)``, rows independent.
        x: the inputs ``(N, *input_shape)``, finite, inside ``bounds``.
        eps: the ℓ2 radius ε ≥ 0.
        steps: the most power iterations to run, ≥ 1; all inputs stop early once every
            estimate of σ_max changed by less than ``tol`` (relative) in one iteration.
        tol: ≥ 0; 0 (default) runs all ``steps``.
        bounds: the input box (``x_adv`` is ``x + η`` clipped to it), or None for none.
        seed: the seed ≥ 0 of the Gaussian start vector, drawn on the CPU from
            ``torch.Generator().manual_seed(seed)``.

    Returns:
        A :class:`RegressionAttackResult`: ``operator_norm`` is the estimate of σ_max(J_f(x)),
        ``gain_first_order = ε σ_max``; ``info``: ``iterations`` (an int, the iterations run)
        and ``v`` (the unit top right-singular vector estimate, shape of ``x``). Cost per input:
        ``2 + t`` forward-type passes (the forward, t + 1 JVPs) and ``1 + t`` backward passes
        (the ``create_graph`` one and t VJPs) for ``t`` iterations.

    Raises:
        AttackInputError: a model that is not an ``nn.Module``, a non-float or non-finite ``x``,
            ``x`` outside ``bounds``, a negative or non-finite ``eps`` or ``tol``, ``steps`` < 1,
            a negative ``seed``.
    """
    eps = _check(model, x, eps, bounds)
    steps = checks.count("steps", steps, minimum=1)
    tol = checks.nonnegative("tol", tol)
    seed = checks.count("seed", seed, minimum=0)
    t0 = time.perf_counter()
    x = x.detach()
    counter = _PassCounter(model, len(x), x.device)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    v = v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view((-1,) + (1,) * (x.dim() - 1))
    x_req = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x_req)  # one forward pass; its graph serves every VJP
        counter.forwards += 1
        # Jᵀu as a differentiable function of a dummy u (one backward pass with create_graph):
        # differentiating it with respect to u along v gives J v (the double-backward JVP).
        u = torch.zeros_like(out, requires_grad=True)
        # (scalar outputs instead of grad_outputs: the latter imports sympy on first use)
        (jtu,) = torch.autograd.grad((out * u).sum(), x_req, create_graph=True)
        counter.backwards += 1
    shape = (-1,) + (1,) * (x.dim() - 1)

    def jvp(v: Tensor) -> Tensor:
        (tangent,) = torch.autograd.grad((jtu * v).sum(), u, retain_graph=True)
        counter.forwards += 1
        return tangent

    sigma = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    done = 0
    for done in range(1, steps + 1):
        jv = jvp(v)
        (w,) = torch.autograd.grad((out * jv).sum(), x_req, retain_graph=True)
        counter.backwards += 1
        new_sigma = jv.flatten(1).norm(dim=1)  # ‖J v‖ with ‖v‖ = 1: the estimate of σ_max
        wn = w.flatten(1).norm(dim=1)
        v = torch.where((wn > 0).view(shape), w / wn.clamp_min(1e-30).view(shape), v)
        converged = bool(((new_sigma - sigma).abs() <= tol * new_sigma.abs()).all()) if tol > 0 else False
        sigma = new_sigma
        if converged:
            break
    # σ at the final v (its ‖J v‖ is the first-order gain): one more JVP, counted.
    sigma = jvp(v).flatten(1).norm(dim=1)
    eta = eps * v
    return _finish(model, x, eta, bounds, eps * sigma, sigma, counter, t0, iterations=done, v=v.detach())


def l1_attack(model: nn.Module, x: Tensor, eps: float, *,
              bounds: tuple[float, float] | None = (0.0, 1.0)) -> RegressionAttackResult:
    """The single-pixel attack ``η = ±ε e_i*``, ``i* = argmax_i ‖J_{:,i}‖₂`` (eq. 9, p = 1:
    ``‖J‖_{1→2}`` is the largest column norm).

    The sign is free (same gain); it is chosen towards the side with more room inside ``bounds``
    (``+`` on ties and without bounds).

    Args:
        model: any module mapping ``(N, *input_shape)`` to ``(N, *out_shape)``, rows independent.
        x: the inputs ``(N, *input_shape)``, finite, inside ``bounds``.
        eps: the ℓ1 radius ε ≥ 0 (the change of the one pixel).
        bounds: the input box (``x_adv`` is ``x + η`` clipped to it), or None for none.

    Returns:
        A :class:`RegressionAttackResult` (``operator_norm`` = ``‖J‖_{1→2}``);
        ``info["pixel"]`` ``(N,)``: the flat index ``i*``. The full Jacobian costs one forward
        and ``m_L`` (the number of outputs) backward passes per input.

    Raises:
        AttackInputError: a model that is not an ``nn.Module``, a non-float or non-finite ``x``,
            ``x`` outside ``bounds``, a negative or non-finite ``eps``.
    """
    eps = _check(model, x, eps, bounds)
    t0 = time.perf_counter()
    x = x.detach()
    counter = _PassCounter(model, len(x), x.device)
    xr = x.clone().requires_grad_(True)
    with torch.enable_grad():
        out = counter.logits(xr).flatten(1)
        m = out.shape[1]
        colsq = torch.zeros(x.flatten(1).shape, dtype=x.dtype, device=x.device)
        for j in range(m):
            g = counter.grad(out[:, j], xr, retain_graph=j < m - 1)
            colsq += g.flatten(1) ** 2
    cols = colsq.sqrt()
    i = cols.argmax(1)
    flat = x.flatten(1)
    xi = flat.gather(1, i[:, None]).squeeze(1)
    if bounds is None:
        sign = torch.ones_like(xi)
    else:
        sign = torch.where(bounds[1] - xi >= xi - bounds[0], 1.0, -1.0).to(x.dtype)
    eta = torch.zeros_like(flat).scatter(1, i[:, None], (eps * sign)[:, None]).view_as(x)
    opnorm = cols.gather(1, i[:, None]).squeeze(1)
    return _finish(model, x, eta, bounds, eps * opnorm, opnorm, counter, t0, pixel=i)
