"""``python -m reprolib.models [NAME ...]``: train the checkpoints that are missing.

Without names, trains the committed zoo (``registry.COMMITTED``). Existing checkpoints are
left alone; an interrupted training resumes from its last finished epoch.
"""
from __future__ import annotations

import argparse

from .registry import COMMITTED, SPECS, checkpoint_paths, train


def main(argv: list[str] | None = None) -> None:
    """``python -m reprolib.models [NAMES] [--device D]``: train the named checkpoints that are
    missing (all committed ones by default)."""
    parser = argparse.ArgumentParser(prog="python -m reprolib.models", description=__doc__)
    parser.add_argument("names", nargs="*", default=list(COMMITTED), help=f"models among: {', '.join(SPECS)}")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if present)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SPECS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    for name in args.names:
        ckpt, _ = checkpoint_paths(name)
        if ckpt.exists():
            print(f"{name}: {ckpt} present, skipped")
            continue
        meta = train(name, device=args.device)
        print(f"{name}: test accuracy {meta['test_accuracy']:.4f} "
              f"(paper {meta['paper_accuracy']}), {meta['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
