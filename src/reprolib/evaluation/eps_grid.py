"""The smallest successful ε on a grid: document 002's protocol for FGM and I-FGM (its Table 4).

Source: Sharma's thesis (document 002), §4.3.1 and Table 4: "for each image, the smallest ε
leading to a successful attack is reported", with grids such as ``np.arange(1e-3, 1, 1e-3)``
(999 values; the EAD authors' harness builds them with ``np.arange``, so the upper end is left
out). The grid is scanned from its smallest value and each input stops at its first success,
which gives the same ε as scanning the whole grid and keeping the smallest success, for a
fraction of the passes (the reproduction notes' CPU plan).

* :func:`smallest_eps_fgm`: FGM (:mod:`reprolib.attacks.fast_gradient`) takes one gradient at
  x0, so every candidate ``clip(x0 + ε·d)`` of the grid reuses the same direction ``d``; the
  candidates are checked ``chunk`` grid values at a time, one forward pass per candidate.
* :func:`smallest_eps_ifgm`: I-FGM (:func:`reprolib.attacks.projected_gradient.ifgm`, ``steps``
  steps of ε/steps with ε-ball clipping) is rerun from x0 for every grid value an input tries,
  on all inputs that have not succeeded yet; the thesis's 10 steps × 999 grid values are the
  "10,000 gradients per image" it compares with EAD's 9,000.

Both return an :class:`~reprolib.attacks.core.AttackResult` like an attack's: the example at the
smallest successful ε (the clean input and a failure where no grid value succeeds), success
re-checked by a fresh forward pass, the norms, and the passes spent per input, the checks of the
candidates included.
"""
from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from ..attacks.core import AttackResult, Counter, check_inputs, finish, is_adversarial, start
from ..attacks.fast_gradient import direction
from ..attacks.ops import losses
from ..attacks.ops.checks import AttackInputError
from ..attacks.ops.norms import order
from ..attacks.projected_gradient import ifgm
from ..models.classifier import Classifier, eval_mode

__all__ = ["smallest_eps_fgm", "smallest_eps_ifgm"]


def _grid(grid) -> Tensor:
    """``grid`` as a 1-D float64 tensor of finite values > 0 in increasing order."""
    g = torch.as_tensor(grid, dtype=torch.float64).flatten()
    if g.numel() == 0 or not bool(torch.isfinite(g).all()) or not bool((g > 0).all()) \
            or not bool((g[1:] > g[:-1]).all()):
        raise AttackInputError(f"grid must hold finite values > 0 in increasing order, got {g.tolist()[:8]} …")
    return g


def _result(model: Classifier, x: Tensor, best: Tensor, y: Tensor, targeted: bool, counter: Counter,
            started: float, grid: Tensor, index: Tensor, attack: str, params: dict) -> AttackResult:
    """The result at each input's first successful grid value (``index``, −1: none)."""
    eps = torch.full((len(index),), math.nan, dtype=torch.float64, device=index.device)
    eps[index >= 0] = grid.to(index.device)[index[index >= 0]]
    with eval_mode(model):
        r = finish(model, x, best, y, targeted, counter, started, eps=eps, grid_index=index)
    r.attack, r.params = attack, params
    return r


def smallest_eps_fgm(model: Classifier, x: Tensor, y: Tensor, *, grid, norm="linf", targeted: bool = False,
                     loss="ce", chunk: int = 8, **loss_kw) -> AttackResult:
    """The smallest ε of ``grid`` at which FGM succeeds, per input, from one gradient.

    The direction ``d`` is FGM's (:func:`~reprolib.attacks.fast_gradient.direction`: sign of the
    gradient for ℓ∞, the gradient over its ℓ2 or ℓ1 norm; targeted or not through the
    objective), and the candidate for ε is ``clip(x0 + ε·d)`` to the model's bounds, exactly
    what :func:`~reprolib.attacks.fast_gradient.fgm` returns for that ε.

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: true labels ``(N,)``, or targets with ``targeted=True``.
        grid: the ε values (input units), > 0 and increasing, e.g. ``np.arange(1e-3, 1, 1e-3)``.
        norm: ``"linf"`` (FGSM), ``"l2"`` or ``"l1"``.
        targeted: success means predicting ``y``.
        loss: FGM's objective, by name (document 002: ``"ce"``).
        chunk: grid values checked per input in one forward call (≥ 1): an input stops after the
            chunk holding its first success, so larger chunks spend more checks past it and
            fewer calls. One call holds (inputs still searching) × ``chunk`` candidates: the
            default 8 makes a batch of 64 inputs one forward pass of 512 rows, about where the
            time per row of the zoo's CNNs stops falling on a CPU.
        **loss_kw: the objective's own settings.

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult`; ``info["eps"]`` ``(N,)`` float64, the
        smallest successful ε (NaN if none), ``info["grid_index"]`` its index (−1 if none).
        Passes per input: one forward and one backward pass for ``d``, and one forward pass per
        candidate checked.

    Raises:
        AttackInputError: a grid that is empty, not positive or not increasing; ``chunk`` < 1;
            inputs outside the bounds; the settings :func:`~reprolib.attacks.fast_gradient.fgm`
            refuses.
    """
    g = _grid(grid)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise AttackInputError(f"chunk must be an integer ≥ 1, got {chunk!r}.")
    losses.get(loss, loss_kw)
    order(norm)
    params = dict(grid=g, norm=norm, targeted=targeted, loss=loss, chunk=chunk, **loss_kw)
    check_inputs(model, x, y)
    x, y, counter, started = start(model, x, y)
    n = len(x)
    index = torch.full((n,), -1, dtype=torch.long, device=x.device)
    if n == 0:
        return _result(model, x, x.clone(), y, targeted, counter, started, g, index, "smallest_eps_fgm", params)
    with eval_mode(model):
        with torch.enable_grad():
            d = direction(counter, x, y, norm=norm, targeted=targeted, loss=loss, **loss_kw)
        lower, upper = model.bounds
        eps_all = g.to(device=x.device, dtype=x.dtype)
        shape = (1,) * (x.dim() - 1)
        with torch.no_grad():
            for s in range(0, len(g), chunk):
                active = (index < 0).nonzero().squeeze(1)
                if not len(active):
                    break
                eps = eps_all[s:s + chunk]
                m = len(eps)
                cand = (x[active, None] + eps.view(1, m, *shape) * d[active, None]).clamp(lower, upper)
                rows = active.repeat_interleave(m)
                logits = counter.logits(cand.flatten(0, 1), rows)
                ok = is_adversarial(logits, y[rows], targeted).view(len(active), m)
                hit = ok.any(1)
                index[active[hit]] = s + ok[hit].float().argmax(1)
    found = index >= 0
    step = torch.where(found, eps_all[index.clamp(min=0)], torch.zeros_like(eps_all[:1]).expand(n))
    best = torch.where(found.view(-1, *shape), x + step.view(-1, *shape) * d, x)
    return _result(model, x, best, y, targeted, counter, started, g, index, "smallest_eps_fgm", params)


def smallest_eps_ifgm(model: Classifier, x: Tensor, y: Tensor, *, grid, norm="linf", targeted: bool = False,
                      steps: int = 10, loss="ce", **loss_kw) -> AttackResult:
    """The smallest ε of ``grid`` at which I-FGM succeeds, per input.

    For the grid values in increasing order, every input that has not succeeded yet runs
    :func:`~reprolib.attacks.projected_gradient.ifgm` at that ε from its clean image (``steps``
    steps of ε/steps, then ε-ball clipping: clamp for ℓ∞, rescaling to norm ε for ℓ1/ℓ2; the last
    iterate is the example, as in the EAD authors' harness); its example is checked, and an input
    whose example succeeds keeps it and stops.

    Args:
        model, x, y, grid, norm, targeted, loss, ``**loss_kw``: as in :func:`smallest_eps_fgm`.
        steps: I-FGM's iterations per grid value (document 002: 10).

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult` with ``info["eps"]`` and
        ``info["grid_index"]`` as in :func:`smallest_eps_fgm`. Passes per input and grid value
        tried: ``steps`` forward and ``steps`` backward passes, and one forward pass that checks
        the example.

    Raises:
        AttackInputError: a bad grid, or a setting :func:`~reprolib.attacks.projected_gradient.ifgm`
            refuses (before any pass).
    """
    g = _grid(grid)
    params = dict(grid=g, norm=norm, targeted=targeted, steps=steps, loss=loss, **loss_kw)
    check_inputs(model, x, y)
    x, y, counter, started = start(model, x, y)
    n = len(x)
    index = torch.full((n,), -1, dtype=torch.long, device=x.device)
    best = x.clone()
    active = torch.arange(n, device=x.device)
    for k, eps in enumerate(g.tolist()):
        if not len(active):
            break
        r = ifgm(model, x[active], y[active], targeted=targeted, eps=eps, norm=norm, steps=steps, loss=loss,
                 **loss_kw)
        for mine, theirs in ((counter.forwards, r.forwards + 1), (counter.backwards, r.backwards),
                             (counter.nonfinite, r.nonfinite_gradients)):
            mine.index_add_(0, active, theirs.to(mine.device))
        hit = r.success.to(x.device)
        index[active[hit]] = k
        best[active[hit]] = r.x_adv[hit].to(x.device, x.dtype)
        active = active[~hit]
    return _result(model, x, best, y, targeted, counter, started, g, index, "smallest_eps_ifgm", params)
