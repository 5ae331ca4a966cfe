"""Deterministic, resumable training of the model zoo.

Every epoch draws its data order, augmentation and dropout masks from generators seeded by
``(recipe.seed, epoch)``, so a run stopped after epoch *e* and resumed from its checkpoint
gives the same weights as an uninterrupted one (on the same hardware).

A defence that needs more than ``loss(model(x), y)`` per batch (adversarial training, VAT)
passes a ``batch_loss(model, x, y, step)`` to :func:`fit`; ``step`` is a :class:`Step`, which
carries the batch's place in the run and a per-batch seed, so the defence is seeded and resumes
like the rest of the run.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import ImageSet
from .files import atomic_open


@dataclass(frozen=True)
class Recipe:
    """How a model is trained. ``schedule`` is ``"cosine"`` (per step, to 0) or ``"constant"``."""

    epochs: int
    lr: float
    optimizer: str = "sgd"  # "sgd" (momentum, Nesterov) or "adam"
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    augment: bool = False  # random crop (pad 4) and horizontal flip, for CIFAR-10
    seed: int = 0

    def as_dict(self) -> dict:
        """The recipe as a plain dict (JSON-serialisable; recorded in checkpoint metadata)."""
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """Where a batch sits in a run of :func:`fit`, as a ``batch_loss`` sees it.

    ``epoch`` (0-based), ``index`` (the global step, 0-based) and ``total`` (steps of the whole
    run) locate the batch; ``seed`` is a seed for the batch's own random draws (an attack's random
    start), a function of ``(recipe.seed, index)`` only, so a resumed run draws the same.
    """

    epoch: int
    index: int
    total: int
    seed: int

    @property
    def progress(self) -> float:
        """The fraction of the run done before this step, in [0, 1)."""
        return self.index / self.total


#: What :func:`fit` calls per batch instead of ``loss(model(x), y)``: a scalar to minimise.
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, Step], torch.Tensor]


def _describe(batch_loss: BatchLoss | None) -> dict | None:
    """What a resume state records of ``batch_loss``: its ``as_dict()``, else its name."""
    if batch_loss is None:
        return None
    if hasattr(batch_loss, "as_dict"):
        return batch_loss.as_dict()
    return {"name": getattr(batch_loss, "__qualname__", type(batch_loss).__qualname__)}


def _optimizer(net: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=True, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"Unknown optimizer {recipe.optimizer!r}; use 'sgd' or 'adam'.")


def _lr_at(recipe: Recipe, step: int, total: int) -> float:
    if recipe.schedule == "constant":
        return recipe.lr
    if recipe.schedule == "cosine":
        return 0.5 * recipe.lr * (1 + math.cos(math.pi * step / total))
    raise ValueError(f"Unknown schedule {recipe.schedule!r}; use 'cosine' or 'constant'.")


def augment_crop_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32×32 crop of the zero-padded (4 px) image and a random horizontal flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # n × h
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)  # n × w
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


@torch.no_grad()
def accuracy(model: nn.Module, data: ImageSet, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on ``data``, as a fraction."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(data), batch_size):
        pred = model(data.x[start:start + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == data.y[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(data)


def _save_atomic(obj, path: Path) -> None:
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def fit(model: nn.Module, recipe: Recipe, train: ImageSet, *, resume_path: Path | None = None,
        desc: str = "train", targets: torch.Tensor | None = None,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        batch_loss: BatchLoss | None = None) -> float:
    """Train ``model`` in place by ``recipe``; returns the wall time in seconds.

    By default the model is a classifier of ``train.y`` under cross-entropy. For a regressor,
    pass ``targets`` (one row per image of ``train``) and a ``loss`` such as ``F.mse_loss``;
    ``loss(model(x_batch), targets_batch)`` is minimised. Augmentation does not transform
    targets, so use it only with targets that are invariant to crops and flips.

    ``batch_loss(model, x_batch, y_batch, step)`` (a :data:`BatchLoss`), when given, replaces
    ``loss(model(x_batch), y_batch)``: it returns the scalar to minimise, e.g. an adversarial
    training loss (:mod:`reprolib.defenses`). The model is put in train mode before each call;
    ``step`` is the batch's :class:`Step`. If the callable has an ``as_dict()`` method, its value
    is recorded in the resume state, and a resume with another value (or with another kind of
    batch loss, or none) is refused.

    If ``resume_path`` is given, the state after every epoch is written there, and a run that
    finds it continues from the last finished epoch.
    """
    if targets is not None and len(targets) != len(train):
        raise ValueError(f"targets has {len(targets)} rows for {len(train)} training images; give one per image.")
    device = next(model.parameters()).device
    opt = _optimizer(model, recipe)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    start_epoch, elapsed = 0, 0.0
    described = _describe(batch_loss)
    if resume_path is not None and resume_path.is_file():
        try:  # weights_only: a resume file holds tensors, numbers and dicts, and nothing in it can run
            state = torch.load(resume_path, map_location=device, weights_only=True)
        except Exception as exc:  # a truncated, foreign or crafted file
            raise RuntimeError(f"{resume_path} is not a reprolib resume state ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); move it away to "
                               "train from the start.") from exc
        if state["recipe"] != recipe.as_dict():
            raise RuntimeError(
                f"{resume_path} holds a run of another recipe ({state['recipe']}); "
                f"move it away to train with {recipe.as_dict()}."
            )
        if state.get("batch_loss") != described:
            raise RuntimeError(
                f"{resume_path} holds a run with another batch_loss ({state.get('batch_loss')}); "
                f"move it away to train with {described}."
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, elapsed = state["epoch"], state["elapsed"]
    x_all, y_all = train.x, (train.y if targets is None else targets)
    model.train()
    bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, desc=desc, unit="step")
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
        torch.manual_seed(recipe.seed * 100_003 + epoch)  # dropout masks
        order = torch.randperm(len(train), generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            xb, yb = x_all[idx].to(device), y_all[idx].to(device)
            if recipe.augment:
                xb = augment_crop_flip(xb, gen)
            for group in opt.param_groups:
                group["lr"] = _lr_at(recipe, epoch * steps_per_epoch + i, total)
            if batch_loss is None:
                value = loss(model(xb), yb)
            else:
                index = epoch * steps_per_epoch + i
                model.train()
                value = batch_loss(model, xb, yb, Step(epoch, index, total,
                                                       (recipe.seed * 1_000_003 + index) % 2**31))
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{value.item():.3f}", refresh=False)
        elapsed += time.perf_counter() - t0
        if resume_path is not None:
            _save_atomic({"recipe": recipe.as_dict(), "model": model.state_dict(),
                          "optimizer": opt.state_dict(), "epoch": epoch + 1, "elapsed": elapsed,
                          **({} if described is None else {"batch_loss": described})},
                         resume_path)
    bar.close()
    model.eval()
    return elapsed
