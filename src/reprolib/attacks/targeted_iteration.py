"""Document 003's experimental update rule (§V-A, eqs. 11–16): one targeted iteration, four losses.

Ozbulak, Gasparyan, De Neve & Van Messem, *Perturbation Analysis of Gradient-based Adversarial
Attacks* (https://arxiv.org/abs/2006.01456), eq. 11:

    X_{n+1} = ζ(X_n + α_n · P_n),   ζ = clamp to the model's box (and, optionally, an ℓ∞ ball)

with the perturbation source P_n (eqs. 12–15), already signed so that the step moves toward the
target c:

===========  =======================================================================
``loss``     P_n
===========  =======================================================================
``ce``       −∇_x CE(g(X_n), c)
``ce_sign``  −sign(∇_x CE(g(X_n), c))
``logit``    +∇_x g_c(X_n)
``mlogit``   ∇_x g_c − ∇_x g_{c*} while g_c − max_{i≠c} g_i < κ, else 0 (c* recomputed every step)
===========  =======================================================================

(eqs. 12–15 print P_n without the minus sign that eq. 2 has; these are ``+∇`` of the targeted
objectives of :mod:`.ops.losses`, with ``sign`` for ``ce_sign``), and the step rule (§V-B)

* ``mode="equal_multiplier"``: α_n = ``step_size`` (paper: α = 5e-4) for every input and step;
* ``mode="equal_perturbation"``: α_n = ``step_l1`` / Σ|P_n| per input, the sum over all of the
  input's elements (paper: β = 5), so every step adds the same ℓ1 mass β. When Σ|P_n| = 0
  (the M-logit hinge is flat, or the CE gradient underflowed) the input does not move that
  step and is flagged as stalled, instead of dividing by zero. When Σ|P_n| is positive but tiny
  (a CE gradient of denormal numbers, logit margins beyond ≈ 87 in float32), β/Σ|P_n| can
  overflow the dtype; the step is therefore formed as β·P̂/Σ|P̂| with P̂ = P_n/max|P_n|, the same
  step that stays finite (the recorded α_n, computed in float64, may then read ∞ in float32).

Reading of the M-logit multipliers α', α* of eqs. 15–16 ("so that g_c − g_{c*} = κ"): the plain
gradient of the C&W hinge with κ = ``confidence``, i.e. zero once the margin reaches κ, so the
target logit stops rising at margin κ.

The loop visits X_0 … X_T (T = ``steps``): one forward pass at each (T + 1 per input) and one
backward pass at X_0 … X_{T−1} (T per input). With ``stop_at_success=True`` an input stops at its
first X_n classified as c: no more passes, and its trajectory is NaN afterwards.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, start
from .ops import checks, losses
from .ops.checks import AttackInputError
from .ops.norms import per_input

MODES = ("equal_multiplier", "equal_perturbation")


@attack
def iterative_targeted(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = True, loss: str = "ce",
                       mode: str = "equal_perturbation", step_size: float = 5e-4, step_l1: float = 5.0,
                       steps: int = 250, confidence: float = 20.0, eps=None,
                       stop_at_success: bool = False, record: bool = True) -> AttackResult:
    """Run document 003's targeted iteration (module text) from ``x`` toward the targets ``y``.

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the target labels c ``(N,)``.
        targeted: must be True: the attack is targeted only.
        loss: the source P_n: ``"ce" | "ce_sign" | "logit" | "mlogit"``.
        mode: ``"equal_multiplier"`` (α_n = ``step_size``) or ``"equal_perturbation"``
            (α_n = ``step_l1``/Σ|P_n|, per input; the default).
        step_size: α > 0 of the equal-multiplier rule (paper: 5e-4).
        step_l1: β > 0, the ℓ1 mass of every step of the equal-perturbation rule (paper: 5).
        steps: T ≥ 0, the number of updates (paper: 250).
        confidence: κ ≥ 0 of the M-logit source (paper: 20, following C&W).
        eps: an optional ℓ∞ radius ≥ 0, a number or ``(N,)`` (Kurakin's Clip_{X,ε}); the paper's
            rule has none.
        stop_at_success: freeze each input at its first success, where it costs no further
            pass. Off by default: document 003 runs all T updates and studies the whole
            trajectory (its Figs. 3–5); turn it on to measure success rates cheaply.
        record: keep the per-iteration trajectories.

    Returns:
        An :class:`~.core.AttackResult` with, in ``info`` (all per input, on the CPU):

        * ``first_success``: the first n with argmax g(X_n) = c (document 003's "iterations
          needed"), −1 if never; ``success_l2`` and ``success_linf``: ‖X_n − X_0‖₂ and ‖·‖∞ at
          that n (NaN if never); ``success_x``: X_n at that n (X_T if never);
        * ``initial_class``: argmax g(X_0);
        * ``stalled``: Σ|P_n| = 0 at some step (the equal-perturbation guard; also reported for
          equal multiplier, where the step is then simply zero); ``stalled_at``: the first such n;
        * with ``record=True``, ``trajectory``: a dict of float tensors, (T + 1, N) at the
          states — ``p_target``, ``z_target``, ``p_initial``, ``z_initial``, ``p_max`` (softmax
          and logits of the target and initial class, and the max softmax, for the D1/D2/D3
          regions of Definition IV.1) and ``pred`` (argmax, −1 where not visited) — and (T, N)
          at the steps — ``grad_l2`` (‖∇_x objective‖₂ of the raw source, before any sign; computed in float64 so
          that a gradient of denormal numbers does not read 0), ``step_l1`` (Σ|α_n·P_n|, measured
          on the step taken, before the box), ``step_size`` (α_n) and ``stalled``. Entries for inputs no
          longer visited are NaN (``stalled`` False).

    Raises:
        AttackInputError: ``targeted=False``; an unknown ``loss`` or ``mode``; ``steps`` < 0;
            ``step_size`` or ``step_l1`` ≤ 0; a negative ``confidence``; a negative or
            non-finite ``eps``.
    """
    if not targeted:
        raise AttackInputError("iterative_targeted is targeted only: call it with targeted=True and the "
                               "target labels in y.")
    checks.choice("loss", loss, tuple(losses.LOSSES))
    checks.choice("mode", mode, MODES)
    checks.positive("step_size", step_size)
    checks.positive("step_l1", step_l1)
    steps = checks.count("steps", steps, minimum=0)
    checks.nonnegative("confidence", confidence)
    x, target, counter, t0 = start(model, x, y)
    lossf = losses.get(loss)
    loss_kw = {"confidence": confidence} if "confidence" in lossf.params else {}
    n, dev = len(x), x.device
    lower, upper = model.bounds
    eps_t = None if eps is None else per_input(eps, n, x, name="eps")

    nan = float("nan")
    first = torch.full((n,), -1, dtype=torch.long, device=dev)
    succ_l2 = torch.full((n,), nan, device=dev)
    succ_linf = torch.full((n,), nan, device=dev)
    stalled = torch.zeros(n, dtype=torch.bool, device=dev)
    stalled_at = torch.full((n,), -1, dtype=torch.long, device=dev)
    initial = torch.full((n,), -1, dtype=torch.long, device=dev)
    if record:
        states = {k: torch.full((steps + 1, n), nan, device=dev)
                  for k in ("p_target", "z_target", "p_initial", "z_initial", "p_max")}
        states["pred"] = torch.full((steps + 1, n), -1, dtype=torch.long, device=dev)
        per_step = {k: torch.full((steps, n), nan, device=dev) for k in ("grad_l2", "step_l1", "step_size")}
        per_step["stalled"] = torch.zeros(steps, n, dtype=torch.bool, device=dev)

    x_cur = x.clone()
    success_x = x.clone()
    active = torch.arange(n, device=dev)
    for it in range(steps + 1):
        idx = active if stop_at_success else None
        xa, ta = x_cur[active], target[active]
        x_var = xa.detach().requires_grad_(True)
        logits = counter.logits(x_var, idx)
        z = logits.detach()
        if it == 0:
            initial[active] = z.argmax(1)
        hit = (z.argmax(1) == ta) & (first[active] < 0)
        if bool(hit.any()):
            rows = active[hit]
            first[rows] = it
            d = (xa[hit] - x[rows]).flatten(1)
            succ_l2[rows] = d.norm(dim=1).to(succ_l2.dtype)
            succ_linf[rows] = d.abs().amax(1).to(succ_linf.dtype)
            success_x[rows] = xa[hit]
        if record:
            logp = z.log_softmax(1)
            ia = initial[active]
            states["z_target"][it, active] = z.gather(1, ta[:, None]).squeeze(1).float()
            states["z_initial"][it, active] = z.gather(1, ia[:, None]).squeeze(1).float()
            states["p_target"][it, active] = logp.gather(1, ta[:, None]).squeeze(1).exp().float()
            states["p_initial"][it, active] = logp.gather(1, ia[:, None]).squeeze(1).exp().float()
            states["p_max"][it, active] = logp.amax(1).exp().float()
            states["pred"][it, active] = z.argmax(1)
        if it == steps:
            break
        if stop_at_success:
            go = first[active] < 0
            if not bool(go.any()):
                active = active[:0]
                break
        # the backward pass covers every row of this forward pass, and is charged to each
        g = counter.grad(lossf(logits, ta, True, **loss_kw), x_var, idx)
        if stop_at_success and not bool(go.all()):
            active, xa, g = active[go], xa[go], g[go]
        p = g.sign() if lossf.sign else g
        mass = p.flatten(1).abs().sum(1)
        zero = mass == 0
        shape = (-1,) + (1,) * (x.dim() - 1)
        if mode == "equal_multiplier":
            a = torch.full_like(mass, float(step_size))
            step = a.reshape(shape) * p
        else:
            # α_n·P_n = β·P̂/Σ|P̂| with P̂ = P_n/max|P_n|: the same step, but finite when Σ|P_n| is so
            # small (a CE gradient near underflow) that β/Σ|P_n| overflows the dtype
            top = p.flatten(1).abs().amax(1)
            p_hat = p / torch.where(zero, torch.ones_like(top), top).reshape(shape)
            mass_hat = p_hat.flatten(1).abs().sum(1)
            unit = torch.where(zero, torch.zeros_like(mass_hat),
                               float(step_l1) / torch.where(zero, torch.ones_like(mass_hat), mass_hat))
            step = unit.reshape(shape) * p_hat
            a = torch.where(zero, torch.zeros_like(mass, dtype=torch.float64),
                            float(step_l1) / torch.where(zero, torch.ones_like(mass), mass).double())
        new_stall = zero & ~stalled[active]
        stalled_at[active[new_stall]] = it
        stalled[active] |= zero
        x_new = xa + step
        if eps_t is not None:
            e = eps_t[active]
            x_new = torch.maximum(torch.minimum(x_new, x[active] + e), x[active] - e)
        x_cur[active] = x_new.clamp(lower, upper)
        if record:
            per_step["grad_l2"][it, active] = g.flatten(1).double().norm(dim=1).float()
            per_step["step_l1"][it, active] = step.flatten(1).abs().sum(1).float()
            per_step["step_size"][it, active] = a.float()
            per_step["stalled"][it, active] = zero

    # inputs that never succeeded report their last iterate
    never = first < 0
    success_x[never] = x_cur[never]
    info = dict(first_success=first.cpu(), success_l2=succ_l2.cpu(), success_linf=succ_linf.cpu(),
                success_x=success_x.cpu(), initial_class=initial.cpu(), stalled=stalled.cpu(),
                stalled_at=stalled_at.cpu())
    if record:
        info["trajectory"] = {k: v.cpu() for k, v in {**states, **per_step}.items()}
    return finish(model, x, x_cur, target, True, counter, t0, **info)
