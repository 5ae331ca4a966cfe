"""Batched Jacobians of a classifier's outputs with respect to its inputs, and the
difference-of-gradients quantities of document 001 (Balda, Behboodi & Mathar,
https://arxiv.org/abs/1803.03607 v2, §II: the margin of eq. 3 and its gradient).

Every pass goes through a :class:`~reprolib.attacks.core.Counter`:

* :func:`jacobian`: one forward pass and one backward pass per class asked for (``K`` for the
  full Jacobian);
* :func:`margin_jacobian`: one forward pass and ``C − 1`` backward passes, one per competing
  class ``j``, each the gradient of ``f_k − f_j`` directly (the same count Foolbox spends for
  DeepFool, without its repeated forward passes).

Each backward pass is the gradient of a sum over the batch rows; that equals the per-row
gradients because the rows of a model in eval mode do not interact.

The "proxy" ``f`` is the logits by default (the authors' code,
https://github.com/ebalda/adversarialconvex); ``proxy="softmax"`` uses the class probabilities,
the literal definition of document 001 §II, to show why it works worse.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core import Counter
from . import checks
from .norms import dual_norm

#: The outputs f an attack may differentiate: the logits, or the softmax probabilities.
PROXIES = ("logits", "softmax")


def _proxy(out: Tensor, proxy: str) -> Tensor:
    return out.softmax(1) if proxy == "softmax" else out


def jacobian(counter: Counter, x: Tensor, idx: Tensor | None = None, classes: Tensor | None = None,
             *, proxy: str = "logits") -> tuple[Tensor, Tensor]:
    """The outputs ``f(x)`` (N, K) and the Jacobian rows ``∇f_c(x)`` ``(N, C, *input_shape)``.

    ``classes`` (N, C) picks which outputs to differentiate per input (all K when ``None``).
    Costs one forward pass and C backward passes per input, charged to ``idx``.
    The returned outputs are the proxy (logits or softmax) and are detached.

    Raises:
        AttackInputError: a ``proxy`` not in :data:`PROXIES` (before the forward pass).
    """
    x, out = forward(counter, x, idx, proxy=proxy)
    with torch.enable_grad():
        if classes is None:
            classes = torch.arange(out.shape[1], device=out.device).expand(len(x), -1)
        rows = []
        n_cls = classes.shape[1]
        for c in range(n_cls):
            sel = out.gather(1, classes[:, c:c + 1])
            rows.append(counter.grad(sel, x, idx, retain_graph=c < n_cls - 1))
    return out.detach(), torch.stack(rows, 1) if rows else x.new_zeros((len(x), 0) + x.shape[1:])


def forward(counter: Counter, x: Tensor, idx: Tensor | None = None, *, proxy: str = "logits") -> tuple[Tensor, Tensor]:
    """One counted forward pass that keeps the graph: returns ``(x_req, out)`` for
    :func:`margin_grads`. ``out`` are the proxy outputs (logits or softmax).

    Raises:
        AttackInputError: a ``proxy`` not in :data:`PROXIES` (before the forward pass).
    """
    checks.choice("proxy", proxy, PROXIES)
    x_req = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = _proxy(counter.logits(x_req, idx), proxy)
    return x_req, out


def regraph_pays(finished: int, going_on: int, backward_passes: int) -> bool:
    """Whether to rebuild the graph of a forward batch on the ``going_on`` inputs alone, when
    ``finished`` inputs of it need no gradient: one more forward pass for each input that goes
    on, against ``backward_passes`` backward passes through each finished one (autograd runs
    through every row of the batch). A forward and an input-gradient backward pass cost about
    the same (measured on C&W's MNIST and CIFAR-10 CNNs on the CPU: a backward pass 1.2–1.3 × a
    forward), so passes are compared one for one."""
    return backward_passes * finished > going_on


def margin_grads(counter: Counter, x_req: Tensor, out: Tensor, k: Tensor, others: Tensor,
                 idx: Tensor | None = None, rows: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``df = f_k − f_j`` (M, C−1) and ``dg = ∇f_k − ∇f_j`` ``(M, C−1, *input_shape)`` from the graph
    of :func:`forward`, for the rows ``rows`` of that batch (all when ``None``; then M = N).

    ``k`` (M,) and ``others`` (M, C−1) are given for the selected rows; ``idx`` names the
    inputs of the original batch that the *forward* batch holds. One backward pass per column of
    ``others``, charged to every row of the forward batch: autograd back-propagates through all
    of them, selected or not, so that is what the network runs.
    """
    out_sel = out if rows is None else out[rows]
    with torch.enable_grad():
        diffs = out_sel.gather(1, k[:, None]) - out_sel.gather(1, others)
        grads = []
        n_cls = others.shape[1]
        for c in range(n_cls):
            g = counter.grad(diffs[:, c], x_req, idx, retain_graph=c < n_cls - 1)
            grads.append(g if rows is None else g[rows])
    shape = (len(out_sel), 0) + x_req.shape[1:]
    dg = torch.stack(grads, 1) if grads else x_req.new_zeros(shape)
    return diffs.detach(), dg


def margin_jacobian(counter: Counter, x: Tensor, k: Tensor, others: Tensor, idx: Tensor | None = None,
                    *, proxy: str = "logits") -> tuple[Tensor, Tensor, Tensor]:
    """The margins to each competing class and their gradients, at ``x``.

    Args:
        k: (N,) the reference class of each input (the clean label in document 001).
        others: (N, C−1) the competing classes ``j`` (must not contain ``k``).

    Returns:
        ``out`` (N, K): the proxy outputs (detached);
        ``df`` (N, C−1): ``f_k(x) − f_j(x)``;
        ``dg`` ``(N, C−1, *input_shape)``: ``∇f_k(x) − ∇f_j(x)``.

    Costs one forward pass and C − 1 backward passes per input, charged to ``idx``.
    """
    x_req, out = forward(counter, x, idx, proxy=proxy)
    df, dg = margin_grads(counter, x_req, out, k, others, idx)
    return out.detach(), df, dg


def other_classes(k: Tensor, num_classes: int) -> Tensor:
    """(N, K−1): for each input, every class except ``k``, in increasing order."""
    all_cls = torch.arange(num_classes, device=k.device).expand(len(k), -1)
    keep = all_cls != k[:, None]
    return all_cls[keep].reshape(len(k), num_classes - 1)


def top_candidates(logits: Tensor, k: Tensor, candidates: int | None) -> Tensor:
    """(N, C−1): the ``candidates − 1`` highest-scoring classes other than ``k`` (Foolbox's and
    LTS4's ``candidates``, which count ``k`` itself); all K − 1 when ``candidates`` is None."""
    num = logits.shape[1]
    c = num if candidates is None else max(2, min(int(candidates), num))
    masked = logits.detach().scatter(1, k[:, None], -math.inf)
    return masked.argsort(1, descending=True)[:, :c - 1]


def difference_ratios(df: Tensor, dg: Tensor, p: float, absolute: bool = True) -> Tensor:
    """(N, C−1): ``|f_k − f_j| / ‖∇f_k − ∇f_j‖_q``, the linearised lp distance to each class
    boundary (DeepFool's selection rule; ρ̂₂'s per-class term with ``absolute=False``).
    A zero gradient difference gives +∞ (no boundary reachable to first order)."""
    num = df.abs() if absolute else df
    den = dual_norm(dg, p, start_dim=2)
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.full_like(num, math.inf))
