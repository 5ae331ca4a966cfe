"""Adversarial training: the attack inside the training loop, or a fixed set of attack examples.

Every on-the-fly variant is one :class:`AdversarialLoss`, a ``batch_loss`` for
:func:`reprolib.train.fit` (seeded, resumable, progress bar). Per batch (x, y) it runs a reprolib
attack on the current weights and minimises

    L(x, y) = c · ℓ(f(x), y) + λ · ℓ(f(x'), y),      x' = attack(f, x, y),

with ℓ the cross-entropy (any ``loss(logits, y)``), c = ``clean_weight`` and λ = ``adv_weight``.
The attack runs in eval mode (every reprolib attack does, restoring the mode; dropout is off and
batch norm uses its running statistics while it searches), and x' is detached: no gradient flows
through the attack. The two forward passes that are trained, f(x) and f(x'), run in train mode.

The variants (constructors below):

* :func:`pgd_at` — Madry, Makelov, Schmidt, Tsipras & Vladu, *Towards Deep Learning Models
  Resistant to Adversarial Attacks* (https://arxiv.org/abs/1706.06083, eq. 2.1):
  min_θ E max_{‖δ‖ ≤ ε} ℓ(f(x + δ), y), the inner max by PGD with a random start, in ℓ∞ or ℓ2;
  c = 0, λ = 1 (only adversarial examples). Document 002's MNIST defence: ℓ∞, ε = 0.3, 40
  steps of 0.01; document 004 (thesis eqs. 2.20–2.21) uses the ℓ∞ and ℓ2 versions.
* :func:`fgsm_at` — the thesis's eq. 2.22 (document 004, after Goodfellow, Shlens & Szegedy,
  https://arxiv.org/abs/1412.6572, §6): min Σ_i ℓ(x_i) + λ·ℓ(x_i + r_i), r_i = ε·sign(∇ₓℓ).
  Goodfellow et al.'s α·ℓ(x) + (1 − α)·ℓ(x') is ``clean_weight=α, adv_weight=1 − α``.
* :func:`fgsm_rs_at` — "fast" adversarial training, Wong, Rice & Kolter, *Fast is better than
  free* (https://arxiv.org/abs/2001.03994, FGSM training with random initialisation): δ ~ U(−ε, ε), one FGSM step of α = 1.25ε
  from x + δ, projected back on the ε-ball and the box; c = 0, λ = 1. It is PGD with one step and
  a random start, checked by a real PGD afterwards (catastrophic overfitting shows as PGD
  accuracy collapsing while FGSM accuracy stays high).

An optional linear ε ramp (``eps_ramp``, a fraction of the run) grows ε (and an absolute step
size with it) from 0 to its value, as is common for MNIST PGD training.

Training on a **fixed set of precomputed adversarial examples** (document 002 §4.3.5, Table 7:
1 000 training images × 9 targets of C&W or EAD examples, labelled with their *true* class and
added to the training set, the network retrained from scratch) is :func:`adversarial_examples`
followed by :func:`with_adversarials` and a plain :func:`~reprolib.train.fit`.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks.core import AttackResult
from ..attacks.fast_gradient import fgsm
from ..attacks.projected_gradient import pgd
from ..data import ImageSet
from ..evaluation.run import run_attack
from ..models.classifier import Classifier
from ..train import Step

def _finite(name: str, value, *, low: float = 0.0, low_open: bool = False, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    v = float(value)
    if (v <= low if low_open else v < low) or v > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}.")
    return v


def _plain(value):
    """A value as the resume state can hold it (numbers, strings, lists, dicts, None)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if torch.is_tensor(value) and value.numel() == 1:
        return float(value)
    return getattr(value, "__qualname__", None) or repr(value)


class AdversarialLoss:
    """``c·ℓ(f(x), y) + λ·ℓ(f(x'), y)`` with ``x' = attack(f, x, y, **settings)``: a
    ``batch_loss`` for :func:`reprolib.train.fit` (module text).

    Args:
        attack: any reprolib attack (:mod:`reprolib.attacks`), untargeted: it is called as
            ``attack(model, x, y, **settings)`` with the true labels.
        clean_weight: c ≥ 0, the weight of the clean loss.
        adv_weight: λ ≥ 0, the weight of the adversarial loss; c + λ > 0.
        eps_ramp: a fraction in [0, 1] of the run over which ``settings["eps"]`` grows
            linearly from 0 to its value (per step: ε·min(1, (step + 1)/(eps_ramp·total))); an
            absolute ``step_size`` is scaled by the same factor. 0 (default) for none.
        use_raw: train on the attack's raw output (``x_raw``, not clipped to the model's
            bounds) instead of ``x_adv`` (document 004's FGSM-AT code does not clip).
        loss: ℓ(logits, y) → scalar, cross-entropy by default.
        **settings: the attack's settings (``eps``, ``norm``, ``steps``, ``step_size``, ...).
            If the attack takes a ``seed`` and none is given, each batch gets its own
            (``step.seed``, :class:`reprolib.train.Step`), so random starts differ between batches and a
            resumed run draws the same ones.

    Calling it as ``loss(model, x, y, step)`` returns the scalar loss; the model must be a
    :class:`~reprolib.models.Classifier` (attacks need its bounds). ``last`` holds the batch's
    clean and adversarial losses, the ε used and the attack's success rate (floats), for
    logging.

    Raises:
        ValueError: a weight or ``eps_ramp`` out of range, or ``eps_ramp`` > 0 without a numeric
            ``eps`` setting.
        TypeError: a model that is not a Classifier (when called).
    """

    def __init__(self, attack: Callable[..., AttackResult], *, clean_weight: float = 0.0, adv_weight: float = 1.0,
                 eps_ramp: float = 0.0, use_raw: bool = False,
                 loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy, **settings) -> None:
        if not callable(attack):
            raise ValueError(f"attack must be a reprolib attack function, got {attack!r}.")
        self.attack = attack
        self.clean_weight = _finite("clean_weight", clean_weight)
        self.adv_weight = _finite("adv_weight", adv_weight)
        if self.clean_weight + self.adv_weight <= 0:
            raise ValueError("clean_weight + adv_weight must be > 0, got 0: nothing would be trained.")
        self.eps_ramp = _finite("eps_ramp", eps_ramp, high=1.0)
        if self.eps_ramp > 0 and (isinstance(settings.get("eps"), bool)
                                  or not isinstance(settings.get("eps"), (int, float))):
            raise ValueError(f"eps_ramp > 0 needs a numeric eps setting, got eps={settings.get('eps')!r}.")
        if settings.get("targeted"):
            raise ValueError("targeted must be False: adversarial training attacks the true labels.")
        self.use_raw = bool(use_raw)
        self.loss = loss
        self.settings = settings
        self._seeded = "seed" in inspect.signature(attack).parameters and "seed" not in settings
        self.last: dict = {}

    def settings_at(self, step: Step | None) -> dict:
        """The attack's settings for ``step`` (the ε ramp and the per-batch seed applied)."""
        kw = dict(self.settings)
        if step is not None and self.eps_ramp > 0:
            factor = min(1.0, (step.index + 1) / max(1.0, self.eps_ramp * step.total))
            kw["eps"] = kw["eps"] * factor
            if isinstance(kw.get("step_size"), (int, float)) and not isinstance(kw.get("step_size"), bool):
                kw["step_size"] = kw["step_size"] * factor
        if step is not None and self._seeded:
            kw["seed"] = step.seed
        return kw

    def perturb(self, model: Classifier, x: Tensor, y: Tensor, step: Step | None = None) -> Tensor:
        """The detached adversarial inputs x' for the batch (the attack in eval mode)."""
        if not isinstance(model, Classifier):
            raise TypeError(f"adversarial training needs a reprolib.models.Classifier, got {type(model).__name__}.")
        kw = self.settings_at(step)
        result = self.attack(model, x, y, **kw)
        self.last = {"eps": float(kw["eps"]) if isinstance(kw.get("eps"), (int, float)) else None,
                     "success_rate": result.success_rate}
        return (result.x_raw if self.use_raw else result.x_adv).detach()

    def __call__(self, model: Classifier, x: Tensor, y: Tensor, step: Step | None = None) -> Tensor:
        x_adv = self.perturb(model, x, y, step)
        total = x.new_zeros(())
        if self.clean_weight > 0:
            clean = self.loss(model(x), y)
            total = total + self.clean_weight * clean
            self.last["clean_loss"] = float(clean.detach())
        if self.adv_weight > 0:
            adv = self.loss(model(x_adv), y)
            total = total + self.adv_weight * adv
            self.last["adv_loss"] = float(adv.detach())
        return total

    def as_dict(self) -> dict:
        """The defence's settings (attack name, weights, ramp, attack settings), for resume
        states and model metadata."""
        return {"defense": "adversarial_training", "attack": getattr(self.attack, "__name__", repr(self.attack)),
                "clean_weight": self.clean_weight, "adv_weight": self.adv_weight, "eps_ramp": self.eps_ramp,
                "use_raw": self.use_raw, "loss": getattr(self.loss, "__name__", repr(self.loss)),
                "settings": _plain(self.settings)}

    def __repr__(self) -> str:
        return f"AdversarialLoss({self.as_dict()})"


def pgd_at(eps: float, *, norm: str = "linf", steps: int = 40, step_size: float | None = None,
           random_start: bool = True, eps_ramp: float = 0.0, clean_weight: float = 0.0,
           **settings) -> AdversarialLoss:
    """Madry et al.'s PGD adversarial training (https://arxiv.org/abs/1706.06083): train on
    :func:`~reprolib.attacks.projected_gradient.pgd` examples only.

    Args:
        eps: the radius ε ≥ 0 in input units (MNIST ℓ∞: 0.3; CIFAR-10 ℓ∞: 8/255).
        norm: ``"linf"`` or ``"l2"`` (``"l1"`` works too: SLIDE steps).
        steps: PGD iterations ≥ 1 (Madry MNIST: 40; CIFAR-10: 7).
        step_size: the absolute step (Madry MNIST: 0.01); default PGD's 2.5ε/steps.
        random_start: start uniformly in the ε-ball (Madry et al.: yes).
        eps_ramp: fraction of the run over which ε grows from 0 (see :class:`AdversarialLoss`).
        clean_weight: weight of a clean loss term (0 in Madry et al.).
        **settings: any further :func:`~reprolib.attacks.projected_gradient.pgd` setting (``loss``, ``ball``, ...).

    Raises:
        ValueError, AttackInputError: a setting out of range (the attack checks its own on the
            first batch).
    """
    _finite("eps", eps)
    if step_size is not None:
        settings["step_size"] = step_size
    return AdversarialLoss(pgd, clean_weight=clean_weight, adv_weight=1.0, eps_ramp=eps_ramp, eps=eps,
                           norm=norm, steps=steps, random_start=random_start, **settings)


def fgsm_at(eps: float, *, adv_weight: float = 1.0, clean_weight: float = 1.0, clip: bool = True,
            eps_ramp: float = 0.0) -> AdversarialLoss:
    """FGSM adversarial training, the thesis's eq. 2.22 (document 004): ``c·ℓ(x) + λ·ℓ(x + r)``,
    ``r = ε·sign(∇ₓℓ(f(x), y))`` (:func:`~reprolib.attacks.fast_gradient.fgsm`).

    Args:
        eps: ε ≥ 0 (document 004, Table 3.1: 0.2 on MNIST).
        adv_weight: λ ≥ 0 (document 004: 1.0).
        clean_weight: c ≥ 0 (eq. 2.22: 1). Goodfellow et al.'s α-mix is c = α, λ = 1 − α.
        clip: clip x + r to the model's bounds; document 004's reference code does not
            (``clip=False`` trains on the raw x + r).
        eps_ramp: fraction of the run over which ε grows from 0.

    Raises:
        ValueError: a weight, ``eps`` or ``eps_ramp`` out of range.
    """
    _finite("eps", eps)
    return AdversarialLoss(fgsm, clean_weight=clean_weight, adv_weight=adv_weight, eps_ramp=eps_ramp,
                           use_raw=not clip, eps=eps)


def fgsm_rs_at(eps: float, *, step_size: float | None = None, eps_ramp: float = 0.0,
               clean_weight: float = 0.0) -> AdversarialLoss:
    """"Fast" adversarial training: FGSM from a uniform random start (Wong et al.,
    https://arxiv.org/abs/2001.03994): :func:`~reprolib.attacks.projected_gradient.pgd` with one step and a
    random start.

    Args:
        eps: ε ≥ 0, ℓ∞ (CIFAR-10: 8/255; MNIST: 0.3).
        step_size: α > 0; default 1.25·ε (Wong et al.).
        eps_ramp: fraction of the run over which ε (and α) grow from 0.
        clean_weight: weight of a clean loss term (0 in Wong et al.).

    Raises:
        ValueError: ``eps``, ``step_size``, a weight or ``eps_ramp`` out of range.
    """
    e = _finite("eps", eps)
    alpha = 1.25 * e if step_size is None else _finite("step_size", step_size, low_open=True)
    if alpha <= 0:
        raise ValueError(f"step_size must be > 0; with eps = 0 give it explicitly, got eps={eps!r}.")
    return AdversarialLoss(pgd, clean_weight=clean_weight, adv_weight=1.0, eps_ramp=eps_ramp, eps=e,
                           norm="linf", steps=1, step_size=alpha, random_start=True)


# ------------------------------------------------------------ a fixed set of adversarials
def adversarial_examples(attack: Callable[..., AttackResult], model: Classifier, source: ImageSet, *, all_targets: bool = False,
                         only_successful: bool = True, batch_size: int = 256, cache_name: str | None = None,
                         progress: bool = True, **settings) -> ImageSet:
    """Adversarial examples of ``source`` labelled with their **true** class, for training on a
    fixed set (document 002 §4.3.5, Table 7).

    Args:
        attack: any reprolib attack.
        model: the classifier attacked.
        source: the images (``source.y``: true labels), e.g. 1 000 random *training* images.
        all_targets: run the attack targeted at every class but the true one (K − 1 examples per
            image, document 002's 9 000 for 1 000 MNIST images); else once, untargeted.
        only_successful: keep only the examples whose attack succeeded (re-checked).
        batch_size: inputs per attack call, ≥ 1.
        cache_name: cache the run per batch (:func:`reprolib.evaluation.run.run_attack`);
            ``None`` for no cache.
        progress: show a progress bar.
        **settings: the attack's settings.

    Returns:
        An :class:`~reprolib.data.ImageSet` of the adversarials ``x_adv`` (in the bounds), their
        true labels, and the dataset ``indices`` of their source images; image-major order (all
        targets of the first image, then the second's, ...).

    Raises:
        ValueError: ``targeted`` in ``settings``, or ``batch_size`` < 1.
    """
    if "targeted" in settings:
        raise ValueError("pass all_targets=True for targeted examples, not targeted=...; "
                         "the set's labels are always the true classes.")
    n, k = len(source), model.num_classes
    if all_targets:
        reps = k - 1
        y_true = source.y.repeat_interleave(reps)
        offsets = torch.arange(1, k).repeat(n)
        labels = (y_true + offsets) % k
        x = source.x.repeat_interleave(reps, dim=0)
        positions = torch.arange(n).repeat_interleave(reps)
    else:
        y_true, labels, x, positions = source.y, source.y, source.x, torch.arange(n)
    result = run_attack(attack, model, (x, labels), batch_size=batch_size, cache_name=cache_name,
                        progress=progress, targeted=all_targets, **settings)
    keep = result.success if only_successful else torch.ones(len(x), dtype=torch.bool)
    name = f"{source.name}+{getattr(attack, '__name__', 'attack')}"
    return ImageSet(name, result.x_adv[keep].float(), y_true[keep].long(), source.indices[positions[keep]],
                    source.classes)


def with_adversarials(train: ImageSet, *extra: ImageSet) -> ImageSet:
    """``train`` with the sets ``extra`` appended (images, labels, dataset indices), for plain
    :func:`~reprolib.train.fit` on the augmented set (document 002's Table 7 retrains from
    scratch on it).

    Raises:
        ValueError: a set whose images have another shape or whose classes differ.
    """
    for e in extra:
        if e.x.shape[1:] != train.x.shape[1:] or e.classes != train.classes:
            raise ValueError(f"extra set {e.name!r} has images {tuple(e.x.shape[1:])} and classes {e.classes}; "
                             f"the training set has {tuple(train.x.shape[1:])} and {train.classes}.")
    return ImageSet("+".join([train.name, *(e.name for e in extra)]),
                    torch.cat([train.x, *(e.x.to(train.x) for e in extra)]),
                    torch.cat([train.y, *(e.y.to(train.y) for e in extra)]),
                    torch.cat([train.indices, *(e.indices.to(train.indices) for e in extra)]), train.classes)
