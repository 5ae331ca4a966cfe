"""Argument checks shared by every attack: one error type, one message shape.

Every check raises :class:`AttackInputError` (a ``ValueError``) whose message names the
parameter, the valid range and the value given, so a user can fix the call from the message
alone. Attacks check their settings before any model pass.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch


class AttackInputError(ValueError):
    """The model, inputs, labels or settings given to an attack are not usable; the message
    says which and how to fix it."""


def _number(name: str, value, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
            torch.is_tensor(value) and value.dim() == 0):
        kind = "an integer" if integer else "a number"
        raise AttackInputError(f"{name} must be {kind}, got {type(value).__name__} {value!r}.")
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise AttackInputError(f"{name} must be finite, got {value!r}.")
    if integer and v != int(v):
        raise AttackInputError(f"{name} must be an integer, got {value!r}.")
    return v


def count(name: str, value, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (iteration counts, restarts, search steps)."""
    v = _number(name, value, integer=True)
    if v < minimum:
        raise AttackInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(v)


def positive(name: str, value) -> float:
    """A finite number > 0 (step sizes, constants)."""
    v = _number(name, value)
    if not v > 0:
        raise AttackInputError(f"{name} must be a finite number > 0, got {value!r}.")
    return v


def nonnegative(name: str, value) -> float:
    """A finite number ≥ 0 (radii, confidences, overshoots)."""
    v = _number(name, value)
    if v < 0:
        raise AttackInputError(f"{name} must be a finite number ≥ 0, got {value!r}.")
    return v


def in_range(name: str, value, low: float, high: float, *, low_open: bool = False,
             high_open: bool = False) -> float:
    """A finite number in [low, high] (each end open when asked)."""
    v = _number(name, value)
    ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise AttackInputError(f"{name} must lie in {interval}, got {value!r}.")
    return v


def choice(name: str, value, options: Iterable) -> object:
    """One of ``options``."""
    options = tuple(options)
    if value not in options:
        raise AttackInputError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}.")
    return value


def untargeted(name: str, targeted: bool) -> None:
    """Refuse ``targeted=True`` for an attack that has no targeted form."""
    if targeted:
        raise AttackInputError(f"{name} is untargeted: call it with targeted=False and the true labels.")
