"""ZOO: the zeroth-order optimisation black-box attack (Chen, Zhang, Sharma, Yi, Hsieh 2017).

Document 002, §2.2. ZOO minimises the C&W objective

    L(y) = ‖x(y) − x0‖2² + c · f(x(y)),
    f(x) = max(log F(x)_other − log F(x)_t + κ, 0)     (targeted, t = target)
    f(x) = max(log F(x)_l − log F(x)_other + κ, 0)     (untargeted, l = true label)

using only output scores (log-probabilities), by stochastic coordinate descent: every
iteration it draws ``coords_per_iter`` (B = 128) distinct coordinates of the optimisation
variable ``y``, estimates ∂L/∂y_i (and ∂²L/∂y_i²) by symmetric finite differences with step
h = 1e-4 on the *total* loss, and moves each drawn coordinate by a coordinate-wise Adam step
(ZOO-ADAM) or Newton step (ZOO-Newton). Per iteration and input that is 2B + 1 queries: the
current point and ±h on each drawn coordinate.

The optimisation variable ``y`` and the image:

* ``use_tanh=False`` (MNIST in the paper): ``x = clip(x0 + D(y))``; in the full attack space
  each updated coordinate is projected so that x0 + y stays in the box (as the reference code).
* ``use_tanh=True`` (CIFAR-10, ImageNet): ``x = tanh(D(y) + arctanh((2·x0 − 1)·0.999999))``
  mapped back to the bounds; ``y`` is a modifier in tanh space.
* ``D`` is the identity in the full attack space, else bilinear up-sampling
  (``torch.nn.functional.interpolate``) of a smaller perturbation (attack-space dimension
  reduction, eq. 14); without tanh the projection applies whenever the space is the full
  input size, otherwise the up-sampled image is clipped. ``attack_space`` may be a schedule ``((0, 32), (2000, 64), (10000, 128))``
  (:data:`IMAGENET_SCHEDULE`): the hierarchical attack, where at each listed iteration the
  current ``y`` is bilinearly up-sampled and the Adam state is reset.

Importance sampling (``importance_sampling=True``): after a resize, coordinates are drawn with
probability proportional to the max of |y| over an 8 × 8 grid of regions (region side =
side // 8) of the previous perturbation, per image and channel, up-sampled (nearest) to the
new size and normalised. As in the released code the probabilities are computed at each resize
(``importance_refresh="resize"``); ``"iteration"`` also refreshes them after every iteration
from the current perturbation, as the thesis text says. Before the first resize, sampling is
uniform. Coordinates of probability zero are never drawn.

Binary search on ``c`` per input (:class:`~reprolib.attacks.search.ConstSearch`); the variable
and the Adam state restart from zero at every search step; early abort every
``early_stop_iters`` iterations if the loss is above 0.9999 × the loss at the previous check
(per input); over all iterates of all steps the successful point (κ margin included) with the
smallest L2 is kept; an input with none returns x0 and counts as a failure.

Batched: all queries of one iteration, for all inputs still being attacked, go to the model
as one batch. Query counts are exact per input (they are the rows the
:class:`~reprolib.attacks.blackbox.BlackBox` sent to the model); ``max_queries`` stops an input
once it cannot afford another iteration (an iteration needs 2B' + 1 queries; the last one is
shrunk to B' = (left − 1) // 2 coordinates, so an input ends with its budget or its budget − 1
used, never more).

Memory: one iteration holds about 3 · N · (2B + 1) · input-size numbers (N inputs being
attacked); attack large sets in chunks.

Deviations from the reference code (``huanzhang12/ZOO-Attack``), all deliberate:

* the log loss uses ``log(p + prob_floor)`` (``prob_floor = 1e-30`` as the reference, computed
  stably from ``log_softmax``) and honours κ (the reference ignores κ in its log branch; κ = 0
  in every experiment of the paper, where the two agree);
* queries never leave the box: ``x = clip(x0 + D(y))``, so at a pixel on the boundary the
  +h query equals the current point (the reference queries 1e-4 outside the box);
* the L2 term is measured against x0 itself, not the 1e-6-shrunk tanh(arctanh(x0));
* bilinear resizing uses PyTorch's half-pixel convention (``align_corners=False``), not TF1's;
* the current point of the iteration in which an input aborts early is still considered as a
  candidate (the reference breaks before recording it);
* random coordinates come from one ``torch.Generator`` for the batch (Gumbel top-k sampling
  without replacement), so results depend on ``seed`` and on the batch composition;
* no "repeat with c = upper" final step for ≥ 10 search steps.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.classifier import Classifier
from .ops import losses
from .ops.blackbox import BlackBox
from .core import AttackResult, finish, start
from .ops.search import ConstSearch

#: The hierarchical schedule of the ImageNet experiments: 32×32 → 64×64 at it 2,000 → 128×128 at it 10,000.
IMAGENET_SCHEDULE = ((0, 32), (2000, 64), (10000, 128))
#: arctanh argument shrink factor of the reference code (``np.arctanh(img * 1.999999)``).
TANH_SHRINK = 0.999999


def _size(s: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(s, int):
        return (s, s)
    s = tuple(int(v) for v in s)
    if len(s) != 2:
        raise ValueError(f"an attack-space size is an int or (height, width), got {s}")
    return s  # type: ignore[return-value]


def _schedule(attack_space, full: tuple[int, int]) -> list[tuple[int, tuple[int, int]]]:
    """Normalise ``attack_space`` to ``[(start_iteration, (h, w)), ...]`` starting at 0."""
    if attack_space is None:
        return [(0, full)]
    if isinstance(attack_space, int) or (isinstance(attack_space, (tuple, list)) and len(attack_space) == 2
                                         and all(isinstance(v, int) for v in attack_space)):
        return [(0, _size(attack_space))]
    sched = [(int(it), _size(s)) for it, s in attack_space]
    its = [it for it, _ in sched]
    if not sched or its[0] != 0 or any(b <= a for a, b in zip(its, its[1:])):
        raise ValueError(f"attack_space schedule must start at iteration 0 and increase, got {its}")
    for _, (h, w) in sched:
        if not (0 < h <= full[0] and 0 < w <= full[1]):
            raise ValueError(f"attack-space size {(h, w)} must lie within the input size {full}")
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
            unit = (x0 - self.lo) / (self.hi - self.lo)
            self.w0 = torch.atanh((2 * unit - 1) * TANH_SHRINK)

    def image(self, y: Tensor, idx: Tensor) -> Tensor:
        """Images for modifiers ``y`` (a, R, C, h, w) of the inputs ``idx`` (a,): (a, R, C, H, W).
        Works in place on ``y``."""
        a, r = y.shape[:2]
        if tuple(y.shape[3:]) != self.full:
            y = F.interpolate(y.flatten(0, 1), size=self.full, mode="bilinear",
                              align_corners=False).view(a, r, -1, *self.full)
        if self.use_tanh:
            x = y.add_(self.w0[idx][:, None]).tanh_().add_(1).mul_((self.hi - self.lo) / 2).add_(self.lo)
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


def zoo_derivatives(model: Classifier, x: Tensor, y: Tensor, coords: Tensor, *, const: float | Tensor = 1.0,
                    targeted: bool = False, confidence: float = 0.0, h: float = 1e-4,
                    use_tanh: bool = False, prob_floor: float = 1e-30) -> tuple[Tensor, Tensor, Tensor]:
    """ZOO's estimates of ∂L/∂y_i and ∂²L/∂y_i² at y = 0 (the clean input), for the
    coordinates ``coords`` (N, B) of each input, from one batch of 2B + 1 queries per input.

    Returns ``(grad, hess, queries)``. For tests and diagnostics; the attack uses the same code.
    """
    x, y, _, _ = start(model, x, y)
    bb = BlackBox(model, len(x))
    prob = _Problem(bb, x, y, targeted=targeted, confidence=confidence, use_tanh=use_tanh,
                    prob_floor=prob_floor)
    const_t = torch.as_tensor(const, dtype=x.dtype, device=x.device).expand(len(x))
    coords = coords.to(x.device)
    losses, *_ = prob.query(torch.arange(len(x), device=x.device), torch.zeros_like(x), coords,
                            torch.ones_like(coords, dtype=torch.bool), h, const_t)
    g, hs = _derivatives(losses, h)
    return g, hs, bb.queries


def zoo(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    targeted: bool = False,
    solver: str = "adam",
    confidence: float = 0.0,
    binary_search_steps: int = 9,
    initial_const: float = 0.01,
    max_iterations: int = 3000,
    learning_rate: float = 0.01,
    coords_per_iter: int = 128,
    h: float = 1e-4,
    beta1: float = 0.9,
    beta2: float = 0.999,
    adam_eps: float = 1e-8,
    abort_early: bool = True,
    early_stop_iters: int = 100,
    use_tanh: bool = False,
    attack_space=None,
    importance_sampling: bool = False,
    importance_refresh: str = "resize",
    reset_adam: bool = False,
    max_queries: int | Tensor | None = None,
    prob_floor: float = 1e-30,
    seed: int | None = 1216,
) -> AttackResult:
    """ZOO-ADAM / ZOO-Newton on a batch (see the module docstring for the algorithm).

    The defaults are document 002's MNIST settings of Table 1: B = 128 coordinates per
    iteration, h = 1e-4, η = 0.01, Adam β = (0.9, 0.999), ε = 1e-8, 9 binary-search steps from
    c0 = 0.01, 3,000 iterations per step, early abort every 100 iterations, no tanh (projection),
    full attack space, uniform sampling, κ = 0. CIFAR-10: ``use_tanh=True, max_iterations=1000``.
    ImageNet untargeted: ``use_tanh=True, attack_space=32, binary_search_steps=1,
    initial_const=10, learning_rate=0.002, max_iterations=1500, reset_adam=True``; targeted:
    ``attack_space=IMAGENET_SCHEDULE, importance_sampling=True, max_iterations=20000``.

    Args:
        model: the classifier; the attack only sees it through a :class:`BlackBox` (scores),
            except for :func:`~reprolib.attacks.core.finish`'s uncounted re-check.
        x, y: inputs in the model's bounds; true labels, or targets when ``targeted``.
        solver: ``"adam"`` (Alg. 2) or ``"newton"`` (Alg. 3).
        attack_space: ``None`` (full input size), a side or ``(h, w)`` (dimension reduction),
            or a schedule ``[(iteration, size), ...]`` starting at 0 (hierarchical attack).
        max_queries: per-input query budget (an int, or a tensor of one per input), over all
            binary-search steps; ``None`` for no budget.
        seed: seed of the coordinate sampling (the reference code's 1216 by default).

    ``info`` holds ``const`` (c of the step that gave the returned example, NaN on failure),
    ``iterations`` (per input, over all steps), ``first_success_queries`` (queries spent when
    the first successful point was seen, -1 if never), ``l2_best`` and the settings.
    """
    if solver not in ("adam", "newton"):
        raise ValueError(f"solver must be 'adam' or 'newton', not {solver!r}")
    if importance_refresh not in ("resize", "iteration"):
        raise ValueError(f"importance_refresh must be 'resize' or 'iteration', not {importance_refresh!r}")
    if coords_per_iter < 1 or h <= 0 or max_iterations < 0 or binary_search_steps < 1:
        raise ValueError("coords_per_iter ≥ 1, h > 0, max_iterations ≥ 0 and binary_search_steps ≥ 1 are required")
    x, y, counter, started = start(model, x, y)
    n, device, dtype = len(x), x.device, x.dtype
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
    budget = None
    if max_queries is not None:
        budget = torch.as_tensor(max_queries, device=device).long().expand(n).clone()
    if not use_tanh:  # the projection box of the modifier in the full space
        box_lo = (prob.lo - x).flatten(1)
        box_hi = (prob.hi - x).flatten(1)

    search = ConstSearch(n, initial_const, device)
    best_l2 = torch.full((n,), float("inf"), dtype=dtype, device=device)
    best_x = x.clone()
    best_const = torch.full((n,), float("nan"), dtype=dtype, device=device)
    first_success_queries = torch.full((n,), -1, dtype=torch.long, device=device)
    iterations = torch.zeros(n, dtype=torch.long, device=device)
    exhausted = torch.zeros(n, dtype=torch.bool, device=device)
    all_idx = torch.arange(n, device=device)

    for _ in range(binary_search_steps):
        const = search.c.to(dtype)
        mod = torch.zeros(n, channels, *schedule[0][1], dtype=dtype, device=device)
        m = mod[0].numel()
        mt = torch.zeros(n, m, dtype=dtype, device=device)
        vt = torch.zeros(n, m, dtype=dtype, device=device)
        epoch = torch.ones(n, m, dtype=dtype, device=device)
        sample_prob: Tensor | None = None
        prev = torch.full((n,), 1e6, dtype=dtype, device=device)
        last_f = torch.ones(n, dtype=dtype, device=device)
        stage = torch.zeros(n, dtype=torch.bool, device=device)
        step_success = torch.zeros(n, dtype=torch.bool, device=device)
        running = ~exhausted
        for it in range(max_iterations):
            if it in resize_at:  # hierarchical attack: grow the attack space, reset Adam
                new = resize_at[it]
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
            losses, l2, f, ok, x0_now = prob.query(idx, mod[idx], coords, valid, h, const)
            iterations[idx] += 1
            loss0 = losses[:, 0]

            # bookkeeping on the current point (row 0)
            step_success[idx] |= ok
            better = ok & (l2 < best_l2[idx])
            if better.any():
                bi = idx[better]
                newly = first_success_queries[bi] < 0
                # the queries up to and including this iteration's batch
                first_success_queries[bi[newly]] = bb.queries[bi[newly]]
                best_l2[bi] = l2[better]
                best_x[bi] = x0_now[better]
                best_const[bi] = const[bi]

            # coordinate update (Alg. 2 / Alg. 3)
            g, hs = _derivatives(losses, h)
            flat = mod[idx].flatten(1)
            old = flat.gather(1, coords)
            if solver == "adam":
                m_i = beta1 * mt[idx].gather(1, coords) + (1 - beta1) * g
                v_i = beta2 * vt[idx].gather(1, coords) + (1 - beta2) * g * g
                t_i = epoch[idx].gather(1, coords)
                corr = torch.sqrt(1 - beta2 ** t_i) / (1 - beta1 ** t_i)
                new_val = old - learning_rate * corr * m_i / (torch.sqrt(v_i) + adam_eps)
                mt[idx] = mt[idx].scatter(1, coords, torch.where(valid, m_i, mt[idx].gather(1, coords)))
                vt[idx] = vt[idx].scatter(1, coords, torch.where(valid, v_i, vt[idx].gather(1, coords)))
                epoch[idx] = epoch[idx].scatter(1, coords, torch.where(valid, t_i + 1, t_i))
            else:
                hs = torch.where(hs < 0, torch.ones_like(hs), hs).clamp_min(0.1)
                new_val = old - learning_rate * g / hs
            if not use_tanh and tuple(mod.shape[2:]) == prob.full:  # project into the box
                new_val = torch.minimum(torch.maximum(new_val, box_lo[idx].gather(1, coords)),
                                        box_hi[idx].gather(1, coords))
            flat = flat.scatter(1, coords, torch.where(valid, new_val, old))
            mod[idx] = flat.view(-1, *mod.shape[1:])
            if importance_sampling and importance_refresh == "iteration" and sample_prob is not None:
                sample_prob[idx] = importance_probs(mod[idx], tuple(mod.shape[2:]))

            # Adam reset at the first valid example of this step
            if reset_adam:
                first_valid = (f == 0) & (last_f[idx] != 0) & ~stage[idx]
                if first_valid.any():
                    ri = idx[first_valid]
                    mt[ri] = 0
                    vt[ri] = 0
                    epoch[ri] = 1
                    stage[ri] = True
                last_f[idx] = f
            # early abort
            if abort_early and it % early_stop_iters == 0:
                stop = loss0 > prev[idx] * 0.9999
                prev[idx] = torch.where(stop, prev[idx], loss0)
                running[idx[stop]] = False
        search.update(step_success)
        if exhausted.all():
            break

    counter.count_queries(None, bb.queries)
    counter.forwards += bb.queries  # every query is one forward row
    return finish(
        model, x, best_x, y, targeted, counter, started,
        const=best_const, iterations=iterations, first_success_queries=first_success_queries,
        l2_best=best_l2.sqrt(), exhausted=exhausted,
        settings=dict(solver=solver, binary_search_steps=binary_search_steps, initial_const=initial_const,
                      max_iterations=max_iterations, learning_rate=learning_rate,
                      coords_per_iter=coords_per_iter, h=h, confidence=confidence, use_tanh=use_tanh,
                      attack_space=schedule, importance_sampling=importance_sampling,
                      reset_adam=reset_adam, max_queries=max_queries, seed=seed),
    )
