"""Per-input attack losses computed from logits, and a registry of them by name.

Every loss here is an **objective the attack ascends**: a function
``objective(logits, labels, targeted, **kw) -> Tensor`` of shape ``(N,)``, one value per input,
whose gradient with respect to the input points towards "more adversarial". The sign
conventions of the documents are folded in once, here, so every attack steps along
``+∇ objective``:

=============  ==========================================  ==========================================
name           targeted (``labels`` = target t)            untargeted (``labels`` = true class y)
=============  ==========================================  ==========================================
``ce``         −CE(Z, t)  (descend the target CE)          +CE(Z, y)  (ascend the true-class CE)
``ce_sign``    as ``ce``; attacks step along sign(∇)       as ``ce``; attacks step along sign(∇)
``logit``      +Z_t  (document 003's "logit loss")         −Z_y  (push the true logit down)
``mlogit``     min(Z_t − max_{j≠t} Z_j, κ)                 min(max_{j≠y} Z_j − Z_y, κ)
=============  ==========================================  ==========================================

``mlogit`` is the negated Carlini–Wagner f6, ``f6 = max(max_{j≠t} Z_j − Z_t, −κ)`` (document 003
§III, eq. 4; κ = 20 there, κ = 0 in C&W's code): it is flat (zero gradient) once the margin
reaches κ, exactly the M-logit step of document 003 (§V-A, eq. 16): "P_n = ∇g_c − ∇g_{c*}
while g_c − max_{i≠c} g_i < κ, otherwise 0". The best other class is found with the label
masked by −inf, never by 0, so it is right when every logit is negative. :func:`cw_f6` returns
the C&W value itself (to minimise).

Losses are per input; an attack sums them over the batch before differentiating (never the
mean, which would divide every gradient by the batch size and change document 003's
equal-multiplier steps), so an input's gradient does not depend on the batch size.

Models declared ``output="log_probs"`` return log-probabilities. ``ce`` and ``mlogit`` are
unchanged by that (log-softmax is idempotent and margins are shift-invariant); ``logit`` then
ascends log p_t, not the logit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import checks
from .checks import AttackInputError


def best_other(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(max_{j≠label} Z_j, argmax_{j≠label} Z_j)`` per row; the label is masked with −inf."""
    masked = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return masked.max(1)


def margin(logits: Tensor, labels: Tensor) -> Tensor:
    """``Z_label − max_{j≠label} Z_j`` per row (positive when ``label`` is the prediction)."""
    other, _ = best_other(logits, labels)
    return logits.gather(1, labels[:, None]).squeeze(1) - other


def attack_margin(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """The margin an attack drives below zero, per row: ``Z_y − max_{j≠y} Z_j`` (untargeted,
    ``labels`` = true classes) or ``max_{j≠t} Z_j − Z_t`` (targeted). Positive while the input is
    not yet adversarial (document 004's m_y, eq. 5.2; C&W's f6 before its κ clamp)."""
    m = margin(logits, labels)
    return -m if targeted else m


def cw_f6(logits: Tensor, labels: Tensor, targeted: bool = True, confidence: float = 0.0) -> Tensor:
    """Carlini–Wagner's f6, to be **minimised**: targeted ``max(max_{j≠t} Z_j − Z_t, −κ)``,
    untargeted ``max(Z_y − max_{j≠y} Z_j, −κ)``, κ = ``confidence``. It reaches −κ once the
    margin is ≥ κ."""
    return attack_margin(logits, labels, targeted).clamp(min=-float(confidence))


def cw_loss(logits: Tensor, labels: Tensor, targeted: bool, confidence: float = 0.0) -> Tensor:
    """C&W's f in the reference code's form (to be minimised, ≥ 0): ``max(max_{j≠t} Z_j − Z_t + κ, 0)``
    targeted, ``max(Z_y − max_{j≠y} Z_j + κ, 0)`` untargeted; zero once the κ margin holds.
    It equals ``cw_f6 + κ``. EAD and ZOO use it (ZOO on log-probabilities)."""
    return (attack_margin(logits, labels, targeted) + confidence).clamp(min=0)


def cw_success(logits: Tensor, labels: Tensor, targeted: bool, confidence: float = 0.0) -> Tensor:
    """C&W's ``compare``: success judged on the scores with the label's entry shifted by ∓κ, so
    a success holds the κ margin."""
    shift = F.one_hot(labels, logits.shape[1]).to(logits.dtype) * (-confidence if targeted else confidence)
    hit = (logits + shift).argmax(1) == labels
    return hit if targeted else ~hit


def ce_objective(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """Cross-entropy per input: −CE(t) when targeted, +CE(y) when untargeted."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    return -ce if targeted else ce


def logit_objective(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """The label's own logit: +Z_t when targeted, −Z_y when untargeted."""
    z = logits.gather(1, labels[:, None]).squeeze(1)
    return z if targeted else -z


def mlogit_objective(logits: Tensor, labels: Tensor, targeted: bool, confidence: float = 0.0) -> Tensor:
    """The C&W margin ("M-logit"), −f6: ``min(margin, κ)`` with margin = Z_t − max_{j≠t} Z_j
    (targeted) or max_{j≠y} Z_j − Z_y (untargeted). The gradient is exactly zero once the
    margin is ≥ κ (``torch.where`` sends no gradient through the flat branch)."""
    m = -attack_margin(logits, labels, targeted)
    return torch.where(m < confidence, m, torch.full_like(m, float(confidence)))


@dataclass(frozen=True)
class Loss:
    """A named objective. ``sign=True`` tells a gradient-step attack to step along the sign of
    the gradient (document 003's CE-sign). ``params`` names the keyword arguments it takes."""

    name: str
    objective: Callable[..., Tensor]
    sign: bool = False
    params: tuple[str, ...] = ()
    description: str = ""

    def __call__(self, logits: Tensor, labels: Tensor, targeted: bool, **kw) -> Tensor:
        unknown = set(kw) - set(self.params)
        if unknown:
            raise TypeError(f"loss {self.name!r} takes {list(self.params) or 'no parameters'}, "
                            f"got {sorted(unknown)}")
        return self.objective(logits, labels, targeted, **kw)


LOSSES: dict[str, Loss] = {
    "ce": Loss("ce", ce_objective, description="cross-entropy (L-BFGS's source, document 003)"),
    "ce_sign": Loss("ce_sign", ce_objective, sign=True,
                    description="sign of the cross-entropy gradient (IFGS/BIM's source, document 003)"),
    "logit": Loss("logit", logit_objective,
                  description="target logit (targeted) / true logit (untargeted), document 003"),
    "mlogit": Loss("mlogit", mlogit_objective, params=("confidence",),
                   description="C&W margin f6 with confidence κ ('M-logit', document 003)"),
}


def get(loss: str | Loss, settings: dict | None = None) -> Loss:
    """The :class:`Loss` called ``loss`` (or ``loss`` itself), after checking the keyword
    ``settings`` an attack will pass it.

    Raises:
        AttackInputError: an unknown loss name, or a negative ``confidence``.
        TypeError: a setting the loss does not take (named in the message), as for any
            unexpected keyword argument.
    """
    if not isinstance(loss, Loss):
        if loss not in LOSSES:
            raise AttackInputError(f"loss must be one of {sorted(LOSSES)} or a reprolib.attacks.ops.losses.Loss; "
                                   f"got {loss!r}.")
        loss = LOSSES[loss]
    settings = settings or {}
    unknown = sorted(set(settings) - set(loss.params))
    if unknown:
        raise TypeError(f"unexpected setting(s) {unknown}: loss {loss.name!r} takes "
                        f"{list(loss.params) or 'no settings'}.")
    if "confidence" in settings:
        checks.nonnegative("confidence", settings["confidence"])
    return loss


def objective_and_grad(counter, x: Tensor, labels: Tensor, loss: Loss, targeted: bool,
                       idx: Tensor | None = None, **loss_kw) -> tuple[Tensor, Tensor, Tensor]:
    """One counted forward and backward pass: ``(logits, objective, ∇_x Σ objective)``.

    ``x`` is detached first; the objective is summed over the batch (never averaged) by
    :meth:`Counter.grad`, so each row's gradient is that of its own objective. ``logits`` and
    ``objective`` come back detached.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = counter.logits(x, idx)
        obj = loss(logits, labels, targeted, **loss_kw)
        grad = counter.grad(obj, x, idx)
    return logits.detach(), obj.detach(), grad
