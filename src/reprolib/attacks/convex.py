"""Document 001 (Balda, Behboodi, Mathar, arXiv:1803.03607 v2): adversarial examples by
convex programming on the first-order model of the margin. Card: ``001-convex-programming``.

Pure functions of a gradient ``g = ∇L(x)``:

* :func:`gnii_step`: the closed-form minimiser of the linearised margin ``L + ηᵀg`` over
  ``‖η‖_p ≤ ε`` (GNII, eq. 6–7, Proposition 2). For p = 1 eq. 6 degenerates; the solution is
  the single coordinate ``−ε sign(g_i*) e_i*``, ``i* = argmax |g_i|`` (card §2.3).
* :func:`gnii_value`: its optimal value ``L − ε‖g‖_q``.
* :func:`min_norm_step`: the minimum-norm solution of ``L + ηᵀg ≤ 0`` (eq. 8): the GNII direction
  at radius ``L/‖g‖_q`` (Proposition 1's bound). With ``L = f_k − f_l̂`` this is one DeepFool step.

Attacks (all return an :class:`~reprolib.attacks.core.AttackResult`):

* :func:`alg1`: Algorithm 1 (``n_steps=1``) and Algorithm 1-n (``n_steps=n``) of §IV;
* :func:`alg2`: Algorithm 2, ``η = −ε sign(∇f_k)``;
* :func:`random_sign`: the random ±ε baseline.

FastGrad (FGSM) is ``reprolib.attacks.fgsm``. Following the paper (card §4, §5.5), the GN
attacks do **not** clip ``x + η`` to the input box by default; :func:`~.core.finish` returns
both the raw output (``x_raw``, ``success_raw``) and the clipped one (``x_adv``, ``success``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackInputError, AttackResult, finish, start
from .ops.norms import lp_norms
from .ops.jacobian import margin_jacobian, other_classes
from .ops.linearized import gnii_step
from .ops.norms import dual_norm

__all__ = ["gnii_step", "gnii_value", "min_norm_step", "alg1", "alg2", "random_sign"]


# --------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------

def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not eps >= 0 or math.isinf(eps):
        raise AttackInputError(f"eps must be a finite number ≥ 0, got {eps}.")
    return eps


def alg1(model: Classifier, x: Tensor, y: Tensor, *, eps: float, p: float = math.inf, n_steps: int = 1,
         class_rule: str = "post_step", targeted: bool = False, clip: bool = False,
         proxy: str = "logits") -> AttackResult:
    """Algorithm 1 (``n_steps=1``) and Algorithm 1-n of document 001 (card §2.6).

    One step solves GNII for the margin of eq. 3, ``L = min_{j≠k} (f_k − f_j)``, at radius
    ``ε/n_steps``. The class is chosen by the authors' code rule (``class_rule="post_step"``)::

        l = argmin_{j≠k} [ (f_k − f_j) − ε' ‖∇f_k − ∇f_j‖_q ],    η = gnii_step(∇f_k − ∇f_l, ε')

    which is the exact GNII minimiser for the min-of-affine linearisation; ``"runner_up"`` is the
    naive ablation ``l = argmax_{j≠k} f_j`` (card §5.2).

    Algorithm 1-n (card §2.6, §5.3): ``n_steps`` steps of size ε/n; ``k`` stays the label of the
    clean input; the Jacobian is re-evaluated at ``x + N_t``; no early stop; no projection. The
    sum of the steps has ``‖η‖_p ≤ ε`` by the triangle inequality.

    Args:
        y: the label ``k`` of each input (pass the model's predictions to attack the clean
           prediction, as the paper does; on correctly classified inputs they coincide). With
           ``targeted=True``, ``y`` holds targets ``t`` and the margin is ``L_t = f_k − f_t``
           with ``k`` the clean prediction (Section III's targeted variant; one extra forward).
        eps: the lp budget ε (in input units).
        clip: clip each iterate to the model's bounds (default False: faithful to the paper).
        proxy: ``"logits"`` (the code) or ``"softmax"`` (the paper's literal f).

    Cost per input: ``n_steps`` forward and ``n_steps·(K−1)`` backward passes (``n_steps`` of
    each when targeted, plus one forward for the clean prediction).
    ``info``: ``chosen`` (N, n_steps) the class l of each step, ``norms_raw`` of ``x_raw − x``.
    """
    x, y, counter, t0 = start(model, x, y)
    eps = _check_eps(eps)
    if n_steps < 1:
        raise AttackInputError(f"n_steps must be ≥ 1, got {n_steps}.")
    if class_rule not in ("post_step", "runner_up"):
        raise AttackInputError(f"class_rule must be 'post_step' or 'runner_up', not {class_rule!r}.")
    K = model.num_classes
    if targeted:
        with torch.no_grad():
            k = counter.logits(x).argmax(1)
        others = y[:, None]
    else:
        k = y
        others = other_classes(k, K)
    step = eps / n_steps
    lower, upper = model.bounds
    noise = torch.zeros_like(x)
    chosen = []
    for _ in range(n_steps):
        xt = x + noise
        if clip:
            xt = xt.clamp(lower, upper)
        out, df, dg = margin_jacobian(counter, xt, k, others, proxy=proxy)
        if targeted:
            pick = torch.zeros(len(x), dtype=torch.long, device=x.device)
        elif class_rule == "post_step":
            pick = (df - step * dual_norm(dg, p, start_dim=2)).argmin(1)
        else:
            pick = out.scatter(1, k[:, None], -math.inf).argmax(1)
            pick = (others == pick[:, None]).float().argmax(1)
        g = dg[torch.arange(len(x), device=x.device), pick]
        noise = noise + gnii_step(g, step, p)
        if clip:
            noise = (x + noise).clamp(lower, upper) - x
        chosen.append(others.gather(1, pick[:, None]).squeeze(1))
    x_raw = x + noise
    return finish(model, x, x_raw, y, targeted, counter, t0, chosen=torch.stack(chosen, 1),
                  norms_raw=lp_norms(x_raw - x), eps=eps, p=p, n_steps=n_steps, class_rule=class_rule)


def alg2(model: Classifier, x: Tensor, y: Tensor, *, eps: float, p: float = math.inf,
         proxy: str = "logits", targeted: bool = False) -> AttackResult:
    """Algorithm 2 of document 001: GNII with ``L ≈ f_k``, i.e. ``η = −ε sign(∇f_k(x))`` for
    p = ∞ (card §2.6), with ``k = y`` (pass the predictions to follow the code). It does not
    guarantee fooling. No clipping (see module docstring). One forward and one backward pass.
    """
    if targeted:
        raise AttackInputError("alg2 is untargeted: it lowers the score of the label y.")
    x, y, counter, t0 = start(model, x, y)
    eps = _check_eps(eps)
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = counter.logits(xr)
        out = out.softmax(1) if proxy == "softmax" else out
        g = counter.grad(out.gather(1, y[:, None]), xr)
    x_raw = x + gnii_step(g, eps, p)
    return finish(model, x, x_raw, y, False, counter, t0, norms_raw=lp_norms(x_raw - x), eps=eps, p=p)


def random_sign(model: Classifier, x: Tensor, y: Tensor, *, eps: float, seed: int = 0,
                targeted: bool = False) -> AttackResult:
    """The random baseline of document 001: independent entries ±ε with probability ½ each
    (the code's ``ε·sign(randn)``), drawn on the CPU from ``torch.Generator().manual_seed(seed)``
    so that the noise does not depend on the device. No model passes; no clipping."""
    if targeted:
        raise AttackInputError("random_sign is untargeted.")
    x, y, counter, t0 = start(model, x, y)
    eps = _check_eps(eps)
    gen = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, x.shape, generator=gen).to(device=x.device, dtype=x.dtype) * 2 - 1
    x_raw = x + eps * signs
    return finish(model, x, x_raw, y, False, counter, t0, norms_raw=lp_norms(x_raw - x), eps=eps, seed=seed)
