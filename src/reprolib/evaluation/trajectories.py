"""Per-iteration statistics of document 003's targeted iteration
(:func:`~reprolib.attacks.targeted_iteration.iterative_targeted`).

Ozbulak, Gasparyan, De Neve & Van Messem, *Perturbation Analysis of Gradient-based Adversarial
Attacks* (https://arxiv.org/abs/2006.01456), study four perturbation sources (CE, CE-sign, logit,
M-logit) under two step rules through what happens at every iteration. This module turns the
attack's per-iteration trajectories into what their figures and tables show:

* :func:`summarize` — an attack result as per-input tensors, for :func:`reprolib.evaluation.run.run_attack`
  (so a sweep is cached per batch);
* :func:`regions`, :func:`region_shares`, :func:`phase_spans` — Definition IV.1's subspaces D1, D2,
  D3 (threshold 0.9 on the softmax) per state, their shares per iteration, and the spans a figure
  shades (Fig. 1);
* :func:`mean_band` — mean and normal 95 % band per iteration, ignoring states not visited (Figs. 1–4);
* :func:`iteration_summary` — "iterations needed" (Table I): mean ± std over the inputs that reach
  the target, the median, and the share that never does;
* :func:`choose_step` — the calibration rule of the reproduction notes (§4) for α and β;
* :func:`plateau_ratio` — how much of a curve's rise happens in its last part (the "limited
  optimisation space" of Figs. 2b/3b);
* :func:`softmax_underflow_margins` — the logit margins at which the CE gradient's terms become
  exactly zero in a floating-point type (§IV-B of the paper; notes §2.6), with denormal numbers
  kept (CPUs) or flushed (:func:`denormals_flushed`, as GPUs do);
* :func:`ce_gradient_decomposition` — Theorem IV.2 measured on a model: the CE gradient against
  its D1 limit ∇g_r − ∇g_c;
* :func:`time_per_iteration` — per-iteration wall time at batch size 1 (Table I's time columns);
* :func:`quantise` — the 8-bit copy of an image (Tables II–III on a uint8-quantised copy).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

#: Definition IV.1's confidence threshold on the softmax.
THRESHOLD = 0.9
#: The region codes :func:`regions` returns (0: a state the attack did not visit).
D1, D2, D3 = 1, 2, 3
REGION_NAMES = {D1: "D1", D2: "D2", D3: "D3"}

#: The trajectory fields of :func:`~reprolib.attacks.targeted_iteration.iterative_targeted` at the states X_0 … X_T
#: and at the steps 0 … T − 1.
STATE_KEYS = ("p_target", "z_target", "p_initial", "z_initial", "p_max", "pred")
STEP_KEYS = ("grad_l2", "step_l1", "step_size", "stalled")


def summarize(result, model=None) -> dict[str, Tensor]:
    """An :func:`~reprolib.attacks.targeted_iteration.iterative_targeted` result as per-input tensors (the first
    dimension is the input), the form :func:`reprolib.evaluation.run.run_attack` concatenates
    over batches.

    Args:
        result: an :class:`~reprolib.attacks.core.AttackResult` of ``iterative_targeted``.
        model: the attacked classifier; when given, one more forward pass measures the final
            margin (below).

    Returns:
        ``first_success`` (N,) int64 (−1: never), ``success_l2``, ``success_linf`` (N,) float (NaN:
        never), ``stalled`` (N,) bool, ``initial_class`` and ``target`` (N,) int64,
        ``success_x`` ``(N, *input_shape)`` (X_{n*} at first success; the last iterate for inputs
        that never succeed), with ``record=True`` every trajectory field transposed to
        ``(N, T + 1)`` (states) or ``(N, T)`` (steps), and with ``model`` ``final_margin`` (N,):
        g_c − max_{i≠c} g_i at the last iterate X_T, in logit units (the height a loss has pushed
        the target logit above the others: the "optimisation space" of Theorem IV.2).

    Raises:
        KeyError: ``result`` is not from ``iterative_targeted``.
    """
    info = result.info
    target = result.labels.detach().cpu()
    out = {"first_success": info["first_success"], "success_l2": info["success_l2"],
           "success_linf": info["success_linf"], "stalled": info["stalled"],
           "initial_class": info["initial_class"], "target": target, "success_x": info["success_x"]}
    for key, value in info.get("trajectory", {}).items():
        out[key] = value.T.contiguous()
    if model is not None:
        with torch.no_grad():
            z = model(result.x_adv.to(next(model.parameters()).device)).detach().double().cpu()
        other = z.masked_fill(F.one_hot(target, z.shape[1]).bool(), -math.inf).amax(1)
        out["final_margin"] = (z.gather(1, target[:, None]).squeeze(1) - other).float()
    return out


def regions(p_max: Tensor, pred: Tensor, target: Tensor, threshold: float = THRESHOLD) -> Tensor:
    """Definition IV.1 per state: ``D1`` (1) max S ≥ ``threshold`` and argmax ≠ target, ``D2`` (2)
    max S < ``threshold``, ``D3`` (3) max S ≥ ``threshold`` and argmax = target; 0 where the state
    was not visited (``p_max`` NaN or ``pred`` −1).

    The paper's D3 reads "S(g) ≥ 0.9", a typo for max S ≥ 0.9 (notes §2.4).

    Args:
        p_max: max softmax per state, ``(..., N)`` float in [0, 1] (NaN: not visited).
        pred: argmax per state, same shape, int64 (−1: not visited).
        target: the target class per input, ``(N,)`` int64 (broadcast over the leading dims).
        threshold: the confidence threshold in (0, 1).

    Returns:
        int64 codes of ``p_max``'s shape.

    Raises:
        ValueError: shapes that differ, or a threshold outside (0, 1).
    """
    if p_max.shape != pred.shape:
        raise ValueError(f"p_max {tuple(p_max.shape)} and pred {tuple(pred.shape)} must have the same shape.")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}.")
    confident = p_max >= threshold
    on_target = pred == target.to(pred.device)
    codes = torch.where(confident, torch.where(on_target, D3, D1), D2).long()
    return codes.masked_fill(torch.isnan(p_max) | (pred < 0), 0)


def region_shares(codes: Tensor) -> np.ndarray:
    """The share of visited inputs in D1, D2 and D3 at each state.

    Args:
        codes: :func:`regions` of ``(T + 1, N)`` states.

    Returns:
        ``(T + 1, 3)`` float array; each row sums to 1 (NaN where no input was visited).
    """
    visited = (codes > 0).sum(1, keepdim=True).double()
    counts = torch.stack([(codes == r).sum(1) for r in (D1, D2, D3)], 1).double()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (counts / visited).numpy()


def phase_spans(codes: Tensor) -> list[tuple[str, int, int]]:
    """The spans of iterations in which each region holds the most inputs, for shading a figure
    (Fig. 1's blue, green and red areas).

    Each state n is given the region with the largest share of visited inputs (ties: the lower
    region); consecutive states with the same region form a span ``(name, first, last)``, both
    inclusive iteration numbers.

    Args:
        codes: :func:`regions` of ``(T + 1, N)`` states.

    Returns:
        The spans in order, e.g. ``[("D1", 0, 11), ("D2", 12, 30), ("D3", 31, 100)]``; states
        no input visited are left out.
    """
    shares = region_shares(codes)
    spans: list[tuple[str, int, int]] = []
    for n, row in enumerate(shares):
        if np.isnan(row).all():
            continue
        name = REGION_NAMES[int(np.argmax(row)) + 1]
        if spans and spans[-1][0] == name and spans[-1][2] == n - 1:
            spans[-1] = (name, spans[-1][1], n)
        else:
            spans.append((name, n, n))
    return spans


def mean_band(values: Tensor | np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and normal confidence band ``mean ± z·std/√n`` per row, ignoring NaN (states not visited).

    Args:
        values: ``(T, N)``: T points (iterations), N inputs.
        z: the normal quantile (1.96: 95 %).

    Returns:
        ``(mean, lower, upper)``, each ``(T,)``; NaN where a row has no value, and a zero-width
        band where it has one (std with ddof = 1 needs two).

    Raises:
        ValueError: ``values`` is not 2-D.
    """
    v = values.detach().cpu().double().numpy() if torch.is_tensor(values) else np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be (T, N), got shape {v.shape}.")
    finite = ~np.isnan(v)
    n = finite.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(v, 1) / np.maximum(n, 1), np.nan)
        dev = np.where(finite, v - mean[:, None], 0.0)
        std = np.sqrt(np.where(n > 1, (dev ** 2).sum(1) / np.maximum(n - 1, 1), 0.0))
        half = z * std / np.sqrt(np.maximum(n, 1))
    half = np.where(n > 0, half, np.nan)
    return mean, mean - half, mean + half


def iteration_summary(first_success: Tensor | np.ndarray) -> dict[str, float]:
    """Table I's "iterations needed" over a set of inputs.

    Args:
        first_success: ``(N,)`` the first iteration at which each input is classified as its
            target (−1: never within the run).

    Returns:
        ``n`` (inputs), ``reached`` (count), ``never`` (share in [0, 1]), and over the inputs that
        reached the target ``mean``, ``std`` (ddof = 1; 0 for one input) and ``median``
        (NaN when none reached); ``median_all`` is the median over all inputs with "never"
        counted as +∞ (the calibration rule's statistic).
    """
    f = np.asarray(first_success.cpu() if torch.is_tensor(first_success) else first_success, dtype=float)
    ok = f >= 0
    hits = f[ok]
    as_inf = np.where(ok, f, np.inf)
    return {"n": int(f.size), "reached": int(ok.sum()), "never": float(1 - ok.mean()) if f.size else math.nan,
            "mean": float(hits.mean()) if hits.size else math.nan,
            "std": float(hits.std(ddof=1)) if hits.size > 1 else (0.0 if hits.size else math.nan),
            "median": float(np.median(hits)) if hits.size else math.nan,
            "median_all": float(np.median(as_inf)) if f.size else math.nan}


@dataclass(frozen=True)
class Calibration:
    """What :func:`choose_step` chose: ``value``, the rule's ``reason`` in words, and ``rows``,
    one dict per (candidate, loss) with ``value``, ``loss``, ``reach`` (share that reached the
    target), ``median`` (median iteration count, "never" as +∞) and ``qualifies``."""

    value: float
    reason: str
    rows: list[dict] = field(default_factory=list)


def choose_step(runs: Mapping[float, Mapping[str, Tensor]], *, reference: str = "ce",
                target_median: float = 50.0, min_reach: float = 0.95) -> Calibration:
    """The reproduction notes' calibration rule (§4) for a step setting (α or β).

    A candidate *qualifies* when every loss brings at least ``min_reach`` of the calibration
    images to their target within the run. Among the qualifying candidates, the rule takes the
    one whose median iteration count of the ``reference`` loss (the notes: CE) is closest to
    ``target_median`` (the notes: ≈ 50) on a log scale, ties to the smaller value. When none
    qualifies it takes the candidate with the largest smallest reach over the losses (ties: the
    closer median), and says so.

    Args:
        runs: ``{candidate value: {loss: first_success (N,)}}`` (−1: never), every candidate
            with the same losses, ``reference`` among them.
        reference: the loss whose median is matched.
        target_median: the median iteration count aimed at, > 0.
        min_reach: the share of images every loss must bring to the target, in (0, 1].

    Returns:
        A :class:`Calibration`.

    Raises:
        ValueError: no candidates, a candidate without the ``reference`` loss, or arguments
            out of range.
    """
    if not runs:
        raise ValueError("choose_step needs at least one candidate.")
    if not target_median > 0 or not 0 < min_reach <= 1:
        raise ValueError(f"need target_median > 0 and min_reach in (0, 1], got {target_median}, {min_reach}.")
    rows, scores = [], {}
    for value in sorted(runs):
        per_loss = runs[value]
        if reference not in per_loss:
            raise ValueError(f"candidate {value} has no run of the reference loss {reference!r}.")
        stats = {loss: iteration_summary(f) for loss, f in per_loss.items()}
        worst = min(1 - s["never"] for s in stats.values())
        qualifies = worst >= min_reach
        med = stats[reference]["median_all"]
        distance = abs(math.log(med / target_median)) if math.isfinite(med) and med > 0 else math.inf
        scores[value] = (qualifies, worst, distance)
        rows += [{"value": value, "loss": loss, "reach": 1 - s["never"], "median": s["median_all"],
                  "qualifies": qualifies} for loss, s in stats.items()]
    qualified = [v for v, s in scores.items() if s[0]]
    if qualified:
        value = min(qualified, key=lambda v: (scores[v][2], v))
        med = next(r["median"] for r in rows if r["value"] == value and r["loss"] == reference)
        reason = (f"{len(qualified)} of {len(runs)} candidates bring ≥ {min_reach:.0%} of the images to the target "
                  f"with every loss; of those, {value:g} puts the median {reference} iteration count ({med:g}) "
                  f"closest to {target_median:g}")
    else:
        value = max(scores, key=lambda v: (scores[v][1], -scores[v][2], -v))
        reason = (f"no candidate brings ≥ {min_reach:.0%} of the images to the target with every loss; {value:g} "
                  f"has the largest smallest reach ({scores[value][1]:.0%})")
    return Calibration(float(value), reason, rows)


def plateau_ratio(curve: Sequence[float] | np.ndarray, tail: float = 0.2) -> float:
    """The share of a curve's rise that happens in its last ``tail`` fraction of iterations:
    ``(c[T] − c[T − k]) / (c[T] − c[0])`` with ``k = round(tail·T)``.

    A curve rising at a steady rate gives ≈ ``tail``; one that has levelled off gives ≈ 0 (the
    "limited optimisation space" of the target logit under CE, Figs. 2b/3b).

    Args:
        curve: ``(T + 1,)`` values, e.g. the mean target logit per iteration.
        tail: the fraction in (0, 1).

    Returns:
        The ratio (NaN when the curve does not rise overall, c[T] ≤ c[0]).

    Raises:
        ValueError: a tail outside (0, 1) or a curve shorter than 2 points.
    """
    c = np.asarray(curve, dtype=float)
    if c.ndim != 1 or c.size < 2:
        raise ValueError("curve must be 1-D with at least 2 points.")
    if not 0 < tail < 1:
        raise ValueError(f"tail must lie in (0, 1), got {tail}.")
    t = c.size - 1
    k = max(1, int(round(tail * t)))
    total = c[-1] - c[0]
    if not total > 0:
        return math.nan
    return float((c[-1] - c[-1 - k]) / total)


@contextlib.contextmanager
def denormals_flushed(on: bool = True):
    """A block in which the CPU flushes denormal floating-point numbers to zero, as GPUs do by
    default (``torch.set_flush_denormal``); yields whether the CPU supports it (x86 with SSE3).

    torch cannot report the setting in force before the block; it is restored to torch's default
    (off) afterwards. With ``on=False`` the block runs unchanged.
    """
    if not on:
        yield False
        return
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(False)


def softmax_underflow_margins(dtype: torch.dtype = torch.float32, classes: int = 2,
                              device: str | torch.device = "cpu", flush_denormal: bool = False) -> dict[str, float]:
    """The logit margins at which the cross-entropy gradient's terms become exactly zero.

    With logits ``(m, 0, …, 0)`` (``classes`` entries) and the target the first class,
    ∂CE/∂z = softmax(z) − onehot: the target term p_c − 1 and each other term p_i ≈ e^{−m}.
    The function finds, by bisection on the actual ``torch.nn.functional.cross_entropy``
    backward pass in ``dtype`` on ``device``, the smallest margin at which

    * ``"target_term"``: p_c − 1 is exactly 0 (CE's pull on the target logit stops);
    * ``"all_terms"``: every term is exactly 0 (the gradient, and so its sign, is exactly 0).

    Card §2.6: float32 ≈ 16.6–17 and ≈ 87 (denormals flushed, ``flush_denormal=True`` on a CPU,
    the default on GPUs) to ≈ 104 (denormals kept); float64 ≈ 36.7 and ≈ 745. The paper's "1e-8
    single / 1e-16 double" (§IV-B) is the relative precision, not these thresholds.

    Returns:
        ``{"target_term": m1, "all_terms": m2}`` in logit units, each to within 1e-3 (∞ beyond 1e5).

    Raises:
        ValueError: ``classes`` < 2.
    """
    if classes < 2:
        raise ValueError(f"classes must be ≥ 2, got {classes}.")

    def grad(m: float) -> Tensor:
        z = torch.zeros(1, classes, dtype=dtype, device=device)
        z[0, 0] = m
        z.requires_grad_(True)
        F.cross_entropy(z, torch.zeros(1, dtype=torch.long, device=device), reduction="sum").backward()
        return z.grad[0].cpu()

    def first_zero(test) -> float:
        lo, hi = 0.0, 1.0
        while not test(hi):
            lo, hi = hi, hi * 2
            if hi > 1e5:
                return math.inf
        while hi - lo > 1e-3:
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if test(mid) else (mid, hi)
        return hi

    with denormals_flushed(flush_denormal):
        return {"target_term": first_zero(lambda m: bool(grad(m)[0] == 0)),
                "all_terms": first_zero(lambda m: bool((grad(m) == 0).all()))}


def ce_gradient_decomposition(model, x: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Theorem IV.2 on a model: how close the CE gradient is to its D1 limit ∇g_r − ∇g_c.

    With p = softmax(g) and r = argmax_{i≠c} g_i (the class the input is in when it is in D1),
    the exact gradient is ∇_x J = Σ_{m≠c} p_m (∇g_m − ∇g_c) (eq. 23 of the proof), which tends to
    ∇g_r − ∇g_c as p_r → 1 (eq. 8). Two backward passes per input measure both sides.

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)``.
        target: ``(N,)`` target classes c.

    Returns:
        ``cosine`` (N,): cos(∇_x J, ∇g_r − ∇g_c); ``norm_ratio`` (N,):
        ‖∇_x J‖₂ / ‖∇g_r − ∇g_c‖₂;
        ``p_rival`` (N,): p_r; ``region`` (N,): Definition IV.1's code of x. Float64 norms.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        z = model(x)
        other = z.detach().masked_fill(F.one_hot(target, z.shape[1]).bool(), -math.inf)
        rival = other.argmax(1)
        (g_ce,) = torch.autograd.grad(F.cross_entropy(z, target, reduction="sum"), x, retain_graph=True)
        diff = z.gather(1, rival[:, None]).squeeze(1) - z.gather(1, target[:, None]).squeeze(1)
        (g_lim,) = torch.autograd.grad(diff.sum(), x)
    a, b = g_ce.flatten(1).double(), g_lim.flatten(1).double()
    p = z.detach().softmax(1)
    codes = regions(p.amax(1), p.argmax(1), target)
    return {"cosine": F.cosine_similarity(a, b, dim=1).cpu(), "norm_ratio": (a.norm(dim=1) / b.norm(dim=1)).cpu(),
            "p_rival": p.gather(1, rival[:, None]).squeeze(1).cpu(), "region": codes.cpu()}


def time_per_iteration(model, x: Tensor, targets: Tensor, *, settings: Mapping[str, Mapping],
                       steps: int) -> list[dict]:
    """Per-iteration wall time of :func:`~reprolib.attacks.targeted_iteration.iterative_targeted` at batch size 1
    (Table I's time columns; the paper times 250 iterations per image on a Titan-X).

    Every image is attacked once under every setting; the order of the settings rotates from
    one image to the next, so that a slow drift of the machine's speed (another process,
    thermal throttling) spreads over all settings instead of biasing the ones run last. On CUDA
    the device is synchronised before and after each run. ``record=False``: no trajectories.

    Args:
        model: the classifier.
        x: images ``(N, *model.input_shape)``.
        targets: ``(N,)`` target classes.
        settings: ``{label: keyword arguments of iterative_targeted}`` (``loss``, ``mode``, ...).
        steps: iterations per run (T).

    Returns:
        A list with one dict per run, holding ``setting`` (label), ``image`` (row of ``x``),
        ``seconds`` (the whole run: T + 1 forward and T backward passes, plus the attack's final
        re-check) and ``per_iteration`` (seconds / T).

    Raises:
        ValueError: ``steps`` < 1 or no settings.
    """
    from ..attacks import iterative_targeted

    if steps < 1 or not settings:
        raise ValueError("time_per_iteration needs steps ≥ 1 and at least one setting.")
    labels = list(settings)
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for i in range(len(x)):
        order = labels[i % len(labels):] + labels[:i % len(labels)]
        for label in order:
            sync()
            t0 = time.perf_counter()
            iterative_targeted(model, x[i:i + 1], targets[i:i + 1], targeted=True, steps=steps, record=False,
                               **settings[label])
            sync()
            seconds = time.perf_counter() - t0
            rows.append({"setting": label, "image": i, "seconds": seconds, "per_iteration": seconds / steps})
    return rows


def quantise(x: Tensor, levels: int = 255) -> Tensor:
    """``round(x·levels)/levels``: the image as an 8-bit file stores it (``levels`` = 255), in [0, 1].

    Args:
        x: images in [0, 1], any shape.
        levels: the number of steps between 0 and 1 (≥ 1).

    Returns:
        The quantised copy, same shape and dtype.

    Raises:
        ValueError: ``levels`` < 1.
    """
    if levels < 1:
        raise ValueError(f"levels must be ≥ 1, got {levels}.")
    return torch.round(x * levels) / levels


__all__ = ["THRESHOLD", "D1", "D2", "D3", "REGION_NAMES", "STATE_KEYS", "STEP_KEYS", "summarize", "regions",
           "region_shares", "phase_spans", "mean_band", "iteration_summary", "Calibration", "choose_step",
           "plateau_ratio", "denormals_flushed", "softmax_underflow_margins", "ce_gradient_decomposition",
           "time_per_iteration", "quantise"]
