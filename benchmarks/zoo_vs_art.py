"""ZOO per image: reprolib's batched ZOO against ART's ``ZooAttack`` at equal settings.

The ``zoo`` pair of ``benchmarks/peers.py`` (its docstring lists the settings and every known
difference), with its own flags and results file. Both attack the same trained MNIST model
(untargeted, the first correctly classified test images) with the same ZOO-ADAM settings:
B = 128 coordinates per iteration, h = 1e-4, the same learning rate, iterations,
binary-search steps and initial c, early abort every max_iter // 10 iterations (ART's fixed
rule, matched on the reprolib side), full attack space (ART's ``use_resize``/``use_importance``
switched off), κ = 0, ART ``batch_size`` 1 (the ART docs' advice for ZOO). A pass counter on
the network counts the model rows (queries) each attack spends; success is re-checked for
both by a fresh forward pass of the result clipped to [0, 1].

    python benchmarks/zoo_vs_art.py                  # a few minutes on 2 CPU cores
    python benchmarks/zoo_vs_art.py --images 20 --max-iter 1000 --binary-steps 3
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from reprolib import models
from reprolib.evaluation import peers


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
        model, x, y, indices, dataset = peers.load_images(args.model, args.images, device="cpu")
    except models.CheckpointError as exc:
        sys.exit(f"{args.model} is not available ({exc}). Train it with `python -m reprolib.models {args.model}`.")
    settings = {"zoo": dict(steps=args.max_iter, binary_search_steps=args.binary_steps,
                            initial_const=args.initial_const, step_size=args.lr,
                            coords_per_iter=args.nb_parallel, art_batch_size=args.art_batch_size)}
    rows = peers.run(["zoo"], model, images=(x, y), dataset=dataset, name=args.model, settings=settings,
                     libraries=["reprolib"] if args.skip_art else ["reprolib", "art"])
    path = args.out or peers.RESULTS / "zoo_vs_art.json"
    peers.write(path, "zoo_vs_art", {args.model: {"dataset": dataset, "split": "test", "indices": indices}}, rows,
                "cpu")

    s = rows[0]["settings"]
    print(f"ZOO-ADAM, {args.model}, untargeted, {len(x)} images, {s['binary_search_steps']} x "
          f"{s['steps']} its, c0 = {s['initial_const']}, lr = {s['step_size']}, "
          f"B = {s['coords_per_iter']}; {peers.environment('cpu')['hardware']}")
    print(peers.table(rows))
    if len(rows) > 1 and rows[1].get("time_ratio"):
        print(f"time ratio ART / reprolib: {1 / rows[1]['time_ratio']:.1f}x")
    print(f"written: {os.path.relpath(path)}")
    return {"path": str(path), "results": rows}


if __name__ == "__main__":
    main()
