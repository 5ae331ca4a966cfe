"""EAD: the elastic-net attack, batched with per-input state.

Source: P.-Y. Chen, Y. Sharma, H. Zhang, J. Yi and C.-J. Hsieh, "EAD: Elastic-Net Attacks to Deep
Neural Networks via Adversarial Examples", AAAI 2018, https://arxiv.org/abs/1709.04114; document
002 (Sharma's thesis), Ch. 4: the problem (eq. 16), the shrinkage-thresholding operator (eq. 18),
ISTA (eq. 17) and FISTA (Alg. 4), the decision rules and the COV baseline of Table 5; the authors'
code ``ysharma1126/EAD_Attack`` (``en_attack.py``, listed in the thesis's Appendix A).

EAD minimises, per input and over the box of the model's bounds,

    c · f(x, t) + ‖x − x0‖₂² + β ‖x − x0‖₁,

with the C&W margin loss ``f`` (confidence κ; the best other class is taken with the label masked
to −∞), in the reference code's form ``max(0, Z_other − Z_t + κ)`` (targeted) or
``max(0, Z_l − Z_other + κ)`` (untargeted) (:func:`~reprolib.attacks.ops.losses.cw_loss`),
which equals the thesis's ``max(Z_other − Z_t, −κ)`` (eq. 9) up to the constant c·κ.

Solvers (``solver``):

* ``"fista"`` (the paper's default, Alg. 4): x⁽ᵏ⁺¹⁾ = S_β(y⁽ᵏ⁾ − α_k ∇g(y⁽ᵏ⁾)),
  y⁽ᵏ⁺¹⁾ = x⁽ᵏ⁺¹⁾ + (k+1)/(k+4) · (x⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾), with g = c·f + ‖δ‖₂² (no ½ factor).
  The momentum index (k+1)/(k+4) at 0-based k is the authors' code (their ``global_step`` is
  incremented before it is read); Alg. 4 prints k/(k+3). The update is done in two explicit
  steps (the TF code writes x and y in one ``session.run``, a read/write race).
* ``"ista"``: the same without momentum (y = x), eq. 17.
* ``"cov"``: Table 5's baseline: C&W's change of variables x = tanh(w) (scaled to the box,
  :mod:`~reprolib.attacks.ops.box`) and Adam (step size, β₁ 0.9, β₂ 0.999, ε 1e-8, TensorFlow's
  form: :func:`~reprolib.attacks.ops.optim.adam_step` with ``form="tf"``) on the same
  elastic-net objective, the ℓ1 term by its sub-gradient (0 at 0). As in C&W's code the objective
  measures δ from tanh(arctanh(x0·0.999999)) (x0 shrunk by ~1e-6 towards the box centre);
  selection and reported norms use x0 itself. Not in the authors' code (their ``l2_attack.py``
  accepts β but ignores it).

Details that follow the authors' code:

* The shrinkage threshold is β itself, not α_k·β
  (:func:`~reprolib.attacks.ops.prox.shrinkage_threshold`).
* The step size decays as α_k = step_size·(1 − k/steps)^½ (TF ``polynomial_decay`` to 0,
  power ½), not step_size/√k.
* An iterate x⁽ᵏ⁺¹⁾ (never y) is a success if the κ-shifted logits classify it as required:
  targeted ``argmax(Z − κ·e_t) = t``, untargeted ``argmax(Z + κ·e_l) ≠ l``. Across all
  iterations and all binary-search rounds the attack keeps the successful iterate with the least
  elastic-net distance ‖δ‖₂² + β‖δ‖₁ (``decision_rule="EN"``) or the least ‖δ‖₁ (``"L1"``), one
  :class:`~reprolib.attacks.ops.search.BestIterate` per rule. Both rules see the same run (the
  c-schedule does not depend on the rule), so the result of the other rule comes free in
  ``info["other_rule"]``.
* The binary search on c is :class:`~reprolib.attacks.ops.search.ConstSearch`, per input, and
  the iterate is reset to x0 in every round. With ≥ 10 rounds the last one is run at c = the
  upper bound (the reference's ``repeat`` flag).
* Abort early (off by default, as in the EAD harness ``test_attack.py`` without ``-ae``; C&W's
  own default is on): every ⌊steps/10⌋ iterations an input stops its current round if its full
  loss c·f + ‖δ‖₂² + β‖δ‖₁ exceeds 0.9999 × the value at the previous check
  (:class:`~reprolib.attacks.ops.search.AbortEarly`), applied per input, as the thesis's
  batch-size-1 experiments did. Deviation: the first check compares with +∞, where the EAD code
  starts from 1e6 and so ends a round whose loss starts above 1e6 even while it is still falling.
* An input with no successful iterate returns x0 and counts as a failure (the reference code
  returns an all-zero image).

Cost per input and round when nothing aborts: FISTA 2·steps forward and steps backward passes
(a gradient at y, a check at x); ISTA steps + 1 forward and steps backward passes (the check of
x⁽ᵏ⁺¹⁾ is the next gradient's forward pass); COV steps forward and steps backward passes (the
check is of the iterate whose gradient is taken, as in C&W's code).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, Counter, attack, finish, start
from .ops import checks
from .ops.box import from_tanh_space, to_tanh_space
from .ops.losses import cw_loss, cw_success
from .ops.optim import adam_step
from .ops.prox import shrinkage_threshold
from .ops.search import AbortEarly, BestIterate, ConstSearch

SOLVERS = ("fista", "ista", "cov")
RULES = ("EN", "L1")


@attack
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
    step_size: float = 1e-2,
    confidence: float = 0.0,
    decision_rule: str = "EN",
    solver: str = "fista",
    abort_early: bool = False,
    record: bool = False,
) -> AttackResult:
    """The elastic-net attack on a batch (see the module docstring for the algorithm).

    The defaults are the paper's experimental settings (document 002, Ch. 4): β = 1e-3, 9 rounds
    of 1,000 iterations, c₀ = 1e-3, step size 0.01, κ = 0, FISTA, EN rule. β, the step size and
    the distances are in input units; the reference code's box [−0.5, 0.5] has width 1, like the
    [0, 1] of the zoo models, so its values carry over unchanged.

    Args:
        model: the classifier under attack.
        x: inputs ``(N, *model.input_shape)`` inside the model's bounds.
        y: the true labels ``(N,)``, or the targets when ``targeted``.
        targeted: whether success means predicting ``y``.
        beta: the ℓ1 weight β ≥ 0 (also the shrinkage threshold).
        binary_search_steps: rounds of the per-input binary search on c (≥ 1).
        steps: iterations per round (≥ 1).
        initial_const: the first c > 0, one number or a tensor of ``N`` values.
        step_size: the initial step size α₀ > 0 (FISTA/ISTA, decayed as α₀(1 − k/steps)^½) or
            Adam's learning rate (COV, constant).
        confidence: the margin κ ≥ 0 a success must hold, in logits.
        decision_rule: ``"EN"`` (least ‖δ‖₂² + β‖δ‖₁) or ``"L1"`` (least ‖δ‖₁) among the
            successful iterates.
        solver: ``"fista"``, ``"ista"`` or ``"cov"`` (Table 5's change-of-variables baseline).
        abort_early: end an input's round when its loss stalls (checked every steps // 10).
        record: keep ``info["loss_history"]``, the full loss of every iterate, shape
            (binary_search_steps, steps, N), NaN after an input aborted.

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult`; ``info`` holds ``const`` (the c of the
        round that gave the chosen example, NaN if none), ``step`` (that round's index, −1 if
        none), ``found`` (a successful iterate was seen), ``other_rule`` (the
        :class:`~reprolib.attacks.core.AttackResult` of the other decision rule from the same run,
        sharing the pass counts; its ``params`` name that rule) and, with ``record``,
        ``loss_history``.

    Raises:
        AttackInputError: for a setting outside the ranges above, before any model pass.
    """
    checks.nonnegative("beta", beta)
    checks.count("binary_search_steps", binary_search_steps)
    checks.count("steps", steps)
    checks.positive("step_size", step_size)
    checks.nonnegative("confidence", confidence)
    checks.choice("decision_rule", decision_rule, RULES)
    checks.choice("solver", solver, SOLVERS)
    x, y, counter, started = start(model, x, y)
    n = len(x)
    search = ConstSearch(n, initial_const, x.device)

    def unset(dtype: torch.dtype, value: float) -> Tensor:
        return torch.full((n,), value, device=x.device, dtype=dtype)

    best = {rule: BestIterate(x, const=unset(x.dtype, math.nan), step=unset(torch.long, -1)) for rule in RULES}
    history = (torch.full((binary_search_steps, steps, n), math.nan, device=x.device, dtype=x.dtype)
               if record else None)
    cfg = dict(targeted=targeted, beta=float(beta), steps=steps, step_size=float(step_size),
               confidence=float(confidence), abort_early=abort_early)
    for step in range(binary_search_steps):
        if binary_search_steps >= 10 and step == binary_search_steps - 1:
            search.c = search.upper.clone()  # the reference's ``repeat``: last round at c = upper
        round_history = None if history is None else history[step]
        if solver == "cov":
            found = _round_cov(counter, x, y, search.c.to(x.dtype), best, step, round_history, **cfg)
        else:
            found = _round_ista_fista(counter, x, y, search.c.to(x.dtype), best, step, round_history,
                                      momentum=(solver == "fista"), **cfg)
        search.update(found)

    def result(rule: str, **extra) -> AttackResult:
        b = best[rule]
        return finish(model, x, b.x, y, targeted, counter, started, const=b["const"], step=b["step"],
                      found=b.found, **extra)

    other = "L1" if decision_rule == "EN" else "EN"
    other_result = result(other)
    other_result.params = {"decision_rule": other}  # @attack adds the call's other settings
    extra = {} if history is None else {"loss_history": history}
    return result(decision_rule, other_rule=other_result, **extra)


def _distances(x_new: Tensor, x0: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """‖δ‖₁ and the elastic-net distance ‖δ‖₂² + β‖δ‖₁ per input."""
    d = (x_new - x0).flatten(1)
    l1 = d.abs().sum(1)
    return l1, d.square().sum(1) + beta * l1


def _offer_both(best: dict, rows: Tensor | None, keep: Tensor | None, x_new: Tensor, l1: Tensor, en: Tensor,
                lx: Tensor, lab: Tensor, c: Tensor, found: Tensor, step: int, targeted: bool,
                confidence: float) -> Tensor:
    """Check the iterates (rows ``keep`` of the running ones ``rows``; None = all) and offer the
    successful ones to both rules; returns ``found`` updated."""
    if keep is not None:
        r = keep.nonzero().squeeze(1) if rows is None else rows[keep]
        x_new, l1, en, lx, lab, c = (t[keep] for t in (x_new, l1, en, lx, lab, c))
    else:
        r = rows
    ok = cw_success(lx, lab, targeted, confidence)
    best["EN"].offer(r, x_new, en, ok, const=c, step=step)
    best["L1"].offer(r, x_new, l1, ok, const=c, step=step)
    if r is None:
        return found | ok
    found[r] |= ok
    return found


def _round_ista_fista(counter: Counter, x: Tensor, labels: Tensor, const: Tensor, best: dict, step: int,
                      history: Tensor | None, *, momentum: bool, targeted: bool, beta: float, steps: int,
                      step_size: float, confidence: float, abort_early: bool) -> Tensor:
    """One binary-search round of projected ISTA/FISTA; returns which inputs had a success."""
    lower, upper = counter.model.bounds
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    rows = None                                      # the inputs still running (None: all of them)
    x0, c, lab = x, const, labels                    # their clean inputs, constants and labels
    xk = yk = x                                      # x^(k), y^(k)
    abort = AbortEarly(n, steps // 10, x) if abort_early else None
    cached = None                                    # ISTA: (leaf, logits) of x^(k) = y^(k), with graph
    for k in range(steps):
        alpha = step_size * (1.0 - k / steps) ** 0.5
        if cached is not None:
            y_leaf, logits_y = cached
        else:
            y_leaf = yk.detach().requires_grad_(True)
            logits_y = counter.logits(y_leaf, rows)
        g = c * cw_loss(logits_y, lab, targeted, confidence) + (y_leaf - x0).flatten(1).square().sum(1)
        grad = counter.grad(g, y_leaf, rows)
        with torch.no_grad():
            x_new = shrinkage_threshold(yk - alpha * grad, x0, beta, lower, upper)
        if momentum:
            with torch.no_grad():
                logits_x = counter.logits(x_new, rows)
            cached = None
        else:  # ISTA: this forward pass is also the next iteration's gradient pass
            leaf = x_new.requires_grad_(True)
            logits_x = counter.logits(leaf, rows)
            cached = (leaf, logits_x)
            x_new = x_new.detach()
        with torch.no_grad():
            lx = logits_x.detach()
            l1, en = _distances(x_new, x0, beta)
            keep = None
            if history is not None or abort is not None:
                loss = c * cw_loss(lx, lab, targeted, confidence) + en
                if history is not None:
                    history[k, slice(None) if rows is None else rows] = loss
                stop = None if abort is None else abort.check(k, loss, rows)
                if stop is not None and bool(stop.any()):
                    keep = ~stop  # these rows end the round; their x_new is not recorded
            found = _offer_both(best, rows, keep, x_new, l1, en, lx, lab, c, found, step, targeted, confidence)
            xk, yk = x_new, (x_new + ((k + 1) / (k + 4)) * (x_new - xk) if momentum else x_new)
            if keep is not None:
                rows = keep.nonzero().squeeze(1) if rows is None else rows[keep]
                x0, lab, c, xk, yk = (t[keep] for t in (x0, lab, c, xk, yk))
                cached = None
                if not len(rows):
                    break
    return found


def _round_cov(counter: Counter, x: Tensor, labels: Tensor, const: Tensor, best: dict, step: int,
               history: Tensor | None, *, targeted: bool, beta: float, steps: int, step_size: float,
               confidence: float, abort_early: bool) -> Tensor:
    """One binary-search round of the change-of-variables baseline (tanh + Adam)."""
    bounds = counter.model.bounds
    n = len(x)
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    rows = None
    w0 = to_tanh_space(x, bounds)
    ref = from_tanh_space(w0, bounds)                # the objective's x0, as in C&W's code
    x0, c, lab = x, const, labels
    mod = torch.zeros_like(x)                        # the optimised modifier (Adam state reset per round)
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    abort = AbortEarly(n, steps // 10, x) if abort_early else None
    for k in range(steps):
        leaf = mod.requires_grad_(True)
        x_cur = from_tanh_space(w0 + leaf, bounds)
        logits = counter.logits(x_cur, rows)
        d = (x_cur - ref).flatten(1)
        obj = c * cw_loss(logits, lab, targeted, confidence) + d.square().sum(1) + beta * d.abs().sum(1)
        grad = counter.grad(obj, leaf, rows)
        with torch.no_grad():
            mod, x_cur, lx = mod.detach(), x_cur.detach(), logits.detach()
            l1, en = _distances(x_cur, x0, beta)
            if history is not None:
                history[k, slice(None) if rows is None else rows] = c * cw_loss(lx, lab, targeted, confidence) + en
            keep = None
            stop = None if abort is None else abort.check(k, obj.detach(), rows)  # C&W's order: before the bookkeeping
            if stop is not None and bool(stop.any()):
                keep = ~stop
            found = _offer_both(best, rows, keep, x_cur, l1, en, lx, lab, c, found, step, targeted, confidence)
            update, m, v = adam_step(grad, m, v, k + 1, step_size, form="tf")
            mod = mod - update
            if keep is not None:
                rows = keep.nonzero().squeeze(1) if rows is None else rows[keep]
                x0, lab, c, w0, ref, mod, m, v = (t[keep] for t in (x0, lab, c, w0, ref, mod, m, v))
                if not len(rows):
                    break
    return found
