"""The bookkeeping of the minimum-norm attacks, per input: the binary search on the trade-off
constant c, abort-early, and the best iterate so far (C&W, EAD, ZOO, PDGD/PDPGD).

* :class:`ConstSearch`: the rule of Carlini & Wagner's reference code (``l2_attack.py``), kept per
  input: after a round in which an input succeeded, ``upper = min(upper, c)``; otherwise
  ``lower = max(lower, c)``. The next c is the midpoint when an upper bound is known, else
  ``10·c`` (the exponential phase).
* :class:`AbortEarly`: every ``every`` iterations, an input whose loss is above 0.9999 × its loss
  at the previous check stops its round (C&W's ``abort_early``). The first check compares with
  +∞, so an input whose loss is still falling never stops (as C&W's current code; the ZOO and
  EAD reference codes, forks of an older C&W code, compare the first check with 1e6, which ends
  a round whose loss starts above 1e6).
* :class:`BestIterate`: per input, the successful candidate with the least distance, and any
  values recorded with it (the c, the step, ...).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from . import checks

#: An upper bound this large means "no successful c seen yet".
UNBOUNDED = 1e10


def check_initial_const(value, n: int, name: str = "initial_const") -> None:
    """Raise :class:`~reprolib.attacks.ops.checks.AttackInputError` unless ``value`` is a finite
    number > 0 or a tensor of 1 or ``n`` such values (one per input)."""
    if not torch.is_tensor(value) or value.dim() == 0:
        checks.positive(name, value)
        return
    if value.numel() not in (1, n) or value.is_complex() or value.dtype == torch.bool:
        raise checks.AttackInputError(f"{name} must be a number or a tensor of {n} values (one per input), "
                                      f"got a {value.dtype} tensor of shape {tuple(value.shape)}.")
    v = value.detach().double()
    if not bool(torch.isfinite(v).all() and (v > 0).all()):
        raise checks.AttackInputError(f"every entry of {name} must be a finite number > 0, got {value!r}.")


class ConstSearch:
    """Per-input state of the search; ``c`` holds the constants for the next round.

    ``initial_const`` is a number (the same first c for every input) or a tensor of ``n``
    values, one per input. The constants are kept in float32.
    """

    def __init__(self, n: int, initial_const, device: torch.device) -> None:
        check_initial_const(initial_const, n)
        c0 = torch.as_tensor(initial_const, dtype=torch.float32).detach().flatten().to(device)
        self.c = c0.expand(n).clone() if c0.numel() == 1 else c0.clone()
        self.lower = torch.zeros(n, device=device)
        self.upper = torch.full((n,), UNBOUNDED, device=device)

    def update(self, succeeded: Tensor) -> None:
        """Move each input's c after a round; ``succeeded`` is a bool tensor per input."""
        self.upper = torch.where(succeeded, torch.minimum(self.upper, self.c), self.upper)
        self.lower = torch.where(succeeded, self.lower, torch.maximum(self.lower, self.c))
        bounded = self.upper < UNBOUNDED
        self.c = torch.where(bounded, (self.lower + self.upper) / 2,
                             torch.where(succeeded, self.c, self.c * 10))


class AbortEarly:
    """C&W's abort-early rule per input (module docstring), for one round of ``n`` inputs."""

    def __init__(self, n: int, every: int, like: Tensor) -> None:
        self.every = max(1, int(every))
        self.prev = torch.full((n,), math.inf, dtype=like.dtype, device=like.device)

    def check(self, k: int, loss: Tensor, rows: Tensor | None = None) -> Tensor | None:
        """At iteration ``k`` (0-based), which of the inputs ``rows`` (all when ``None``; ``loss``
        holds one value per row) stop: ``None`` between checks, else a bool tensor."""
        if k % self.every:
            return None
        prev = self.prev if rows is None else self.prev[rows]
        stop = loss > prev * 0.9999
        if rows is None:
            self.prev = loss.detach().clone()
        else:
            self.prev[rows] = loss.detach()
        return stop


class BestIterate:
    """The best successful candidate per input: least ``dist`` among those offered with ``ok``.

    ``x`` is returned for an input with no success. ``extras`` name further per-input values to
    keep with the best candidate, given as their initial tensors (e.g. ``const=NaN``).
    """

    def __init__(self, x: Tensor, dist: Tensor | None = None, **extras: Tensor) -> None:
        self.x = x.clone()
        self.dist = torch.full((len(x),), math.inf, dtype=x.dtype, device=x.device) if dist is None else dist.clone()
        self.extras = {k: v.clone() for k, v in extras.items()}

    def offer(self, rows: Tensor | None, cand: Tensor, dist: Tensor, ok: Tensor, **values) -> Tensor:
        """Keep the candidates ``cand`` (of the inputs ``rows``; all when ``None``) that are ``ok``
        and closer than the best so far; ``values`` are their extras (tensors per candidate, or
        numbers). Returns the indices of the inputs that improved."""
        better = ok & (dist < (self.dist if rows is None else self.dist[rows]))
        if not bool(better.any()):
            return better.nonzero().flatten()
        r = better.nonzero().flatten() if rows is None else rows[better]
        self.x[r] = cand[better]
        self.dist[r] = dist[better]
        for k, v in values.items():
            self.extras[k][r] = v[better].to(self.extras[k].dtype) if torch.is_tensor(v) and v.dim() else v
        return r

    @property
    def found(self) -> Tensor:
        """Whether each input has a successful candidate."""
        return torch.isfinite(self.dist)

    def __getitem__(self, key: str) -> Tensor:
        return self.extras[key]
