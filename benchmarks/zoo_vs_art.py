"""ZOO per image: reprolib's batched ZOO against ART's ``ZooAttack`` at equal settings.

Both attack the same trained ``cw_mnist`` (untargeted, the first correctly classified test
images) with the same ZOO-ADAM settings: B = 128 coordinates per iteration, h = 1e-4, the
same learning rate, iterations, binary-search steps and initial c, early abort every
max_iter // 10 iterations (ART's fixed rule, matched on the reprolib side), full attack space
(no resize, no importance sampling: ART's ``use_resize``/``use_importance`` are switched off),
κ = 0. A row counter on the network counts the model rows each attack spends.

Known differences that are ART's, not settings: ART's loss uses logits (identical to ZOO's
log-probability loss up to the 1e-30 floor); ART clips the *noise* (not x + noise) to the
model's clip values, so with clip values (0, 1) its perturbation can only brighten pixels;
ART evaluates 2B rows plus one extra forward of the current point per iteration; ART's
``batch_size`` is also its predict batch size (1 by default, as the ART docs advise for ZOO).
Success is re-checked here for both by a fresh forward pass of the result clipped to [0, 1].

    python benchmarks/zoo_vs_art.py                  # a few minutes on 2 CPU cores
    python benchmarks/zoo_vs_art.py --images 20 --max-iter 1000 --binary-steps 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprolib import data, models
from reprolib.attacks.zoo import zoo
from reprolib.device import hardware_summary

RESULTS = Path(__file__).resolve().parent / "results"


class RowCounter(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def evaluate(model, x, y, x_adv) -> dict:
    x_adv = x_adv.clamp(0, 1)
    with torch.no_grad():
        success = model(x_adv).argmax(1) != y
    l2 = (x_adv - x).flatten(1).norm(dim=1)
    return {"success_rate": float(success.float().mean()),
            "mean_l2_successful": float(l2[success].mean()) if success.any() else None,
            "success": success.tolist(), "l2": [round(v, 5) for v in l2.tolist()]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cw_mnist", help="an MNIST model of the zoo (default cw_mnist)")
    p.add_argument("--images", type=int, default=4, help="number of test images (default 4)")
    p.add_argument("--max-iter", type=int, default=50, help="iterations per binary-search step (default 50)")
    p.add_argument("--binary-steps", type=int, default=1, help="binary-search steps (default 1)")
    p.add_argument("--initial-const", type=float, default=10.0, help="initial c (default 10)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam learning rate (default 0.1)")
    p.add_argument("--nb-parallel", type=int, default=128, help="coordinates per iteration (default 128)")
    p.add_argument("--art-batch-size", type=int, default=1, help="ART batch_size (default 1, ART's advice)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--skip-art", action="store_true", help="time reprolib only")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/zoo_vs_art.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    try:
        model = models.load(args.model, device="cpu", train_if_missing=False)
    except models.CheckpointError as exc:
        sys.exit(f"{args.model} is not available ({exc}). Train it with `python -m reprolib.models {args.model}`.")
    counter = RowCounter(model.net)
    model.net = counter
    test = data.first_correct(model, data.load("mnist", "test"), args.images)
    x, y = test.x, test.y
    early = args.max_iter // 10 if args.max_iter >= 10 else args.max_iter
    settings = dict(images=args.images, dataset_indices=test.indices.tolist(), targeted=False,
                    max_iter=args.max_iter, binary_search_steps=args.binary_steps,
                    initial_const=args.initial_const, learning_rate=args.lr, nb_parallel=args.nb_parallel,
                    h=1e-4, early_stop_iters=early, abort_early=True, confidence=0.0, resize=False,
                    importance_sampling=False, art_batch_size=args.art_batch_size)
    out: dict = {"benchmark": "zoo_vs_art", "model": args.model, "settings": settings,
                 "hardware": hardware_summary("cpu"), "torch_threads": torch.get_num_threads(),
                 "python": platform.python_version(), "torch": torch.__version__}

    counter.rows = 0
    t0 = time.perf_counter()
    res = zoo(model, x, y, binary_search_steps=args.binary_steps, initial_const=args.initial_const,
              max_iterations=args.max_iter, learning_rate=args.lr, coords_per_iter=args.nb_parallel,
              early_stop_iters=early, abort_early=True)
    secs = time.perf_counter() - t0
    ours = evaluate(model, x, y, res.x_adv)
    ours.update(seconds=secs, seconds_per_image=secs / len(x), model_rows=counter.rows,
                queries_per_image=res.queries.float().mean().item())
    out["reprolib"] = ours

    if not args.skip_art:
        import art
        from art.attacks.evasion import ZooAttack
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=model.input_shape,
                                nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
        attack = ZooAttack(clf, confidence=0.0, targeted=False, learning_rate=args.lr, max_iter=args.max_iter,
                           binary_search_steps=args.binary_steps, initial_const=args.initial_const,
                           abort_early=True, use_resize=False, use_importance=False,
                           nb_parallel=args.nb_parallel, batch_size=args.art_batch_size, variable_h=1e-4,
                           verbose=False)
        np.random.seed(1216)
        counter.rows = 0
        t0 = time.perf_counter()
        x_art = attack.generate(x.numpy(), y=np.eye(10, dtype=np.float32)[y.numpy()])
        secs = time.perf_counter() - t0
        theirs = evaluate(model, x, y, torch.from_numpy(x_art))
        theirs.update(seconds=secs, seconds_per_image=secs / len(x), model_rows=counter.rows,
                      queries_per_image=counter.rows / len(x))
        out["art"] = theirs
        out["art_version"] = art.__version__
        out["time_ratio_art_over_reprolib"] = theirs["seconds"] / out["reprolib"]["seconds"]

    path = args.out or RESULTS / "zoo_vs_art.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")

    print(f"ZOO-ADAM, {args.model}, untargeted, {len(x)} images, {args.binary_steps} x {args.max_iter} its, "
          f"c0 = {args.initial_const}, lr = {args.lr}, B = {args.nb_parallel}; {out['hardware']}")
    print(f"{'':10s} {'s/image':>9s} {'success':>8s} {'mean L2':>8s} {'rows/image':>11s}")
    for name in ("reprolib", "art"):
        if name in out:
            r = out[name]
            l2 = f"{r['mean_l2_successful']:.3f}" if r["mean_l2_successful"] is not None else "-"
            print(f"{name:10s} {r['seconds_per_image']:9.2f} {100 * r['success_rate']:7.1f}% {l2:>8s} "
                  f"{r['model_rows'] / len(x):11.0f}")
    if "time_ratio_art_over_reprolib" in out:
        print(f"time ratio ART / reprolib: {out['time_ratio_art_over_reprolib']:.1f}x")
    print(f"written: {os.path.relpath(path)}")
    return out


if __name__ == "__main__":
    main()
