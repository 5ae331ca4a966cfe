"""One-step gradient attacks: FGSM (ℓ∞ sign step) and FGM (ℓ1 / ℓ2 normalised gradient step).

Goodfellow, Shlens & Szegedy, *Explaining and Harnessing Adversarial Examples*
(https://arxiv.org/abs/1412.6572, §4: η = ε·sign(∇ₓJ(θ, x, y))), in the fast gradient method
form of document 002 §2.1.1.2, eqs. 7–8 (EAD's CleverHans-derived ``fgm.py``,
https://github.com/ysharma1126/EAD_Attack):

* targeted:   x' = clip(x0 − ε·d), d from ∇J(x0, t), J = softmax cross-entropy on the logits;
* untargeted: x' = clip(x0 + ε·d), d from ∇J(x0, y);
* d = sign(∇J) (ℓ∞, FGSM), ∇J/‖∇J‖₂ (ℓ2), ∇J/‖∇J‖₁ (ℓ1, the *dense* ℓ1-normalised gradient,
  not the sparse steepest-ascent direction).

Here the sign convention lives in the loss (:mod:`.ops.losses`: every objective is ascended), so
both cases are ``x0 + ε·d(∇ objective)``. Before the box clip the step has ℓp norm exactly ε
whenever the gradient is not all zero; a zero gradient gives a zero step. ``eps`` may be one
value per input (document 002's ε grid scan, its Table 4, reuses one gradient for many ε: call
:func:`direction` once).

Document 002's "ε-ball clipping" (η ← η·ε/‖η‖) only matters for the *iterative* I-FGM, where
the accumulated η can be shorter than ε; it is :func:`reprolib.attacks.projected_gradient.ifgm`. For one step,
‖η‖ = ε already, so FGM needs no such option.
"""
from __future__ import annotations

from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, Counter, attack, finish, start
from .ops import checks, losses
from .ops.norms import normalize, order, per_input


def direction(counter: Counter, x: Tensor, y: Tensor, *, norm="l2", targeted: bool = False,
              loss="ce", **loss_kw) -> Tensor:
    """The unit-norm step direction d of FGM at ``x`` (shape of ``x``): one forward and one
    backward pass, charged to ``counter`` (a :class:`~.core.Counter` from :func:`~.core.start`).
    ``norm``, ``loss`` and ``loss_kw`` as in :func:`fgm`."""
    lossf = losses.get(loss)
    _, _, g = losses.objective_and_grad(counter, x, y, lossf, targeted, **loss_kw)
    return normalize(g.sign() if lossf.sign else g, order(norm))


@attack
def fgm(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps, norm="l2",
        loss="ce", **loss_kw) -> AttackResult:
    """Fast gradient method: one step ``x + ε·d``, then the clip to the model's bounds.

    ``d = ∇/‖∇‖_p`` (p ∈ {1, 2}) or ``sign(∇)`` (ℓ∞) of the objective ``loss`` (document 002
    §2.1.1.2, eqs. 7–8; the sign of the targeted case is folded into the objective).

    Args:
        model: the classifier.
        x: inputs ``(N, *model.input_shape)`` inside the bounds.
        y: true labels ``(N,)``, or targets with ``targeted=True``.
        targeted: step towards ``y`` instead of away from it.
        eps: the radius ε ≥ 0 (input units): a number, or a tensor ``(N,)``, one per input.
        norm: ``"l2"`` (default), ``"l1"`` or ``"linf"`` (FGSM; prefer :func:`fgsm`).
        loss: the objective, by name (:data:`~.ops.losses.LOSSES`; ``"ce"`` as in document 002).
        **loss_kw: the objective's own settings, e.g. ``confidence`` (κ ≥ 0) for ``"mlogit"``.

    Returns:
        An :class:`~.core.AttackResult`; one forward and one backward pass per input.
        ``info["direction"]``: d, the unit-norm step (shape of ``x``).

    Raises:
        AttackInputError: a negative or non-finite ``eps``, an ``eps`` tensor of another shape,
            an unknown ``norm`` or ``loss``, a negative ``confidence``.
        TypeError: a keyword the objective does not take.
    """
    lossf = losses.get(loss, loss_kw)
    p = order(norm)
    x, y, counter, t0 = start(model, x, y)
    e = per_input(eps, len(x), x, name="eps")
    d = direction(counter, x, y, norm=p, targeted=targeted, loss=lossf, **loss_kw)
    return finish(model, x, x + e * d, y, targeted, counter, t0, direction=d)


@attack
def fgsm(model: Classifier, x: Tensor, y: Tensor, *, targeted: bool = False, eps, loss="ce",
         **loss_kw) -> AttackResult:
    """Fast gradient sign method (https://arxiv.org/abs/1412.6572, §4): ``clip(x + ε·sign(∇))``.

    Untargeted with ``loss="ce"`` this is x + ε·sign(∇CE(y)); targeted, x − ε·sign(∇CE(t))
    (document 002, eq. 7). It is :func:`fgm` with ``norm="linf"``; the arguments, result
    (``info["direction"]`` = sign(∇)), cost and errors are those of :func:`fgm`.
    """
    return fgm(model, x, y, targeted=targeted, eps=eps, norm="linf", loss=loss, **loss_kw)
