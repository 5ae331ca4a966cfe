"""Batched, counted adversarial attacks. Each attack lives in its own module."""
from .core import AttackInputError, AttackResult, Counter, finish, lp_norms, start

__all__ = ["AttackInputError", "AttackResult", "Counter", "finish", "lp_norms", "start"]
