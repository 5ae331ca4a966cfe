"""How an attack's cost grows, and where its time goes: time per image against the batch size
and against the number of images, the peak memory of one call, and the share of the time spent
inside the network's forward and backward passes.

An attack that batches well costs less per image as the batch grows (the model's kernels work on
larger matrices, and the per-step Python work is shared) and the same per image whatever the
number of images (nothing in it is quadratic in the dataset). Both are measured here on the
caller's images, with :func:`~reprolib.evaluation.run.run_attack` splitting them into batches and
no cache, so that every number is a fresh measurement.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the call; on the CPU, the peak
resident set size of the process sampled every millisecond during the call (``/proc/self/statm``,
Linux), minus its size just before: it includes the attack's tensors and the allocator's caches,
and misses peaks shorter than the sampling interval.

Time in the network (:func:`breakdown`): forward hooks time every forward pass of the
Classifier's network, and full backward hooks (a pre-hook when the gradient reaches its output,
a hook when it leaves its input) every backward pass; the rest of the attack's wall time is its
own work (input checks, the optimiser, norms, bookkeeping, Python).

Use::

    from reprolib.attacks import pgd
    from reprolib.evaluation import scaling
    rows = scaling.by_batch_size(pgd, model, x, y, [1, 8, 64, 512], eps=0.1, steps=10)

or the command line, every attack of :data:`PLAN` on the zoo's ``cw_mnist``::

    python benchmarks/scaling.py --images 512 --batch-sizes 1 8 64 512 --counts 50 200 500 2000
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from .. import attacks, data, models
from ..attacks.core import AttackResult
from ..models.classifier import Classifier
from .run import run_attack


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(call: Callable[[], object], device: torch.device) -> tuple[object, int]:
    """Run ``call()`` and return its value and the peak memory it added, in bytes (module
    text: CUDA's allocator peak, or the sampled resident set size on the CPU).

    Raises:
        OSError: on a CPU without ``/proc/self/statm`` (not Linux).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        value = call()
        torch.cuda.synchronize(device)
        return value, torch.cuda.max_memory_allocated(device) - before
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        value = call()
    finally:
        done.set()
        sampler.join()
    return value, max(peak[0], _rss_bytes()) - before


def breakdown(attack: Callable[..., AttackResult], model: Classifier, x: Tensor, y: Tensor, **settings) -> dict:
    """One call ``attack(model, x, y, **settings)``, with its wall time split (module text):
    ``seconds``, ``forward_seconds`` and ``backward_seconds`` (inside the network),
    ``other_seconds`` (the rest) and ``share_in_model`` (the network's share, 0–1).

    On CUDA the device is synchronised around every pass, which slows the attack a little.
    """
    net, sync = model.net, (lambda: torch.cuda.synchronize(x.device)) if x.device.type == "cuda" else (lambda: None)
    spent = {"forward": 0.0, "backward": 0.0}
    opened: dict[str, float] = {}

    def opener(kind):
        def hook(*_):
            sync()
            opened[kind] = time.perf_counter()
        return hook

    def closer(kind):
        def hook(*_):
            sync()
            spent[kind] += time.perf_counter() - opened.pop(kind)
        return hook

    handles = [net.register_forward_pre_hook(opener("forward")), net.register_forward_hook(closer("forward")),
               net.register_full_backward_pre_hook(opener("backward")),
               net.register_full_backward_hook(closer("backward"))]
    try:
        t0 = time.perf_counter()
        attack(model, x, y, **settings)
        seconds = time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    inside = spent["forward"] + spent["backward"]
    return {"seconds": seconds, "forward_seconds": spent["forward"], "backward_seconds": spent["backward"],
            "other_seconds": seconds - inside, "share_in_model": inside / seconds if seconds > 0 else float("nan")}


def _timed(attack: Callable[..., AttackResult], model: Classifier, x: Tensor, y: Tensor, batch_size: int,
           settings: dict) -> dict:
    t0 = time.perf_counter()
    r = run_attack(attack, model, (x, y), batch_size=batch_size, progress=False, **settings)
    seconds = time.perf_counter() - t0
    return {"n_images": len(x), "batch_size": batch_size, "seconds": seconds,
            "seconds_per_image": seconds / len(x), "success_rate": r.success_rate,
            "passes_per_image": float((r.forwards + r.backwards).float().mean())}


def _check(sizes: Sequence[int], name: str, at_most: int | None = None) -> list[int]:
    sizes = list(sizes)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"{name} must be integers ≥ 1, got {sizes!r}")
    if at_most is not None and max(sizes) > at_most:
        raise ValueError(f"{name} go up to {max(sizes)}, but only {at_most} images were given")
    return sizes


def by_batch_size(attack: Callable[..., AttackResult], model: Classifier, x: Tensor, y: Tensor,
                  batch_sizes: Sequence[int], **settings) -> list[dict]:
    """Attack all of ``x`` (N, ...) with labels ``y`` (N,) once per batch size.

    Returns one row per batch size: ``n_images, batch_size, seconds`` (wall time of the whole
    run), ``seconds_per_image``, ``success_rate``, ``passes_per_image`` (forward + backward).

    Raises:
        ValueError: a batch size < 1, or one larger than N.
    """
    return [_timed(attack, model, x, y, b, settings) for b in _check(batch_sizes, "batch_sizes", len(x))]


def by_images(attack: Callable[..., AttackResult], model: Classifier, x: Tensor, y: Tensor,
              counts: Sequence[int], batch_size: int, **settings) -> list[dict]:
    """Attack the first n images of ``x`` for each n in ``counts``, in batches of ``batch_size``;
    rows as :func:`by_batch_size`.

    Raises:
        ValueError: a count < 1 or larger than N, or ``batch_size`` < 1.
    """
    _check([batch_size], "batch_size")
    return [_timed(attack, model, x[:n], y[:n], batch_size, settings) for n in _check(counts, "counts", len(x))]


def memory(attack: Callable[..., AttackResult], model: Classifier, x: Tensor, y: Tensor, batch_size: int,
           **settings) -> dict:
    """The peak memory (:func:`peak_memory`) of attacking ``x`` in batches of ``batch_size``:
    ``n_images, batch_size, peak_bytes, bytes_per_image``."""
    _check([batch_size], "batch_size")
    _, peak = peak_memory(lambda: run_attack(attack, model, (x, y), batch_size=batch_size, progress=False,
                                             **settings), x.device)
    return {"n_images": len(x), "batch_size": batch_size, "peak_bytes": peak, "bytes_per_image": peak / len(x)}


#: The attacks the command line measures, with short budgets (MNIST settings of the peers
#: benchmark, :mod:`reprolib.evaluation.peers`): name → (attack, settings).
PLAN: dict[str, tuple[str, dict]] = {
    "fgsm": ("fgsm", {"eps": 0.2}),
    "pgd_linf": ("pgd", {"eps": 0.15, "norm": "linf", "steps": 10}),
    "deepfool_l2": ("deepfool", {"norm": "l2", "steps": 50, "overshoot": 0.02}),
    "cw_l2": ("cw_l2", {"binary_search_steps": 1, "steps": 20, "initial_const": 1.0, "step_size": 0.05}),
}


def main(argv=None) -> dict:
    """The command line (``python benchmarks/scaling.py --help``): every sweep of every attack
    of :data:`PLAN`, printed as JSON lines and written to ``--out``; returns ``{"rows"}``."""
    p = argparse.ArgumentParser(description="Time per image against batch size and image count, and peak "
                                            "memory, for the attacks of reprolib.evaluation.scaling.PLAN.")
    p.add_argument("--model", default="cw_mnist")
    p.add_argument("--images", type=int, default=512, help="images for the batch-size sweep and the memory probe")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64, 512])
    p.add_argument("--counts", type=int, nargs="+", default=[50, 200, 500, 2000])
    p.add_argument("--batch-size", type=int, default=256, help="batch size of the image-count sweep")
    p.add_argument("--attacks", nargs="+", default=list(PLAN), choices=list(PLAN))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.json"))
    args = p.parse_args(argv)
    model = models.load(args.model, train_if_missing=False)
    sample = data.first_correct(model, data.load("mnist" if model.input_shape[0] == 1 else "cifar10", "test"),
                                max(args.images, max(args.counts)))
    x, y = sample.x.to(model.device), sample.y.to(model.device)
    rows = []
    for name in args.attacks:
        fn_name, settings = PLAN[name]
        fn = getattr(attacks, fn_name)
        for kind, part in (("batch_size", by_batch_size(fn, model, x[:args.images], y[:args.images],
                                                          args.batch_sizes, **settings)),
                           ("images", by_images(fn, model, x, y, args.counts, args.batch_size, **settings)),
                           ("memory", [memory(fn, model, x[:args.images], y[:args.images], args.images,
                                              **settings)])):
            for r in part:
                rows.append({"attack": name, "sweep": kind, **r})
                print(json.dumps(rows[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=1) + "\n")
    return {"rows": rows}
