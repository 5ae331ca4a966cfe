"""Exact minimal l∞ and l1 adversarial perturbations of ReLU MLPs by mixed-integer linear
programming (Tjeng, Xiao & Tedrake 2019, "Evaluating robustness of neural networks with mixed
integer programming"), solved by HiGHS through ``scipy.optimize.milp``.

For a classifier ``f(x) = W_L a_{L−1} + b_L`` with ``a_k = ReLU(z_k)``, ``z_k = W_k a_{k−1} + b_k``
and ``a_0 = x + δ``, the minimal adversarial perturbation of ``x`` with label ``y`` is::

    min_δ ‖δ‖_p   s.t.   lo ≤ x + δ ≤ hi,   max_{j≠y} f_j(x + δ) − f_y(x + δ) ≥ m        (1)

with ``m`` a small margin (default 1e-4) so that the float forward pass agrees with the program.
The normalisation of the :class:`Classifier` is folded into the first layer:
``W_1 (x − μ)/σ + b_1 = (W_1/σ) x + (b_1 − W_1 μ/σ)``.

**ReLUs** (Tjeng et al.'s big-M encoding). With bounds ``l ≤ z ≤ u`` on a pre-activation,
``a = max(z, 0)`` is ``a = 0`` when ``u ≤ 0``, ``a = z`` when ``l ≥ 0``, and otherwise, with a
binary ``s``::

    a ≥ 0,   a ≥ z,   a ≤ z − l(1 − s),   a ≤ u·s                                       (2)

**Bounds** ``l, u`` come from interval arithmetic over the input region
``{δ : lo − x ≤ δ ≤ hi − x, |δ_i| ≤ ub}`` (``ub``: a known upper bound on the optimum, e.g. an
attack's norm; without it, the box alone). For l1 the first layer's bounds are over
``{box, ‖δ‖₁ ≤ ub}``, a fractional knapsack per neuron, much tighter than the box. The first
layer's bounds are thus exact. With ``tighten=True`` (default) the bounds of the deeper layers'
unstable neurons, and of every ``f_j − f_y``, are then tightened by linear programming over the
LP relaxation of the layers before (Tjeng et al.'s "LP" bounds), layer by layer: two LPs per
neuron, about 2 s per input on ``mlp20x2_mnist``, which cut its unstable ReLUs from 30 to 25
and its solve time up to 4× (below). A smaller region makes fewer ReLUs unstable (fewer
binaries) and the big-M constants of (2) smaller.

**Norms.** l∞: minimise ``t`` with ``−t ≤ δ_i ≤ t``. l1: split ``δ = δ⁺ − δ⁻``, ``δ^± ≥ 0``, and
minimise ``Σ δ⁺ + δ⁻`` (exact at the optimum), with ``Σ δ⁺ + δ⁻ ≤ ub`` when ``ub`` is given.

**The disjunction** ``max_{j≠y} (f_j − f_y) ≥ m`` of (1), two ways (``disjunction``):

``"per_class"`` (default)
    one program per target class ``j`` with the linear constraint ``f_j − f_y ≥ m``, in
    decreasing order of the clean logit ``f_j(x)``; the optimum is the minimum over ``j``. Each
    solved program lowers the radius of the following ones to the best norm so far (their
    input box shrinks to it, their bounds are recomputed, so they have fewer binaries), and a
    class whose bound ``max(f_j − f_y) < m`` over the region is skipped without a program.
``"selector"``
    Tjeng et al.'s single program: binaries ``c_j`` with ``Σ c_j = 1`` and
    ``f_j − f_y ≥ m − M_j(1 − c_j)``, ``M_j = m − min(f_j − f_y)`` over the region.

Both are exact and both stay selectable. Measured on the first two correctly classified MNIST
test images of ``mlp20x2_mnist`` and ``mlp50_mnist`` (l∞, ``ub`` = DeepFool's norm; CPU seconds of
one HiGHS thread, per image): per-class with tightening 35, 31, 45, 9 (total 120); selector with
tightening 25, 31, 126, 12 (194); per-class without 131, 37, 49, 9 (225); selector without 202,
49, 85, 8 (342). Per-class with tightening is the default: the best total and the best worst
case. The selector's LP relaxation spreads ``c_j`` over classes, and its region cannot shrink
as incumbents are found.

"Optimal" means optimal within HiGHS's relative gap ``rel_gap`` (default 1e-4); ``bound`` is
the proven lower bound on the minimal norm in every case.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..attacks.core import check_inputs
from ..attacks.ops import norms
from ..models.classifier import Classifier

__all__ = ["ExactResult", "UnsupportedModelError", "affine_layers", "linearized_margin_lp", "minimal_perturbation"]

#: Widening of every interval bound, relative, so float rounding never cuts off a feasible point.
_BOUND_SLACK = 1e-6


#: HiGHS options beyond the defaults. Its RENS and RINS sub-MIP heuristics spend most of the
#: time on these programs (LPs over 784 dense input columns) for little: without them two hard
#: ``mlp50_mnist`` l∞ programs took 9.5 s instead of 50 s and 37 s instead of 58 s (wall clock).
_HIGHS_OPTIONS = {"mip_heuristic_run_rens": False, "mip_heuristic_run_rins": False}


class UnsupportedModelError(ValueError):
    """The model is not a ReLU MLP ``nn.Sequential([Flatten,] Linear, ReLU, …, Linear)``."""


@dataclass
class ExactResult:
    """The minimal perturbation of one input.

    ``norm``: ``‖delta‖_p`` of the returned perturbation (``inf`` when none was found).
    ``bound``: the proven lower bound on the minimal norm (``norm`` up to ``gap`` when optimal).
    ``gap``: ``(norm − bound)/norm`` (0 for an already misclassified input, ``inf`` without a
    solution). ``status``: ``"optimal"``; ``"time_limit"`` (``norm`` is the best found, ``bound``
    the best proven); ``"infeasible"`` (no adversarial with margin ``m`` within ``ub``: the minimal
    norm exceeds ``bound = ub``); ``"misclassified"`` (the clean input is already adversarial).
    ``delta``: ``x_adv − x`` in the input's shape and dtype (zeros without a solution).
    ``target``: the class of the adversarial (−1 without). ``margin``: ``max_{j≠y} f_j − f_y`` at
    ``x + delta`` by a forward pass of the model; ``verified``: that pass misclassifies.
    ``unstable``: unstable ReLUs (binaries) over the region of ``ub`` (after tightening).
    ``seconds``: wall time of bounding, building and solving; ``programs``: MILPs solved.
    """

    norm: float
    bound: float
    gap: float
    status: str
    delta: Tensor
    target: int
    margin: float
    verified: bool
    unstable: int
    seconds: float
    programs: int


# --------------------------------------------------------------------------------- the network
def affine_layers(model: Classifier) -> list[tuple[np.ndarray, np.ndarray]]:
    """The affine layers ``(W_k, b_k)`` (float64) of a ReLU MLP classifier on the flattened raw
    input, the normalisation folded into the first; a ReLU follows every layer but the last.

    Raises :class:`UnsupportedModelError` unless ``model.net`` is an ``nn.Sequential`` of an
    optional leading ``Flatten`` and ``Linear`` layers separated by single ``ReLU`` s, ending
    with a ``Linear``, whose sizes match the model's input and classes.
    """
    expected = ("reprolib.evaluation.exact needs Classifier(nn.Sequential([nn.Flatten(),] nn.Linear, nn.ReLU, ..., "
                "nn.Linear))")
    if not isinstance(model, Classifier):
        raise UnsupportedModelError(f"{expected}; got {type(model).__name__}.")
    if not isinstance(model.net, nn.Sequential):
        raise UnsupportedModelError(f"{expected}; its net is a {type(model.net).__name__}.")
    mods = list(model.net)
    if mods and isinstance(mods[0], nn.Flatten):
        mods = mods[1:]
    elif len(model.input_shape) > 1:
        first = type(mods[0]).__name__ if mods else "nothing"
        raise UnsupportedModelError(f"{expected}; found {first} first, but input shape {model.input_shape} "
                                    "needs a leading nn.Flatten.")
    linears = mods[0::2]
    relus = mods[1::2]
    for i, m in enumerate(mods):
        want = nn.Linear if i % 2 == 0 else nn.ReLU
        if type(m) is not want:
            raise UnsupportedModelError(f"{expected}; found {type(m).__name__} where {want.__name__} belongs "
                                        f"(module {i + (len(model.net) - len(mods))} of the Sequential).")
    if not linears or len(relus) != len(linears) - 1:
        raise UnsupportedModelError(f"{expected}; the network must end with nn.Linear.")
    n_in = math.prod(model.input_shape)
    layers = [(m.weight.detach().cpu().double().numpy(),
               (m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(m.out_features)))
              for m in linears]
    for (w, _), (w_next, _) in zip(layers[:-1], layers[1:]):
        if w_next.shape[1] != w.shape[0]:
            raise UnsupportedModelError(f"{expected}; layer sizes {w.shape} and {w_next.shape} do not chain.")
    if layers[0][0].shape[1] != n_in or layers[-1][0].shape[0] != model.num_classes:
        raise UnsupportedModelError(
            f"{expected}; the first layer takes {layers[0][0].shape[1]} inputs (the model's input has {n_in}) "
            f"and the last gives {layers[-1][0].shape[0]} outputs (the model has {model.num_classes} classes).")
    shape = (1, *model.input_shape)
    mean = model.mean.expand(shape).reshape(-1).detach().cpu().double().numpy()
    std = model.std.expand(shape).reshape(-1).detach().cpu().double().numpy()
    w1, b1 = layers[0]
    layers[0] = (w1 / std, b1 - w1 @ (mean / std))
    return layers


def _widen(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return lo - _BOUND_SLACK * (1 + np.abs(lo)), hi + _BOUND_SLACK * (1 + np.abs(hi))


def _interval(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``w a + b`` over the box ``lo ≤ a ≤ hi`` (interval arithmetic)."""
    mid, rad = w @ ((lo + hi) / 2) + b, np.abs(w) @ ((hi - lo) / 2)
    return _widen(mid - rad, mid + rad)


def _knapsack(w: np.ndarray, cap: np.ndarray, budget: float) -> np.ndarray:
    """``max Σ_i |w_i| m_i  s.t.  0 ≤ m_i ≤ cap_i, Σ m_i ≤ budget`` for each row of ``w``
    (a fractional knapsack: spend the budget on the largest ``|w_i|`` first)."""
    order = np.argsort(-np.abs(w), axis=1)
    gain, room = np.take_along_axis(np.abs(w), order, 1), np.take_along_axis(cap, order, 1)
    spent_before = np.cumsum(room, axis=1) - room
    return (gain * np.clip(budget - spent_before, 0.0, room)).sum(1)


def _first_bounds(w: np.ndarray, b: np.ndarray, x: np.ndarray, dlo: np.ndarray, dhi: np.ndarray,
                  l1_radius: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``w (x + δ) + b`` over ``dlo ≤ δ ≤ dhi`` (interval arithmetic, exact for one
    affine layer) and, for l1, ``‖δ‖₁ ≤ l1_radius`` (exact too: a fractional knapsack per bound)."""
    if l1_radius is None:
        return _interval(w, w @ x + b, dlo, dhi)
    centre = w @ x + b
    up = _knapsack(w, np.where(w > 0, dhi, -dlo), l1_radius)     # raise w·δ: move along sign(w)
    down = _knapsack(w, np.where(w > 0, -dlo, dhi), l1_radius)
    return _widen(centre - down, centre + up)


@dataclass
class _Region:
    """The input region of one program and the bounds it implies."""

    dlo: np.ndarray                     # bounds on δ
    dhi: np.ndarray
    pre: list[tuple[np.ndarray, np.ndarray]]   # bounds on each hidden pre-activation z_k
    diff: tuple[np.ndarray, np.ndarray]        # bounds on f_j − f_y, one per class (row y: 0)


def _meet(new: tuple[np.ndarray, np.ndarray], known: tuple[np.ndarray, np.ndarray] | None):
    """Intersect two valid bounds (``known``: from a larger region, or LP-tightened)."""
    if known is None:
        return new
    return np.maximum(new[0], known[0]), np.minimum(new[1], known[1])


def _region(layers, x: np.ndarray, y: int, lower: float, upper: float, radius: float | None,
            order: float, known: _Region | None = None) -> _Region:
    """The bounds over ``{lower ≤ x + δ ≤ upper, ‖δ‖ ≤ radius}``, layer by layer, each
    intersected with the same layer's bounds in ``known`` before it is propagated further."""
    dlo, dhi = lower - x, upper - x
    if radius is not None:
        dlo, dhi = np.maximum(dlo, -radius), np.minimum(dhi, radius)
    l1 = radius if (radius is not None and order == 1) else None
    w_out, b_out = layers[-1]
    diff_w, diff_b = w_out - w_out[y], b_out - b_out[y]
    weights = [w for w, _ in layers[:-1]] + [diff_w]
    biases = [b for _, b in layers[:-1]] + [diff_b]
    bounds: list[tuple[np.ndarray, np.ndarray]] = []
    for k, (w, b) in enumerate(zip(weights, biases)):
        if k == 0:
            new = _first_bounds(w, b, x, dlo, dhi, l1)
        else:
            lo, hi = bounds[-1]
            new = _interval(w, b, np.maximum(lo, 0), np.maximum(hi, 0))
        bounds.append(_meet(new, None if known is None else (known.pre + [known.diff])[k]))
    return _Region(dlo, dhi, bounds[:-1], bounds[-1])


# --------------------------------------------------------------------------------- the program
class _Program:
    """A MILP ``min c·v  s.t.  row_lo ≤ A v ≤ row_hi,  v_lo ≤ v ≤ v_hi`` built block by block."""

    def __init__(self) -> None:
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.n = 0
        self.blocks: list[sparse.coo_matrix] = []  # rows, as (m, n_at_the_time) matrices
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []

    def var(self, lo, hi, integer: bool = False) -> np.ndarray:
        lo, hi = (np.atleast_1d(v).astype(float) for v in np.broadcast_arrays(lo, hi))
        idx = np.arange(self.n, self.n + len(lo))
        self.n += len(lo)
        self.lo.append(lo)
        self.hi.append(hi)
        self.integer.append(np.full(len(lo), int(integer)))
        return idx

    def rows(self, terms: list[tuple[np.ndarray, np.ndarray]], lo, hi) -> None:
        """Rows ``lo ≤ Σ M @ v[idx] ≤ hi`` over ``terms = [(idx, M), ...]`` (M dense, m × len(idx))."""
        m = len(terms[0][1])
        r, c, v = [], [], []
        for idx, mat in terms:
            mat = np.asarray(mat, float).reshape(m, len(idx))
            i, j = np.nonzero(mat)
            r.append(i)
            c.append(idx[j])
            v.append(mat[i, j])
        self.blocks.append(sparse.coo_matrix((np.concatenate(v), (np.concatenate(r), np.concatenate(c))),
                                             shape=(m, self.n)))
        self.row_lo.append(np.broadcast_to(np.asarray(lo, float), m))
        self.row_hi.append(np.broadcast_to(np.asarray(hi, float), m))

    def freeze(self) -> None:
        """Assemble the arrays HiGHS takes (after the last ``var`` and ``rows``)."""
        a = sparse.vstack([sparse.coo_matrix((b.data, (b.row, b.col)), shape=(b.shape[0], self.n))
                           for b in self.blocks]).tocsr()
        self.constraints = LinearConstraint(a, np.concatenate(self.row_lo), np.concatenate(self.row_hi))
        self.bounds = Bounds(np.concatenate(self.lo), np.concatenate(self.hi))
        self.integrality = np.concatenate(self.integer)

    def solve(self, terms: list[tuple[np.ndarray, np.ndarray | float]], time_limit: float, rel_gap: float,
              threads: int, relax: bool = False):
        """Minimise ``Σ c · v[idx]`` over ``terms = [(idx, c), ...]`` with HiGHS; ``relax``: as an LP."""
        c = np.zeros(self.n)
        for idx, coef in terms:
            c[idx] += coef
        with warnings.catch_warnings():  # `threads` goes to HiGHS verbatim; scipy warns that it does
            warnings.filterwarnings("ignore", message="Unrecognized options", category=RuntimeWarning)
            return milp(c, integrality=0 * self.integrality if relax else self.integrality,
                        bounds=self.bounds, constraints=self.constraints,
                        options={"time_limit": max(time_limit, 1e-3), "mip_rel_gap": rel_gap, "threads": threads,
                                 **_HIGHS_OPTIONS})


def _inputs(prog: _Program, region: _Region, radius: float | None, order: float) -> tuple[np.ndarray, list]:
    """δ and the norm: returns δ's indices and the objective's terms."""
    delta = prog.var(region.dlo, region.dhi)
    eye = np.eye(len(delta))
    if order == math.inf:                                  # min t, −t ≤ δ_i ≤ t
        t = prog.var(0.0, math.inf if radius is None else radius)
        ones = np.ones((len(delta), 1))
        prog.rows([(delta, eye), (t, -ones)], -np.inf, 0.0)
        prog.rows([(delta, eye), (t, ones)], 0.0, np.inf)
        return delta, [(t, 1.0)]
    plus = prog.var(0.0, np.maximum(region.dhi, 0.0))     # δ = δ⁺ − δ⁻, min Σ δ⁺ + δ⁻
    minus = prog.var(0.0, np.maximum(-region.dlo, 0.0))
    prog.rows([(delta, eye), (plus, -eye), (minus, eye)], 0.0, 0.0)
    if radius is not None:
        prog.rows([(plus, np.ones((1, len(plus)))), (minus, np.ones((1, len(minus))))], -np.inf, radius)
    return delta, [(plus, 1.0), (minus, 1.0)]


def _hidden(prog: _Program, layers, x: np.ndarray, delta: np.ndarray, region: _Region
            ) -> tuple[np.ndarray, np.ndarray]:
    """The hidden layers ``layers`` (ReLU after each) on ``a_0 = x + δ``, with the bounds of
    ``region``: returns the last activations' indices and their constant offset (``x`` when
    there is no hidden layer, else 0)."""
    prev, prev_const = delta, x
    for (w, b), (lo, hi) in zip(layers, region.pre):
        z = prog.var(lo, hi)                               # z = W a_prev + b
        rhs = w @ prev_const + b
        prog.rows([(z, np.eye(len(z))), (prev, -w)], rhs, rhs)
        a = prog.var(np.maximum(lo, 0), np.maximum(hi, 0))  # u ≤ 0: a ∈ [0, 0]
        k = np.flatnonzero(lo >= 0)                        # stable active: a = z
        if len(k):
            prog.rows([(a[k], np.eye(len(k))), (z[k], -np.eye(len(k)))], 0.0, 0.0)
        k = np.flatnonzero((lo < 0) & (hi > 0))            # unstable: (2)
        if len(k):
            s, eye = prog.var(np.zeros(len(k)), np.ones(len(k)), integer=True), np.eye(len(k))
            prog.rows([(a[k], eye), (z[k], -eye)], 0.0, np.inf)                              # a ≥ z
            prog.rows([(a[k], eye), (z[k], -eye), (s, -np.diag(lo[k]))], -np.inf, -lo[k])    # a ≤ z − l(1 − s)
            prog.rows([(a[k], eye), (s, -np.diag(hi[k]))], -np.inf, 0.0)                     # a ≤ u s
        prev, prev_const = a, np.zeros(len(a))
    return prev, prev_const


def _build(layers, x: np.ndarray, y: int, targets: list[int], region: _Region, radius: float | None,
           order: float, margin: float) -> tuple[_Program, np.ndarray, list, np.ndarray]:
    """Program (1) over ``region`` for the disjunction over ``targets``: one target is a plain
    constraint, several get selector binaries. Returns the program, δ's indices, the
    objective's terms and the selectors' indices."""
    prog = _Program()
    delta, cost = _inputs(prog, region, radius, order)
    last, last_const = _hidden(prog, layers[:-1], x, delta, region)
    w_out, b_out = layers[-1]
    diff_w = w_out[targets] - w_out[y]                     # f_j − f_y = diff_w a + diff_b
    diff_b = b_out[targets] - b_out[y] + diff_w @ last_const
    if len(targets) == 1:
        prog.rows([(last, diff_w)], margin - diff_b, np.inf)
        select = np.zeros(0, dtype=int)
    else:                                                  # f_j − f_y ≥ m − M_j (1 − c_j), Σ c_j = 1
        select = prog.var(np.zeros(len(targets)), np.ones(len(targets)), integer=True)
        big_m = np.maximum(margin - region.diff[0][targets], 0.0)
        prog.rows([(last, diff_w), (select, -np.diag(big_m))], margin - diff_b - big_m, np.inf)
        prog.rows([(select, np.ones((1, len(select))))], 1.0, 1.0)
    prog.freeze()
    return prog, delta, cost, select


def _tighten(layers, x: np.ndarray, y: int, lower: float, upper: float, radius: float | None,
             order: float, threads: int) -> _Region:
    """Tighter bounds by linear programming (Tjeng et al.'s "LP" bounds): the bounds of each layer's
    unstable pre-activations (and of every ``f_j − f_y``) are the min and max over the LP
    relaxation of (2) of the layers before, layer by layer. Layer 1's are exact already."""
    region = _region(layers, x, y, lower, upper, radius, order)
    w_out, b_out = layers[-1]
    weights = [w for w, _ in layers[1:-1]] + [w_out - w_out[y]]
    biases = [b for _, b in layers[1:-1]] + [b_out - b_out[y]]
    for k, (w, b) in enumerate(zip(weights, biases), start=1):
        prog = _Program()
        delta, _ = _inputs(prog, region, radius, order)
        prev, prev_const = _hidden(prog, layers[:k], x, delta, region)
        prog.freeze()
        bounds = region.pre[k] if k < len(region.pre) else region.diff
        lo, hi = bounds[0].copy(), bounds[1].copy()
        rows = np.flatnonzero((lo < 0) & (hi > 0)) if k < len(region.pre) else np.delete(np.arange(len(w)), y)
        for r in rows:
            const = b[r] + w[r] @ prev_const
            for sign in (1.0, -1.0):                      # min (sign = 1) and max (sign = −1) of w_r a
                res = prog.solve([(prev, sign * w[r])], math.inf, 0.0, threads, relax=True)
                if res.status != 0:
                    raise RuntimeError(f"HiGHS failed on a bound-tightening LP: {res.message}")
                value = sign * res.fun + const
                if sign > 0:
                    lo[r] = max(lo[r], value - _BOUND_SLACK * (1 + abs(value)))
                else:
                    hi[r] = min(hi[r], value + _BOUND_SLACK * (1 + abs(value)))
        if k < len(region.pre):                            # propagate to the layers after k
            known = _Region(region.dlo, region.dhi, region.pre[:k] + [(lo, hi)] + region.pre[k + 1:], region.diff)
            region = _region(layers, x, y, lower, upper, radius, order, known)
        else:
            region = _Region(region.dlo, region.dhi, region.pre, (lo, hi))
    return region


# --------------------------------------------------------------------------------- the solver
def _margin(logits: Tensor, y: int) -> float:
    """``max_{j≠y} f_j − f_y`` of one row of logits."""
    others = torch.cat([logits[:y], logits[y + 1:]])
    return float(others.max() - logits[y])


def minimal_perturbation(model: Classifier, x: Tensor, y: Tensor, *, norm="linf", ub=None,
                         time_limit: float = 60.0, margin: float = 1e-4, rel_gap: float = 1e-4,
                         disjunction: str = "per_class", tighten: bool = True, threads: int = 1,
                         progress: bool = False) -> list[ExactResult]:
    """The minimal l∞ or l1 perturbation (1) of each input of a ReLU MLP, by MILP.

    Args:
        model: a :class:`Classifier` whose net is ``nn.Sequential([Flatten,] Linear, ReLU, ...,
            Linear)`` (:func:`affine_layers`).
        x, y: inputs in the model's bounds and their labels (as for the attacks).
        norm: ``"linf"`` or ``"l1"`` (or ``inf``, 1).
        ub: an upper bound on the minimal norm, e.g. a successful attack's norm: a float, one per
            input, or ``None`` (entries that are NaN or inf count as none). The region shrinks to
            it, which is what makes MNIST-sized programs solve in seconds; when no adversarial
            with margin ``margin`` lies within ``ub``, the status is ``"infeasible"``.
        time_limit: wall-clock seconds per input, over all its programs.
        margin: ``m`` of (1): the adversarial class must win by this much in the program.
        rel_gap: HiGHS's relative optimality gap (``mip_rel_gap``).
        disjunction: ``"per_class"`` or ``"selector"`` (module docstring).
        tighten: tighten the bounds of the deeper layers by LP (module docstring).
        threads: HiGHS threads.
        progress: a tqdm bar over the inputs.

    Returns one :class:`ExactResult` per input; every returned perturbation is re-checked by a
    forward pass of ``model`` (``margin``, ``verified``).
    """
    check_inputs(model, x, y)
    order = norms.order(norm)
    if order not in (1.0, math.inf):
        raise ValueError(f"reprolib.evaluation.exact solves l∞ and l1 (linear programs); got norm {norm!r}.")
    if disjunction not in ("per_class", "selector"):
        raise ValueError(f"disjunction must be 'per_class' or 'selector', not {disjunction!r}.")
    if margin < 0 or time_limit <= 0 or not 0 <= rel_gap < 1:
        raise ValueError(f"need margin ≥ 0, time_limit > 0 and 0 ≤ rel_gap < 1; "
                         f"got {margin}, {time_limit}, {rel_gap}.")
    layers = affine_layers(model)
    ubs = torch.as_tensor(math.nan if ub is None else ub, dtype=torch.float64).flatten().cpu()
    if len(ubs) == 1:
        ubs = ubs.expand(len(x))
    if len(ubs) != len(x):
        raise ValueError(f"ub has {len(ubs)} values for {len(x)} inputs; give one, or one per input.")
    if bool((ubs <= 0).any()):
        raise ValueError(f"ub must be positive; got {ubs[ubs <= 0].tolist()[:5]}.")
    x = x.detach().to(model.device)
    results = []
    for i in tqdm(range(len(x)), desc=f"exact {norm}", disable=not progress):
        radius = float(ubs[i]) if math.isfinite(float(ubs[i])) else None
        results.append(_solve_one(model, layers, x[i], int(y[i]), order, radius, margin, time_limit,
                                  rel_gap, disjunction, tighten, threads))
    return results


def _solve_one(model: Classifier, layers, x_t: Tensor, y: int, order: float, ub: float | None,
               margin: float, time_limit: float, rel_gap: float, disjunction: str, tighten: bool,
               threads: int) -> ExactResult:
    started = time.perf_counter()
    deadline = started + time_limit
    lower, upper = model.bounds
    x = x_t.flatten().double().cpu().numpy()
    with torch.no_grad():
        clean = model(x_t[None])[0]
    if int(clean.argmax()) != y:
        return ExactResult(0.0, 0.0, 0.0, "misclassified", torch.zeros_like(x_t), int(clean.argmax()),
                           _margin(clean, y), True, 0, time.perf_counter() - started, 0)
    others = [j for j in clean.argsort(descending=True).tolist() if j != y]   # runner-up first
    initial = (_tighten(layers, x, y, lower, upper, ub, order, threads) if tighten
               else _region(layers, x, y, lower, upper, ub, order))
    unstable = sum(int(((lo < 0) & (hi > 0)).sum()) for lo, hi in initial.pre)
    best, best_delta, best_target = ub, None, -1
    lower_bounds: list[float] = []      # one proven lower bound per program or skipped class
    timed_out, programs = False, 0

    def run(targets: list[int], region: _Region, radius: float | None) -> None:
        nonlocal best, best_delta, best_target, timed_out, programs
        left = deadline - time.perf_counter()
        if left <= 0:
            timed_out = True
            lower_bounds.append(0.0)
            return
        prog, dvars, cost, select = _build(layers, x, y, targets, region, radius, order, margin)
        res = prog.solve(cost, left, rel_gap, threads)
        programs += 1
        if res.status == 2:             # infeasible: nothing within the radius
            lower_bounds.append(math.inf if radius is None else radius)
            return
        if res.status not in (0, 1):
            raise RuntimeError(f"HiGHS failed on a program with {prog.n} variables: {res.message}")
        timed_out |= res.status == 1
        dual = res.get("mip_dual_bound")   # None for a program without binaries (an LP)
        if dual is None or not math.isfinite(dual):
            dual = res.fun if res.status == 0 else 0.0
        lower_bounds.append(float(dual))
        if res.x is not None and (best_delta is None or res.fun < best):
            best, best_delta = float(res.fun), res.x[dvars]
            best_target = targets[int(np.argmax(res.x[select]))] if len(select) else targets[0]

    if disjunction == "per_class":
        for j in others:
            region = _region(layers, x, y, lower, upper, best, order, known=initial)  # shrinks with each incumbent
            if region.diff[1][j] < margin:     # class j out of reach within the radius
                lower_bounds.append(math.inf if best is None else best)
                continue
            run([j], region, best)
    else:
        reachable = [j for j in others if initial.diff[1][j] >= margin]
        if reachable:
            run(reachable, initial, ub)
        else:
            lower_bounds.append(math.inf if ub is None else ub)
    seconds = time.perf_counter() - started
    bound = min(lower_bounds)
    if best_delta is None:
        return ExactResult(math.inf, bound, math.inf, "time_limit" if timed_out else "infeasible",
                           torch.zeros_like(x_t), -1, _margin(clean, y), False, unstable, seconds, programs)
    step = torch.from_numpy(best_delta).reshape(x_t.shape).to(x_t)
    x_adv = (x_t + step).clamp(lower, upper)
    delta = x_adv - x_t
    with torch.no_grad():
        out = model(x_adv[None])[0]
    flat = delta.flatten().double()
    value = float(flat.abs().max() if order == math.inf else flat.abs().sum())
    bound = min(bound, value)
    return ExactResult(value, bound, (value - bound) / value if value > 0 else 0.0,
                       "time_limit" if timed_out else "optimal",
                       delta, best_target, _margin(out, y), int(out.argmax()) != y, unstable, seconds, programs)


def linearized_margin_lp(L: float, g: Tensor, eps: float, norm="linf") -> float:
    """The optimum of ``min_η L + ηᵀg  s.t.  ‖η‖_p ≤ ε`` by a linear program (HiGHS), for
    checking the closed form ``L − ε‖g‖_q`` of document 001's Proposition 2 (GNII, eqs. 6–7).

    ``p = ∞`` is a box; ``p = 1`` splits ``η = u − v`` with ``u, v ≥ 0`` and ``Σ(u + v) ≤ ε``.

    Args:
        L: the margin at the point.
        g: its gradient, any shape (flattened).
        eps: the radius ε ≥ 0.
        norm: ``"linf"`` or ``"l1"`` (or ∞, 1).

    Raises:
        ValueError: for another norm, or when HiGHS does not report an optimum.
    """
    p = norms.order(norm)
    c = g.detach().double().flatten().cpu().numpy()
    if math.isinf(p):
        sol = linprog(c, bounds=[(-eps, eps)] * len(c), method="highs")
    elif p == 1:
        sol = linprog(np.concatenate([c, -c]), A_ub=np.ones((1, 2 * len(c))), b_ub=[eps],
                      bounds=[(0, None)] * (2 * len(c)), method="highs")
    else:
        raise ValueError(f"linearized_margin_lp solves l∞ and l1 (linear programs); got norm {norm!r}.")
    if sol.status != 0:
        raise ValueError(f"HiGHS did not solve the linear program: {sol.message}")
    return float(L) + float(sol.fun)
