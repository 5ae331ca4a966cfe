"""Per-input binary search on the trade-off constant c (C&W, EAD, ZOO).

The rule of Carlini & Wagner's reference code, kept per input: after a round in which an
input succeeded, ``upper = min(upper, c)``; otherwise ``lower = max(lower, c)``. The next c is
the midpoint when an upper bound is known, else ``10 · c`` (the exponential phase).
"""
from __future__ import annotations

import torch
from torch import Tensor

#: An upper bound this large means "no successful c seen yet".
UNBOUNDED = 1e10


class ConstSearch:
    """Per-input state of the search; ``c`` holds the constants for the next round."""

    def __init__(self, n: int, initial_const: float, device: torch.device) -> None:
        self.c = torch.full((n,), float(initial_const), device=device)
        self.lower = torch.zeros(n, device=device)
        self.upper = torch.full((n,), UNBOUNDED, device=device)

    def update(self, succeeded: Tensor) -> None:
        """Move each input's c after a round; ``succeeded`` is a bool tensor per input."""
        self.upper = torch.where(succeeded, torch.minimum(self.upper, self.c), self.upper)
        self.lower = torch.where(succeeded, self.lower, torch.maximum(self.lower, self.c))
        bounded = self.upper < UNBOUNDED
        self.c = torch.where(bounded, (self.lower + self.upper) / 2,
                             torch.where(succeeded, self.c, self.c * 10))
