"""reprolib's attacks against the peer libraries' implementations of the same algorithms.

Every *pair* runs reprolib's attack and each peer's implementation of the same algorithm on the
same trained model and the same images (the first correctly classified test images), with the
same budget: the same iterations, binary-search steps, step sizes, ε, κ and initial c, written
once per pair (:data:`PAIRS`, ``defaults``) and translated into each library's own arguments
(recorded per row as ``native``). Peers: Foolbox 3.3.4, ART 1.20.1, torchattacks 3.5.1.

Measured the same way for every library:

* **passes**: while a library runs, the network inside the :class:`~reprolib.models.Classifier`
  is wrapped in a :class:`PassCounter`, which counts the rows sent forward through it and the
  rows a gradient flows back through (an autograd function on its input; the weights are
  frozen during the run, so every backward pass is one with respect to the input). Everything a
  library spends inside its call is charged, its own final success checks included
  (reprolib's ``finish``, Foolbox's ``__call__``, ART's logged success rate). For ZOO, a
  black-box attack, the forward rows are its queries. reprolib's rows also carry its own
  per-input counts (``reported_*``, from :class:`~reprolib.attacks.core.AttackResult`), which
  exclude the final re-check and charge a backward pass only to the inputs it is for.
* **success**: one fresh forward pass of the returned input clipped to [0, 1] (prediction ≠ label).
* **norms**: l1, l2 and l∞ of ``clip(x_adv, 0, 1) − x``; the pair's norm (``norm``) gives
  the median and mean over the successful images.
* **time**: wall time of the library call alone (wrappers are built before the clock starts),
  the median of ``repeats`` timings (a call slower than a minute is timed once).
* **comparisons**, on each peer's row (reprolib / peer): ``time_ratio`` (< 1: reprolib is
  faster) with its range over the repetitions, ``passes_ratio``, ``median_norm_ratio`` (< 1:
  reprolib finds smaller perturbations), and on the images both libraries fooled the median
  and mean norm ratios and, per image, how often reprolib's norm is smaller, equal (within
  10⁻⁴ relative) or larger (see :func:`run`).

The radii of ``pgd_*`` and ``fgsm`` are chosen so that reprolib fools roughly a third to two
thirds of the first 20 test images (undefended models: a standard ε such as 0.3 would make
every library succeed everywhere and hide the differences).

Every library sees the whole batch at once (ART's ``batch_size`` = the number of images) unless
a setting says otherwise (``art_batch_size``; ZOO uses ART's advice, 1). NumPy and torch are
seeded with ``seed`` before every library run.

The pairs, their common settings (defaults: MNIST / CIFAR-10), and every known difference:

* ``cw_l2`` C&W L2 with a binary search on c: reprolib ``cw_l2``, Foolbox ``L2CarliniWagnerAttack``, ART ``CarliniL2Method``.
  binary_search_steps 5, steps 100, initial_const 0.1, step_size 0.05 / 0.01,
  confidence 0, abort_early on (ART has no abort). Foolbox: the same algorithm (tanh variables,
  Adam in Kingma & Ba's form, ×10 then bisection search), but abort-early compares the loss
  *summed over the batch* (reprolib: per input), the distance is to tanh(arctanh(x·0.999999))
  rather than x, and an input with no adversarial is returned as an all-zero image: the runner
  puts x back there (``blank_replaced``) so that a blank image the model happens to misclassify
  is not a success. ART: a different optimiser, plain gradient steps in tanh space with a line
  search (up to 5 halvings and 5 doublings of the step, each a forward pass) instead of Adam;
  the gradient is taken with two ``class_gradient`` calls whose backward passes run once per
  *distinct label in the batch* over the whole batch; no abort-early; c doubles (not ×10)
  until the first success, then moves by half the bracket.
* ``cw_l2_fixed_c`` one outer step at a fixed c (torchattacks has no binary search): reprolib ``cw_l2(binary_search_steps=1)``, Foolbox and ART with one search step, torchattacks ``CW``.
  const 1.0, steps 100, step_size 0.05 / 0.01, confidence 0, abort_early on. torchattacks:
  ``w`` starts at arctanh(2x − 1) *without* the 0.999999 shrink, so pixels at exactly 0 or 1
  (most of MNIST) start at ±inf and can never move; the best other class is masked with 0,
  not −inf (wrong when the other logits are negative); abort-early compares the summed
  batch cost every steps/10 steps and returns for the whole batch as soon as it rises.
* ``ead`` EAD (elastic net, FISTA): reprolib ``ead``, Foolbox ``EADAttack``, ART ``ElasticNet``.
  beta 1e-3, binary_search_steps 5, steps 100, initial_const 0.1, lr 0.01 (decayed as
  step_size·(1 − k/steps)^½ by all three), confidence 0, decision rule EN, abort_early off (ART has none).
  Momentum: reprolib (k+1)/(k+4) (the authors' TF code), Foolbox and ART k/(k+3) (Alg. 4 as
  printed). Foolbox returns blank images for failures, replaced by x as for C&W; its
  abort-early (off here) would compare the summed batch loss. ART: success of an iterate by
  the plain prediction (κ ignored); once an input's margin is met its *whole* gradient,
  distance term included, is set to 0, so only the shrinkage moves it; each iteration is a
  predict plus two ``class_gradient`` calls (backward per distinct label in the batch) plus a
  predict of the new iterate.
* ``deepfool_l2`` DeepFool l2: reprolib ``deepfool(norm="l2")``, Foolbox ``L2DeepFoolAttack``, torchattacks ``DeepFool``, ART ``DeepFool``.
  steps 50, overshoot 0.02, candidates 10 (all classes of MNIST/CIFAR-10). reprolib runs
  ``overshoot_mode="total"``, Foolbox's algorithm: x0 + 1.02·Σr_t clipped, 1e-4 added to each
  step. Foolbox: a forward pass per candidate class and step (reprolib: one forward, C − 1
  backward), every input is iterated until *all* are fooled (finished inputs are held but
  still cost passes). torchattacks: one image at a time, the full Jacobian (all 10 classes),
  the overshoot applied to every step (x_{t+1} = clip(x_t + 1.02·r_t); reprolib's
  ``"per_step"`` mode), no 1e-4. ART: the gradients of all classes of all images in the batch
  every step, the overshoot applied once at the end to the clipped total, no 1e-4, a small
  1e-7 in the denominators.
* ``deepfool_linf`` DeepFool l∞: reprolib ``deepfool(norm="linf")``, Foolbox ``LinfDeepFoolAttack``.
  As ``deepfool_l2``; ART and torchattacks have no l∞ DeepFool.
* ``pgd_linf`` PGD l∞: reprolib ``pgd(norm="linf")``, Foolbox ``LinfPGD``, torchattacks ``PGD``, ART ``ProjectedGradientDescent(norm=inf)``.
  eps 0.15 / 1/255, steps 40 / 20, step_size 2.5·eps/steps, no random start (every library
  would draw its own), cross-entropy loss. reprolib runs with ``stop_at_success`` on (each input
  is frozen at its first adversarial iterate and costs no further pass: what a success-rate or
  robust-accuracy evaluation needs, and never fewer successes than the last iterate); the peers
  have no such option and run every step (``--set pgd_linf.stop_at_success=False`` compares
  the full budgets). ART clips to the box before the
  ε-projection (the others project, then clip: the same point for l∞).
* ``pgd_l2`` PGD l2: as ``pgd_linf`` with ``norm="l2"``, Foolbox ``L2PGD``, torchattacks ``PGDL2``.
  eps 1.5 / 0.1. Gradient normalised by ‖g‖₂ (+1e-10 in torchattacks, ≥ 1e-12 in Foolbox);
  ART clips to the box before the radial projection, which can differ from project-then-clip.
* ``fgsm`` FGSM: reprolib ``fgsm``, Foolbox ``FGSM``, torchattacks ``FGSM``, ART ``FastGradientMethod(norm=inf)``.
  eps 0.2 / 1/255, one step x + ε·sign(∇CE), clipped. The same algorithm everywhere
  (torchattacks and ART use the batch-mean CE, which has the same sign).
* ``zoo`` ZOO-ADAM (black box): reprolib ``zoo``, ART ``ZooAttack``; the settings of ``benchmarks/zoo_vs_art.py``.
  binary_search_steps 1, steps 50, initial_const 10, step_size 0.1, B = 128
  coordinates per iteration, h 1e-4, early abort every steps // 10 iterations (ART's
  fixed rule), full attack space (ART's ``use_resize``/``use_importance`` off, reprolib no
  tanh, no resize, no importance sampling), κ 0, ART ``batch_size`` 1. ART's loss uses
  logits, it clips the *noise* to the clip values (so it can only brighten pixels), and it
  evaluates one extra forward of the current point per iteration. ``max_queries`` (reprolib
  only; default none) caps reprolib's queries per image, to compare at ART's query count.

The command line keeps every finished (pair, library) row in reprolib's cache (``run(...,
resume=True)``), so a run that is interrupted resumes from the rows it had finished;
``--no-resume`` recomputes them.

The peers are optional: ``make bench`` installs them (``pip install -e .[bench]`` and
``torchattacks==3.5.1`` with ``--no-deps``); a peer that is missing gives a row with an error.

Use::

    python benchmarks/peers.py                              # every pair, cw_mnist (500) and cw_cifar (200)
    python benchmarks/peers.py --models cw_mnist --images 10 --pairs fgsm pgd_linf
    python benchmarks/peers.py --pairs cw_l2 --set cw_l2.steps=20 --libraries reprolib foolbox

From Python::

    from reprolib.evaluation import peers
    rows = peers.run(["fgsm", "deepfool_l2"], "cw_mnist", 50)
    print(peers.table(rows))
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import attacks, cache, data, models
from ..attacks.core import AttackResult, recheck
from ..attacks.ops.norms import lp_norms
from ..device import hardware_summary
from ..models import Classifier
from ..paths import REPO_ROOT

#: Where the command line writes its JSON by default: the checkout's ``benchmarks/results``.
RESULTS = REPO_ROOT / "benchmarks" / "results" if REPO_ROOT is not None else Path("benchmark-results")
LIBRARIES = ("reprolib", "foolbox", "torchattacks", "art")
#: The package each library is imported as (its version is recorded).
MODULES = {"reprolib": "reprolib", "foolbox": "foolbox", "torchattacks": "torchattacks", "art": "art"}
#: Default number of images per dataset (the first correctly classified test images).
DEFAULT_IMAGES = {"mnist": 500, "cifar10": 200}
DEFAULT_MODELS = ("cw_mnist", "cw_cifar")
SEED = 1216
#: :func:`run_one` does not repeat a call that took longer than this (seconds).
REPEAT_BELOW = 60.0
#: Two norms within this relative difference count as equal in the per-image comparison.
NORM_TIE = 1e-4


# ------------------------------------------------------------------------------ measuring
class _CountBackward(torch.autograd.Function):
    """Identity whose backward adds the rows of the incoming gradient to a :class:`PassCounter`."""

    @staticmethod
    def forward(ctx, x: Tensor, counter: "PassCounter") -> Tensor:  # type: ignore[override]
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        ctx.counter.backward_rows += len(grad)
        return grad, None


class PassCounter(nn.Module):
    """Wraps a network and counts the rows of every forward pass and of every backward pass
    through its input (one backward pass of a batch of n rows counts n, each time a graph is
    back-propagated, ``retain_graph`` or not)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.forward_rows = 0
        self.backward_rows = 0

    def reset(self) -> None:
        """Set both row counts back to 0."""
        self.forward_rows = self.backward_rows = 0

    def forward(self, x: Tensor) -> Tensor:
        self.forward_rows += len(x)
        if torch.is_grad_enabled() and x.requires_grad:
            x = _CountBackward.apply(x, self)
        return self.net(x)


@contextlib.contextmanager
def counting(model: Classifier) -> Iterator[PassCounter]:
    """Put a :class:`PassCounter` around ``model.net`` and freeze the weights (so that every
    backward pass is one with respect to the input); both are undone on exit."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    net = model.net
    counter = PassCounter(net)
    model.net = counter
    try:
        yield counter
    finally:
        model.net = net
        for p in frozen:
            p.requires_grad_(True)


@torch.no_grad()
def evaluate(model: Classifier, x: Tensor, y: Tensor, x_adv: Tensor) -> dict:
    """Success (one fresh forward pass of ``x_adv`` clipped to the model's bounds; prediction ≠
    ``y``) and the l1, l2, l∞ norms of ``clip(x_adv) − x`` per image."""
    x_adv = x_adv.detach().to(x.device, x.dtype).clamp(*model.bounds)
    norms = lp_norms(x_adv - x)
    return {"success": recheck(model, x_adv, y, targeted=False).tolist(),
            "norms": {k: [round(v, 6) for v in norms[k].tolist()] for k in ("l1", "l2", "linf")}}


def summarise(success: Sequence[bool], norms: Sequence[float]) -> dict:
    """Success rate, and median and mean of ``norms`` over the successful images (None if none)."""
    hits = [v for ok, v in zip(success, norms) if ok]
    return {"success_rate": sum(map(bool, success)) / len(success) if len(success) else None,
            "median_norm": median(hits) if hits else None,
            "mean_norm": sum(hits) / len(hits) if hits else None}


# ------------------------------------------------------------------------------ adapters
# Every adapter takes (model, s, x, y) with s the resolved settings, and returns
# (native_arguments, attack) where attack(x, y) -> (Tensor | AttackResult, extra_info).


def _foolbox(model: Classifier):
    import foolbox as fb

    return fb, fb.PyTorchModel(model, bounds=model.bounds, device=model.device)


def _foolbox_call(attack, fmodel, x: Tensor, y: Tensor, eps: float | None, blank: bool = False) -> tuple:
    """Foolbox's public call; ``blank``: its minimisation attacks return an all-zero image for
    an input they did not fool, put x back there."""
    _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
    extra = {}
    if blank:
        zero = (clipped.flatten(1) == 0).all(1) & (x.flatten(1) != 0).any(1)
        clipped = torch.where(zero.view((-1,) + (1,) * (x.dim() - 1)), x, clipped)
        extra["blank_replaced"] = int(zero.sum())
    return clipped, extra


def _art_classifier(model: Classifier):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=model.input_shape,
                             nb_classes=model.num_classes, clip_values=model.bounds,
                             device_type="gpu" if model.device.type == "cuda" else "cpu")


def _art_call(attack, x: Tensor, y: Tensor) -> tuple:
    out = attack.generate(x.cpu().numpy(), y=y.cpu().numpy())
    return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device), {}


def _art_batch(s: dict, x: Tensor) -> int:
    return int(s.get("art_batch_size") or len(x))


def _reprolib(fn_name: str, mapping: Callable[[dict], dict]):
    """reprolib's adapter: ``build.attack`` names the attack of :mod:`reprolib.attacks` it calls."""
    def build(model, s, x, y):
        fn = getattr(attacks, fn_name)
        kw = mapping(s)
        return kw, lambda xb, yb: (fn(model, xb, yb, **kw), {})
    build.attack = fn_name
    return build


# C&W L2 ---------------------------------------------------------------------------------
def _cw_ours(s):
    return dict(binary_search_steps=s["binary_search_steps"], steps=s["steps"],
                initial_const=s["initial_const"], step_size=s["step_size"],
                confidence=s["confidence"], abort_early=s["abort_early"])


def _fb_cw(model, s, x, y):
    fb, fmodel = _foolbox(model)
    kw = dict(binary_search_steps=s["binary_search_steps"], steps=s["steps"],
              stepsize=s["step_size"], confidence=s["confidence"], initial_const=s["initial_const"],
              abort_early=s["abort_early"])
    attack = fb.attacks.L2CarliniWagnerAttack(**kw)
    return kw, lambda xb, yb: _foolbox_call(attack, fmodel, xb, yb, None, blank=True)


def _art_cw(model, s, x, y):
    from art.attacks.evasion import CarliniL2Method

    kw = dict(confidence=s["confidence"], learning_rate=s["step_size"],
              binary_search_steps=s["binary_search_steps"], max_iter=s["steps"],
              initial_const=s["initial_const"], batch_size=_art_batch(s, x), verbose=False)
    attack = CarliniL2Method(_art_classifier(model), **kw)
    return kw, lambda xb, yb: _art_call(attack, xb, yb)


def _cw_fixed(s):
    return dict(s, binary_search_steps=1, initial_const=s["const"])


def _ta_cw(model, s, x, y):
    import torchattacks

    kw = dict(c=s["const"], kappa=s["confidence"], steps=s["steps"], lr=s["step_size"])
    attack = torchattacks.CW(model, **kw)
    return kw, lambda xb, yb: (attack(xb, yb), {})


# EAD ------------------------------------------------------------------------------------
def _ead_ours(s):
    return dict(beta=s["beta"], binary_search_steps=s["binary_search_steps"], steps=s["steps"],
                initial_const=s["initial_const"], step_size=s["step_size"], confidence=s["confidence"],
                decision_rule=s["decision_rule"], abort_early=s["abort_early"], solver="fista")


def _fb_ead(model, s, x, y):
    fb, fmodel = _foolbox(model)
    kw = dict(binary_search_steps=s["binary_search_steps"], steps=s["steps"], initial_stepsize=s["step_size"],
              confidence=s["confidence"], initial_const=s["initial_const"], regularization=s["beta"],
              decision_rule=s["decision_rule"], abort_early=s["abort_early"])
    attack = fb.attacks.EADAttack(**kw)
    return kw, lambda xb, yb: _foolbox_call(attack, fmodel, xb, yb, None, blank=True)


def _art_ead(model, s, x, y):
    from art.attacks.evasion import ElasticNet

    kw = dict(confidence=s["confidence"], learning_rate=s["step_size"], binary_search_steps=s["binary_search_steps"],
              max_iter=s["steps"], beta=s["beta"], initial_const=s["initial_const"],
              batch_size=_art_batch(s, x), decision_rule=s["decision_rule"], verbose=False)
    attack = ElasticNet(_art_classifier(model), **kw)
    return kw, lambda xb, yb: _art_call(attack, xb, yb)


# DeepFool -------------------------------------------------------------------------------
def _df_ours(p):
    def mapping(s):
        return dict(norm=p, steps=s["steps"], overshoot=s["overshoot"], candidates=s["candidates"],
                    overshoot_mode="total")
    return mapping


def _fb_deepfool(cls_name):
    def build(model, s, x, y):
        fb, fmodel = _foolbox(model)
        kw = dict(steps=s["steps"], candidates=s["candidates"], overshoot=s["overshoot"], loss="logits")
        attack = getattr(fb.attacks, cls_name)(**kw)
        return kw, lambda xb, yb: _foolbox_call(attack, fmodel, xb, yb, None)
    return build


def _ta_deepfool(model, s, x, y):
    import torchattacks

    kw = dict(steps=s["steps"], overshoot=s["overshoot"])
    attack = torchattacks.DeepFool(model, **kw)
    return kw, lambda xb, yb: (attack(xb, yb), {})


def _art_deepfool(model, s, x, y):
    from art.attacks.evasion import DeepFool

    kw = dict(max_iter=s["steps"], epsilon=s["overshoot"], nb_grads=s["candidates"],
              batch_size=_art_batch(s, x), verbose=False)
    attack = DeepFool(_art_classifier(model), **kw)
    return kw, lambda xb, yb: _art_call(attack, xb, yb)


# PGD and FGSM ----------------------------------------------------------------------------
def _pgd_ours(norm):
    def mapping(s):
        return dict(eps=s["eps"], norm=norm, steps=s["steps"], step_size=s["step_size"],
                    random_start=False, loss="ce", stop_at_success=s["stop_at_success"])
    return mapping


def _fb_pgd(cls_name):
    def build(model, s, x, y):
        fb, fmodel = _foolbox(model)
        kw = dict(abs_stepsize=s["step_size"], steps=s["steps"], random_start=False)
        attack = getattr(fb.attacks, cls_name)(**kw)
        return dict(kw, epsilons=s["eps"]), lambda xb, yb: _foolbox_call(attack, fmodel, xb, yb, s["eps"])
    return build


def _ta_pgd(cls_name):
    def build(model, s, x, y):
        import torchattacks

        kw = dict(eps=s["eps"], alpha=s["step_size"], steps=s["steps"], random_start=False)
        attack = getattr(torchattacks, cls_name)(model, **kw)
        return kw, lambda xb, yb: (attack(xb, yb), {})
    return build


def _art_pgd(norm):
    def build(model, s, x, y):
        from art.attacks.evasion import ProjectedGradientDescent

        kw = dict(norm=norm, eps=s["eps"], eps_step=s["step_size"], max_iter=s["steps"], targeted=False,
                  num_random_init=0, batch_size=_art_batch(s, x), verbose=False)
        attack = ProjectedGradientDescent(_art_classifier(model), **kw)
        return dict(kw, norm=str(norm)), lambda xb, yb: _art_call(attack, xb, yb)
    return build


def _fb_fgsm(model, s, x, y):
    fb, fmodel = _foolbox(model)
    attack = fb.attacks.FGSM()
    return {"epsilons": s["eps"]}, lambda xb, yb: _foolbox_call(attack, fmodel, xb, yb, s["eps"])


def _ta_fgsm(model, s, x, y):
    import torchattacks

    attack = torchattacks.FGSM(model, eps=s["eps"])
    return {"eps": s["eps"]}, lambda xb, yb: (attack(xb, yb), {})


def _art_fgsm(model, s, x, y):
    from art.attacks.evasion import FastGradientMethod

    kw = dict(norm=np.inf, eps=s["eps"], eps_step=s["eps"], targeted=False, num_random_init=0,
              batch_size=_art_batch(s, x), minimal=False)
    attack = FastGradientMethod(_art_classifier(model), **kw)
    return dict(kw, norm="inf"), lambda xb, yb: _art_call(attack, xb, yb)


# ZOO ------------------------------------------------------------------------------------
def _zoo_ours(s):
    return dict(binary_search_steps=s["binary_search_steps"], initial_const=s["initial_const"],
                steps=s["steps"], step_size=s["step_size"],
                coords_per_iter=s["coords_per_iter"], h=s["h"], abort_early_every=s["abort_early_every"],
                abort_early=True, confidence=s["confidence"], use_tanh=False, attack_space=None,
                importance_sampling=False, seed=s["seed"], max_queries=s["max_queries"])


def _art_zoo(model, s, x, y):
    from art.attacks.evasion import ZooAttack

    kw = dict(confidence=s["confidence"], targeted=False, learning_rate=s["step_size"],
              max_iter=s["steps"], binary_search_steps=s["binary_search_steps"],
              initial_const=s["initial_const"], abort_early=True, use_resize=False, use_importance=False,
              nb_parallel=s["coords_per_iter"], batch_size=_art_batch(s, x), variable_h=s["h"], verbose=False)
    attack = ZooAttack(_art_classifier(model), **kw)
    return kw, lambda xb, yb: _art_call(attack, xb, yb)


# ------------------------------------------------------------------------------ pairs
@dataclass(frozen=True)
class Pair:
    """One algorithm: common settings per dataset, reprolib's implementation, and the peers'.
    ``impls`` maps a library to an adapter ``build(model, settings, x, y) -> (native, attack)``;
    ``reprolib`` comes first."""

    name: str
    title: str
    norm: str
    defaults: dict
    impls: dict

    def settings(self, dataset: str, overrides: dict | None = None) -> dict:
        """The pair's settings for ``dataset`` with ``overrides``; derived values
        (``step_size=None`` → 2.5·eps/steps, ``abort_early_every=None`` → steps // 10)
        are filled in after the overrides."""
        if dataset not in self.defaults:
            raise ValueError(f"pair {self.name!r} has no settings for dataset {dataset!r}; "
                             f"it has {sorted(self.defaults)}")
        s = dict(self.defaults[dataset])
        unknown = sorted(set(overrides or {}) - set(s))
        if unknown:
            raise ValueError(f"unknown settings {unknown} for pair {self.name!r}; its settings are {sorted(s)}")
        s.update(overrides or {})
        if "step_size" in s and s["step_size"] is None:
            s["step_size"] = 2.5 * s["eps"] / max(s["steps"], 1)
        if "abort_early_every" in s and s["abort_early_every"] is None:
            s["abort_early_every"] = s["steps"] // 10 if s["steps"] >= 10 else s["steps"]
        return s


def _same(**kw) -> dict:
    return {"mnist": dict(kw), "cifar10": dict(kw)}


def _per(mnist: dict, cifar10: dict, **common) -> dict:
    return {"mnist": dict(common, **mnist), "cifar10": dict(common, **cifar10)}


_CW = dict(binary_search_steps=5, steps=100, initial_const=0.1, confidence=0.0, abort_early=True,
           art_batch_size=None)
_DF = dict(steps=50, overshoot=0.02, candidates=10, art_batch_size=None)
_PGD = dict(step_size=None, stop_at_success=True, art_batch_size=None)

PAIRS: dict[str, Pair] = {p.name: p for p in (
    Pair("cw_l2", "C&W L2", "l2",
         _per({"step_size": 0.05}, {"step_size": 0.01}, **_CW),
         {"reprolib": _reprolib("cw_l2", _cw_ours), "foolbox": _fb_cw, "art": _art_cw}),
    Pair("cw_l2_fixed_c", "C&W L2, one c", "l2",
         _per({"step_size": 0.05}, {"step_size": 0.01}, const=1.0, steps=100, confidence=0.0,
              abort_early=True, art_batch_size=None),
         {"reprolib": _reprolib("cw_l2", lambda s: _cw_ours(_cw_fixed(s))),
          "foolbox": lambda m, s, x, y: _fb_cw(m, _cw_fixed(s), x, y),
          "torchattacks": _ta_cw,
          "art": lambda m, s, x, y: _art_cw(m, _cw_fixed(s), x, y)}),
    Pair("ead", "EAD (EN rule)", "l1",
         _same(beta=1e-3, binary_search_steps=5, steps=100, initial_const=0.1, step_size=0.01, confidence=0.0,
               decision_rule="EN", abort_early=False, art_batch_size=None),
         {"reprolib": _reprolib("ead", _ead_ours), "foolbox": _fb_ead, "art": _art_ead}),
    Pair("deepfool_l2", "DeepFool l2", "l2", _same(**_DF),
         {"reprolib": _reprolib("deepfool", _df_ours(2)),
          "foolbox": _fb_deepfool("L2DeepFoolAttack"), "torchattacks": _ta_deepfool, "art": _art_deepfool}),
    Pair("deepfool_linf", "DeepFool l∞", "linf", _same(**_DF),
         {"reprolib": _reprolib("deepfool", _df_ours(math.inf)),
          "foolbox": _fb_deepfool("LinfDeepFoolAttack")}),
    Pair("pgd_linf", "PGD l∞", "linf",
         _per({"eps": 0.15, "steps": 40}, {"eps": 1 / 255, "steps": 20}, **_PGD),
         {"reprolib": _reprolib("pgd", _pgd_ours("linf")), "foolbox": _fb_pgd("LinfPGD"),
          "torchattacks": _ta_pgd("PGD"), "art": _art_pgd(np.inf)}),
    Pair("pgd_l2", "PGD l2", "l2",
         _per({"eps": 1.5, "steps": 40}, {"eps": 0.1, "steps": 20}, **_PGD),
         {"reprolib": _reprolib("pgd", _pgd_ours("l2")), "foolbox": _fb_pgd("L2PGD"),
          "torchattacks": _ta_pgd("PGDL2"), "art": _art_pgd(2)}),
    Pair("fgsm", "FGSM", "linf",
         _per({"eps": 0.2}, {"eps": 1 / 255}, art_batch_size=None),
         {"reprolib": _reprolib("fgsm", lambda s: {"eps": s["eps"]}), "foolbox": _fb_fgsm,
          "torchattacks": _ta_fgsm, "art": _art_fgsm}),
    Pair("zoo", "ZOO-ADAM", "l2",
         _same(binary_search_steps=1, steps=50, initial_const=10.0, step_size=0.1,
               coords_per_iter=128, h=1e-4, abort_early_every=None, confidence=0.0, seed=SEED,
               max_queries=None, art_batch_size=1),
         {"reprolib": _reprolib("zoo", _zoo_ours), "art": _art_zoo}),
)}


# ------------------------------------------------------------------------------ running
def version(library: str) -> str | None:
    """The installed version of a library, None if it is not importable."""
    try:
        return getattr(importlib.import_module(MODULES[library]), "__version__", "?")
    except ImportError:
        return None


def dataset_of(model: Classifier) -> str:
    """``"mnist"`` or ``"cifar10"`` from the model's input shape."""
    shapes = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}
    if model.input_shape not in shapes:
        raise ValueError(f"cannot tell the dataset of a model with input shape {model.input_shape}; pass dataset=")
    return shapes[model.input_shape]


def load_images(model: str | Classifier, n_images: int | None = None, *, dataset: str | None = None,
                device=None) -> tuple[Classifier, Tensor, Tensor, list[int], str]:
    """The model (loaded from the zoo when named) and its first ``n_images`` correctly classified
    test images: ``(model, x, y, dataset_indices, dataset)``."""
    if isinstance(model, str):
        model = models.load(model, device=device, train_if_missing=False)
    model.eval()
    dataset = dataset or dataset_of(model)
    n_images = DEFAULT_IMAGES[dataset] if n_images is None else n_images
    sample = data.first_correct(model, data.load(dataset, "test"), n_images)
    return model, sample.x.to(model.device), sample.y.to(model.device), sample.indices.tolist(), dataset


def _plain(v):
    """A setting as a JSON value (inf as the string "inf", objects by repr)."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _ratio(a, b):
    return a / b if a is not None and b else None


def run_one(pair: Pair, library: str, model: Classifier, x: Tensor, y: Tensor, settings: dict,
            seed: int = SEED, repeats: int = 1, repeat_below: float = REPEAT_BELOW) -> dict:
    """Run one library's implementation of ``pair`` on ``(x, y)`` and measure it (see the module
    docstring). A peer that is not installed, or that raises, gives a row with ``error``.

    The call is timed ``repeats`` times (re-seeded each time; the results of the first run are
    kept), except that a call that took more than ``repeat_below`` seconds is not repeated:
    ``seconds`` is the median of the timings, ``seconds_all`` lists them."""
    row = {"pair": pair.name, "attack": pair.title, "norm": pair.norm, "library": library,
           "version": version(library), "n_images": len(x), "settings": settings, "native": None,
           "error": None}
    if row["version"] is None:
        row["error"] = f"{library} is not installed"
        return row
    n = len(x)
    with counting(model) as counter:
        try:
            native, attack = pair.impls[library](model, settings, x, y)
            row["native"] = {k: _plain(v) for k, v in native.items()}
            _seed(seed)
            counter.reset()
            t0 = time.perf_counter()
            out, extra = attack(x, y)
            timings = [time.perf_counter() - t0]
            fwd, bwd = counter.forward_rows, counter.backward_rows
            while len(timings) < repeats and timings[0] <= repeat_below:
                _seed(seed)
                t0 = time.perf_counter()
                attack(x, y)
                timings.append(time.perf_counter() - t0)
        except Exception as exc:  # a peer's failure is a result, not a crash of the benchmark
            if library == "reprolib":
                raise
            row["error"] = f"{type(exc).__name__}: {exc}"
            return row
    x_adv = out.x_adv if isinstance(out, AttackResult) else out
    ev = evaluate(model, x, y, x_adv)
    row.update(summarise(ev["success"], ev["norms"][pair.norm]))
    seconds = median(timings)
    row.update(seconds=seconds, seconds_all=timings, seconds_per_image=seconds / n,
               forward_passes_per_image=fwd / n,
               backward_passes_per_image=bwd / n, passes_per_image=(fwd + bwd) / n, **extra)
    if isinstance(out, AttackResult):
        row.update(reported_forwards_per_image=out.forwards.float().mean().item(),
                   reported_backwards_per_image=out.backwards.float().mean().item(),
                   reported_queries_per_image=out.queries.float().mean().item())
    row.update(success=ev["success"], norms=ev["norms"])
    return row


def compare(ours: dict, peer: dict) -> dict:
    """Add to a peer's row (and return it) its comparisons with reprolib's row ``ours`` of the
    same pair and images (the keys are listed in :func:`run`)."""
    for k in ("time_ratio", "time_ratio_range", "passes_ratio", "median_norm_ratio", "median_norm_ratio_common",
              "mean_norm_ratio_common", "n_common", "norm_smaller", "norm_equal", "norm_larger"):
        peer[k] = None
    if ours.get("error") or peer.get("error"):
        return peer
    peer["time_ratio"] = _ratio(ours["seconds"], peer["seconds"])
    peer["time_ratio_range"] = [min(ours["seconds_all"]) / max(peer["seconds_all"]),
                                max(ours["seconds_all"]) / min(peer["seconds_all"])]
    peer["passes_ratio"] = _ratio(ours["passes_per_image"], peer["passes_per_image"])
    peer["median_norm_ratio"] = _ratio(ours["median_norm"], peer["median_norm"])
    key = ours["norm"]
    both = [(a, b) for ok1, ok2, a, b in zip(ours["success"], peer["success"], ours["norms"][key],
                                              peer["norms"][key]) if ok1 and ok2]
    peer["n_common"] = len(both)
    if both:
        peer["median_norm_ratio_common"] = _ratio(median(a for a, _ in both), median(b for _, b in both))
        peer["mean_norm_ratio_common"] = _ratio(sum(a for a, _ in both), sum(b for _, b in both))
        tie = [abs(a - b) <= NORM_TIE * max(abs(a), abs(b)) for a, b in both]
        peer["norm_equal"] = sum(tie)
        peer["norm_smaller"] = sum(a < b and not t for (a, b), t in zip(both, tie))
        peer["norm_larger"] = len(both) - peer["norm_equal"] - peer["norm_smaller"]
    return peer


def resolve_pairs(pairs: Sequence[str] | None) -> list[Pair]:
    """The :class:`Pair` of each name (all of :data:`PAIRS` for ``None``), in the given order.

    Raises:
        ValueError: an unknown name, listing the valid ones.
    """
    names = list(PAIRS) if pairs is None else list(pairs)
    unknown = [p for p in names if p not in PAIRS]
    if unknown:
        raise ValueError(f"unknown pairs {unknown}; choose from {list(PAIRS)}")
    return [PAIRS[p] for p in names]


def run(pairs: Sequence[str] | None, model: str | Classifier, n_images: int | None = None, *,
        images: tuple[Tensor, Tensor] | None = None, dataset: str | None = None,
        libraries: Sequence[str] | None = None, settings: dict | None = None, seed: int = SEED,
        name: str | None = None, device=None, progress: bool = True, resume: bool = False,
        repeats: int = 1, repeat_below: float = REPEAT_BELOW) -> list[dict]:
    """Run ``pairs`` (names of :data:`PAIRS`; None: all) on ``model`` (a zoo name or a
    :class:`Classifier`) and return one row per pair and library (reprolib first).

    Args:
        n_images: the first ``n_images`` correctly classified test images (default 500 MNIST,
            200 CIFAR-10); ignored when ``images=(x, y)`` is given.
        dataset: ``"mnist"`` or ``"cifar10"``; inferred from the model's input shape.
        libraries: which of :data:`LIBRARIES` to run (default all); reprolib always runs.
        settings: overrides per pair, e.g. ``{"cw_l2": {"steps": 20}}``.
        seed: numpy and torch are seeded with it before every library run.
        repeats: time every call this many times (the median is ``seconds``; ``seconds_all``
            lists them), except calls slower than ``repeat_below`` seconds, timed once.
        name: the model's name in the rows (default: the zoo name, else the network's class).
        resume: keep every finished (pair, library) row in reprolib's cache
            (:mod:`reprolib.cache`, keyed by the network's weights, the images, the settings,
            the seed, the library's version and the source of this module and of
            :mod:`reprolib.attacks`), so that a run that was interrupted, or a later run of the
            same rows, takes them from there. A row from the cache keeps the time measured
            when it was computed.

    Each row: ``pair, attack, norm, library, version, model, dataset, n_images, settings,
    native, error`` and, unless ``error``: ``success_rate, median_norm, mean_norm`` (the pair's
    norm, over successes), ``seconds, seconds_per_image, forward_passes_per_image,
    backward_passes_per_image, passes_per_image``, per image ``success`` and ``norms``
    (l1/l2/linf); reprolib's rows add ``reported_forwards/backwards/queries_per_image``, the
    peers' rows the comparisons with reprolib's row (ratios are reprolib / peer):
    ``time_ratio`` (of the median timings) and ``time_ratio_range`` (its extremes over the
    repetitions: reprolib's fastest over the peer's slowest, and the reverse), ``passes_ratio``
    (forward + backward passes per image), ``median_norm_ratio``; over the ``n_common`` images
    both fooled, ``median_norm_ratio_common``, ``mean_norm_ratio_common`` and the per-image
    counts ``norm_smaller``, ``norm_equal`` (within a relative :data:`NORM_TIE`) and
    ``norm_larger`` of reprolib's norm against the peer's.
    """
    chosen = resolve_pairs(pairs)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer ≥ 1, got {repeats!r}")
    libs = list(LIBRARIES if libraries is None else libraries)
    unknown = [lib for lib in libs if lib not in LIBRARIES]
    if unknown:
        raise ValueError(f"unknown libraries {unknown}; choose from {list(LIBRARIES)}")
    libs = ["reprolib"] + [lib for lib in libs if lib != "reprolib"]  # first: the peers compare with it
    bad = sorted(set(settings or {}) - {p.name for p in chosen})
    if bad:
        raise ValueError(f"settings given for pairs that do not run: {bad}")
    name = name or (model if isinstance(model, str) else type(model.net).__name__)
    if isinstance(model, str):
        model = models.load(model, device=device, train_if_missing=False)
    if images is None:
        model, x, y, _, dataset = load_images(model, n_images, dataset=dataset)
    else:
        x, y = images
        model.eval()
        dataset = dataset or dataset_of(model)
    jobs = [(p, lib) for p in chosen for lib in libs if lib in p.impls]
    rows: list[dict] = []
    ours: dict | None = None
    for pair, lib in tqdm(jobs, desc=f"peers {name}", disable=not progress):
        s = pair.settings(dataset, (settings or {}).get(pair.name))
        run_row = lambda: run_one(pair, lib, model, x, y, s, seed, repeats, repeat_below)  # noqa: E731
        if resume:
            row = cache.cached(f"bench/{name}/{pair.name}/{lib}",
                               {"model": model, "x": x, "y": y, "settings": s, "seed": seed,
                                "version": version(lib), "repeats": repeats, "repeat_below": repeat_below},
                               run_row, code=[__file__, attacks])
        else:
            row = run_row()
        row.update(model=name, dataset=dataset)
        if lib == "reprolib":
            ours = row
        else:
            compare(ours, row)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------ output
def _fmt(v, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'-':>{width}s}" if v is None else format(v, spec)


def _range(v) -> str:
    return "-" if not v else f"{v[0]:.2f}–{v[1]:.2f}"


def _counts(r: dict) -> str:
    return "-" if r.get("norm_smaller") is None else f"{r['norm_smaller']},{r['norm_equal']},{r['norm_larger']}"


def table(rows: Sequence[dict]) -> str:
    """The summary table of :func:`run`'s rows."""
    head = (f"{'model':9s} {'pair':14s} {'library':12s} {'success':>8s} {'median':>8s} {'mean':>8s} "
            f"{'s/image':>8s} {'fwd/img':>8s} {'bwd/img':>8s} {'t ours/':>8s} {'t range':>11s} "
            f"{'med ours/':>9s} {'common':>9s} {'ours <,=,>':>12s}")
    lines = [head, f"{'':9s} {'':14s} {'':12s} {'':>8s} {'norm':>8s} {'norm':>8s} {'':>8s} {'':>8s} "
                   f"{'':>8s} {'peer':>8s} {'':>11s} {'peer':>9s} {'med ratio':>9s} {'per image':>12s}"]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['model']:9s} {r['pair']:14s} {r['library']:12s} {r['error']}")
            continue
        lines.append(
            f"{r['model']:9s} {r['pair']:14s} {r['library']:12s} {100 * r['success_rate']:7.1f}% "
            f"{_fmt(r['median_norm'], '8.4f')} {_fmt(r['mean_norm'], '8.4f')} {r['seconds_per_image']:8.4f} "
            f"{r['forward_passes_per_image']:8.1f} {r['backward_passes_per_image']:8.1f} "
            f"{_fmt(r.get('time_ratio'), '8.2f')} {_range(r.get('time_ratio_range')):>11s} "
            f"{_fmt(r.get('median_norm_ratio'), '9.3f')} {_fmt(r.get('median_norm_ratio_common'), '9.3f')} "
            f"{_counts(r):>12s}")
    return "\n".join(lines)


def environment(device=None) -> dict:
    """Hardware (of ``device``; default reprolib's), threads and versions, for the results file."""
    return {"hardware": hardware_summary(device),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "versions": {lib: version(lib) for lib in LIBRARIES}}


def write(path: Path, benchmark: str, images: dict, rows: list[dict], device=None) -> None:
    """The results file: environment, the images used per model, and the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": benchmark, **environment(device), "seed": SEED, "images": images, "results": rows}
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


def _parse_set(items: Sequence[str]) -> dict:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        pair, dot, setting = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set wants PAIR.SETTING=VALUE, got {item!r}")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(pair, {})[setting] = parsed
    return out


def main(argv=None) -> dict:
    """The command line (``python benchmarks/peers.py --help``): run the pairs, print the table,
    write the results file; returns ``{"path", "results"}``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="zoo models (default cw_mnist cw_cifar)")
    p.add_argument("--pairs", nargs="+", default=None, choices=list(PAIRS), help="pairs (default all)")
    p.add_argument("--libraries", nargs="+", default=None, choices=list(LIBRARIES),
                   help="libraries (default all; reprolib always runs)")
    p.add_argument("--images", type=int, default=None, help="images per model (default 500 MNIST, 200 CIFAR-10)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PAIR.SETTING=VALUE",
                   help="override a pair's setting, e.g. --set cw_l2.steps=20 (repeatable)")
    p.add_argument("--repeats", type=int, default=1,
                   help=f"time each call this many times, the median counts (calls over {REPEAT_BELOW:.0f} s: once)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="device (default cpu)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/peers.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-resume", action="store_true",
                   help="recompute every row (default: rows finished by an earlier run of the same "
                        "model, images, settings and versions are taken from reprolib's cache)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = _parse_set(args.overrides)
    chosen = [pr.name for pr in resolve_pairs(args.pairs)]
    if set(overrides) - set(chosen):
        p.error(f"--set names pairs that do not run: {sorted(set(overrides) - set(chosen))}")

    rows: list[dict] = []
    images: dict = {}
    for name in args.models:
        try:
            model, x, y, indices, dataset = load_images(name, args.images, device=args.device)
        except models.CheckpointError as exc:
            sys.exit(f"{name} is not available ({exc}). Train it with `python -m reprolib.models {name}`.")
        images[name] = {"dataset": dataset, "split": "test", "indices": indices}
        rows += run(chosen, model, images=(x, y), dataset=dataset, libraries=args.libraries, name=name,
                    settings=overrides, progress=not args.no_progress, resume=not args.no_resume,
                    repeats=args.repeats)
    path = args.out or RESULTS / "peers.json"
    write(path, "peers", images, rows, args.device)
    env = environment(args.device)
    print(f"{env['hardware']}; torch {torch.__version__}; "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v))
    print(table(rows))
    print(f"written: {os.path.relpath(path)}")
    return {"path": str(path), "results": rows}


if __name__ == "__main__":
    main()
