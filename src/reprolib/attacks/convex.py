"""Document 001: adversarial examples by convex programming on the first-order model of the margin.

Balda, Behboodi & Mathar, *On Generation of Adversarial Examples using Convex Programming*
(https://arxiv.org/abs/1803.03607 v2); the authors' code (TensorFlow, ``main.py`` of the v2 merge
commit 4b90894) is https://github.com/ebalda/adversarialconvex. The closed-form steps (GNII,
eqs. 6–7, Proposition 2; the minimum-norm step, eq. 8) are in :mod:`.ops.linearized`.

Attacks (§IV):

* :func:`alg1`: Algorithm 1 (``steps=1``) and Algorithm 1-n (``steps=n``);
* :func:`alg2`: Algorithm 2, ``η = −ε sign(∇f_k)``;
* :func:`random_sign`: the random ±ε baseline.

FastGrad (FGSM) is :func:`reprolib.attacks.fast_gradient.fgsm`. The paper has no box constraint (§I
discusses it; Proposition 2's closed form does not hold with one) and the authors' code does not
clip ``x + η``, so these attacks do **not** clip by default; the result holds both the raw
output (``x_raw``, ``success_raw``) and the clipped one (``x_adv``, ``success``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, start
from .ops import checks
from .ops.jacobian import PROXIES, margin_jacobian, other_classes
from .ops.linearized import gnii_step
from .ops.norms import dual_norm, order

CLASS_RULES = ("post_step", "runner_up")


@attack
def alg1(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps: float, norm="linf",
         steps: int = 1, class_rule: str = "post_step", clip: bool = False,
         proxy: str = "logits") -> AttackResult:
    """Algorithm 1 (``steps=1``) and Algorithm 1-n of document 001 (§IV).

    One step solves GNII for the margin of eq. 3, ``L = min_{j≠k} (f_k − f_j)``, at radius
    ``ε' = ε/steps``. The class is chosen by the authors' code rule (``class_rule="post_step"``)::

        l = argmin_{j≠k} [ (f_k − f_j) − ε' ‖∇f_k − ∇f_j‖_q ],    η = gnii_step(∇f_k − ∇f_l, ε')

    which is the exact GNII minimiser for the min-of-affine linearisation (Proposition 2 applied
    to each piece); ``"runner_up"`` is the naive ablation ``l = argmax_{j≠k} f_j``.

    Algorithm 1-n (§IV; the authors' code): ``steps`` steps of size ε/n; ``k`` stays the label
    of the clean input; the Jacobian is re-evaluated at ``x + N_t``; no early stop; no
    projection. The sum of the steps has ``‖η‖_p ≤ ε`` by the triangle inequality.

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the label ``k`` of each input ``(N,)`` (pass the model's predictions to attack the
           clean prediction, as the paper does; on correctly classified inputs they coincide).
           With ``targeted=True``, ``y`` holds targets ``t`` and the margin is
           ``L_t = f_k − f_t`` with ``k`` the clean prediction (§III's targeted variant; one
           extra forward pass).
        targeted: see ``y``.
        eps: the ℓp budget ε ≥ 0 (input units).
        norm: ``"linf"`` (default, the paper's experiments), ``"l2"``, ``"l1"`` or any p ≥ 1.
        steps: n ≥ 1 (the paper: 1, 5, 10).
        class_rule: ``"post_step"`` (the code) or ``"runner_up"`` (the ablation).
        clip: clip each iterate to the model's bounds (default False: faithful to the paper).
        proxy: ``"logits"`` (the code) or ``"softmax"`` (the paper's literal f, §II).

    Returns:
        An :class:`~.core.AttackResult`. Cost per input: ``steps`` forward and
        ``steps·(K−1)`` backward passes (``steps`` of each when targeted, plus one forward for
        the clean prediction). ``info["chosen"]`` ``(N, steps)``: the class l of each step.

    Raises:
        AttackInputError: a negative or non-finite ``eps``; an unknown ``norm``, ``class_rule``
            or ``proxy``; ``steps`` < 1.
    """
    eps = checks.nonnegative("eps", eps)
    p = order(norm, general=True)
    steps = checks.count("steps", steps, minimum=1)
    checks.choice("class_rule", class_rule, CLASS_RULES)
    checks.choice("proxy", proxy, PROXIES)
    x, y, counter, t0 = start(model, x, y)
    K = model.num_classes
    if targeted:
        with torch.no_grad():
            k = counter.logits(x).argmax(1)
        others = y[:, None]
    else:
        k = y
        others = other_classes(k, K)
    step = eps / steps
    lower, upper = model.bounds
    noise = torch.zeros_like(x)
    chosen = []
    for _ in range(steps):
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
    return finish(model, x, x + noise, y, targeted, counter, t0, chosen=torch.stack(chosen, 1))


@attack
def alg2(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps: float, norm="linf",
         proxy: str = "logits") -> AttackResult:
    """Algorithm 2 of document 001 (§IV): GNII with ``L ≈ f_k``, i.e. ``η = −ε sign(∇f_k(x))``
    for p = ∞ (eq. 7; the GNII step of eq. 6 for other p), with ``k = y``. It does not guarantee
    fooling. No clipping (see the module text).

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the labels k ``(N,)`` whose score is lowered (pass the predictions to follow the code).
        targeted: must be False: the attack lowers the score of ``y``.
        eps: the ℓp budget ε ≥ 0 (input units).
        norm: ``"linf"`` (default), ``"l2"``, ``"l1"`` or any number p ≥ 1.
        proxy: ``"logits"`` (the code) or ``"softmax"`` (the paper's literal f).

    Returns:
        An :class:`~.core.AttackResult`; one forward and one backward pass per input; no
        ``info``.

    Raises:
        AttackInputError: ``targeted=True``; a negative or non-finite ``eps``; an unknown
            ``norm`` or ``proxy``.
    """
    checks.untargeted("alg2", targeted)
    eps = checks.nonnegative("eps", eps)
    p = order(norm, general=True)
    checks.choice("proxy", proxy, PROXIES)
    x, y, counter, t0 = start(model, x, y)
    xr = x.detach().requires_grad_(True)
    out = counter.logits(xr)
    out = out.softmax(1) if proxy == "softmax" else out
    g = counter.grad(out.gather(1, y[:, None]), xr)
    return finish(model, x, x + gnii_step(g, eps, p), y, False, counter, t0)


@attack
def random_sign(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps: float,
                seed: int = 0) -> AttackResult:
    """The random baseline of document 001 (§IV): independent entries ±ε with probability ½
    each (the code's ``ε·sign(randn)``), drawn on the CPU from
    ``torch.Generator().manual_seed(seed)`` so that the noise does not depend on the device.
    The noise is drawn for the whole batch, so an input's noise depends on its place in it.

    Args:
        model: the classifier (only the uncounted re-check uses it).
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: the labels ``(N,)``.
        targeted: must be False.
        eps: the ℓ∞ size ε ≥ 0 of every entry.
        seed: the seed ≥ 0 of the noise.

    Returns:
        An :class:`~.core.AttackResult`; no model passes; no clipping; no ``info``.

    Raises:
        AttackInputError: ``targeted=True``; a negative or non-finite ``eps``; a negative
            ``seed``.
    """
    checks.untargeted("random_sign", targeted)
    eps = checks.nonnegative("eps", eps)
    seed = checks.count("seed", seed, minimum=0)
    x, y, counter, t0 = start(model, x, y)
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, x.shape, generator=gen).to(device=x.device, dtype=x.dtype) * 2 - 1
    return finish(model, x, x + eps * signs, y, False, counter, t0)
