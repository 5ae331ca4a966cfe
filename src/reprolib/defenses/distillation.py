"""Defensive distillation (Papernot, McDaniel, Wu, Jha & Swami 2016).

Papernot et al., *Distillation as a Defense to Adversarial Perturbations against Deep Neural
Networks* (https://arxiv.org/abs/1511.04508), after Hinton, Vinyals & Dean, *Distilling the
Knowledge in a Neural Network* (https://arxiv.org/abs/1503.02531). With logits z(x) and the
softmax at temperature T,

    F_T(x)_i = exp(z_i(x)/T) / Σ_j exp(z_j(x)/T),

1. the **teacher** is trained at temperature T on the hard labels: minimise
   −log F_T(x)_y, i.e. cross-entropy on z/T;
2. its **soft labels** q(x) = F_T^teacher(x) are computed on the training set;
3. the **student**, same architecture and the same initial weights, is trained at the same T on
   the soft labels: minimise −Σ_i q_i(x) log F_T^student(x)_i;
4. the student is **deployed at T = 1**: its logits z are used as they are, so the deployed
   softmax is F_1(x) = softmax(z) = softmax(T · z/T). The logits the network learned to produce
   at training temperature T are multiplied by T at test time, which saturates the softmax and
   shrinks its gradients by a factor of about T (the gradient masking Carlini & Wagner undo by
   attacking the logits, https://arxiv.org/abs/1608.04644).

The shared initialisation follows Carlini & Wagner's ``train_distillation``
(https://github.com/carlini/nn_robust_attacks, ``train_models.py``): the network is built once
(optionally trained for ``init_recipe`` at temperature T), and both the teacher and the student
start from those weights. Document 002 (§4.3.6–4.3.7.1, Fig. 7, Table 8) uses T from 1 to 100.

Every training run is :func:`reprolib.train.fit` (seeded, resumable, progress bar); any T > 0
works, T = 1 is plain training followed by self-distillation.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import ImageSet
from ..models.classifier import Classifier, eval_mode
from ..train import Recipe, fit


def _temperature(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {value!r}.")
    return float(value)


class Tempered(nn.Module):
    """``net(x) / T``: a network whose logits are divided by the temperature T (shares ``net``)."""

    def __init__(self, net: nn.Module, temperature: float) -> None:
        super().__init__()
        self.net = net
        self.temperature = _temperature(temperature)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x) / self.temperature


def at_temperature(model: Classifier, temperature: float) -> Classifier:
    """The classifier ``model`` with its logits divided by ``temperature``: softmax(z/T).

    The result shares ``model``'s parameters (training one trains the other), bounds and
    normalisation; ``at_temperature(m, 1)`` computes what ``m`` does.

    Args:
        model: a classifier returning logits (``output="logits"``).
        temperature: T > 0.

    Raises:
        ValueError: T not a finite number > 0, or a model that returns log-probabilities.
    """
    t = _temperature(temperature)
    if model.output != "logits":
        raise ValueError(f"model must return logits (output='logits'), not {model.output!r}.")
    out = Classifier(Tempered(model.net, t), input_shape=model.input_shape, num_classes=model.num_classes,
                     bounds=model.bounds)
    out.mean, out.std = model.mean, model.std
    return out


def soft_cross_entropy(temperature: float) -> Callable[[Tensor, Tensor], Tensor]:
    """The student's loss at temperature T: ``loss(z, q) = mean_n −Σ_i q_ni · log softmax(z_n/T)_i``.

    Args:
        temperature: T > 0.

    Returns:
        A ``loss(logits (N, K), soft_labels (N, K)) -> scalar`` for :func:`reprolib.train.fit`'s
        ``loss`` (with ``targets`` = the soft labels).

    Raises:
        ValueError: T not a finite number > 0.
    """
    t = _temperature(temperature)

    def loss(logits: Tensor, soft: Tensor) -> Tensor:
        return -(soft * F.log_softmax(logits / t, dim=1)).sum(1).mean()

    loss.__qualname__ = f"soft_cross_entropy(T={t:g})"
    return loss


@torch.no_grad()
def soft_labels(teacher: Classifier, x: Tensor, temperature: float, *, batch_size: int = 1000) -> Tensor:
    """The teacher's soft labels ``softmax(z(x)/T)``, ``(N, K)`` float32 on the CPU, each row
    summing to 1. The teacher runs in eval mode (its mode is restored).

    Args:
        teacher: the trained teacher (logits).
        x: inputs ``(N, *teacher.input_shape)`` in its bounds.
        temperature: T > 0.
        batch_size: inputs per forward pass, ≥ 1.

    Raises:
        ValueError: T not a finite number > 0, or ``batch_size`` < 1.
    """
    t = _temperature(temperature)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}.")
    with eval_mode(teacher):
        device = teacher.device
        out = [F.softmax(teacher(x[i:i + batch_size].to(device)).float() / t, dim=1).cpu()
               for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, teacher.num_classes)


@dataclass
class Distilled:
    """What :func:`defensive_distillation` returns.

    ``student`` is the deployed defence (raw logits: softmax at T = 1); ``teacher`` the network
    trained at T on the hard labels; ``soft_labels`` the teacher's ``softmax(z/T)`` on the
    training set ``(N, K)``; ``temperature`` T; ``seconds`` the wall time of each fit
    (``"init"``, ``"teacher"``, ``"student"``).
    """

    student: Classifier
    teacher: Classifier
    soft_labels: Tensor
    temperature: float
    seconds: dict


def defensive_distillation(build: Callable[[], Classifier], train: ImageSet, *, temperature: float,
                           recipe: Recipe, student_recipe: Recipe | None = None,
                           init_recipe: Recipe | None = None, resume_dir: Path | None = None,
                           desc: str = "distillation") -> Distilled:
    """Train a teacher at temperature T, then a student at T on its soft labels, from the same
    initial weights (module text); the student is deployed at T = 1.

    Args:
        build: returns a fresh classifier (logits) on the device to train on; its first call's
            weights are the shared initialisation (seed it inside, as
            ``reprolib.models.ModelSpec.build`` does); it is called again for the student.
        train: the training images and hard labels.
        temperature: T > 0 (document 002: 1 … 100).
        recipe: the teacher's training recipe.
        student_recipe: the student's (default: ``recipe``).
        init_recipe: if given, the initial network is first trained by it at temperature T (on
            the hard labels) before the teacher and the student copy it (Carlini & Wagner's code:
            one epoch); ``None`` shares the untrained initialisation.
        resume_dir: a folder for the three runs' resume states (``init``, ``teacher``,
            ``student`` ``.resume.pt``), so an interrupted distillation resumes; ``None`` for none.
        desc: the progress bars' prefix.

    Returns:
        A :class:`Distilled`; ``student`` and ``teacher`` are in eval mode.

    Raises:
        ValueError: T not a finite number > 0, or ``build`` returning a model that is not a
            :class:`~reprolib.models.Classifier` returning logits.
    """
    t = _temperature(temperature)
    student_recipe = recipe if student_recipe is None else student_recipe
    init = build()
    if not isinstance(init, Classifier) or init.output != "logits":
        raise ValueError("build must return a reprolib.models.Classifier with output='logits'.")
    resume = (lambda name: None) if resume_dir is None else (lambda name: Path(resume_dir) / f"{name}.resume.pt")
    if resume_dir is not None:
        Path(resume_dir).mkdir(parents=True, exist_ok=True)
    seconds = {}  # the teacher (and init) minimise cross-entropy on z/T: at_temperature divides
    if init_recipe is not None:
        seconds["init"] = fit(at_temperature(init, t), init_recipe, train, resume_path=resume("init"),
                              desc=f"{desc} init T={t:g}")
    start = copy.deepcopy(init.state_dict())

    teacher = init
    seconds["teacher"] = fit(at_temperature(teacher, t), recipe, train, resume_path=resume("teacher"),
                             desc=f"{desc} teacher T={t:g}")
    q = soft_labels(teacher, train.x, t)

    student = build()
    student.load_state_dict(start)
    student.to(teacher.device)
    seconds["student"] = fit(student, student_recipe, train, resume_path=resume("student"),
                             desc=f"{desc} student T={t:g}", targets=q,
                             loss=soft_cross_entropy(t))
    return Distilled(student=student.eval(), teacher=teacher.eval(), soft_labels=q, temperature=t,
                     seconds=seconds)
