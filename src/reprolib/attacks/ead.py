"""EAD: the elastic-net attack (Chen, Sharma, Zhang, Yi & Hsieh, AAAI 2018; document 002, §2.4).

EAD minimises, per input and over the box of the model's bounds,

    c · f(x, t) + ‖x − x0‖₂² + β ‖x − x0‖₁,

with the C&W margin loss ``f`` (confidence κ; the best other class is taken with the label
masked to −∞). ``f`` is used in the reference code's form ``max(0, Z_other − Z_t + κ)``
(targeted) or ``max(0, Z_l − Z_other + κ)`` (untargeted), which equals the paper's
``max(Z_other − Z_t, −κ)`` up to the constant c·κ.

Solvers (``method``):

* ``"fista"`` (the paper's default, Alg. 4): x⁽ᵏ⁺¹⁾ = S_β(y⁽ᵏ⁾ − α_k ∇g(y⁽ᵏ⁾)),
  y⁽ᵏ⁺¹⁾ = x⁽ᵏ⁺¹⁾ + (k+1)/(k+4) · (x⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾), with g = c·f + ‖δ‖₂² (no ½ factor).
  The momentum index (k+1)/(k+4) at 0-based k is the authors' code (their ``global_step`` is
  incremented before it is read); Alg. 4 prints k/(k+3). The update is done in two explicit
  steps (the TF code writes x and y in one ``session.run``; card §5.15).
* ``"ista"``: the same without momentum (y = x).
* ``"cov"``: the Table 5 baseline: C&W's change of variables x = tanh(w) (scaled to the box)
  and Adam (lr, β₁ 0.9, β₂ 0.999, ε 1e-8) on the same elastic-net objective, the ℓ1 term by its
  sub-gradient (0 at 0). As in C&W's code the objective measures δ from tanh(arctanh(x0·0.999999))
  (x0 shrunk by ~1e-6 towards the box centre); selection and reported norms use x0 itself.

Details that follow the authors' code (``ysharma1126/EAD_Attack``; card §2.4 and §5.13–19):

* The shrinkage threshold is β itself, not α_k·β (see :func:`shrinkage_threshold`).
* The step size decays as α_k = lr·(1 − k/steps)^½ (TF ``polynomial_decay`` to 0, power ½).
* An iterate x⁽ᵏ⁺¹⁾ (never y) is a success if the κ-shifted logits classify it as required:
  targeted ``argmax(Z − κ·e_t) = t``, untargeted ``argmax(Z + κ·e_l) ≠ l``. Across all
  iterations and all binary-search steps the attack keeps the successful iterate with the least
  elastic-net distance ‖δ‖₂² + β‖δ‖₁ (``decision_rule="EN"``) or the least ‖δ‖₁ (``"L1"``).
  Both rules see the same run (the c-schedule does not depend on the rule), so the result of
  the other rule comes free in ``info["other_rule"]``.
* The binary search on c is :class:`~reprolib.attacks.search.ConstSearch`, per input, and the
  iterate is reset to x0 at every binary-search step. With ≥ 10 binary steps the last one is run
  at c = the upper bound (the reference's ``repeat`` flag).
* Early abort (off by default, as in the EAD harness ``test_attack.py`` without ``-ae``; C&W's
  own default is on): every ⌊steps/10⌋ iterations an input stops its current binary step if its
  full loss c·f + ‖δ‖₂² + β‖δ‖₁ exceeds 0.9999 × the value at the previous check (first
  reference 1e6, as in the EAD fork). Applied per input, as the batch-size-1 experiments did.
* An input with no successful iterate returns x0 and counts as a failure (the reference code
  returns an all-zero image).

Cost per input and binary step when nothing aborts: FISTA 2·steps forward and steps backward
passes (a gradient at y, a check at x); ISTA steps + 1 forward and steps backward passes (the
check of x⁽ᵏ⁺¹⁾ is the next gradient's forward pass); COV steps forward and steps backward
passes (the check is of the iterate whose gradient is taken, as in C&W's code).

Defaults are the paper's experimental settings (card §2.4): β = 1e-3, 9 binary steps, 1000
iterations, c0 = 1e-3, lr = 1e-2, κ = 0, FISTA, EN rule. β, lr and the distances are in input
units; all zoo models take inputs in [0, 1], a box of width 1 like the reference's [-0.5, 0.5].
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .ops import losses
from .core import AttackResult, Counter, finish, start
from .ops.search import ConstSearch

METHODS = ("fista", "ista", "cov")
RULES = ("EN", "L1")

#: The loss an early-abort check is first compared against (``prev = 1e6`` in the EAD fork).
_ABORT_START = 1e6


def shrinkage_threshold(z: Tensor, x0: Tensor, beta: float, lower: float, upper: float) -> Tensor:
    """The projected shrinkage-thresholding operator S_β of EAD (eq. 18), element-wise:

    ``min(z − β, upper)`` where ``z − x0 > β``; ``x0`` where ``|z − x0| ≤ β``;
    ``max(z + β, lower)`` where ``z − x0 < −β``.

    It is the proximal operator of β‖· − x0‖₁ plus the box indicator (for x0 in the box).
    EAD applies it with the threshold β at every step, whatever the step size.
    """
    diff = z - x0
    out = torch.where(diff > beta, (z - beta).clamp(max=upper), x0)
    return torch.where(diff < -beta, (z + beta).clamp(min=lower), out)


#: C&W's loss f and its κ compare, in the reference code's form (shared with ZOO).
margin_loss, is_success = losses.cw_loss, losses.cw_success


def _distances(x_new: Tensor, x0: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    d = (x_new - x0).flatten(1)
    l1 = d.abs().sum(1)
    l2sq = d.square().sum(1)
    return l1, l2sq, l2sq + beta * l1


class _Best:
    """The best successful iterate per input under one decision rule."""

    def __init__(self, x: Tensor) -> None:
        n = len(x)
        self.x = x.clone()
        self.dist = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
        self.const = torch.full((n,), math.nan, device=x.device, dtype=x.dtype)
        self.step = torch.full((n,), -1, device=x.device, dtype=torch.long)

    def offer(self, rows: Tensor | None, cand: Tensor, dist: Tensor, ok: Tensor, const: Tensor, step: int) -> None:
        """Keep the successful candidates that beat the best so far (``rows`` None = all inputs)."""
        better = ok & (dist < (self.dist if rows is None else self.dist[rows]))
        if bool(better.any()):
            r = better.nonzero().squeeze(1) if rows is None else rows[better]
            self.x[r] = cand[better]
            self.dist[r] = dist[better]
            self.const[r] = const[better]
            self.step[r] = step


def ead(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    targeted: bool = False,
    beta: float = 1e-3,
    binary_search_steps: int = 9,
    steps: int = 1000,
    initial_const: float | Tensor = 1e-3,
    lr: float = 1e-2,
    kappa: float = 0.0,
    decision_rule: str = "EN",
    method: str = "fista",
    abort_early: bool = False,
    record_loss: bool = False,
) -> AttackResult:
    """The elastic-net attack on a batch (see the module docstring for the algorithm).

    Args:
        model, x, y, targeted: as for every reprolib attack (``y`` = targets when targeted).
        beta: the ℓ1 weight β (also the shrinkage threshold).
        binary_search_steps: rounds of the per-input binary search on c.
        steps: iterations per round.
        initial_const: the first c, one for all inputs or a tensor with one per input.
        lr: the initial step size α₀ (FISTA/ISTA, decayed as α₀(1 − k/steps)^½) or Adam's
            learning rate (COV, constant).
        kappa: the confidence κ ≥ 0.
        decision_rule: ``"EN"`` (least ‖δ‖₂² + β‖δ‖₁) or ``"L1"`` (least ‖δ‖₁) among the
            successful iterates.
        method: ``"fista"``, ``"ista"`` or ``"cov"`` (Table 5's change-of-variables baseline).
        abort_early: stop an input's round when its loss stalls (checked every steps/10).
        record_loss: keep ``info["loss_history"]``, the full loss of every iterate, shape
            (binary_search_steps, steps, N), NaN after an input aborted.

    Returns:
        An :class:`AttackResult`; ``info`` holds ``const`` (the c whose round gave the chosen
        example, NaN if none), ``step`` (that round's index, −1 if none), ``found`` (a
        successful iterate was seen), ``decision_rule``, ``method``, ``beta``, ``kappa`` and
        ``other_rule``: the :class:`AttackResult` of the other decision rule from the same run
        (sharing the pass counts).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}.")
    if decision_rule not in RULES:
        raise ValueError(f"decision_rule must be 'EN' or 'L1', not {decision_rule!r}.")
    c0 = torch.as_tensor(initial_const, dtype=torch.float32).detach().flatten()
    if beta < 0 or kappa < 0 or lr <= 0 or not bool((c0 > 0).all()):
        raise ValueError(f"need beta ≥ 0, kappa ≥ 0, lr > 0 and initial_const > 0; got beta={beta}, "
                         f"kappa={kappa}, lr={lr}, initial_const={initial_const}.")
    if binary_search_steps < 1 or steps < 1:
        raise ValueError(f"binary_search_steps and steps must be ≥ 1, got {binary_search_steps} and {steps}.")
    x, y, counter, started = start(model, x, y)
    if c0.numel() not in (1, len(x)):
        raise ValueError(f"initial_const must be a number or hold one value per input ({len(x)}), "
                         f"got {c0.numel()} values.")
    n = len(x)
    best = {"EN": _Best(x), "L1": _Best(x)}
    c0 = c0.to(x.device).expand(n).clone()
    search = ConstSearch(n, 1.0, x.device)
    search.c = c0.clone()
    history = (torch.full((binary_search_steps, steps, n), math.nan, device=x.device, dtype=x.dtype)
               if record_loss else None)
    cfg = dict(targeted=targeted, beta=float(beta), steps=steps, lr=float(lr), kappa=float(kappa),
               abort_early=abort_early)
    run_round = _round_cov if method == "cov" else _round_ista_fista
    for step in range(binary_search_steps):
        if binary_search_steps >= 10 and step == binary_search_steps - 1:
            search.c = search.upper.clone()  # the reference's ``repeat``: last round at c = upper
        found = run_round(counter, x, y, search.c.clone(), best, step,
                          None if history is None else history[step], momentum=(method == "fista"), **cfg)
        search.update(found)

    other = "L1" if decision_rule == "EN" else "EN"
    common = dict(method=method, beta=float(beta), kappa=float(kappa), steps=steps,
                  binary_search_steps=binary_search_steps, initial_const=c0, lr=float(lr),
                  abort_early=abort_early)

    def result(rule: str, **extra) -> AttackResult:
        b = best[rule]
        return finish(model, x, b.x, y, targeted, counter, started, decision_rule=rule, const=b.const,
                      step=b.step, found=b.step >= 0, **common, **extra)

    other_result = result(other)
    return result(decision_rule, other_rule=other_result, loss_history=history)


def _full_loss(logits: Tensor, labels: Tensor, const: Tensor, en: Tensor, targeted: bool, kappa: float) -> Tensor:
    return const * margin_loss(logits, labels, targeted, kappa) + en


def _abort_check(k: int, steps: int, loss: Tensor, prev: Tensor) -> Tensor | None:
    """At every ⌊steps/10⌋-th iteration: which rows stop (loss > 0.9999·prev); updates ``prev``."""
    if k % max(steps // 10, 1):
        return None
    stop = loss > 0.9999 * prev
    prev.copy_(loss)
    return stop


def _round_ista_fista(counter: Counter, x: Tensor, labels: Tensor, const: Tensor, best: dict, step: int,
                      history: Tensor | None, *, momentum: bool, targeted: bool, beta: float, steps: int,
                      lr: float, kappa: float, abort_early: bool) -> Tensor:
    """One binary-search round of projected ISTA/FISTA; returns which inputs had a success."""
    lower, upper = counter.model.bounds
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    rows = None                                      # the inputs still running (None: all of them)
    x0, c = x, const
    lab = labels  # the running inputs' labels, subset as inputs finish
    xk = yk = x                                      # x^(k), y^(k)
    prev = torch.full((n,), _ABORT_START, device=x.device, dtype=x.dtype)
    cached = None                                    # ISTA: (leaf, logits) of x^(k) = y^(k), with graph
    for k in range(steps):
        alpha = lr * (1.0 - k / steps) ** 0.5
        with torch.enable_grad():
            if cached is not None:
                y_leaf, logits_y = cached
            else:
                y_leaf = yk.detach().requires_grad_(True)
                logits_y = counter.logits(y_leaf, rows)
            g = c * margin_loss(logits_y, lab, targeted, kappa) + (y_leaf - x0).flatten(1).square().sum(1)
            grad = counter.grad(g, y_leaf, rows)
        with torch.no_grad():
            x_new = shrinkage_threshold(yk - alpha * grad, x0, beta, lower, upper)
        if momentum:
            with torch.no_grad():
                logits_x = counter.logits(x_new, rows)
            cached = None
        else:  # ISTA: this forward pass is also the next iteration's gradient pass
            leaf = x_new.requires_grad_(True)
            with torch.enable_grad():
                logits_x = counter.logits(leaf, rows)
            cached = (leaf, logits_x)
            x_new = x_new.detach()
        with torch.no_grad():
            lx = logits_x.detach()
            l1, _, en = _distances(x_new, x0, beta)
            keep = None
            if history is not None or abort_early:
                loss = _full_loss(lx, lab, c, en, targeted, kappa)
                if history is not None:
                    history[k, slice(None) if rows is None else rows] = loss
                if abort_early:
                    stop = _abort_check(k, steps, loss, prev)
                    if stop is not None and bool(stop.any()):
                        keep = ~stop  # these rows end the round; their x_new is not recorded
            ok, found = _offer_both(best, rows, keep, x_new, l1, en, lx, lab, c, found, step, targeted, kappa)
            xk, yk = x_new, (x_new + ((k + 1) / (k + 4)) * (x_new - xk) if momentum else x_new)
            if keep is not None:
                rows = keep.nonzero().squeeze(1) if rows is None else rows[keep]
                x0, lab, c, xk, yk, prev = (t[keep] for t in (x0, lab, c, xk, yk, prev))
                cached = None
                if not len(rows):
                    break
    return found


def _offer_both(best: dict, rows: Tensor | None, keep: Tensor | None, x_new: Tensor, l1: Tensor, en: Tensor,
                lx: Tensor, lab: Tensor, c: Tensor, found: Tensor, step: int, targeted: bool,
                kappa: float) -> tuple[Tensor, Tensor]:
    """Check the iterates (rows ``keep`` of the running ones) and offer them to both rules."""
    if keep is not None:
        r = keep.nonzero().squeeze(1) if rows is None else rows[keep]
        x_new, l1, en, lx, lab, c = (t[keep] for t in (x_new, l1, en, lx, lab, c))
    else:
        r = rows
    ok = is_success(lx, lab, targeted, kappa)
    best["EN"].offer(r, x_new, en, ok, c, step)
    best["L1"].offer(r, x_new, l1, ok, c, step)
    if r is None:
        found = found | ok
    else:
        found[r] |= ok
    return ok, found


def _round_cov(counter: Counter, x: Tensor, labels: Tensor, const: Tensor, best: dict, step: int,
               history: Tensor | None, *, momentum: bool, targeted: bool, beta: float, steps: int,
               lr: float, kappa: float, abort_early: bool) -> Tensor:
    """One binary-search round of the change-of-variables baseline (tanh + Adam)."""
    del momentum
    lower, upper = counter.model.bounds
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    rows = None
    w0 = torch.atanh((x - mid) / half * 0.999999)
    ref = torch.tanh(w0) * half + mid                # the objective's x0, as in C&W's code
    x0, c = x, const
    lab = labels  # the running inputs' labels, subset as inputs finish
    mod = torch.zeros_like(x)                        # the optimised modifier (Adam state reset per round)
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    prev = torch.full((n,), _ABORT_START, device=x.device, dtype=x.dtype)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for k in range(steps):
        leaf = mod.requires_grad_(True)
        with torch.enable_grad():
            x_cur = torch.tanh(w0 + leaf) * half + mid
            logits = counter.logits(x_cur, rows)
            d = (x_cur - ref).flatten(1)
            obj = c * margin_loss(logits, lab, targeted, kappa) + d.square().sum(1) + beta * d.abs().sum(1)
            grad = counter.grad(obj, leaf, rows)
        with torch.no_grad():
            mod, x_cur, lx = mod.detach(), x_cur.detach(), logits.detach()
            l1, _, en = _distances(x_cur, x0, beta)
            if history is not None:
                history[k, slice(None) if rows is None else rows] = _full_loss(lx, lab, c, en, targeted, kappa)
            keep = None
            if abort_early:  # C&W's order: the check comes before the bookkeeping
                stop = _abort_check(k, steps, obj.detach(), prev)
                if stop is not None and bool(stop.any()):
                    keep = ~stop
            ok, found = _offer_both(best, rows, keep, x_cur, l1, en, lx, lab, c, found, step, targeted, kappa)
            # Adam (TF form): lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), θ −= lr_t·m/(√v + ε)
            t = k + 1
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad.square()
            mod = mod - (lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)) * m / (v.sqrt() + eps)
            if keep is not None:
                rows = keep.nonzero().squeeze(1) if rows is None else rows[keep]
                x0, lab, c, w0, ref, mod, m, v, prev = (
                    t_[keep] for t_ in (x0, lab, c, w0, ref, mod, m, v, prev))
                if not len(rows):
                    break
    return found


__all__ = ["ead", "is_success", "margin_loss", "shrinkage_threshold"]
