"""Iterative gradient attacks: PGD (Madry et al.), I-FGM (document 002) and BIM (Kurakin et al.),
in ℓ∞, ℓ2 and ℓ1.

Sources: Madry, Makelov, Schmidt, Tsipras & Vladu, *Towards Deep Learning Models Resistant to
Adversarial Attacks* (https://arxiv.org/abs/1706.06083, §2.1: x_{t+1} = Π_{x+S}(x_t + α·sgn(∇L)));
Kurakin, Goodfellow & Bengio, *Adversarial Examples in the Physical World*
(https://arxiv.org/abs/1607.02533, §2.1, the basic iterative method; document 003 eq. 2);
document 002 §2.1.1.3 (I-FGM, EAD's ``ifgm.py``, https://github.com/ysharma1126/EAD_Attack);
Tramèr & Boneh, *Adversarial Training and Robustness for Multiple Perturbations*
(https://arxiv.org/abs/1904.13000, §4, SLIDE: the sparse ℓ1 step).

Every iteration, per input:

1. one forward and one backward pass at the current iterate x_n (the objective of
   :mod:`.ops.losses`, summed over the batch, is ascended);
2. a step ``x_n + a·d_n`` with ‖d_n‖_p = 1:

   * ℓ∞: d = sign(∇) (FGSM step);
   * ℓ2: d = ∇/‖∇‖₂;
   * ℓ1, ``l1_step="sparse"`` (default for :func:`pgd`): SLIDE's sparse steepest-ascent step:
     among the coordinates that can still move in the direction of their gradient (not
     already at the box bound it points to), keep those with |∇| at or above the
     ``l1_sparsity`` quantile (0.99: the top 1 %), and set d = sign(∇)/k on those k
     coordinates. This is the ℓ1 steepest-ascent direction spread over the top-k
     coordinates, which is what keeps ℓ1-PGD from stalling on the single largest coordinate.
   * ℓ1, ``l1_step="dense"``: d = ∇/‖∇‖₁, document 002's I-FGM-L1;

3. back into the ε-ball around x0:

   * ``ball="project"`` (PGD): the Euclidean projection: clamp (ℓ∞), radial shrink
     δ·min(1, ε/‖δ‖₂) (ℓ2), or the exact sorting-based ℓ1-ball projection of Duchi et al. 2008
     (:func:`~.ops.norms.project_l1`, batched);
   * ``ball="rescale"`` (document 002's I-FGM for ℓ1/ℓ2): δ ← δ·ε/‖δ‖, which also scales *up*
     (ℓ∞ is still clamped);

4. clip to the model's box. Since x0 lies in the box, the clip only shrinks |δ_i|, so the
   iterate stays in the ε-ball (for ``ball="project"``).

Random start (``random_start=True``): uniform in the ε-ball (ℓ∞: uniform per coordinate; ℓ2:
uniform in the ball; ℓ1: uniform in the ball via normalised exponentials), then box-clipped,
drawn on the CPU from ``torch.Generator().manual_seed(seed)`` so that it does not depend on the
device. The draw is for the whole batch, so an input's start depends on its place in the batch.
It costs no model pass.

Stop at success (``stop_at_success=True``): an input whose current iterate is already
adversarial (seen on the forward pass of step n) is frozen there and costs nothing more;
``info["stopped_at"]`` holds that n (−1 if never). Without it, every input takes exactly
``steps`` forward and backward passes; with it, one forward per visited iterate and one backward
per step taken, except that the backward is skipped when every remaining input succeeded.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, Counter, attack, finish, is_adversarial, start
from .ops import checks, losses
from .ops.box import pinned
from .ops.checks import AttackInputError
from .ops.norms import INF, normalize, order, per_input, project, rescale

BALLS = ("project", "rescale")
L1_STEPS = ("sparse", "dense")


# ---------------------------------------------------------------------------------- steps
def sparse_l1_direction(g: Tensor, x: Tensor, bounds: tuple[float, float], sparsity: float) -> Tensor:
    """SLIDE's sparse ℓ1 steepest-ascent direction (https://arxiv.org/abs/1904.13000, §4).

    Args:
        g: (N, ...) the gradients to ascend.
        x: (N, ...) the current iterates, inside ``bounds``.
        bounds: the box (lower, upper).
        sparsity: the quantile in [0, 1) of |g| that a coordinate must reach to be kept.

    Returns:
        (N, ...) sign(g)/k on the k coordinates whose |g| is at or above the ``sparsity``
        quantile, among those not pinned at the bound their gradient points to
        (:func:`~.ops.box.pinned`); unit ℓ1 norm, or 0 when nothing can move.
    """
    flat_g, flat_x = g.flatten(1), x.flatten(1)
    a = flat_g.abs() * ~pinned(flat_x, flat_g, bounds)
    d = a.shape[1]
    k = max(1, min(d, int(math.ceil((1.0 - sparsity) * d))))
    kth = a.topk(k, dim=1).values[:, -1:]
    keep = (a >= kth) & (a > 0)
    count = keep.sum(1, keepdim=True).clamp(min=1)
    return (flat_g.sign() * keep / count).view_as(g)


def _random_start(x: Tensor, eps: Tensor, p: float, generator: torch.Generator) -> Tensor:
    n, d = len(x), x[0].numel()
    e = per_input(eps, n, x).flatten()[:, None]
    kw = dict(generator=generator, dtype=x.dtype)
    if p == INF:
        delta = (torch.rand(n, d, **kw) * 2 - 1).to(x.device) * e
    elif p == 2.0:
        z = torch.randn(n, d, **kw)
        r = torch.rand(n, 1, **kw) ** (1.0 / d)
        delta = (z / z.norm(dim=1, keepdim=True) * r).to(x.device) * e
    else:  # uniform in the ℓ1 ball: d+1 exponentials, normalised, random signs
        ex = -torch.rand(n, d + 1, **kw).clamp(min=1e-12).log()
        s = torch.randint(0, 2, (n, d), generator=generator).to(x.dtype) * 2 - 1
        delta = (s * ex[:, :d] / ex.sum(1, keepdim=True)).to(x.device) * e
    return delta.view_as(x)


# ------------------------------------------------------------------------------- settings
def _step_size(step_size, x: Tensor) -> Tensor:
    """A step size > 0, a number or one per input, as a tensor broadcasting against ``x``."""
    t = per_input(step_size, len(x), x, name="step_size")
    if not bool((t > 0).all()):
        raise AttackInputError(f"step_size must be > 0, got {step_size!r}.")
    return t


# ------------------------------------------------------------------------------ iteration
def _iterate(model: Classifier, x: Tensor, y: Tensor, counter: Counter, t0: float, *, targeted: bool,
             eps: Tensor, step: Tensor, p: float, steps: int, lossf: losses.Loss, loss_kw: dict,
             ball: str, l1_step: str, l1_sparsity: float, random_start: bool,
             stop_at_success: bool, seed: int) -> AttackResult:
    """The loop of the module text, with every setting checked; ``eps`` and ``step`` are per
    input, broadcasting against ``x``."""
    n = len(x)
    eps_t = eps.flatten()
    lower, upper = model.bounds
    to_ball = project if ball == "project" else rescale

    x_adv = x.clone()
    if random_start:
        x_adv = (x + _random_start(x, eps_t, p, torch.Generator().manual_seed(seed))).clamp(lower, upper)
    stopped_at = torch.full((n,), -1, dtype=torch.long, device=x.device)
    active = torch.arange(n, device=x.device)
    for it in range(steps):
        idx = active if stop_at_success else None
        xa, ya = x_adv[active], y[active]
        if stop_at_success:
            x_var = xa.detach().requires_grad_(True)
            logits = counter.logits(x_var, idx)
            done = is_adversarial(logits.detach(), ya, targeted)
            stopped_at[active[done]] = it
            if bool(done.all()):
                active = active[:0]
                break
            g = counter.grad(lossf(logits, ya, targeted, **loss_kw), x_var, idx)
            keep = ~done
            active, xa, ya, g = active[keep], xa[keep], ya[keep], g[keep]
        else:
            _, _, g = losses.objective_and_grad(counter, xa, ya, lossf, targeted, None, **loss_kw)
        if lossf.sign:
            g = g.sign()
        if p == 1.0 and l1_step == "sparse":
            d = sparse_l1_direction(g, xa, model.bounds, l1_sparsity)
        else:
            d = normalize(g, p)
        x0 = x[active]
        delta = xa + step[active] * d - x0
        delta = to_ball(delta, eps_t[active], p)
        x_adv[active] = (x0 + delta).clamp(lower, upper)
        if len(active) == 0:
            break
    return finish(model, x, x_adv, y, targeted, counter, t0, stopped_at=stopped_at)


# --------------------------------------------------------------------------------- attacks
@attack
def pgd(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps, norm="linf",
        steps: int = 40, step_size=None, rel_step_size: float | None = None,
        random_start: bool = False, loss="ce", ball: str = "project", l1_step: str = "sparse",
        l1_sparsity: float = 0.99, stop_at_success: bool = False, seed: int = 0,
        **loss_kw) -> AttackResult:
    """Projected gradient ascent of ``loss`` in the ε-ball of ``norm`` (see the module text).

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: true labels ``(N,)``, or targets with ``targeted=True``.
        targeted: ascend the targeted objective (reach ``y``).
        eps: the radius ε ≥ 0 (input units): a number or a tensor ``(N,)``.
        norm: ``"linf"`` (default), ``"l2"`` or ``"l1"``.
        steps: iterations, ≥ 0 (each: one forward and one backward pass per active input).
        step_size: the absolute step a > 0 (a number or ``(N,)``). Default
            ``rel_step_size·ε``, with ``rel_step_size`` > 0 defaulting to 2.5/steps (Madry et
            al.). Foolbox's ``abs_stepsize`` and ``rel_stepsize`` mean the same.
        random_start: start uniformly in the ε-ball (Madry's PGD) instead of at x.
        loss: the objective, by name (:data:`~.ops.losses.LOSSES`).
        ball: ``"project"`` (PGD) or ``"rescale"`` (document 002's I-FGM, ℓ1/ℓ2).
        l1_step: ``"sparse"`` (top-(1 − l1_sparsity) coordinates, SLIDE) or ``"dense"``
            (∇/‖∇‖₁); ℓ1 only.
        l1_sparsity: in [0, 1); 0.99 keeps the top 1 % of the coordinates.
        stop_at_success: freeze each input at its first adversarial iterate, where it costs no
            further pass. Off by default: the attack of the papers ascends the loss for all
            ``steps`` and returns the last iterate (what adversarial training and loss studies
            need); turn it on for success-rate and robust-accuracy evaluations, which it makes
            cheaper without losing a success (the last iterate can fall back across the boundary;
            the first adversarial one is kept).
        seed: the seed (≥ 0) of the random start's generator.
        **loss_kw: the objective's own settings, e.g. ``confidence`` (κ ≥ 0) for ``"mlogit"``.

    Returns:
        An :class:`~.core.AttackResult`. ``info["stopped_at"]`` ``(N,)``: the first step whose
        iterate was seen adversarial, −1 if none (only tracked with ``stop_at_success``).

    Raises:
        AttackInputError: an unknown ``norm``, ``loss``, ``ball`` or ``l1_step``; ``steps`` < 0;
            ``eps`` negative or non-finite; ``step_size`` or ``rel_step_size`` ≤ 0;
            ``l1_sparsity`` outside [0, 1); a negative ``seed`` or ``confidence``.
        TypeError: a keyword the objective does not take.
    """
    lossf = losses.get(loss, loss_kw)
    p = order(norm)
    checks.choice("ball", ball, BALLS)
    checks.choice("l1_step", l1_step, L1_STEPS)
    checks.in_range("l1_sparsity", l1_sparsity, 0.0, 1.0, high_open=True)
    steps = checks.count("steps", steps, minimum=0)
    seed = checks.count("seed", seed, minimum=0)
    x, y, counter, t0 = start(model, x, y)
    e = per_input(eps, len(x), x, name="eps")
    if step_size is None:
        rel = 2.5 / max(steps, 1) if rel_step_size is None else checks.positive("rel_step_size", rel_step_size)
        step = e * rel
    else:
        step = _step_size(step_size, x)
    return _iterate(model, x, y, counter, t0, targeted=targeted, eps=e, step=step, p=p, steps=steps,
                    lossf=lossf, loss_kw=loss_kw, ball=ball, l1_step=l1_step, l1_sparsity=l1_sparsity,
                    random_start=random_start, stop_at_success=stop_at_success, seed=seed)


@attack
def ifgm(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps, norm="linf",
         steps: int = 10, step_size=None, loss="ce", stop_at_success: bool = False,
         **loss_kw) -> AttackResult:
    """Document 002's I-FGM (§2.1.1.3; EAD's ``ifgm.py``): ``steps`` FGM steps of size ε/steps
    (dense ℓ1/ℓ2-normalised or sign gradients), each followed by "ε-ball clipping": clamp for
    ℓ∞, and δ ← δ·ε/‖δ‖ for ℓ1/ℓ2 (scales up too), then the box clip. No random start.

    Args:
        model, x, y, targeted, eps, norm, loss, stop_at_success, ``**loss_kw``: as in :func:`pgd`.
        steps: iterations, ≥ 0 (document 002: 10).
        step_size: the step > 0 (a number or ``(N,)``); default ε/steps.

    Returns:
        An :class:`~.core.AttackResult` with ``info["stopped_at"]`` as in :func:`pgd`.

    Raises:
        AttackInputError, TypeError: as :func:`pgd`.
    """
    lossf = losses.get(loss, loss_kw)
    p = order(norm)
    steps = checks.count("steps", steps, minimum=0)
    x, y, counter, t0 = start(model, x, y)
    e = per_input(eps, len(x), x, name="eps")
    step = e / max(steps, 1) if step_size is None else _step_size(step_size, x)
    return _iterate(model, x, y, counter, t0, targeted=targeted, eps=e, step=step, p=p, steps=steps,
                    lossf=lossf, loss_kw=loss_kw, ball="rescale", l1_step="dense", l1_sparsity=0.0,
                    random_start=False, stop_at_success=stop_at_success, seed=0)


@attack
def bim(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps: float,
        step_size: float = 1 / 255, steps: int | None = None, loss="ce", stop_at_success: bool = False,
        **loss_kw) -> AttackResult:
    """Kurakin et al.'s basic iterative method (I-FGSM, https://arxiv.org/abs/1607.02533 §2.1;
    document 003 eq. 2), ℓ∞: x_{n+1} = Clip_{x,ε}(x_n + α·sign(∇)), no random start.

    Args:
        model, x, y, targeted, loss, stop_at_success, ``**loss_kw``: as in :func:`pgd`.
        eps: the ℓ∞ radius ε ≥ 0, a number (input units, bounds [0, 1] assumed by the default
            ``steps``).
        step_size: α > 0; Kurakin et al.'s 1/255 by default.
        steps: iterations ≥ 0; default Kurakin et al.'s ``min(255ε + 4, 1.25·255ε)`` rounded up
            (at least 1).

    Returns:
        An :class:`~.core.AttackResult` with ``info["stopped_at"]`` as in :func:`pgd`.

    Raises:
        AttackInputError, TypeError: as :func:`pgd`.
    """
    lossf = losses.get(loss, loss_kw)
    eps_value = checks.nonnegative("eps", eps)
    if steps is None:
        steps = max(1, int(math.ceil(min(255 * eps_value + 4, 1.25 * 255 * eps_value))))
    steps = checks.count("steps", steps, minimum=0)
    x, y, counter, t0 = start(model, x, y)
    return _iterate(model, x, y, counter, t0, targeted=targeted, eps=per_input(eps, len(x), x, name="eps"),
                    step=_step_size(step_size, x), p=INF, steps=steps, lossf=lossf, loss_kw=loss_kw,
                    ball="project", l1_step="sparse", l1_sparsity=0.99, random_start=False,
                    stop_at_success=stop_at_success, seed=0)
