"""PDGD and PDPGD: primal-dual (proximal) gradient descent minimum-norm attacks.

Matyasko (2020), Ch. 5 (Algorithms 2 and 3); later Matyasko & Chau, arXiv 2106.01538.

The attack plays a two-player game on the Lagrangian of ``min ||r|| s.t. x + r is adversarial``:

* the **r-player** (primal) minimises ``λ·||r|| + g(x + r)`` with the surrogate
  ``g = relu(m + confidence)``, where ``m = f_y − max_{i≠y} f_i`` (untargeted) or
  ``m = max_{i≠t} f_i − f_t`` (targeted) is positive while the input is not yet adversarial.
  *PDGD* takes (Adam) gradient steps on the whole loss, the norm included (its sub-gradient);
  *PDPGD* takes a gradient step on ``g`` only, then the prox of ``lr·λ·||·||``
  (:mod:`reprolib.attacks.prox`), then clips to the box. Following the thesis-era code, the
  gradient step of PDPGD is applied only to inputs that are still *not* adversarial
  (``m + confidence > 0``); already-adversarial iterates are only shrunk by the prox.
* the **λ-player** (dual) keeps log-weights ``s = (s_norm, s_cls)`` on the 2-simplex. Each
  iteration ``s_cls += dual_lr · sign(m + confidence)`` (+1 while not adversarial: weigh the
  classification term more; −1 once adversarial: weigh the norm more), then ``s`` is projected
  back on the log-simplex (``s − logsumexp(s)``, KL projection) and clamped at
  ``log(min_dual_weight)``. ``λ = exp(s_norm − s_cls)``; the primal step uses its exponential
  moving average ``λ̄ ← ema·λ̄ + (1 − ema)·λ`` (decay 0.9).

Order of updates (the code's default "sequential" order): at iteration k the model is run once
(forward + backward) on the current iterate ``x + r_k``; that pass gives the best-iterate check
for ``r_k``, the dual update (from ``k ≥ 1``, so the dual of step k reacts to ``r_k``, the output
of primal step k − 1) and the gradient of primal step k. One last forward pass checks ``r_T``.

Cost per restart: ``iterations`` forward+backward passes plus one forward pass, per input still
correctly classified; plus one forward pass per input to find the inputs already misclassified
(they get ``r = 0`` and are not attacked).

Result: the smallest-norm adversarial iterate over all iterations and restarts (norm as chosen;
``l0_group`` counts changed pixels), per input; ``x`` itself where none was found.

Defaults are the thesis's (§5.4): 500 iterations; primal lr decays linearly to 1e-2 of its
initial value over the run; dual lr 0.1 constant, in the log domain; initial λ 0.01; EMA 0.9;
restart inits ``r0 ~ U[−a, a]`` projected on the box, ``a = 0.5`` (MNIST; the thesis used
0.25 on CIFAR-10). The primal lr was tuned per (model, norm) over {0.01, 0.05, 0.1, 0.5, 1.0};
0.1 is only a default. PDGD uses Adam (thesis, l2); PDPGD uses plain gradient steps (thesis-era
scripts) — Adam is available (``optimizer="adam"``), and so is the sign of the gradient
(``sign_gradient=True``, searched for l∞ in the code). The code's undocumented "finetune" pass
is off by default (``finetune_iterations=0``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .ops import losses
from .core import AttackResult, finish, is_adversarial, start
from .ops.norms import NORMS, lp_norm as _lp
from .ops.prox import prox


def norm_of(norm, u):
    return _lp(u, norm)

#: Adam's constants (TensorFlow 2 / Keras defaults, as in the reference code).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-7


def margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """m_y (eq. 5.2): ``f_y − max_{i≠y} f_i`` (untargeted) or ``max_{i≠t} f_i − f_t`` (targeted);
    positive while the input is not yet adversarial."""
    m = losses.margin(logits, labels)
    return -m if targeted else m


def _norm_subgradient(norm: str, u: Tensor) -> Tensor:
    """A sub-gradient of the norm at each perturbation of a batch (0 at u = 0), for PDGD."""
    flat = u.flatten(1)
    if norm == "l2":
        n = flat.norm(dim=1, keepdim=True)
        g = torch.where(n > 0, flat / n.clamp_min(torch.finfo(u.dtype).tiny), torch.zeros_like(flat))
    elif norm == "l1":
        g = flat.sign()
    elif norm == "linf":
        a = flat.abs()
        top = (a == a.amax(1, keepdim=True)) & (a > 0)
        g = flat.sign() * top / top.sum(1, keepdim=True).clamp_min(1)
    else:
        raise ValueError(f"PDGD needs a norm with a (sub)gradient: linf, l2 or l1, not {norm!r}; "
                         "use pdpgd for l0 and l0_group.")
    return g.reshape(u.shape)


def _linear(initial: float, final: float, k: int, total: int) -> float:
    """Linear decay from ``initial`` (k = 0) towards ``final`` (reached at k = total)."""
    return final + (initial - final) * (1 - k / total)


class _Adam:
    """Per-input Adam; a masked-out input keeps its moments and its step count (lazy update)."""

    def __init__(self, like: Tensor) -> None:
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(len(like), device=like.device, dtype=like.dtype)

    def step(self, g: Tensor, lr: float, mask: Tensor | None = None) -> Tensor:
        b1, b2 = ADAM_BETAS
        shape = (-1,) + (1,) * (g.dim() - 1)
        if mask is None:
            mask = torch.ones(len(g), dtype=torch.bool, device=g.device)
        mk = mask.reshape(shape)
        self.t = self.t + mask.to(g.dtype)
        self.m = torch.where(mk, b1 * self.m + (1 - b1) * g, self.m)
        self.v = torch.where(mk, b2 * self.v + (1 - b2) * g * g, self.v)
        t = self.t.clamp_min(1).reshape(shape)
        lr_t = lr * torch.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return torch.where(mk, lr_t * self.m / (self.v.sqrt() + ADAM_EPS), torch.zeros_like(g))


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


def _check_args(norm: str, iterations: int, restarts: int, lr: float, lr_final_ratio: float,
                dual_lr: float, initial_lambda: float, dual_ema: float, min_dual_weight: float,
                init_radius: float, optimizer: str, finetune_iterations: int) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if iterations < 1 or restarts < 1 or finetune_iterations < 0:
        raise ValueError("iterations and restarts must be ≥ 1, finetune_iterations ≥ 0")
    if not (lr > 0 and 0 < lr_final_ratio <= 1 and dual_lr >= 0 and initial_lambda > 0):
        raise ValueError("need lr > 0, 0 < lr_final_ratio ≤ 1, dual_lr ≥ 0, initial_lambda > 0")
    if not (0 <= dual_ema < 1 and 0 < min_dual_weight < 0.5 and init_radius >= 0):
        raise ValueError("need 0 ≤ dual_ema < 1, 0 < min_dual_weight < 0.5, init_radius ≥ 0")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', not {optimizer!r}")


def _attack(model: Classifier, x: Tensor, y: Tensor, *, proximal: bool, norm: str, targeted: bool,
            iterations: int, restarts: int, lr: float, lr_final_ratio: float, dual_lr: float,
            dual_lr_final: float | None, initial_lambda: float, dual_ema: float,
            min_dual_weight: float, init_radius: float, optimizer: str, sign_gradient: bool,
            confidence: float, finetune_iterations: int, finetune_dual_lr: float,
            seed: int) -> AttackResult:
    _check_args(norm, iterations, restarts, lr, lr_final_ratio, dual_lr, initial_lambda, dual_ema,
                min_dual_weight, init_radius, optimizer, finetune_iterations)
    x, y, counter, started = start(model, x, y)
    if not proximal:
        _norm_subgradient(norm, x[:1] * 0)  # refuses the l0 norms before any model call
    bounds = model.bounds
    n = len(x)
    dual_lr_final = dual_lr if dual_lr_final is None else dual_lr_final

    # Inputs already misclassified get r = 0 and are not attacked.
    with torch.no_grad():
        clean = counter.logits(x)
        pre_adv = is_adversarial(clean, y, targeted)
    idx = (~pre_adv).nonzero().flatten()
    best_x = x.clone()
    best_norm = torch.where(pre_adv, torch.zeros(n, device=x.device, dtype=x.dtype),
                            torch.full((n,), math.inf, device=x.device, dtype=x.dtype))
    best_lam = torch.full((n,), math.nan, device=x.device, dtype=x.dtype)
    final_lam = torch.full((n,), math.nan, device=x.device, dtype=x.dtype)
    found_at = torch.full((n,), -1, device=x.device, dtype=torch.long)

    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    xa, ya = x[idx], y[idx]

    def run(p: Tensor, lam0: Tensor, steps: int, lr0: float, lr1: float, dlr0: float, dlr1: float,
            sub: Tensor, offset: int) -> None:
        """Run ``steps`` iterations from the points ``p`` for the inputs ``idx[sub]``."""
        gidx = idx[sub]
        xs, ys = xa[sub], ya[sub]
        dual = _Dual(lam0, dual_ema, min_dual_weight)
        adam = _Adam(xs) if optimizer == "adam" else None
        for k in range(steps + 1):
            p = p.detach().requires_grad_(k < steps)
            if k < steps:
                logits = counter.logits(p, gidx)
                m = margin(logits, ys, targeted) + confidence
                g = counter.grad(torch.relu(m), p, gidx)
            else:  # the last iterate: a forward pass only
                with torch.no_grad():
                    logits = counter.logits(p, gidx)
                    m = margin(logits, ys, targeted) + confidence
            p = p.detach()
            with torch.no_grad():
                # keep the best (smallest-norm) adversarial iterate
                adv = is_adversarial(logits.detach(), ys, targeted) & (m <= 0)
                nrm = norm_of(norm, p - xs)
                better = adv & (nrm < best_norm[gidx])
                if bool(better.any()):
                    bi = gidx[better]
                    best_x[bi] = p[better]
                    best_norm[bi] = nrm[better]
                    best_lam[bi] = dual.lam_bar[better]
                    found_at[bi] = offset + k
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
            run(p0, lam0, iterations, lr, lr * lr_final_ratio, dual_lr, dual_lr_final, all_sub,
                r * (iterations + 1))
        if finetune_iterations:
            # the code's "finetune" pass: restart from the best point and its λ with the final lr,
            # decaying another 10x; only the inputs with an adversarial take part
            sub = torch.isfinite(best_norm[idx]).nonzero().flatten()
            if len(sub):
                gi = idx[sub]
                lr_ft = lr * lr_final_ratio
                run(best_x[gi].clone(), best_lam[gi].clone(), finetune_iterations, lr_ft, lr_ft / 10,
                    finetune_dual_lr, finetune_dual_lr, sub, restarts * (iterations + 1))

    return finish(model, x, best_x, y, targeted, counter, started,
                  attack="pdpgd" if proximal else "pdgd", norm=norm, best_norm=best_norm,
                  best_lambda=best_lam, final_lambda=final_lam, found_at=found_at,
                  already_adversarial=pre_adv, iterations=iterations, restarts=restarts, lr=lr,
                  optimizer=optimizer, sign_gradient=sign_gradient, seed=seed)


def pdpgd(model: Classifier, x: Tensor, y: Tensor, *, norm: str = "linf", targeted: bool = False,
          iterations: int = 500, restarts: int = 1, lr: float = 0.1, lr_final_ratio: float = 0.01,
          dual_lr: float = 0.1, dual_lr_final: float | None = None, initial_lambda: float = 0.01,
          dual_ema: float = 0.9, min_dual_weight: float = 1e-6, init_radius: float = 0.5,
          optimizer: str = "sgd", sign_gradient: bool = False, confidence: float = 0.0,
          finetune_iterations: int = 0, finetune_dual_lr: float = 0.01, seed: int = 0) -> AttackResult:
    """Primal-dual proximal gradient descent (PDPGD, Algorithm 3) minimum-norm attack.

    Args:
        model, x, y, targeted: as for every attack (:mod:`reprolib.attacks.core`).
        norm: ``"linf"``, ``"l2"``, ``"l1"``, ``"l0"`` (changed values) or ``"l0_group"``
            (changed pixels: all channels of a pixel, dimension 1 of ``x``, form a group).
        iterations: iterations per restart (T = 500 in the thesis).
        restarts: random restarts; the best result over all of them is kept ("PDPGD-N").
        lr: initial primal learning rate θ_r; it decays linearly to ``lr · lr_final_ratio``.
        dual_lr: learning rate of the log-domain dual ascent (0.1); ``dual_lr_final`` makes it
            decay linearly to that value (the 2021 release: 0.1 → 0.01); constant by default.
        initial_lambda: initial λ = weight(norm) / weight(classification) (0.01).
        dual_ema: decay of the moving average of λ used by the primal step (0.9).
        min_dual_weight: the floor on each simplex weight (1e-6, so λ stays in about [1e-6, 1e6]).
        init_radius: restart inits ``r0 ~ U[−a, a]``, clipped to the box (0 starts at r = 0).
        optimizer: ``"sgd"`` (plain proximal gradient) or ``"adam"`` (Adam step before the prox;
            the prox threshold stays ``lr·λ``, which then no longer matches the actual step).
        sign_gradient: use the sign of the gradient (PGD-like; an l∞ option of the code).
        confidence: target margin: the surrogate is ``relu(m + confidence)`` and an iterate counts
            as adversarial only when ``m ≤ −confidence``.
        finetune_iterations: length of the code's optional second pass from the best point and
            its λ, lr decaying from the final lr by another 10×, dual lr ``finetune_dual_lr``.
        seed: seed of the restart inits; the same seed reproduces the result exactly.

    ``info`` holds ``best_norm`` (in the attack's norm; ``inf`` where no adversarial was found),
    ``best_lambda``, ``final_lambda``, ``found_at`` (iteration counted over restarts, −1 if none)
    and ``already_adversarial``.
    """
    return _attack(model, x, y, proximal=True, norm=norm, targeted=targeted, iterations=iterations,
                   restarts=restarts, lr=lr, lr_final_ratio=lr_final_ratio, dual_lr=dual_lr,
                   dual_lr_final=dual_lr_final, initial_lambda=initial_lambda, dual_ema=dual_ema,
                   min_dual_weight=min_dual_weight, init_radius=init_radius, optimizer=optimizer,
                   sign_gradient=sign_gradient, confidence=confidence,
                   finetune_iterations=finetune_iterations, finetune_dual_lr=finetune_dual_lr, seed=seed)


def pdgd(model: Classifier, x: Tensor, y: Tensor, *, norm: str = "l2", targeted: bool = False,
         iterations: int = 500, restarts: int = 1, lr: float = 0.1, lr_final_ratio: float = 0.01,
         dual_lr: float = 0.1, dual_lr_final: float | None = None, initial_lambda: float = 0.01,
         dual_ema: float = 0.9, min_dual_weight: float = 1e-6, init_radius: float = 0.5,
         optimizer: str = "adam", sign_gradient: bool = False, confidence: float = 0.0,
         finetune_iterations: int = 0, finetune_dual_lr: float = 0.01, seed: int = 0) -> AttackResult:
    """Primal-dual gradient descent (PDGD, Algorithm 2) minimum-norm attack.

    The primal step is a gradient (Adam by default, as in the thesis for l2) step on
    ``λ̄·||r|| + relu(m + confidence)``, then the box clip. ``norm`` is ``"l2"`` (the thesis's
    use), or ``"l1"``/``"linf"`` through their sub-gradients; l0 needs :func:`pdpgd`. The other
    arguments are those of :func:`pdpgd`.
    """
    return _attack(model, x, y, proximal=False, norm=norm, targeted=targeted, iterations=iterations,
                   restarts=restarts, lr=lr, lr_final_ratio=lr_final_ratio, dual_lr=dual_lr,
                   dual_lr_final=dual_lr_final, initial_lambda=initial_lambda, dual_ema=dual_ema,
                   min_dual_weight=min_dual_weight, init_radius=init_radius, optimizer=optimizer,
                   sign_gradient=sign_gradient, confidence=confidence,
                   finetune_iterations=finetune_iterations, finetune_dual_lr=finetune_dual_lr, seed=seed)
