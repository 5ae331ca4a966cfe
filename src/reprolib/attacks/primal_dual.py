"""PDGD and PDPGD: primal-dual (proximal) gradient descent minimum-norm attacks.

Source: document 004 (A. Matyasko, "Towards deep neural networks robust to adversarial examples",
PhD thesis, NTU Singapore, 2020, https://doi.org/10.32657/10356/143316), Ch. 5: the margin m_y
(eq. 5.2), Algorithm 2 (PDGD), Algorithm 3 (PDPGD), the proximal operators (eqs. 5.11–5.16) and
the attack defaults (§5.4); later Matyasko & Chau, https://arxiv.org/abs/2106.01538. The authors'
code: ``aam-at/cpgd`` (TF2), in its state of the thesis (July 2020).

The attack plays a two-player game on the Lagrangian of ``min ||r|| s.t. x + r is adversarial``:

* the **r-player** (primal) minimises ``λ·||r|| + g(x + r)`` with the surrogate
  ``g = relu(m + confidence)``, where ``m = f_y − max_{i≠y} f_i`` (untargeted) or
  ``m = max_{i≠t} f_i − f_t`` (targeted) is positive while the input is not yet adversarial
  (:func:`~reprolib.attacks.ops.losses.attack_margin`).
  *PDGD* takes gradient steps (Adam by default) on the whole loss, the norm included (its
  sub-gradient); *PDPGD* takes a gradient step on ``g`` only, then the prox of
  ``step_size·λ·||·||`` (:mod:`reprolib.attacks.ops.prox`), then clips to the box. Following
  the thesis-era code, the gradient step of PDPGD is applied only to inputs that are still *not*
  adversarial (``m + confidence > 0``); already-adversarial iterates are only shrunk by the prox.
* the **λ-player** (dual) keeps log-weights ``s = (s_norm, s_cls)`` on the 2-simplex. Each
  iteration ``s_cls += dual_step_size · sign(m + confidence)`` (+1 while not adversarial: weigh
  the classification term more; −1 once adversarial: weigh the norm more), then ``s`` is projected
  back on the log-simplex (``s − logsumexp(s)``, KL projection) and clamped at
  ``log(min_dual_weight)``. ``λ = exp(s_norm − s_cls)``; the primal step uses its exponential
  moving average ``λ̄ ← ema·λ̄ + (1 − ema)·λ`` (decay 0.9).

Order of updates (the code's default "sequential" order): at iteration k the model is run once
(forward + backward) on the current iterate ``x + r_k``; that pass gives the best-iterate check
for ``r_k``, the dual update (from ``k ≥ 1``, so the dual of step k reacts to ``r_k``, the output
of primal step k − 1) and the gradient of primal step k. One last forward pass checks ``r_T``.

Cost per restart: ``steps`` forward+backward passes plus one forward pass, per input still
correctly classified; plus one forward pass per input to find the inputs already misclassified
(they get ``r = 0`` and are not attacked).

Result: the smallest-norm adversarial iterate over all iterations and restarts (norm as chosen;
``l0_group`` counts changed pixels), per input (:class:`~reprolib.attacks.ops.search.BestIterate`);
``x`` itself where none was found.

Defaults are the thesis's (§5.4): 500 iterations; the primal step size decays linearly to 1e-2
of its initial value over the run; dual step size 0.1 constant, in the log domain; initial λ 0.01;
EMA 0.9; restart inits ``r0 ~ U[−a, a]`` projected on the box, ``a = 0.5`` (MNIST; the thesis
used 0.25 on CIFAR-10). The primal step size was tuned per (model, norm) over
{0.01, 0.05, 0.1, 0.5, 1.0}; 0.1 is only a default. PDGD uses Adam (thesis, l2); PDPGD uses
plain gradient steps (thesis-era scripts) — Adam is available (``solver="adam"``), and so is the
sign of the gradient (``sign_gradient=True``, searched for l∞ in the code). Adam is TensorFlow's
form with Keras's ε = 1e-7 (:func:`~reprolib.attacks.ops.optim.adam_step`), one step count per
input; an input masked out of a step keeps its moments and its count (a lazy update). The code's
undocumented "finetune" pass is off by default (``finetune_steps=0``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, is_adversarial, start
from .ops import checks
from .ops.losses import attack_margin
from .ops.norms import NORMS, lp_norm
from .ops.optim import adam_step
from .ops.prox import prox
from .ops.search import BestIterate

#: The norms with a (sub)gradient, which PDGD can step on; PDPGD takes every norm of NORMS.
SMOOTH_NORMS = ("linf", "l2", "l1")
SOLVERS = ("sgd", "adam")
#: Adam's ε of the reference code (TensorFlow 2 / Keras default).
ADAM_EPS = 1e-7


def _norm_subgradient(norm: str, u: Tensor) -> Tensor:
    """A sub-gradient of the norm (one of SMOOTH_NORMS) at each perturbation of a batch (0 at
    u = 0), for PDGD."""
    flat = u.flatten(1)
    if norm == "l2":
        n = flat.norm(dim=1, keepdim=True)
        g = torch.where(n > 0, flat / n.clamp_min(torch.finfo(u.dtype).tiny), torch.zeros_like(flat))
    elif norm == "l1":
        g = flat.sign()
    else:  # linf: the sign on the largest entries, shared equally among ties
        a = flat.abs()
        top = (a == a.amax(1, keepdim=True)) & (a > 0)
        g = flat.sign() * top / top.sum(1, keepdim=True).clamp_min(1)
    return g.reshape(u.shape)


def _linear(initial: float, final: float, k: int, total: int) -> float:
    """Linear decay from ``initial`` (k = 0) towards ``final`` (reached at k = total)."""
    return final + (initial - final) * (1 - k / total)


class _Adam:
    """Per-input Adam state around the pure :func:`adam_step`; a masked-out input keeps its
    moments and its step count (lazy update)."""

    def __init__(self, like: Tensor) -> None:
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(len(like), device=like.device, dtype=like.dtype)

    def step(self, g: Tensor, lr: float, mask: Tensor | None = None) -> Tensor:
        shape = (-1,) + (1,) * (g.dim() - 1)
        if mask is None:
            mask = torch.ones(len(g), dtype=torch.bool, device=g.device)
        mk = mask.reshape(shape)
        self.t = self.t + mask.to(g.dtype)
        step, m, v = adam_step(g, self.m, self.v, self.t.clamp_min(1).reshape(shape), lr, eps=ADAM_EPS,
                               form="tf")
        self.m = torch.where(mk, m, self.m)
        self.v = torch.where(mk, v, self.v)
        return torch.where(mk, step, torch.zeros_like(g))


class _Dual:
    """The λ-player: log-weights on the 2-simplex, multiplicative-weights ascent, EMA of λ."""

    def __init__(self, lam0: Tensor, ema: float, min_weight: float) -> None:
        self.s = torch.stack((torch.log(lam0 / (1 + lam0)), torch.log(1 / (1 + lam0))), 1)
        self.ema = ema
        self.floor = math.log(min_weight)
        self.lam_bar = lam0.clone()

    @property
    def lam(self) -> Tensor:
        return torch.exp(self.s[:, 0] - self.s[:, 1])

    def update(self, constraint_sign: Tensor, lr: float) -> None:
        s_norm, s_cls = self.s[:, 0], self.s[:, 1] + lr * constraint_sign
        lse = torch.logaddexp(s_norm, s_cls)  # KL projection back on the log-simplex
        self.s = torch.stack((s_norm - lse, s_cls - lse), 1).clamp_min(self.floor)
        self.lam_bar = self.ema * self.lam_bar + (1 - self.ema) * self.lam


def _check_settings(proximal: bool, norm: str, steps: int, restarts: int, step_size: float,
                    step_size_final_ratio: float, dual_step_size: float, dual_step_size_final: float | None,
                    initial_lambda: float, dual_ema: float, min_dual_weight: float, init_radius: float,
                    solver: str, confidence: float, finetune_steps: int, finetune_dual_step_size: float,
                    seed: int) -> None:
    if not proximal and norm in NORMS and norm not in SMOOTH_NORMS:
        raise checks.AttackInputError(f"pdgd needs a norm with a (sub)gradient: 'linf', 'l2' or 'l1', got "
                                      f"{norm!r}; use pdpgd for 'l0' and 'l0_group'.")
    checks.choice("norm", norm, NORMS if proximal else SMOOTH_NORMS)
    checks.count("steps", steps)
    checks.count("restarts", restarts)
    checks.positive("step_size", step_size)
    checks.in_range("step_size_final_ratio", step_size_final_ratio, 0, 1, low_open=True)
    checks.nonnegative("dual_step_size", dual_step_size)
    if dual_step_size_final is not None:
        checks.nonnegative("dual_step_size_final", dual_step_size_final)
    checks.positive("initial_lambda", initial_lambda)
    checks.in_range("dual_ema", dual_ema, 0, 1, high_open=True)
    checks.in_range("min_dual_weight", min_dual_weight, 0, 0.5, low_open=True, high_open=True)
    checks.nonnegative("init_radius", init_radius)
    checks.choice("solver", solver, SOLVERS)
    checks.nonnegative("confidence", confidence)
    checks.count("finetune_steps", finetune_steps, minimum=0)
    checks.nonnegative("finetune_dual_step_size", finetune_dual_step_size)
    checks.count("seed", seed, minimum=0)


def _attack(model: Classifier, x: Tensor, y: Tensor, *, proximal: bool, targeted: bool, norm: str,
            steps: int, restarts: int, step_size: float, step_size_final_ratio: float, dual_step_size: float,
            dual_step_size_final: float | None, initial_lambda: float, dual_ema: float,
            min_dual_weight: float, init_radius: float, solver: str, sign_gradient: bool,
            confidence: float, finetune_steps: int, finetune_dual_step_size: float,
            seed: int) -> AttackResult:
    _check_settings(proximal, norm, steps, restarts, step_size, step_size_final_ratio, dual_step_size,
                    dual_step_size_final, initial_lambda, dual_ema, min_dual_weight, init_radius, solver,
                    confidence, finetune_steps, finetune_dual_step_size, seed)
    x, y, counter, started = start(model, x, y)
    bounds = model.bounds
    n = len(x)
    dual_step_size_final = dual_step_size if dual_step_size_final is None else dual_step_size_final

    # Inputs already misclassified get r = 0 and are not attacked.
    with torch.no_grad():
        clean = counter.logits(x)
        pre_adv = is_adversarial(clean, y, targeted)
    idx = (~pre_adv).nonzero().flatten()
    unset = torch.full((n,), math.nan, device=x.device, dtype=x.dtype)
    best = BestIterate(x, dist=torch.where(pre_adv, torch.zeros_like(unset), torch.full_like(unset, math.inf)),
                       lam=unset, found_at=torch.full((n,), -1, device=x.device, dtype=torch.long))
    final_lam = unset.clone()

    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    xa, ya = x[idx], y[idx]

    def run(p: Tensor, lam0: Tensor, steps: int, lr0: float, lr1: float, dlr0: float, dlr1: float,
            sub: Tensor, offset: int) -> None:
        """Run ``steps`` iterations from the points ``p`` for the inputs ``idx[sub]``."""
        gidx = idx[sub]
        xs, ys = xa[sub], ya[sub]
        dual = _Dual(lam0, dual_ema, min_dual_weight)
        adam = _Adam(xs) if solver == "adam" else None
        for k in range(steps + 1):
            p = p.detach().requires_grad_(k < steps)
            if k < steps:
                logits = counter.logits(p, gidx)
                m = attack_margin(logits, ys, targeted) + confidence
                g = counter.grad(torch.relu(m), p, gidx)
            else:  # the last iterate: a forward pass only
                with torch.no_grad():
                    logits = counter.logits(p, gidx)
                    m = attack_margin(logits, ys, targeted) + confidence
            p = p.detach()
            with torch.no_grad():
                # keep the best (smallest-norm) adversarial iterate
                adv = is_adversarial(logits.detach(), ys, targeted) & (m <= 0)
                best.offer(gidx, p, lp_norm(p - xs, norm), adv, lam=dual.lam_bar, found_at=offset + k)
                if k == steps:
                    break
                # dual step (from the second iteration on: sequential order of the code)
                if k > 0:
                    dual.update(torch.sign(m.detach()), _linear(dlr0, dlr1, k, steps))
                lam = dual.lam_bar
                lr_k = _linear(lr0, lr1, k, steps)
                shape = (-1,) + (1,) * (xs.dim() - 1)
                u = p - xs
                if proximal:
                    still = m > 0  # gradient only where not yet adversarial
                    d = g.sign() if sign_gradient else g
                    if adam is None:
                        step = lr_k * d * still.reshape(shape)
                    else:
                        step = adam.step(d, lr_k, still)
                    u = prox(norm, u - step, lr_k * lam)
                else:
                    d = g + lam.reshape(shape) * _norm_subgradient(norm, u)
                    if sign_gradient:
                        d = d.sign()
                    step = lr_k * d if adam is None else adam.step(d, lr_k)
                    u = u - step
                p = (xs + u).clamp(*bounds)
        final_lam[gidx] = dual.lam_bar

    if len(idx):
        all_sub = torch.arange(len(idx), device=x.device)
        lam0 = torch.full((len(idx),), float(initial_lambda), device=x.device, dtype=x.dtype)
        for r in range(restarts):
            r0 = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * init_radius
            p0 = (xa + r0[idx]).clamp(*bounds)
            run(p0, lam0, steps, step_size, step_size * step_size_final_ratio, dual_step_size,
                dual_step_size_final, all_sub, r * (steps + 1))
        if finetune_steps:
            # the code's "finetune" pass: restart from the best point and its λ with the final step
            # size, decaying another 10x; only the inputs with an adversarial take part
            sub = best.found[idx].nonzero().flatten()
            if len(sub):
                gi = idx[sub]
                lr_ft = step_size * step_size_final_ratio
                run(best.x[gi].clone(), best["lam"][gi].clone(), finetune_steps, lr_ft, lr_ft / 10,
                    finetune_dual_step_size, finetune_dual_step_size, sub, restarts * (steps + 1))

    return finish(model, x, best.x, y, targeted, counter, started, best_norm=best.dist,
                  best_lambda=best["lam"], final_lambda=final_lam, found_at=best["found_at"],
                  already_adversarial=pre_adv)




@attack
def pdpgd(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, norm: str = "linf",
          steps: int = 500, restarts: int = 1, step_size: float = 0.1, step_size_final_ratio: float = 0.01,
          dual_step_size: float = 0.1, dual_step_size_final: float | None = None, initial_lambda: float = 0.01,
          dual_ema: float = 0.9, min_dual_weight: float = 1e-6, init_radius: float = 0.5,
          solver: str = "sgd", sign_gradient: bool = False, confidence: float = 0.0,
          finetune_steps: int = 0, finetune_dual_step_size: float = 0.01, seed: int = 0) -> AttackResult:
    """Primal-dual proximal gradient descent (PDPGD, document 004, Algorithm 3) minimum-norm
    attack; see the module docstring for the algorithm.

    Args:
        model: the classifier under attack.
        x: inputs ``(N, *model.input_shape)`` inside the model's bounds.
        y: the true labels ``(N,)``, or the targets when ``targeted``.
        targeted: whether success means predicting ``y``.
        norm: ``"linf"``, ``"l2"``, ``"l1"``, ``"l0"`` (changed values) or ``"l0_group"``
            (changed pixels: all channels of a pixel, dimension 1 of ``x``, form a group); PDGD
            takes ``"linf"``, ``"l2"`` and ``"l1"`` only.
        steps: iterations per restart (≥ 1; T = 500 in the thesis).
        restarts: random restarts (≥ 1); the best result over all of them is kept ("PDPGD-N").
        step_size: initial primal step size θ_r > 0, in input units; it decays linearly to
            ``step_size · step_size_final_ratio`` (a ratio in (0, 1]).
        dual_step_size: step size (≥ 0) of the log-domain dual ascent (0.1);
            ``dual_step_size_final`` (≥ 0) makes it decay linearly to that value (the 2021
            release: 0.1 → 0.01); constant by default.
        initial_lambda: initial λ > 0 = weight(norm) / weight(classification) (0.01).
        dual_ema: decay in [0, 1) of the moving average of λ used by the primal step (0.9).
        min_dual_weight: the floor, in (0, 0.5), on each simplex weight (1e-6, so λ stays in
            about [1e-6, 1e6]).
        init_radius: restart inits ``r0 ~ U[−a, a]`` (a ≥ 0), clipped to the box (0 starts at
            r = 0).
        solver: ``"sgd"`` (plain (proximal) gradient steps) or ``"adam"`` (an Adam step; for
            PDPGD before the prox, whose threshold stays ``step_size·λ``, which then no longer
            matches the actual step).
        sign_gradient: use the sign of the gradient (PGD-like; an l∞ option of the code).
        confidence: target margin κ ≥ 0: the surrogate is ``relu(m + κ)`` and an iterate counts
            as adversarial only when ``m ≤ −κ``.
        finetune_steps: length (≥ 0) of the code's optional second pass from the best point and
            its λ, the step size decaying from the final one by another 10×, dual step size
            ``finetune_dual_step_size`` (≥ 0).
        seed: seed (≥ 0) of the restart inits; the same seed reproduces the result exactly. The
            inits are drawn for the whole batch, so a result depends on the batch composition.

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult`; ``info`` holds, per input,
        ``best_norm`` (in the attack's norm; ``inf`` where no adversarial was found, 0 where the
        input was already adversarial), ``best_lambda`` (λ̄ at the returned iterate),
        ``final_lambda`` (λ̄ at the end of the last run), ``found_at`` (the iteration of the
        returned iterate, counted over restarts, −1 if none) and ``already_adversarial``.

    Raises:
        AttackInputError: for a setting outside the ranges above, before any model pass.
    """
    return _attack(model, x, y, proximal=True, targeted=targeted, norm=norm, steps=steps, restarts=restarts,
                   step_size=step_size, step_size_final_ratio=step_size_final_ratio,
                   dual_step_size=dual_step_size, dual_step_size_final=dual_step_size_final,
                   initial_lambda=initial_lambda, dual_ema=dual_ema, min_dual_weight=min_dual_weight,
                   init_radius=init_radius, solver=solver, sign_gradient=sign_gradient, confidence=confidence,
                   finetune_steps=finetune_steps, finetune_dual_step_size=finetune_dual_step_size, seed=seed)


@attack
def pdgd(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, norm: str = "l2",
         steps: int = 500, restarts: int = 1, step_size: float = 0.1, step_size_final_ratio: float = 0.01,
         dual_step_size: float = 0.1, dual_step_size_final: float | None = None, initial_lambda: float = 0.01,
         dual_ema: float = 0.9, min_dual_weight: float = 1e-6, init_radius: float = 0.5,
         solver: str = "adam", sign_gradient: bool = False, confidence: float = 0.0,
         finetune_steps: int = 0, finetune_dual_step_size: float = 0.01, seed: int = 0) -> AttackResult:
    """Primal-dual gradient descent (PDGD, document 004, Algorithm 2) minimum-norm attack.

    The primal step is a gradient step (Adam by default, as in the thesis for l2) on
    ``λ̄·||r|| + relu(m + confidence)``, then the box clip. ``norm`` is ``"l2"`` (the thesis's
    use), or ``"l1"``/``"linf"`` through their sub-gradients; l0 needs :func:`pdpgd`. The
    settings, ``info`` and errors are those of :func:`pdpgd`.
    """
    return _attack(model, x, y, proximal=False, targeted=targeted, norm=norm, steps=steps, restarts=restarts,
                   step_size=step_size, step_size_final_ratio=step_size_final_ratio,
                   dual_step_size=dual_step_size, dual_step_size_final=dual_step_size_final,
                   initial_lambda=initial_lambda, dual_ema=dual_ema, min_dual_weight=min_dual_weight,
                   init_radius=init_radius, solver=solver, sign_gradient=sign_gradient, confidence=confidence,
                   finetune_steps=finetune_steps, finetune_dual_step_size=finetune_dual_step_size, seed=seed)
