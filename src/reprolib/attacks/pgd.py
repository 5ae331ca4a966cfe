"""Iterative gradient attacks: PGD (Madry et al.) and I-FGM / BIM (Kurakin et al.) in ℓ∞, ℓ2, ℓ1.

Every iteration, per input:

1. one forward and one backward pass at the current iterate x_n (the objective of
   :mod:`.losses`, summed over the batch, is ascended);
2. a step ``x_n + a·d_n`` with ‖d_n‖_p = 1:

   * ℓ∞: d = sign(∇) (FGSM step);
   * ℓ2: d = ∇/‖∇‖₂;
   * ℓ1, ``l1_step="sparse"`` (default for :func:`pgd`): the sparse steepest-ascent step of
     Tramèr & Boneh's SLIDE: among the coordinates that can still move in the direction of
     their gradient (not already at the box bound it points to), keep those with |∇| at or
     above the ``l1_sparsity`` quantile (0.99: the top 1 %), and set d = sign(∇)/k on those k
     coordinates. This is the ℓ1 steepest-ascent direction spread over the top-k coordinates,
     which is what keeps ℓ1-PGD from stalling on the single largest coordinate.
   * ℓ1, ``l1_step="dense"``: d = ∇/‖∇‖₁, document 002's I-FGM-L1 (EAD's ``ifgm.py``);

3. back into the ε-ball around x0:

   * ``ball="project"`` (PGD): the Euclidean projection: clamp (ℓ∞), radial shrink
     δ·min(1, ε/‖δ‖₂) (ℓ2), or the exact sorting-based ℓ1-ball projection of Duchi et al. 2008
     (:func:`project_l1`, batched);
   * ``ball="rescale"`` (document 002's I-FGM for ℓ1/ℓ2): δ ← δ·ε/‖δ‖, which also scales *up*
     (ℓ∞ is still clamped);

4. clip to the model's box. Since x0 lies in the box, the clip only shrinks |δ_i|, so the
   iterate stays in the ε-ball (for ``ball="project"``).

Random start (``random_start=True``): uniform in the ε-ball (ℓ∞: uniform per coordinate; ℓ2:
uniform in the ball; ℓ1: uniform in the ball via normalised exponentials), then box-clipped.
It costs no model pass.

Early stop (``early_stop=True``): an input whose current iterate is already adversarial (seen
on the forward pass of step n) is frozen there and costs nothing more; ``info["stopped_at"]``
holds that n (−1 if never). Without it, every input takes exactly ``steps`` forward and
backward passes; with it, one forward per visited iterate and one backward per step taken,
except that the backward is skipped when every remaining input succeeded.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models.classifier import Classifier
from .ops import losses
from .core import AttackResult, finish, is_adversarial, start
from .ops.norms import normalize, per_input, project, project_l1, project_l2, project_linf, rescale
from .ops.norms import order as norm_order

INF = float("inf")


# ---------------------------------------------------------------------------------- steps
def sparse_l1_direction(g: Tensor, x: Tensor, bounds: tuple[float, float], sparsity: float) -> Tensor:
    """SLIDE's sparse ℓ1 steepest-ascent direction (unit ℓ1 norm, or 0 if nothing can move):
    sign(g) on the coordinates whose |g| is at or above the ``sparsity`` quantile, among those
    not pinned at the bound their gradient points to; 1/k on each of the k kept coordinates."""
    lower, upper = bounds
    flat_g, flat_x = g.flatten(1), x.flatten(1)
    free = ~(((flat_x <= lower) & (flat_g < 0)) | ((flat_x >= upper) & (flat_g > 0)))
    a = flat_g.abs() * free
    d = a.shape[1]
    k = max(1, min(d, int(math.ceil((1.0 - sparsity) * d))))
    kth = a.topk(k, dim=1).values[:, -1:]
    keep = (a >= kth) & (a > 0)
    count = keep.sum(1, keepdim=True).clamp(min=1)
    return (flat_g.sign() * keep / count).view_as(g)


def _random_start(x: Tensor, eps, order: float, generator: torch.Generator | None) -> Tensor:
    n, d = len(x), x[0].numel()
    e = per_input(eps, n, x).flatten()[:, None]
    kw = dict(generator=generator, dtype=x.dtype)
    if order == INF:
        delta = (torch.rand(n, d, **kw) * 2 - 1).to(x.device) * e
    elif order == 2.0:
        z = torch.randn(n, d, **kw)
        r = torch.rand(n, 1, **kw) ** (1.0 / d)
        delta = (z / z.norm(dim=1, keepdim=True) * r).to(x.device) * e
    else:  # uniform in the ℓ1 ball: d+1 exponentials, normalised, random signs
        ex = -torch.rand(n, d + 1, **kw).clamp(min=1e-12).log()
        s = torch.randint(0, 2, (n, d), generator=generator).to(x.dtype) * 2 - 1
        delta = (s * ex[:, :d] / ex.sum(1, keepdim=True)).to(x.device) * e
    return delta.view_as(x)


# --------------------------------------------------------------------------------- attacks
def pgd(model: Classifier, x: Tensor, y: Tensor, *, eps, norm="linf", steps: int = 40,
        step_size=None, rel_stepsize: float | None = None, random_start: bool = False,
        targeted: bool = False, loss="ce", ball: str = "project", l1_step: str = "sparse",
        l1_sparsity: float = 0.99, early_stop: bool = False,
        generator: torch.Generator | None = None, **loss_kw) -> AttackResult:
    """Projected gradient ascent of ``loss`` in the ε-ball of ``norm`` (see the module text).

    Args:
        eps: the radius, a float or one value per input.
        steps: iterations (each: one forward, one backward per active input).
        step_size: the absolute step a (float or per input). Default ``rel_stepsize·ε``, with
            ``rel_stepsize`` defaulting to 2.5/steps (Madry et al.). Foolbox's ``abs_stepsize``
            and ``rel_stepsize`` mean the same.
        random_start: start uniformly in the ε-ball (Madry's PGD) instead of at x.
        ball: ``"project"`` (PGD) or ``"rescale"`` (document 002's I-FGM, ℓ1/ℓ2).
        l1_step: ``"sparse"`` (top-(1−l1_sparsity) coordinates, SLIDE) or ``"dense"`` (∇/‖∇‖₁).
        early_stop: freeze each input at its first adversarial iterate.
        generator: the random source of the start.
        loss, loss_kw: the objective, by name (:data:`.losses.LOSSES`), and its parameters.

    ``info``: ``stopped_at`` (first step whose iterate was seen adversarial, −1 if none; only
    tracked with ``early_stop``), and the settings.
    """
    x, y, counter, t0 = start(model, x, y)
    order = norm_order(norm)
    lossf = losses.get(loss)
    if ball not in ("project", "rescale"):
        raise ValueError(f"ball must be 'project' or 'rescale', not {ball!r}")
    if l1_step not in ("sparse", "dense"):
        raise ValueError(f"l1_step must be 'sparse' or 'dense', not {l1_step!r}")
    if not 0.0 <= l1_sparsity < 1.0:
        raise ValueError(f"l1_sparsity must lie in [0, 1), got {l1_sparsity}")
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    n = len(x)
    if step_size is None:
        rel = 2.5 / max(steps, 1) if rel_stepsize is None else rel_stepsize
        step = per_input(eps, n, x) * rel
    else:
        step = per_input(step_size, n, x)
    eps_t = per_input(eps, n, x).flatten()
    lower, upper = model.bounds
    to_ball = project if ball == "project" else rescale

    x_adv = x.clone()
    if random_start:
        x_adv = (x + _random_start(x, eps_t, order, generator)).clamp(lower, upper)
    stopped_at = torch.full((n,), -1, dtype=torch.long, device=x.device)
    active = torch.arange(n, device=x.device)
    for it in range(steps):
        idx = active if early_stop else None
        xa, ya = x_adv[active], y[active]
        if early_stop:
            x_var = xa.detach().requires_grad_(True)
            with torch.enable_grad():
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
        if order == 1.0 and l1_step == "sparse":
            d = sparse_l1_direction(g, xa, model.bounds, l1_sparsity)
        else:
            d = normalize(g, order)
        x0 = x[active]
        delta = xa + step[active] * d - x0
        delta = to_ball(delta, eps_t[active], order)
        x_adv[active] = (x0 + delta).clamp(lower, upper)
        if len(active) == 0:
            break
    return finish(model, x, x_adv, y, targeted, counter, t0, attack="pgd", norm=str(norm),
                  eps=eps, steps=steps, random_start=random_start, ball=ball,
                  l1_step=l1_step if order == 1.0 else None, loss=lossf.name,
                  early_stop=early_stop, stopped_at=stopped_at)


def ifgm(model: Classifier, x: Tensor, y: Tensor, *, eps, norm="linf", steps: int = 10,
         step_size=None, targeted: bool = False, loss="ce", early_stop: bool = False,
         **loss_kw) -> AttackResult:
    """Document 002's I-FGM (EAD's ``ifgm.py``): ``steps`` FGM steps of size ε/steps (dense
    ℓ1/ℓ2-normalised or sign gradients), each followed by "ε-ball clipping": clamp for ℓ∞, and
    δ ← δ·ε/‖δ‖ for ℓ1/ℓ2 (scales up too), then the box clip. No random start."""
    if step_size is None:
        step_size = per_input(eps, len(x), x).flatten() / max(steps, 1)
    res = pgd(model, x, y, eps=eps, norm=norm, steps=steps, step_size=step_size,
              random_start=False, targeted=targeted, loss=loss, ball="rescale", l1_step="dense",
              early_stop=early_stop, **loss_kw)
    res.info["attack"] = "ifgm"
    return res


def bim(model: Classifier, x: Tensor, y: Tensor, *, eps: float, step_size: float = 1 / 255,
        steps: int | None = None, targeted: bool = False, loss="ce", early_stop: bool = False,
        **loss_kw) -> AttackResult:
    """Kurakin et al.'s basic iterative method (I-FGSM), ℓ∞: x_{n+1} = Clip_{x,ε}(x_n + α·sign(∇)),
    no random start. Defaults (card 003 §2.2): α = 1/255 and ``steps = min(255ε + 4, 1.25·255ε)``
    rounded up (at least 1)."""
    if steps is None:
        steps = max(1, int(math.ceil(min(255 * eps + 4, 1.25 * 255 * eps))))
    res = pgd(model, x, y, eps=eps, norm="linf", steps=steps, step_size=step_size,
              random_start=False, targeted=targeted, loss=loss, ball="project",
              early_stop=early_stop, **loss_kw)
    res.info["attack"] = "bim"
    return res
