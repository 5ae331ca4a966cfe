"""Box-constrained L-BFGS-B attack with a search on the penalty constant (document 000).

Source: P. Tabacof and E. Valle, "Exploring the Space of Adversarial Images", IJCNN 2016,
https://arxiv.org/abs/1510.05328: the penalised problem (§II-A, Eq. 2) and Algorithm 1 (§II-B);
the authors' code ``tabacof/adversarial`` (``adversarial.lua``, Torch7 with Nocedal's Fortran
L-BFGS-B). Per image they solve

    minimise  ‖D‖ + C · H(p(X + D), p^A)    subject to  L ≤ X + D ≤ U

with L-BFGS-B (15 corrections, 150 iterations) and search C by doubling, then bisection.
Two variants, selected by ``variant``:

``"paper"`` — Algorithm 1 of the paper.
    Objective ``‖D‖₂ + C·CE`` (``norm="l2"``, a safe norm √(‖D‖² + 1e-12) so the gradient
    at D = 0 exists; ``norm="l2sq"`` uses ‖D‖₂²). C ← ``initial_const`` (the paper's ε), then
    doubled until the solution is classified as the target (at most ``max_doublings`` times);
    then bisection on [0, C] while C_high − C_low ≥ ``const_tol`` (the paper's ε again; the two
    roles are two settings here). Each solve warm-starts from the previous solve's optimum
    (``warm_start=False`` starts every solve from D = 0). Returns the D of the last successful
    solve. L-BFGS-B caps 150 *iterations* (scipy ``maxiter``).
``"code"`` — what the authors' public code (HEAD) does.
    Objective ``CE + C′·‖D‖₂²``, with ‖D‖ measured in the model's normalised units
    (D / std), as the authors' D lived in (pixel − mean)/std. C′ starts at ``initial_const``
    (0.01) and is multiplied by ``const_growth`` (10), warm-starting implicitly, until the
    solution is classified as the *original* class; that C′ is C′_max, C′_min = 0. Bisection
    while C′_max − C′_min > C′_max · ``const_rel_tol`` (1/10), every solve from D = 0:
    target → C′_min ← mid, else C′_max ← mid. Then one more solve from D = 0 at the C′_min
    recorded *before* the last update (the code's off-by-one; 0 when no midpoint succeeded).
    Each solve stops after 150 *function evaluations*, even inside a line search, and its result
    is the last evaluated point (the authors' Lua wrapper around Fortran L-BFGS-B).

Both use L-BFGS-B with m = 15 and scipy's default ftol/gtol (= the code's factr 1e7,
pgtol 1e-5), on float64 copies of the loss and gradient. Success is strict: the target's
logit must exceed every other (a tie fails); it is judged on the point a solve returns.

The loss is the cross-entropy to the target (``targeted=True``, as both papers). With
``targeted=False`` the loss is −log(1 − p_y), the cross-entropy to "any class but y", and
success is any label other than y (an extension; the paper's Eq. 2 is targeted).

Every image keeps its own scipy problem, C and line searches; only the model calls are
batched. Each image's search runs in its own thread and blocks on each function
evaluation; the calling thread waits until every live search is blocked (or done), then
evaluates all pending points in one forward and one backward pass (reverse communication
in lock-step). Results do not depend on the batch composition.
"""
from __future__ import annotations

import math
import queue
import threading
from collections import deque
from typing import Callable

import numpy as np
import torch
from scipy.optimize import Bounds, minimize
from torch import Tensor

from ..models.classifier import Classifier
from .core import AttackResult, Counter, attack, finish, start
from .ops import checks

_SAFE_NORM_DELTA = 1e-12
VARIANTS = ("paper", "code")
#: ``norm`` of the paper variant: the objective's ‖D‖₂ or ‖D‖₂².
OBJECTIVE_NORMS = ("l2", "l2sq")
#: The first C of each variant: the paper's ε (its value is not given; 1e-3) and the code's 0.01.
INITIAL_CONST = {"paper": 1e-3, "code": 0.01}


class _Abort(Exception):
    """Raised inside a search thread when the driver shuts the batch down."""


class _EvalCap(Exception):
    """Raised by the objective when a solve has used its evaluations (hard stop)."""


def lockstep(n: int, work: Callable, evaluate: dict[str, Callable]) -> list:
    """Run ``work(i, ask)`` for every ``i < n`` in its own thread; return their results.

    ``ask(kind, point)`` blocks until the calling thread has evaluated ``point`` with
    ``evaluate[kind](indices, points)`` together with every other pending ask of that kind,
    and returns that input's share of the answer. A round starts once every live thread is
    waiting or done, so each model call sees all pending inputs. An exception in a worker or
    an evaluator stops all workers and is re-raised here.
    """
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    outboxes = [queue.SimpleQueue() for _ in range(n)]
    results: list = [None] * n
    stop = threading.Event()
    abort = object()

    def run(i: int) -> None:
        def ask(kind: str, point):
            if stop.is_set():
                raise _Abort
            inbox.put((i, kind, point))
            reply = outboxes[i].get()
            if reply is abort:
                raise _Abort
            return reply
        try:
            results[i] = work(i, ask)
            inbox.put((i, "done", None))
        except _Abort:
            inbox.put((i, "done", None))
        except BaseException as exc:  # noqa: BLE001 — handed to the caller
            inbox.put((i, "error", exc))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    # Every live thread sends exactly one message (an ask, "done" or "error") per reply it gets.
    alive, error = n, None
    while alive:
        pending: dict[str, list] = {}
        for _ in range(alive):
            i, kind, point = inbox.get()
            if kind in ("done", "error"):
                alive -= 1
                if kind == "error" and error is None:
                    error = point
                    stop.set()
            else:
                pending.setdefault(kind, []).append((i, point))
        answered: set[int] = set()
        if error is None:
            try:
                for kind, asks in pending.items():
                    asks.sort(key=lambda a: a[0])
                    replies = evaluate[kind]([i for i, _ in asks], [p for _, p in asks])
                    for (i, _), reply in zip(asks, replies):
                        outboxes[i].put(reply)
                        answered.add(i)
            except BaseException as exc:  # noqa: BLE001
                error = exc
                stop.set()
        for asks in pending.values():
            for i, _ in asks:
                if i not in answered:
                    outboxes[i].put(abort)
    for t in threads:
        t.join()
    if error is not None:
        raise error
    return results


@attack
def lbfgs(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    targeted: bool = False,
    variant: str = "paper",
    norm: str = "l2",
    initial_const: float | None = None,
    const_tol: float = 1e-3,
    max_doublings: int = 40,
    warm_start: bool = True,
    const_growth: float = 10.0,
    const_rel_tol: float = 0.1,
    max_growth_steps: int = 20,
    maxcor: int = 15,
    steps: int | None = None,
    max_evals: int | None = None,
) -> AttackResult:
    """L-BFGS-B with bisection on C (document 000); see the module docstring.

    Args:
        model: the classifier under attack.
        x: inputs ``(N, *model.input_shape)`` inside the model's bounds.
        y: the targets ``(N,)`` when ``targeted`` (the paper's use), else the true labels.
        targeted: whether success means predicting ``y``.
        variant: ``"paper"`` (Algorithm 1) or ``"code"`` (the authors' code).
        norm: paper variant only: ``"l2"`` (the paper's ‖D‖) or ``"l2sq"``.
        initial_const: the first C > 0 (paper variant: doubled before the first solve) or C′
            (code variant). ``None``: 1e-3 (paper) or 0.01 (code).
        const_tol: paper variant: the absolute bisection tolerance on C (> 0).
        max_doublings: paper variant: give up after this many doublings without success (≥ 1).
        warm_start: paper variant: start each solve from the previous solve's result.
        const_growth: code variant: the growth factor (> 1) of C′ before the first failure.
        const_rel_tol: code variant: the bisection tolerance (> 0) as a fraction of the first
            failing C′.
        max_growth_steps: code variant: give up when C′ has grown this often without a
            failure (≥ 1; the code loops for ever).
        maxcor: L-BFGS-B corrections (≥ 1; 15).
        steps: L-BFGS-B iterations per solve (≥ 1). Default 150 (paper), unlimited (code).
        max_evals: function+gradient evaluations per solve (≥ 1), a hard stop that returns the
            last evaluated point. Default unlimited (paper; scipy's own limit 15000), 150 (code).

    Returns:
        An :class:`~reprolib.attacks.core.AttackResult`; ``info`` holds per input: ``const``
        (the C of the returned solution; NaN if none), ``found``, ``evaluations`` (loss+gradient
        evaluations), ``extra_forwards`` (forward-only passes to classify a solve's result),
        ``n_solves``, and ``solves`` (a list per input of ``(C, success, evaluations,
        iterations, message)``).

    Raises:
        AttackInputError: for a setting outside the ranges above, before any model pass.
    """
    checks.choice("variant", variant, VARIANTS)
    checks.choice("norm", norm, OBJECTIVE_NORMS)
    if initial_const is not None:
        checks.positive("initial_const", initial_const)
    checks.positive("const_tol", const_tol)
    checks.count("max_doublings", max_doublings)
    checks.in_range("const_growth", const_growth, 1, math.inf, low_open=True)
    checks.positive("const_rel_tol", const_rel_tol)
    checks.count("max_growth_steps", max_growth_steps)
    checks.count("maxcor", maxcor)
    if steps is not None:
        checks.count("steps", steps)
    if max_evals is not None:
        checks.count("max_evals", max_evals)
    x, y, counter, started = start(model, x, y)
    n = len(x)
    if steps is None:
        steps = 150 if variant == "paper" else 10**9
    if initial_const is None:
        initial_const = INITIAL_CONST[variant]
    if max_evals is None and variant == "code":
        max_evals = 150
    x64 = x.double().flatten(1).cpu().numpy()
    lower, upper = model.bounds
    inv_var = (1.0 / model.std.double() ** 2).expand(1, *model.input_shape).flatten().cpu().numpy()

    def batch_fg(idx: list[int], points: list[np.ndarray]) -> list:
        return _evaluate(model, counter, x, y, targeted, idx, points, grad=True)

    def batch_f(idx: list[int], points: list[np.ndarray]) -> list:
        return _evaluate(model, counter, x, y, targeted, idx, points, grad=False)

    def work(i: int, ask: Callable) -> dict:
        label = int(y[i])
        bounds = Bounds(lower - x64[i], upper - x64[i])
        zero = np.zeros_like(x64[i])
        log = {"evaluations": 0, "extra_forwards": 0, "solves": [], "original": None}

        def adversarial(z: np.ndarray) -> bool:
            others = np.delete(z, label)
            return bool(z[label] > others.max()) if targeted else bool(others.max() > z[label])

        def objective(c: float) -> Callable:
            def f(d: np.ndarray) -> tuple[float, np.ndarray]:
                ce, g = evaluate(d)
                if variant == "code":
                    return ce + c * float(d @ (d * inv_var)), g + 2 * c * d * inv_var
                if norm == "l2sq":
                    return float(d @ d) + c * ce, 2 * d + c * g
                r = math.sqrt(float(d @ d) + _SAFE_NORM_DELTA)
                return r + c * ce, d / r + c * g
            return f

        recent: deque = deque(maxlen=4)  # (point, logits) of the last evaluations
        budget = {"left": None}

        def evaluate(d: np.ndarray) -> tuple[float, np.ndarray]:
            if budget["left"] is not None:
                if budget["left"] <= 0:
                    raise _EvalCap
                budget["left"] -= 1
            d = d.copy()
            ce, g, z = ask("fg", d)
            log["evaluations"] += 1
            if log["original"] is None:
                log["original"] = int(np.argmax(z))  # the model's label on x: the first point is D = 0
            recent.append((d, z))
            return ce, g

        def solve(c: float, d0: np.ndarray) -> tuple[np.ndarray, bool, np.ndarray]:
            """One L-BFGS-B run at constant ``c`` from ``d0``: its result, success and logits."""
            budget["left"] = max_evals
            before = log["evaluations"]
            try:
                res = minimize(objective(c), np.clip(d0, bounds.lb, bounds.ub), jac=True,
                               method="L-BFGS-B", bounds=bounds,
                               options={"maxcor": maxcor, "maxiter": steps, "maxfun": 10**9})
                d, nit, message = (res.x if variant == "paper" else recent[-1][0]), int(res.nit), str(res.message)
            except _EvalCap:
                d, nit, message = recent[-1][0], -1, f"stopped after {max_evals} evaluations"
            z = next((zz for dd, zz in reversed(recent) if np.array_equal(dd, d)), None)
            if z is None:
                z = ask("f", d.copy())
                log["extra_forwards"] += 1
            ok = adversarial(z)
            log["solves"].append((c, ok, log["evaluations"] - before, nit, message))
            return d, ok, z

        best, best_c = None, math.nan
        if variant == "paper":
            c, d = float(initial_const), zero
            for _ in range(max_doublings):
                c *= 2
                d, ok, _ = solve(c, d if warm_start else zero)
                if ok:
                    best, best_c = d, c
                    break
            if best is not None:
                c_low, c_high = 0.0, c
                while c_high - c_low >= const_tol:
                    c_half = (c_low + c_high) / 2
                    d, ok, _ = solve(c_half, d if warm_start else zero)
                    if ok:
                        best, best_c, c_high = d, c_half, c_half
                    else:
                        c_low = c_half
        else:
            c, d, c_fail = float(initial_const), zero, None
            for _ in range(max_growth_steps):
                d, _, z = solve(c, d)  # the code keeps D between these solves
                original = label if not targeted else log["original"]
                if int(np.argmax(z)) == original:
                    c_fail = c
                    break
                c *= const_growth
            if c_fail is not None:
                c_min, c_max, tol, recorded = 0.0, c_fail, c_fail * const_rel_tol, 0.0
                while c_max - c_min > tol:
                    recorded = c_min  # the code's off-by-one: the value before this update
                    mid = (c_max + c_min) / 2
                    _, ok, _ = solve(mid, zero)
                    if ok:
                        c_min = mid
                    else:
                        c_max = mid
                d, ok, _ = solve(recorded, zero)
                if ok:
                    best, best_c = d, recorded
        log["d"], log["const"] = best, best_c
        return log

    logs = lockstep(n, work, {"fg": batch_fg, "f": batch_f})
    x_raw = x.clone()
    for i, log in enumerate(logs):
        if log["d"] is not None:
            x_raw[i] = torch.from_numpy(x64[i] + log["d"]).reshape(model.input_shape).to(x)
    info = {
        "const": torch.tensor([log["const"] for log in logs], dtype=torch.float64),
        "found": torch.tensor([log["d"] is not None for log in logs], dtype=torch.bool),
        "evaluations": torch.tensor([log["evaluations"] for log in logs], dtype=torch.long),
        "extra_forwards": torch.tensor([log["extra_forwards"] for log in logs], dtype=torch.long),
        "n_solves": torch.tensor([len(log["solves"]) for log in logs], dtype=torch.long),
        "solves": [log["solves"] for log in logs],
    }
    return finish(model, x, x_raw, y, targeted, counter, started, **info)


def _evaluate(model: Classifier, counter: Counter, x: Tensor, y: Tensor, targeted: bool,
              idx: list[int], points: list[np.ndarray], *, grad: bool) -> list:
    """The loss, its input gradient and the logits at ``x[idx] + points``, in one batch.

    Returns float64 values per input: ``(loss, gradient, logits)`` with ``grad``, else logits.
    """
    rows = torch.tensor(idx, device=x.device)
    d = torch.from_numpy(np.stack(points)).to(x.device).reshape(len(idx), *model.input_shape)
    xi = (x[rows].double() + d).to(x.dtype)
    if not grad:
        with torch.no_grad():
            z = counter.logits(xi, rows)
        return list(z.double().cpu().numpy())
    xi.requires_grad_(True)
    with torch.enable_grad():
        z = counter.logits(xi, rows)
        logp = z.log_softmax(1)
        own = logp.gather(1, y[rows][:, None]).squeeze(1)
        if targeted:
            loss = -own  # cross-entropy to the target
        else:  # −log(1 − p_y) = −log Σ_{j≠y} p_j
            onehot = torch.zeros_like(logp, dtype=torch.bool).scatter_(1, y[rows][:, None], True)
            loss = -logp.masked_fill(onehot, float("-inf")).logsumexp(1)
        g = counter.grad(loss, xi, rows)
    loss = loss.detach().double().cpu().numpy()
    g = g.double().flatten(1).cpu().numpy()
    z = z.detach().double().cpu().numpy()
    return [(float(loss[k]), g[k], z[k]) for k in range(len(idx))]
