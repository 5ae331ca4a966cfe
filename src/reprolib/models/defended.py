"""How the zoo's defended models are trained and checked.

A :class:`~reprolib.models.registry.ModelSpec` with a ``defense`` is trained by it instead of
plain cross-entropy, and one with a ``robust`` check records its robust accuracy in its metadata:

* :class:`Distillation` — defensive distillation at temperature T
  (:func:`reprolib.defenses.distillation.defensive_distillation`): the committed weights are the student's,
  deployed at T = 1 (raw logits).
* :class:`AdversarialTraining` — a ``batch_loss`` of :mod:`reprolib.defenses` (``pgd_at``,
  ``fgsm_at``, ``fgsm_rs_at``) built from its name and settings, passed to
  :func:`reprolib.train.fit`.
* :class:`RobustCheck` — PGD with random restarts on the first test images; an input counts as
  robust when it is classified correctly and no restart finds an adversarial example
  (:func:`robust_accuracy`).

The defences are named, not imported, here: :mod:`reprolib.defenses` imports the model wrapper,
so this module imports it only when a defended model is trained.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ..train import Recipe, fit
from .classifier import Classifier


@dataclass(frozen=True)
class Distillation:
    """Defensive distillation at temperature T (Papernot et al. 2016; document 002 §2.6).

    ``init_recipe`` trains the shared initialisation at T first (Carlini & Wagner's
    ``train_distillation``: one epoch); the spec's recipe trains the teacher, and
    ``student_recipe`` (default: the same) the student on the teacher's soft labels.
    """

    temperature: float
    init_recipe: Recipe | None = None
    student_recipe: Recipe | None = None

    def as_dict(self) -> dict:
        """The defence as recorded in the model's metadata."""
        return {"defense": "distillation", "temperature": self.temperature,
                "init_recipe": None if self.init_recipe is None else self.init_recipe.as_dict(),
                "student_recipe": None if self.student_recipe is None else self.student_recipe.as_dict()}

    def train(self, build: Callable[[], Classifier], recipe: Recipe, train_set, *, resume_dir: Path,
              desc: str) -> tuple[Classifier, dict]:
        """Distil; returns the student (deployed at T = 1) and the seconds of each phase."""
        from ..defenses.distillation import defensive_distillation
        out = defensive_distillation(build, train_set, temperature=self.temperature, recipe=recipe,
                                     student_recipe=self.student_recipe, init_recipe=self.init_recipe,
                                     resume_dir=resume_dir, desc=desc)
        return out.student, {k: round(v, 1) for k, v in out.seconds.items()}


@dataclass(frozen=True)
class AdversarialTraining:
    """Training by ``reprolib.defenses.<method>(**settings)``, a ``batch_loss`` of
    :func:`reprolib.train.fit` (``"pgd_at"``, ``"fgsm_at"`` or ``"fgsm_rs_at"``)."""

    method: str
    settings: dict = field(default_factory=dict)

    def batch_loss(self):
        """The defence's ``batch_loss`` callable."""
        from .. import defenses
        if self.method not in ("pgd_at", "fgsm_at", "fgsm_rs_at"):
            raise ValueError(f"Unknown adversarial training {self.method!r}; use pgd_at, fgsm_at or fgsm_rs_at.")
        return getattr(defenses, self.method)(**self.settings)

    def as_dict(self) -> dict:
        """The defence as recorded in the model's metadata (the batch loss's own description)."""
        return self.batch_loss().as_dict()

    def train(self, build: Callable[[], Classifier], recipe: Recipe, train_set, *, resume_dir: Path,
              desc: str) -> tuple[Classifier, dict]:
        """Train on the fly; returns the model and the seconds of the run."""
        model = build()
        resume_dir.mkdir(parents=True, exist_ok=True)
        seconds = fit(model, recipe, train_set, resume_path=resume_dir / "train.resume.pt", desc=desc,
                      batch_loss=self.batch_loss())
        return model, {"train": round(seconds, 1)}


@dataclass(frozen=True)
class RobustCheck:
    """PGD robust accuracy on the first ``n_images`` test images, recorded in the metadata.

    ``eps`` in input units ([0, 1] pixels), ``norm`` ``"linf"`` or ``"l2"``, ``steps`` and
    ``step_size`` (absolute; default 2.5ε/steps) per restart, ``restarts`` ≥ 1 random starts
    (seeds 0 … restarts − 1), ``loss`` the attack's objective (``"ce"`` or ``"mlogit"``).
    """

    eps: float
    norm: str = "linf"
    steps: int = 40
    step_size: float | None = None
    restarts: int = 1
    loss: str = "ce"
    n_images: int = 1000

    def as_dict(self) -> dict:
        """The check's settings, as recorded beside its result."""
        return {"attack": "pgd", **asdict(self)}


def robust_accuracy(model: Classifier, x: Tensor, y: Tensor, check: RobustCheck, *, batch_size: int = 500,
                    progress: bool = False) -> float:
    """The fraction of ``(x, y)`` classified correctly and not broken by any of ``check.restarts``
    random-start PGD runs (:func:`reprolib.attacks.projected_gradient.pgd` with ``stop_at_success``; a restart only
    attacks the inputs no earlier restart broke).

    Args:
        model: the classifier, in eval mode.
        x: inputs ``(N, *model.input_shape)`` in the model's bounds.
        y: true labels ``(N,)``.
        check: the attack's settings.
        batch_size: inputs per attack call.
        progress: show a progress bar over restarts × batches.

    Returns:
        A fraction in [0, 1] (NaN for no inputs).
    """
    from tqdm.auto import tqdm

    from ..attacks import pgd
    if len(x) == 0:
        return math.nan
    device = model.device
    with torch.no_grad():
        robust = torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]
                            for i in range(0, len(x), batch_size)])
    bar = tqdm(total=check.restarts * math.ceil(len(x) / batch_size), disable=not progress, desc="robust accuracy")
    for restart in range(check.restarts):
        for start in range(0, len(x), batch_size):
            idx = start + robust[start:start + batch_size].nonzero().flatten()
            if len(idx):
                result = pgd(model, x[idx].to(device), y[idx].to(device), eps=check.eps, norm=check.norm,
                             steps=check.steps, step_size=check.step_size, random_start=True, loss=check.loss,
                             stop_at_success=True, seed=restart)
                robust[idx[result.success.cpu()]] = False
            bar.update(1)
    bar.close()
    return int(robust.sum()) / len(robust)
