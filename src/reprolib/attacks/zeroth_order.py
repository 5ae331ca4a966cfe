"""ZOO: the zeroth-order optimisation black-box attack, batched with per-input state.

Source: P.-Y. Chen, H. Zhang, Y. Sharma, J. Yi and C.-J. Hsieh, "ZOO: Zeroth Order Optimization
Based Black-box Attacks to Deep Neural Networks without Training Substitute Models", AISec 2017,
https://arxiv.org/abs/1708.03999; document 002 (Sharma's thesis), Ch. 3: the loss (eqs. 10–11),
the finite differences (eqs. 12–13), ZOO-ADAM (Alg. 2), ZOO-Newton (Alg. 3), the attack-space
reduction (eq. 14), the hierarchical attack and importance sampling; the authors' code
``huanzhang12/ZOO-Attack`` (``l2_attack_black.py``, listed in the thesis's Appendix A).

ZOO minimises the C&W objective

    L(y) = ‖x(y) − x0‖2² + c · f(x(y)),
    f(x) = max(log F(x)_other − log F(x)_t + κ, 0)     (targeted, t = target)
    f(x) = max(log F(x)_l − log F(x)_other + κ, 0)     (untargeted, l = true label)

using only output scores (log-probabilities), by stochastic coordinate descent: every
iteration it draws ``coords_per_iter`` (B = 128) distinct coordinates of the optimisation
variable ``y``, estimates ∂L/∂y_i (and ∂²L/∂y_i²) by symmetric finite differences with step
h = 1e-4 on the *total* loss, and moves each drawn coordinate by a coordinate-wise Adam step
(ZOO-ADAM: :func:`~reprolib.attacks.ops.optim.adam_step` in TensorFlow's form, with one step
count per coordinate) or Newton step (ZOO-Newton: a negative curvature counts as 1, a curvature
below 0.1 as 0.1). Per iteration and input that is 2B + 1 queries: the current point and ±h on
each drawn coordinate.

The optimisation variable ``y`` and the image:

* ``use_tanh=False`` (MNIST in the paper): ``x = clip(x0 + D(y))``; in the full attack space
  each updated coordinate is projected so that x0 + y stays in the box (as the reference code).
* ``use_tanh=True`` (CIFAR-10, ImageNet): ``x = tanh(D(y) + arctanh((2·x0 − 1)·0.999999))``
  mapped back to the bounds (:mod:`~reprolib.attacks.ops.box`); ``y`` is a modifier in tanh space.
* ``D`` is the identity in the full attack space, else bilinear up-sampling
  (``torch.nn.functional.interpolate``) of a smaller perturbation (attack-space dimension
  reduction, eq. 14); without tanh the projection applies whenever the space is the full
  input size, otherwise the up-sampled image is clipped. ``attack_space`` may be a schedule
  ``((0, 32), (2000, 64), (10000, 128))`` (:data:`IMAGENET_SCHEDULE`): the hierarchical attack,
  where at each listed iteration the current ``y`` is bilinearly up-sampled and the Adam state
  is reset.

Importance sampling (``importance_sampling=True``): after a resize, coordinates are drawn with
probability proportional to the max of |y| over an 8 × 8 grid of regions (region side =
side // 8) of the previous perturbation, per image and channel, up-sampled (nearest) to the
new size and normalised. As in the released code the probabilities are computed at each resize
(``importance_refresh="resize"``); ``"iteration"`` also refreshes them after every iteration
from the current perturbation, as the thesis text says. Before the first resize, sampling is
uniform. Coordinates of probability zero are never drawn.

Binary search on ``c`` per input (:class:`~reprolib.attacks.ops.search.ConstSearch`); the
variable and the Adam state restart from zero in every round; abort early every
``abort_early_every`` iterations if the loss is above 0.9999 × the loss at the previous check
(per input, :class:`~reprolib.attacks.ops.search.AbortEarly`); over all iterates of all rounds
the successful point (κ margin included) with the smallest L2 is kept
(:class:`~reprolib.attacks.ops.search.BestIterate`); an input with none returns x0 and counts as a
failure.

Batched: all queries of one iteration, for all inputs still being attacked, go to the model
as one batch. Query counts are exact per input (they are the rows the
:class:`~reprolib.attacks.ops.blackbox.BlackBox` sent to the model); ``max_queries`` stops an
input once it cannot afford another iteration (an iteration needs 2B' + 1 queries; the last one
is shrunk to B' = (left − 1) // 2 coordinates, so an input ends with its budget or its budget − 1
used, never more).

Memory: one iteration holds about 4 · N · (2B + 1) · input-size numbers (N inputs being
attacked; 3 without tanh); attack large sets in chunks.

Deviations from the reference code, all deliberate:

* the log loss uses ``log(p + prob_floor)`` (``prob_floor = 1e-30`` as the reference, computed
  stably from ``log_softmax``) and honours κ (the reference ignores κ in its log branch; κ = 0
  in every experiment of the paper, where the two agree);
* queries never leave the box: ``x = clip(x0 + D(y))``, so at a pixel on the boundary the
  +h query equals the current point (the reference queries 1e-4 outside the box);
* the L2 term is measured against x0 itself, not the 1e-6-shrunk tanh(arctanh(x0));
* bilinear resizing uses PyTorch's half-pixel convention (``align_corners=False``), not TF1's;
* the current point of the iteration in which an input aborts early is still considered as a
  candidate (the reference breaks before recording it);
* the first abort-early check compares with +∞, where the reference starts from 1e6 and so ends
  a round whose loss starts above 1e6 even while it is still falling;
* random coordinates come from one ``torch.Generator`` for the batch (Gumbel top-k sampling
  without replacement), so results depend on ``seed`` and on the batch composition, and no seed
  reproduces the reference's numpy draws;
* no "repeat with c = upper" final round for ≥ 10 search steps.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, attack, finish, start
from .ops import checks, losses
from .ops.blackbox import BlackBox
from .ops.box import from_tanh_space, to_tanh_space
from .ops.optim import adam_step
from .ops.search import AbortEarly, BestIterate, ConstSearch

#: The hierarchical schedule of the ImageNet experiments: 32×32 → 64×64 at it 2,000 → 128×128 at it 10,000.
IMAGENET_SCHEDULE = ((0, 32), (2000, 64), (10000, 128))
SOLVERS = ("adam", "newton")
IMPORTANCE_REFRESH = ("resize", "iteration")


def _size(s: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(s, int):
        return (s, s)
    s = tuple(int(v) for v in s)
    if len(s) != 2:
        raise checks.AttackInputError(f"attack_space: a size is an int or (height, width), got {s}.")
    return s  # type: ignore[return-value]


def _schedule(attack_space, full: tuple[int, int]) -> list[tuple[int, tuple[int, int]]]:
    """Normalise ``attack_space`` to ``[(start_iteration, (h, w)), ...]`` starting at 0."""
    if attack_space is None:
        return [(0, full)]
    if isinstance(attack_space, int) or (isinstance(attack_space, (tuple, list)) and len(attack_space) == 2
                                         and all(isinstance(v, int) for v in attack_space)):
        sched = [(0, _size(attack_space))]
    else:
        try:
            sched = [(int(it), _size(s)) for it, s in attack_space]
        except (TypeError, ValueError):
            raise checks.AttackInputError(f"attack_space must be None, a side, (height, width) or a schedule "
                                          f"[(iteration, size), ...], got {attack_space!r}.") from None
        its = [it for it, _ in sched]
        if not sched or its[0] != 0 or any(b <= a for a, b in zip(its, its[1:])):
            raise checks.AttackInputError(f"attack_space: a schedule must start at iteration 0 and increase, "
                                          f"got {its}.")
    for _, (h, w) in sched:
        if not (0 < h <= full[0] and 0 < w <= full[1]):
            raise checks.AttackInputError(f"attack_space: a size {(h, w)} must lie within the input size {full}.")
    return sched


def importance_probs(prev: Tensor, new_size: tuple[int, int], grid: int = 8) -> Tensor:
    """Sampling probabilities for a perturbation of ``new_size`` from the previous one.

    ``prev`` is ``(N, C, h, w)``: |prev| is max-pooled over regions of side ``max(1, h // grid)``
    (per image and channel), each region filled with its max, up-sampled (nearest) to
    ``new_size`` and normalised to sum 1 per image. An all-zero perturbation gives uniform
    probabilities. Returns ``(N, C·H·W)``.
    """
    n, _, h, w = prev.shape
    k = (max(1, h // grid), max(1, w // grid))
    pooled = F.max_pool2d(prev.abs(), kernel_size=k, stride=k, ceil_mode=True)
    filled = pooled.repeat_interleave(k[0], dim=2).repeat_interleave(k[1], dim=3)[:, :, :h, :w]
    prob = F.interpolate(filled, size=new_size, mode="nearest").flatten(1)
    total = prob.sum(1, keepdim=True)
    uniform = torch.full_like(prob, 1.0 / prob.shape[1])
    return torch.where(total > 0, prob / total.clamp_min(torch.finfo(prob.dtype).tiny), uniform)


def _sample_coords(prob: Tensor | None, n: int, m: int, k: int, gen: torch.Generator,
                   device, dtype) -> Tensor:
    """``k`` distinct coordinates of ``m`` per row (Gumbel top-k = sampling without
    replacement proportional to ``prob``; zero-probability coordinates sort last)."""
    u = torch.rand(n, m, generator=gen, device=device, dtype=torch.float64)
    keys = -torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
    if prob is not None:
        keys = keys + torch.log(prob.to(torch.float64))
    return keys.topk(k, dim=1).indices


class _Problem:
    """The black-box objective of ZOO for a batch: turns modifiers into queried images and losses."""

    def __init__(self, bb: BlackBox, x0: Tensor, labels: Tensor, *, targeted: bool, confidence: float,
                 use_tanh: bool, prob_floor: float) -> None:
        self.bb, self.x0, self.labels, self.targeted = bb, x0, labels, targeted
        self.confidence, self.use_tanh = float(confidence), use_tanh
        self.lo, self.hi = bb.bounds
        self.full = tuple(x0.shape[2:])
        self.log_floor = math.log(prob_floor) if prob_floor > 0 else None
        if use_tanh:
            self.w0 = to_tanh_space(x0, bb.bounds)

    def image(self, y: Tensor, idx: Tensor) -> Tensor:
        """Images for modifiers ``y`` (a, R, C, h, w) of the inputs ``idx`` (a,): (a, R, C, H, W).
        Works in place on ``y``."""
        a, r = y.shape[:2]
        if tuple(y.shape[3:]) != self.full:
            y = F.interpolate(y.flatten(0, 1), size=self.full, mode="bilinear",
                              align_corners=False).view(a, r, -1, *self.full)
        if self.use_tanh:
            x = from_tanh_space(y.add_(self.w0[idx][:, None]), (self.lo, self.hi))
        else:
            x = y.add_(self.x0[idx][:, None])
        return x.clamp_(self.lo, self.hi)

    def margin_loss(self, scores: Tensor, labels: Tensor) -> Tensor:
        """f per row from log-probabilities (with the probability floor), κ included."""
        lp = scores if self.log_floor is None else torch.logaddexp(
            scores, torch.tensor(self.log_floor, dtype=scores.dtype, device=scores.device))
        return losses.cw_loss(lp, labels, self.targeted, self.confidence)

    def success(self, scores: Tensor, labels: Tensor) -> Tensor:
        """The reference ``compare``: κ margin on the output scores."""
        return losses.cw_success(scores, labels, self.targeted, self.confidence)

    def query(self, idx: Tensor, y: Tensor, coords: Tensor, valid: Tensor, h: float, const: Tensor):
        """One batch of finite-difference queries for the inputs ``idx``.

        ``y`` (a, C, h, w) are their modifiers, ``coords`` (a, B) the drawn coordinates of which
        ``valid`` (a, B) are used. Returns the total losses (a, 2B + 1) (row 0 = current point,
        2i + 1 = +h on coordinate i, 2i + 2 = −h; unused rows are 0) and, for row 0: l2, f,
        success, and the queried image.
        """
        a, b = coords.shape
        r = 2 * b + 1
        flat = y.flatten(1)
        var = flat.unsqueeze(1).repeat(1, r, 1)  # (a, r, m)
        ar = torch.arange(a, device=y.device)[:, None]
        plus = 1 + 2 * torch.arange(b, device=y.device)[None, :]
        var[ar, plus, coords] += h
        var[ar, plus + 1, coords] -= h
        x = self.image(var.view(a, r, *y.shape[1:]), idx)  # (a, r, C, H, W)
        l2 = (x - self.x0[idx][:, None]).flatten(2).pow_(2).sum(2)  # (a, r)
        if bool(valid.all()):
            rowmask = None
            xq = x.flatten(0, 1)
            owner = idx.repeat_interleave(r)
            l2q = l2.flatten()
        else:
            rowmask = torch.ones(a, r, dtype=torch.bool, device=y.device)
            rowmask[:, 1::2] = valid
            rowmask[:, 2::2] = valid
            xq = x[rowmask]
            owner = idx[:, None].expand(a, r)[rowmask]
            l2q = l2[rowmask]
        scores = self.bb.predict(xq, owner)
        labels = self.labels[owner]
        f = self.margin_loss(scores, labels)
        total = l2q + const[owner] * f
        if rowmask is None:
            losses = total.view(a, r)
            first = torch.arange(a, device=y.device) * r
        else:
            losses = torch.zeros(a, r, dtype=total.dtype, device=y.device)
            losses[rowmask] = total
            counts = rowmask.sum(1)
            first = torch.cumsum(counts, 0) - counts  # position of each input's row 0
        return (losses, l2q[first], f[first], self.success(scores[first], labels[first]), x[:, 0].clone())


def _derivatives(losses: Tensor, h: float) -> tuple[Tensor, Tensor]:
    """Symmetric finite differences (eqs. 12–13): ĝ_i and ĥ_i per drawn coordinate."""
    lp, lm, l0 = losses[:, 1::2], losses[:, 2::2], losses[:, :1]
    return (lp - lm) / (2 * h), (lp - 2 * l0 + lm) / (h * h)


@attack
def zoo(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    targeted: bool = False,
    solver: str = "adam",
    confidence: float = 0.0,
    binary_search_steps: int = 9,
    initial_const: float | Tensor = 0.01,
    steps: int = 3000,
    step_size: float = 0.01,
    coords_per_iter: int = 128,
    h: float = 1e-4,
    abort_early: bool = True,
    abort_early_every: int = 100,
    use_tanh: bool = False,
    attack_space=None,
    importance_sampling: bool = False,
    importance_refresh: str = "resize",
    reset_adam: bool = False,
    max_queries: int | Tensor | None = None,
    prob_floor: float = 1e-30,
    seed: int | None = 0,
    record: bool = False,
) -> AttackResult:
    """ZOO-ADAM / ZOO-Newton on a batch (see the module docstring for the algorithm).

    The defaults are document 002's MNIST settings of Table 1: B = 128 coordinates per
    iteration, h = 1e-4, η = 0.01, 9 binary-search rounds from c₀ = 0.01, 3,000 iterations per
    round, early abort every 100 iterations, no tanh (projection), full attack space, uniform
    sampling, κ = 0. Adam's constants are :mod:`~reprolib.attacks.ops.optim`'s, those of the
    paper: β₁ = 0.9, β₂ = 0.999, ε = 1e-8. CIFAR-10: ``use_tanh=True, steps=1000``. ImageNet
    untargeted: ``use_tanh=True, attack_space=32, binary_search_steps=1, initial_const=10,
    step_size=0.002, steps=1500, reset_adam=True``; targeted: ``attack_space=IMAGENET_SCHEDULE,
    importance_sampling=True, steps=20000``.

    Args:
        model: the classifier; the attack only sees it through a
            :class:`~reprolib.attacks.ops.blackbox.BlackBox` (scores), except for
            :func:`~reprolib.attacks.core.finish`'s uncounted re-check.
        x: inputs ``(N, C, H, W)`` inside the model's bounds.
        y: the true labels ``(N,)``, or the targets when ``targeted``.
        targeted: whether success means predicting ``y``.
        solver: ``"adam"`` (Alg. 2) or ``"newton"`` (Alg. 3).
        confidence: the margin κ ≥ 0 a success must hold, in log-probabilities.
        binary_search_steps: rounds of the per-input binary search on c (≥ 1).
        initial_const: the first c > 0, one number or a tensor of ``N`` values.
        steps: iterations per round (≥ 1).
        step_size: the step size η > 0 of the coordinate updates, in units of ``y``.
        coords_per_iter: coordinates B ≥ 1 drawn per iteration.
        h: the finite-difference step (> 0), in units of ``y``.
        abort_early: end an input's round when its loss stops falling.
        abort_early_every: iterations (≥ 1) between those checks.
        use_tanh: optimise in tanh space (else project onto the box).
        attack_space: ``None`` (full input size), a side or ``(h, w)`` (dimension reduction),
            or a schedule ``[(iteration, size), ...]`` starting at 0 (hierarchical attack).
        importance_sampling: draw coordinates by importance after each resize.
        importance_refresh: ``"resize"`` (the released code) or ``"iteration"`` (the thesis).
        reset_adam: reset the Adam state at the first valid example of each round.
        max_queries: per-input query budget (an integer ≥ 0, or a tensor of one per input), over
            all rounds; ``None`` for no budget.
        prob_floor: the probability floor of the log loss, in [0, 1) (0: none).
        seed: seed (≥ 0) of the coordinate sampling; ``None`` draws a fresh one. Our sampler is
            not the reference's numpy one, so its seed (1216) would reproduce nothing: 0, as every
            reprolib attack.
        record: keep the trajectory of the current point (row 0 of every iteration's queries)
            and the perturbation before each resize, for the curves of Fig. 5 and the map of
            Fig. 2 (see Returns).

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult`; ``info`` holds, per input, ``const``
        (c of the round that gave the returned example, NaN on failure), ``iterations`` (over
        all rounds), ``first_success_queries`` (queries spent when the first successful point
        was seen, −1 if never), ``l2_best`` (the L2 distance of the returned example, ``inf`` on
        failure) and ``exhausted`` (whether the query budget ran out). With ``record``, also
        ``loss_history`` (the total loss L = ‖δ‖2² + c·f), ``l2_history`` (‖δ‖2, not squared) and
        ``attack_loss_history`` (c·f), each of shape (binary_search_steps, steps, N), NaN where
        an input did not run that iteration; and ``modifiers_before_resize``, a list with one
        tensor per resize of the schedule, of shape (binary_search_steps, N, C, h, w) (the
        modifier y, of the size before that resize, from which importance sampling draws; NaN
        for a round that ended earlier).

    Raises:
        AttackInputError: for a setting outside the ranges above, before any model pass.
    """
    checks.choice("solver", solver, SOLVERS)
    checks.nonnegative("confidence", confidence)
    checks.count("binary_search_steps", binary_search_steps)
    checks.count("steps", steps)
    checks.positive("step_size", step_size)
    checks.count("coords_per_iter", coords_per_iter)
    checks.positive("h", h)
    checks.count("abort_early_every", abort_early_every)
    checks.choice("importance_refresh", importance_refresh, IMPORTANCE_REFRESH)
    checks.in_range("prob_floor", prob_floor, 0, 1, high_open=True)
    if seed is not None:
        checks.count("seed", seed, minimum=0)
    x, y, counter, started = start(model, x, y)
    n, device, dtype = len(x), x.device, x.dtype
    budget = None if max_queries is None else _budget(max_queries, n, device)
    search = ConstSearch(n, initial_const, device)
    schedule = _schedule(attack_space, tuple(x.shape[2:]))
    resize_at = {it: s for it, s in schedule[1:]}
    channels = x.shape[1]
    bb = BlackBox(model, n)
    prob = _Problem(bb, x, y, targeted=targeted, confidence=confidence, use_tanh=use_tanh, prob_floor=prob_floor)
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    if not use_tanh:  # the projection box of the modifier in the full space
        box_lo = (prob.lo - x).flatten(1)
        box_hi = (prob.hi - x).flatten(1)

    best = BestIterate(x, const=torch.full((n,), float("nan"), dtype=dtype, device=device))
    first_success_queries = torch.full((n,), -1, dtype=torch.long, device=device)
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    exhausted = torch.zeros(n, dtype=torch.bool, device=device)
    all_idx = torch.arange(n, device=device)
    if record:
        history = {k: torch.full((binary_search_steps, steps, n), math.nan, dtype=dtype, device=device)
                   for k in ("loss_history", "l2_history", "attack_loss_history")}
        before_resize = [torch.full((binary_search_steps, n, channels, *size), math.nan, dtype=dtype, device=device)
                         for (_, size), _ in zip(schedule, schedule[1:])]

    for rnd in range(binary_search_steps):
        const = search.c.to(dtype)
        mod = torch.zeros(n, channels, *schedule[0][1], dtype=dtype, device=device)
        m = mod[0].numel()
        mt = torch.zeros(n, m, dtype=dtype, device=device)
        vt = torch.zeros(n, m, dtype=dtype, device=device)
        epoch = torch.ones(n, m, dtype=dtype, device=device)
        sample_prob: Tensor | None = None
        abort = AbortEarly(n, abort_early_every, x) if abort_early else None
        last_f = torch.ones(n, dtype=dtype, device=device)
        stage = torch.zeros(n, dtype=torch.bool, device=device)
        step_success = torch.zeros(n, dtype=torch.bool, device=device)
        running = ~exhausted
        for it in range(steps):
            if it in resize_at:  # hierarchical attack: grow the attack space, reset Adam
                new = resize_at[it]
                if record:
                    before_resize[list(resize_at).index(it)][rnd] = mod
                if importance_sampling:
                    sample_prob = importance_probs(mod, new)
                mod = F.interpolate(mod, size=new, mode="bilinear", align_corners=False)
                m = mod[0].numel()
                mt = torch.zeros(n, m, dtype=dtype, device=device)
                vt = torch.zeros(n, m, dtype=dtype, device=device)
                epoch = torch.ones(n, m, dtype=dtype, device=device)
            # how many coordinates each running input draws this iteration
            k = torch.full((n,), min(coords_per_iter, m), dtype=torch.long, device=device)
            if sample_prob is not None:
                k = torch.minimum(k, (sample_prob > 0).sum(1))
            if budget is not None:
                left = budget - bb.queries
                k = torch.minimum(k, (left - 1).clamp_min(0) // 2)
                broke = running & (k < 1)
                exhausted |= broke
                running &= ~broke
            if not running.any():
                break
            idx = all_idx[running]
            kmax = int(k[idx].max())
            coords = _sample_coords(None if sample_prob is None else sample_prob[idx], len(idx), m, kmax,
                                    gen, device, dtype)
            valid = torch.arange(kmax, device=device)[None, :] < k[idx][:, None]
            totals, l2, f, ok, x0_now = prob.query(idx, mod[idx], coords, valid, h, const)
            iterations[idx] += 1
            loss0 = totals[:, 0]
            if record:
                history["loss_history"][rnd, it, idx] = loss0
                history["l2_history"][rnd, it, idx] = l2.sqrt()
                history["attack_loss_history"][rnd, it, idx] = const[idx] * f

            # bookkeeping on the current point (row 0)
            step_success[idx] |= ok
            improved = best.offer(idx, x0_now, l2, ok, const=const[idx])
            newly = improved[first_success_queries[improved] < 0]
            first_success_queries[newly] = bb.queries[newly]  # the queries up to and including this batch

            # coordinate update (Alg. 2 / Alg. 3)
            g, hs = _derivatives(totals, h)
            flat = mod[idx].flatten(1)
            old = flat.gather(1, coords)
            if solver == "adam":
                m_old, v_old = mt[idx].gather(1, coords), vt[idx].gather(1, coords)
                t_i = epoch[idx].gather(1, coords)
                step, m_i, v_i = adam_step(g, m_old, v_old, t_i, step_size, form="tf")
                new_val = old - step
                mt[idx] = mt[idx].scatter(1, coords, torch.where(valid, m_i, m_old))
                vt[idx] = vt[idx].scatter(1, coords, torch.where(valid, v_i, v_old))
                epoch[idx] = epoch[idx].scatter(1, coords, torch.where(valid, t_i + 1, t_i))
            else:
                hs = torch.where(hs < 0, torch.ones_like(hs), hs).clamp_min(0.1)
                new_val = old - step_size * g / hs
            if not use_tanh and tuple(mod.shape[2:]) == prob.full:  # project into the box
                new_val = torch.minimum(torch.maximum(new_val, box_lo[idx].gather(1, coords)),
                                        box_hi[idx].gather(1, coords))
            flat = flat.scatter(1, coords, torch.where(valid, new_val, old))
            mod[idx] = flat.view(-1, *mod.shape[1:])
            if importance_sampling and importance_refresh == "iteration" and sample_prob is not None:
                sample_prob[idx] = importance_probs(mod[idx], tuple(mod.shape[2:]))

            # Adam reset at the first valid example of this round
            if reset_adam:
                first_valid = (f == 0) & (last_f[idx] != 0) & ~stage[idx]
                if first_valid.any():
                    ri = idx[first_valid]
                    mt[ri] = 0
                    vt[ri] = 0
                    epoch[ri] = 1
                    stage[ri] = True
                last_f[idx] = f
            stop = None if abort is None else abort.check(it, loss0, idx)
            if stop is not None:
                running[idx[stop]] = False
        search.update(step_success)
        if exhausted.all():
            break

    counter.count_queries(None, bb.queries)
    counter.forwards += bb.queries  # every query is one forward row
    extra = {**history, "modifiers_before_resize": before_resize} if record else {}
    return finish(model, x, best.x, y, targeted, counter, started, const=best["const"], iterations=iterations,
                  first_success_queries=first_success_queries, l2_best=best.dist.sqrt(), exhausted=exhausted,
                  **extra)


def _budget(max_queries, n: int, device) -> Tensor:
    """``max_queries`` as a per-input long tensor, after checking it."""
    if not torch.is_tensor(max_queries) or max_queries.dim() == 0:
        return torch.full((n,), checks.count("max_queries", max_queries, minimum=0), dtype=torch.long, device=device)
    q = max_queries.detach().flatten()
    if q.numel() not in (1, n) or q.is_complex() or q.dtype == torch.bool or not bool((q >= 0).all()) or \
            q.is_floating_point() and not bool((torch.isfinite(q) & (q == q.round())).all()):
        raise checks.AttackInputError(f"max_queries must be an integer ≥ 0 or a tensor of {n} of them "
                                      f"(one per input), got {max_queries!r}.")
    return q.to(device).long().expand(n).clone()
