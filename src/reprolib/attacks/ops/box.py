"""The input box [lower, upper]: the tanh change of variables and the mask of pinned coordinates.

* :func:`to_tanh_space` / :func:`from_tanh_space`: Carlini & Wagner's change of variables
  ``x = lower + (upper − lower)·(tanh(w) + 1)/2`` (Carlini & Wagner 2017,
  https://arxiv.org/abs/1608.04644, §V-B; their ``l2_attack.py``), which
  turns the box constraint into an unconstrained variable ``w``. The inverse shrinks by
  ``0.999999`` (the reference code's ``arctanh(x·0.999999)``) so that pixels on a bound map to
  a finite ``w``. Used by C&W, EAD's change-of-variables baseline and ZOO.
* :func:`pinned`: the coordinates that sit on a bound and that a step along ``direction`` would
  push out of the box; steps drop them (DeepFool's and the GN iteration's box-aware step, the
  sparse ℓ1 direction of PGD).
"""
from __future__ import annotations

from torch import Tensor

#: The reference code's arctanh shrink factor (``np.arctanh(x * 0.999999)``).
TANH_SHRINK = 0.999999


def to_tanh_space(x: Tensor, bounds: tuple[float, float], shrink: float = TANH_SHRINK) -> Tensor:
    """``w = arctanh((2(x − lower)/(upper − lower) − 1)·shrink)``, element-wise; x in the box."""
    lower, upper = bounds
    return ((x - lower) / ((upper - lower) / 2) - 1).mul(shrink).atanh()


def from_tanh_space(w: Tensor, bounds: tuple[float, float]) -> Tensor:
    """``x = lower + (upper − lower)·(tanh(w) + 1)/2``, element-wise: always inside the box."""
    lower, upper = bounds
    return lower + (upper - lower) / 2 * (w.tanh() + 1)


def pinned(x: Tensor, direction: Tensor, bounds: tuple[float, float]) -> Tensor:
    """Boolean mask, shape of ``x``: coordinates on the lower bound with ``direction < 0`` or on
    the upper bound with ``direction > 0`` (a step along ``direction`` would leave the box).
    ``direction`` broadcasts against ``x``."""
    lower, upper = bounds
    return ((x <= lower) & (direction < 0)) | ((x >= upper) & (direction > 0))


def project_box(x: Tensor, u: Tensor, bounds: tuple[float, float]) -> Tensor:
    """The perturbation ``u`` moved so that ``x + u`` lies in the box: ``clip(x + u) − x``."""
    return (x + u).clamp(*bounds) - x
