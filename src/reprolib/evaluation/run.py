"""Run an attack over a set of images in batches: cached per batch, resumable, with a progress bar.

:func:`run_attack` is what a sweep over a data set needs around any attack of
:mod:`reprolib.attacks`: it splits the images into batches, runs the attack on each, keeps either
the whole :class:`~reprolib.attacks.core.AttackResult` or a per-input ``summary`` of it, and joins the
batches back in the original order. With a ``cache_name``, each batch is a step of
:mod:`reprolib.cache`: an interrupted run resumes at the first batch it had not finished, and a
change to the attack's code (or to anything it imports), its settings, the model, the images,
the batch size or the summary's code recomputes it. Every reprolib attack draws its random
numbers from its own ``seed`` setting, so a batch's result does not depend on what ran before.
"""
from __future__ import annotations

import hashlib
import inspect
import types
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .. import cache
from ..attacks.core import AttackResult
from ..data import ImageSet
from ..models.classifier import Classifier

_PER_INPUT = ("x", "x_adv", "x_raw", "labels", "success", "success_raw", "forwards", "backwards", "queries",
              "nonfinite_gradients")


def code_digest(fn: Callable) -> str:
    """A digest of a function's compiled code (bytecode, constants, names, nested functions), so a
    summary defined in a notebook is part of a cache key without a source file."""
    h = hashlib.sha256()

    def feed(code: types.CodeType) -> None:
        h.update(code.co_code)
        h.update(repr(code.co_names).encode())
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                feed(const)
            else:
                h.update(repr(const).encode())

    feed(fn.__code__)
    return h.hexdigest()


def concat(results: list[AttackResult]) -> AttackResult:
    """Join the results of consecutive batches of one attack into one result (on the CPU).

    Per-input fields are concatenated and ``seconds`` added up; ``success_raw`` is ``None`` when
    any batch left it unchecked (see ``check_raw`` in :func:`reprolib.attacks.core.attack`). An ``info`` entry that is a
    tensor with one row per input is concatenated; any other entry is kept as the list of the
    batches' values.
    """
    if not results:
        raise ValueError("concat needs at least one result")
    results = [r.cpu() for r in results]
    first = results[0]
    joined = {k: None if any(getattr(r, k) is None for r in results) else torch.cat([getattr(r, k) for r in results])
              for k in _PER_INPUT}
    info = {}
    for key in first.info:
        values = [r.info.get(key) for r in results]
        if all(torch.is_tensor(v) and v.dim() and len(v) == len(r) for v, r in zip(values, results)):
            info[key] = torch.cat(values)
        else:
            info[key] = values
    norms = {k: torch.cat([r.norms[k] for r in results]) for k in first.norms}
    norms_raw = {k: torch.cat([r.norms_raw[k] for r in results]) for k in first.norms_raw}
    return AttackResult(**joined, targeted=first.targeted, norms=norms, norms_raw=norms_raw,
                        seconds=sum(r.seconds for r in results), attack=first.attack, params=first.params,
                        info=info)


def run_attack(attack: Callable[..., AttackResult], model: Classifier, images: ImageSet | tuple[Tensor, Tensor],
               *, batch_size: int = 256, summary: Callable[[AttackResult], dict[str, Tensor]] | None = None,
               cache_name: str | None = None, progress: bool = True,
               **settings) -> AttackResult | dict[str, Tensor]:
    """Run ``attack(model, x, y, **settings)`` over ``images`` in batches of ``batch_size``.

    Args:
        attack: any attack of :mod:`reprolib.attacks`.
        model: the classifier.
        images: an :class:`~reprolib.data.ImageSet` or a pair ``(x, y)`` (``y``: true labels, or
            targets when ``settings`` hold ``targeted=True``).
        batch_size: inputs per attack call (≥ 1); bounds the memory.
        summary: maps each batch's result to per-input tensors (a dict of tensors of length the
            batch); the run then returns their concatenation, a dict, plus ``"seconds"`` (one
            entry per batch). ``None`` keeps the whole result (:func:`concat`).
        cache_name: cache each batch as a step of :mod:`reprolib.cache` under this name; ``None``
            computes without caching.
        progress: show a progress bar over the batches (unless the ``TQDM_DISABLE`` environment
            variable turns every bar off, as the chapter runner does); ``False``: never.
        settings: the attack's settings. A tensor whose first dimension is the number of images
            (one value per input, such as a per-input ``initial_const``) is split with them, so
            each batch gets the values of its own inputs; everything else goes to every batch.

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult` over all images (on the CPU), or the summary dict.

    Raises:
        ValueError: for a batch size below 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}.")
    x, y = (images.x, images.y) if isinstance(images, ImageSet) else images
    module = inspect.getmodule(attack)
    code = [module] if module is not None and getattr(module, "__file__", None) else []
    digest = None if summary is None else code_digest(summary)
    parts = []
    starts = range(0, len(x), batch_size)
    per_input = {k for k, v in settings.items() if isinstance(v, Tensor) and v.dim() >= 1 and len(v) == len(x)}
    bar = {} if progress else {"disable": True}  # without an explicit `disable`, TQDM_DISABLE applies
    for i in tqdm(starts, desc=f"{getattr(attack, '__name__', 'attack')}", leave=False, **bar):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        batch_settings = {k: v[i:i + batch_size] if k in per_input else v for k, v in settings.items()}

        def compute(xb=xb, yb=yb, batch_settings=batch_settings):
            r = attack(model, xb, yb, **batch_settings)
            if summary is None:
                return r.cpu()
            out = {k: v.detach().cpu() for k, v in summary(r).items()}
            out["seconds"] = torch.tensor([r.seconds])
            return out

        if cache_name is None:
            parts.append(compute())
        else:
            inputs = {"attack": getattr(attack, "__name__", repr(attack)), "settings": batch_settings, "model": model,
                      "x": xb, "y": yb, "batch_size": batch_size, "summary": digest}
            parts.append(cache.cached(cache_name, inputs, compute, code=code))
    if not parts:
        if summary is None:
            return attack(model, x[:0], y[:0], **settings).cpu()
        return {}
    if summary is None:
        return concat(parts)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

