"""Robustness metrics: fooling ratio, document 001's ρ̂₁, ρ̂₂ and ε₉₉, robust accuracy, and
document 002's best, average and worst case.

Definitions follow document 001 (Balda, Behboodi & Mathar, https://arxiv.org/abs/1803.03607),
§II and §IV, Table I (the authors' released code where the
text is silent), and document 002 (Sharma's thesis, §4.3.2; the EAD authors' harness for the
per-metric best and worst case). All functions take per-input tensors and return Python floats
or tensors; the ``AttackResult`` fields they need are named in each docstring.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..attacks.core import Counter, check_inputs
from ..attacks.ops.jacobian import difference_ratios, margin_jacobian, other_classes
from ..models.classifier import Classifier

__all__ = ["fooling_ratio", "margin_gradients", "rho_1", "rho_2", "rho_2_per_input", "deepfool_fooling_curve", "eps_99",
           "robust_accuracy", "CASES", "best_average_worst"]


def _bool(t: Tensor) -> Tensor:
    return torch.as_tensor(t).bool().flatten()


def fooling_ratio(success: Tensor, correct: Tensor | None = None) -> float:
    """The fraction of correctly classified inputs whose prediction the attack changed
    (DeepFool's definition, used by document 001, §IV).

    ``success``: per input, the attack changed the prediction (``AttackResult.success``, or
    ``success_raw`` for unclipped outputs). ``correct``: which inputs the model classifies
    correctly (default: all, as in the paper's 1024 pre-selected images). NaN when none are.
    """
    success = _bool(success)
    correct = torch.ones_like(success) if correct is None else _bool(correct)
    if int(correct.sum()) == 0:
        return math.nan
    return float((success & correct).sum()) / float(correct.sum())


def rho_1(r_norms: Tensor, x: Tensor, fooled: Tensor, p: float = math.inf) -> float:
    """ρ̂₁: the mean over the inputs DeepFool **fooled** of ``‖r(x)‖_p / ‖x‖_p``.

    Args:
        r_norms: (N,) ``‖r‖_p`` of DeepFool's perturbation (``AttackResult.info["norm"]``).
        x: (N, ...) the inputs whose norm divides; the authors use the **pre-processed** image,
           so pass ``(x − mean)/std`` to compare with their CIFAR numbers and the raw [0, 1]
           image for pixel units.
        fooled: (N,) DeepFool's success flags.
        p: the norm of ``‖x‖_p`` (∞ in document 001; DeepFool's paper uses 2).

    NaN when nothing was fooled.
    """
    fooled = _bool(fooled)
    if int(fooled.sum()) == 0:
        return math.nan
    flat = x.flatten(1).abs()
    xn = flat.amax(1) if math.isinf(p) else flat.pow(p).sum(1).pow(1 / p)
    return float((r_norms.flatten()[fooled] / xn[fooled]).mean())


def margin_gradients(model: Classifier, x: Tensor, y: Tensor, *, proxy: str = "logits") -> tuple[Tensor, Tensor]:
    """The linearised margins of each input to every other class: ``df = f_y − f_j`` (N, K − 1)
    and ``dg = ∇f_y − ∇f_j`` ``(N, K − 1, *input_shape)``, for the classes j ≠ y in increasing
    order, at ``x`` (document 001, eq. 3 and §II). ``proxy`` is ``"logits"`` (the authors'
    code) or ``"softmax"``. One forward and K − 1 backward passes per input; both detached.

    Raises:
        AttackInputError: for inputs or labels the model cannot take.
    """
    check_inputs(model, x, y)
    dev = model.device
    x, y = x.to(dev), y.to(dev).long()
    _, df, dg = margin_jacobian(Counter(model, len(x), dev), x, y, other_classes(y, model.num_classes),
                                proxy=proxy)
    return df.detach(), dg.detach()


@torch.no_grad()
def rho_2_per_input(model: Classifier, x: Tensor, y: Tensor, *, p: float = math.inf,
                    definition: str = "code", proxy: str = "logits", batch_size: int = 256) -> Tensor:
    """The per-input term of ρ̂₂, with ``k = y`` and logits by default.

    ``definition="code"`` (the authors' code, default): ``min_{j≠k} (f_k − f_j)/‖∇f_k − ∇f_j‖_q``,
    the linearised distance to the nearest class boundary.
    ``definition="paper"``: the literal ``L(x)/‖∇L(x)‖_q`` with ``L = f_k − f_l``,
    ``l = argmax_{j≠k} f_j`` (the class attaining the min in eq. 3).
    The two differ when the runner-up class is not the minimiser of the ratio; ``code ≤ paper``.

    Misclassified inputs give negative values. One forward and K − 1 backward passes per input.
    """
    if definition not in ("code", "paper"):
        raise ValueError(f"definition must be 'code' or 'paper', not {definition!r}.")
    check_inputs(model, x, y)
    dev = model.device
    vals = []
    for i in range(0, len(x), batch_size):
        df, dg = margin_gradients(model, x[i:i + batch_size], y[i:i + batch_size], proxy=proxy)
        ratios = difference_ratios(df, dg, p, absolute=False)
        if definition == "code":
            vals.append(ratios.min(1).values)
        else:
            vals.append(ratios.gather(1, df.argmin(1, keepdim=True)).squeeze(1))
    return torch.cat(vals) if vals else torch.zeros(0, device=dev)


def rho_2(model: Classifier, x: Tensor, y: Tensor, *, p: float = math.inf, definition: str = "code",
          scale: float = 1.0, proxy: str = "logits", batch_size: int = 256) -> float:
    """ρ̂₂: the mean over **all** given inputs of :func:`rho_2_per_input`, divided by ``scale``
    (the authors divide by the data's dynamic range ``max X − min X``, in their code)."""
    return float(rho_2_per_input(model, x, y, p=p, definition=definition, proxy=proxy,
                                 batch_size=batch_size).mean()) / scale


def deepfool_fooling_curve(r_norms: Tensor, fooled: Tensor, eps: Tensor | float) -> Tensor:
    """DeepFool's fooling ratio at budget ε from **one unconstrained run**:
    ``FR(ε) = mean[fooled ∧ ‖r‖ < ε]`` over all inputs (strict ``<``, as the code). Not DeepFool
    projected onto the ε-ball. Returns one value per ε."""
    fooled = _bool(fooled).to(r_norms.device)
    eps = torch.as_tensor(eps, dtype=r_norms.dtype, device=r_norms.device).flatten()
    return ((r_norms.flatten()[None, :] < eps[:, None]) & fooled[None, :]).float().mean(1)


def eps_99(r_norms: Tensor, fooled: Tensor, *, level: float = 0.99, n_grid: int | None = None,
           scale: float = 1.0) -> float:
    """"Fooled > 99 %" of Table I: on the grid ``linspace(0, max ‖r‖ over fooled
    inputs, n_grid)`` (``n_grid`` defaults to the number of inputs, as the code), the first ε at
    which :func:`deepfool_fooling_curve` exceeds ``level``, divided by ``scale`` (the dynamic range).

    NaN when the curve never exceeds ``level`` on the grid. Because the comparison is strict, the
    input with the largest norm never counts, so ``level = 0.99`` needs more than 100 inputs.
    """
    fooled = _bool(fooled)
    n = len(fooled) if n_grid is None else int(n_grid)
    if int(fooled.sum()) == 0 or n < 1:
        return math.nan
    top = float(r_norms.flatten()[fooled.to(r_norms.device)].max())
    grid = torch.linspace(0, top, n, dtype=r_norms.dtype, device=r_norms.device)
    curve = deepfool_fooling_curve(r_norms, fooled, grid)
    hit = (curve > level).nonzero()
    return math.nan if len(hit) == 0 else float(grid[hit[0, 0]]) / scale


def robust_accuracy(correct: Tensor, success: Tensor, norms: Tensor | None = None,
                    eps: float | None = None) -> float:
    """The fraction of inputs that are correctly classified **and** not broken by the attack.

    A misclassified clean input counts as broken. With ``norms`` and ``eps`` (a minimum-norm attack
    such as DeepFool), an attack success counts only when ``‖r‖ ≤ ε``; without them, ``success``
    is taken as already at the budget (a fixed-ε attack).
    """
    correct, success = _bool(correct), _bool(success)
    if (norms is None) != (eps is None):
        raise ValueError("give both norms and eps, or neither.")
    broken = success
    if norms is not None:
        broken = success & (norms.flatten().to(success.device) <= eps)
    return float((correct & ~broken).float().mean()) if len(correct) else math.nan


#: The three cases of document 002 (§4.3.2), in the order its tables print them.
CASES = ("best", "average", "worst")


def best_average_worst(success: Tensor, norms: dict[str, Tensor], average: Tensor) -> dict[str, dict[str, float]]:
    """Document 002's best, average and worst case (Sharma's thesis §4.3.2, Tables 5 and 8) of a
    targeted attack run on every image towards each of its wrong classes.

    * **best**: an image counts as a success if *any* target succeeded; each distortion is the
      minimum over its successful targets, **per metric** (the best-case L1 and L2 of an image
      may come from different targets, as in the EAD authors' harness);
    * **average**: the one target of column ``average[i]`` (drawn at random per image);
    * **worst**: a success only if *every* target succeeded; each distortion is the maximum
      over the targets, per metric.

    The attack success rate is over all images; each distortion is the mean over the images
    that count as a success in that case (NaN when none does).

    Args:
        success: ``(N, T)`` bool, whether the attack on image i towards its j-th target succeeded
            (``T`` = K − 1 targets, every wrong class).
        norms: ``{name: (N, T)}`` distortions of the same attacks, e.g. ``"l1"``, ``"l2"``,
            ``"linf"`` (values where the attack failed are ignored).
        average: ``(N,)`` integer, the column of each image's average-case target.

    Returns:
        ``{case: {"asr": fraction in [0, 1], "successes": count, "images": N, name: mean, ...}}``
        for the cases of :data:`CASES`.

    Raises:
        ValueError: shapes that disagree, an empty batch, or an ``average`` column out of range.
    """
    ok = torch.as_tensor(success).bool()
    if ok.dim() != 2 or ok.shape[0] == 0 or ok.shape[1] == 0:
        raise ValueError(f"success must be (N, T) with N, T ≥ 1, got shape {tuple(ok.shape)}.")
    n, t = ok.shape
    pick = torch.as_tensor(average, device=ok.device).long().flatten()
    if pick.shape != (n,) or bool(((pick < 0) | (pick >= t)).any()):
        raise ValueError(f"average must hold {n} columns in [0, {t}), got {pick.tolist()}.")
    values = {}
    for name, v in norms.items():
        v = torch.as_tensor(v, device=ok.device).double()
        if v.shape != ok.shape:
            raise ValueError(f"norms[{name!r}] has shape {tuple(v.shape)}, success {tuple(ok.shape)}.")
        values[name] = v
    rows = torch.arange(n, device=ok.device)
    per_case = {
        "best": (ok.any(1), {k: v.masked_fill(~ok, math.inf).amin(1) for k, v in values.items()}),
        "average": (ok[rows, pick], {k: v[rows, pick] for k, v in values.items()}),
        "worst": (ok.all(1), {k: v.amax(1) for k, v in values.items()}),
    }
    out = {}
    for case in CASES:
        hit, per_image = per_case[case]
        count = int(hit.sum())
        out[case] = {"asr": count / n, "successes": count, "images": n,
                     **{k: float(v[hit].mean()) if count else math.nan for k, v in per_image.items()}}
    return out
