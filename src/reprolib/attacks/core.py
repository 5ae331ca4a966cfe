"""What every attack shares: input checks, pass counting, and the result it returns.

An attack is a function ``attack(model, x, y, *, targeted=False, ...) -> AttackResult``:

* ``model`` is a :class:`reprolib.models.Classifier`: it owns the input bounds and any
  normalisation, and returns logits (or log-probabilities).
* ``x`` is a batch inside the model's bounds, ``y`` the true labels (untargeted) or the
  target labels (``targeted=True``).
* The attack counts every forward and backward pass it spends, per input, through a
  :class:`Counter`, and ends with :func:`finish`, which clips to the bounds and re-checks
  success with a fresh forward pass that is not charged to the attack. The unclipped output is
  re-checked only when the caller asks (``check_raw=True``), which spares most callers a pass.
* Every public attack is decorated with :func:`attack`, which records its name and settings in
  the result, checks the inputs, runs the model in eval mode with gradients enabled (whatever
  the caller's modes, both restored afterwards), and answers an empty batch with an empty result.
  It adds one setting to every attack, ``check_raw`` (default False): re-check the unclipped
  output ``x_raw`` too, filling ``success_raw``.
"""
from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..models.classifier import Classifier, eval_mode
from .ops.checks import AttackInputError
from .ops.norms import lp_norms

#: Every public attack by name, in the order they were defined (filled by :func:`attack`).
ATTACKS: dict[str, Callable[..., "AttackResult"]] = {}


def model_dtype(model: Classifier) -> torch.dtype:
    """The floating-point dtype of the model's parameters (float32 when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def check_inputs(model: Classifier, x: Tensor, y: Tensor) -> None:
    """Raise :class:`AttackInputError` for a non-Classifier model, a wrong shape, NaN, inputs
    outside the model's bounds, or labels that are not integers in range."""
    if not isinstance(model, Classifier):
        raise AttackInputError(
            f"Attacks take a reprolib.models.Classifier, got {type(model).__name__}. Wrap your network: "
            "Classifier(net, input_shape=(C, H, W), num_classes=K, bounds=(0, 1), mean=..., std=...)."
        )
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise AttackInputError(f"x must be a floating-point tensor, got {type(x).__name__} "
                               f"{getattr(x, 'dtype', '')}.")
    if tuple(x.shape[1:]) != model.input_shape or x.dim() != len(model.input_shape) + 1:
        raise AttackInputError(
            f"x has shape {tuple(x.shape)}; the model takes a batch of shape (N, {', '.join(map(str, model.input_shape))}). "
            "Add the batch dimension with x.unsqueeze(0) for a single input."
        )
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten().tolist()
        raise AttackInputError(f"x holds NaN or infinite values (inputs {bad[:10]}); clean them first.")
    lower, upper = model.bounds
    lo, hi = (float(x.min()), float(x.max())) if x.numel() else (lower, upper)
    if lo < lower or hi > upper:
        raise AttackInputError(
            f"x spans [{lo:.4g}, {hi:.4g}], outside the model's bounds [{lower}, {upper}]. "
            "Pass raw inputs in the model's bounds; put normalisation inside the Classifier (mean/std)."
        )
    if not torch.is_tensor(y) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool \
            or y.shape != (len(x),):
        raise AttackInputError(f"y must be an integer tensor of shape ({len(x)},), got "
                               f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}.")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
        raise AttackInputError(f"labels must lie in [0, {model.num_classes - 1}], got "
                               f"[{int(y.min())}, {int(y.max())}].")


def check_logits(model: Classifier, out: Tensor, n: int | None = None) -> None:
    """Refuse outputs that are not what the model was declared to return: a tensor of shape
    ``(n, num_classes)`` of logits (or log-probabilities), not probabilities.

    Raises:
        AttackInputError: naming what the model returned and the fix.
    """
    k = model.num_classes
    if not torch.is_tensor(out) or not out.is_floating_point() or out.dim() != 2 or out.shape[1] != k \
            or (n is not None and out.shape[0] != n):
        got = f"{out.dtype} of shape {tuple(out.shape)}" if torch.is_tensor(out) else type(out).__name__
        raise AttackInputError(
            f"The model returned {got} for a batch of {n if n is not None else 'N'} inputs, but it was declared "
            f"with num_classes={k}: it must return floating-point logits of shape (N, {k}). Fix num_classes "
            "in the Classifier, or the network's last layer."
        )
    if model.output == "logits" and out.shape[1] > 1 and bool((out >= 0).all()) and \
            torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-4):
        raise AttackInputError(
            "The model returns probabilities (non-negative rows summing to 1), but attacks need logits. "
            "Remove the final softmax, or return log-probabilities and wrap with output='log_probs'."
        )
    if model.output == "log_probs" and not torch.allclose(
            out.logsumexp(1), torch.zeros_like(out[:, 0]), atol=1e-3):
        raise AttackInputError(
            "The model was declared output='log_probs', but its rows do not log-sum-exp to 0. "
            "Declare output='logits' if it returns logits."
        )


class Counter:
    """Counts forward and backward passes (and black-box queries) per input of a batch.

    Every model evaluation of an attack goes through :meth:`logits`, every gradient through
    :meth:`grad`, and ``idx`` names which inputs of the original batch the call is for.
    """

    def __init__(self, model: Classifier, n: int, device: torch.device) -> None:
        self.model = model
        self.forwards = torch.zeros(n, dtype=torch.long, device=device)
        self.backwards = torch.zeros(n, dtype=torch.long, device=device)
        self.queries = torch.zeros(n, dtype=torch.long, device=device)
        self.nonfinite = torch.zeros(n, dtype=torch.long, device=device)
        self._checked = False

    def logits(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """One forward pass of ``x`` (the inputs ``idx`` of the batch; all when ``None``). The
        first pass is checked against the model's declaration (:func:`check_logits`)."""
        out = self.model(x)
        if not self._checked:
            check_logits(self.model, out.detach(), len(x))
            self._checked = True
        self._add(self.forwards, idx, len(x))
        return out

    def grad(self, output: Tensor, x: Tensor, idx: Tensor | None = None, *, retain_graph: bool = False) -> Tensor:
        """One backward pass: the gradient of ``output.sum()`` with respect to ``x``.

        Gradient entries that are NaN or ±∞ (a model that is not differentiable there) are set to
        0 and counted per input in :attr:`nonfinite`, so no attack steps along them.
        """
        (g,) = torch.autograd.grad(output.sum(), x, retain_graph=retain_graph)
        self._add(self.backwards, idx, len(x))
        bad = ~torch.isfinite(g)
        if bool(bad.any()):
            g = g.masked_fill(bad, 0.0)
            self._add(self.nonfinite, idx, len(x), bad.flatten(1).sum(1))
        return g

    def count_queries(self, idx: Tensor | None, per_input: int | Tensor = 1) -> None:
        """Charge black-box queries: ``per_input`` model outputs to each input in ``idx``."""
        self._add(self.queries, idx, len(self.queries), per_input)

    @staticmethod
    def _add(counts: Tensor, idx: Tensor | None, n: int, amount: int | Tensor = 1) -> None:
        if idx is None:
            if n != len(counts):
                raise ValueError(f"a call on {n} inputs of a batch of {len(counts)} needs idx")
            counts += amount
        else:
            counts.index_add_(0, idx.to(counts.device),
                              torch.as_tensor(amount, device=counts.device).expand(len(idx)).long())


@dataclass
class AttackResult:
    """What an attack returns. Every field is per input unless stated.

    ``x_adv`` is clipped to the model's bounds; ``x_raw`` is the attack's output before
    clipping (identical for attacks that never leave the box). ``success`` and
    ``success_raw`` are re-checked by running the model on those inputs, never taken from the
    optimiser; ``success_raw`` is ``None`` when ``x_raw`` differs from ``x_adv`` and the attack
    was not called with ``check_raw=True`` (it equals ``success`` where they are the same).
    ``norms`` are the l0, l1, l2 and l∞ norms of ``x_adv - x`` and ``norms_raw`` those of
    ``x_raw - x``. Pass counts include every model call the attack made, and none of
    the re-check; ``nonfinite_gradients`` counts, per input, the gradient entries that were NaN
    or ±∞ and were set to 0 (0 for a model differentiable everywhere it was queried). An input
    whose output would hold NaN or ±∞ gets ``x`` back, a failure. ``attack`` is the attack's name
    and ``params`` every setting it ran with
    (defaults included), so a result says how it was made. ``info`` holds what is specific to
    one attack; each attack's docstring lists its keys.
    """

    x: Tensor
    x_adv: Tensor
    x_raw: Tensor
    labels: Tensor  # true labels, or targets when targeted
    targeted: bool
    success: Tensor
    success_raw: Tensor | None  # None: x_raw differs from x_adv and was not re-checked
    norms: dict[str, Tensor]
    norms_raw: dict[str, Tensor]
    forwards: Tensor
    backwards: Tensor
    queries: Tensor
    nonfinite_gradients: Tensor  # per input: gradient entries that were NaN or ±∞, set to 0
    seconds: float
    attack: str = ""
    params: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def __len__(self) -> int:
        return len(self.x)

    def cpu(self) -> "AttackResult":
        """The same result with every tensor (and every norm in ``norms``/``norms_raw``) on the CPU."""
        move = lambda v: v.cpu() if torch.is_tensor(v) else v  # noqa: E731
        return AttackResult(**{k: ({n: move(t) for n, t in v.items()} if k in ("norms", "norms_raw") else move(v))
                               for k, v in self.__dict__.items()})


def is_adversarial(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """``(N,)`` bool: the top class of ``logits (N, K)`` is ``labels`` (targeted) or is not
    (untargeted). Ties go to the lower class index, as ``argmax`` breaks them."""
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


@torch.inference_mode()
def recheck(model: Classifier, x: Tensor, labels: Tensor, targeted: bool, batch_size: int = 1024) -> Tensor:
    """Success per input by a fresh forward pass of ``x`` (not counted against any attack); the
    outputs are checked against the model's declaration (:func:`check_logits`)."""
    out = []
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        if i == 0:
            check_logits(model, logits, len(x[:batch_size]))
        out.append(is_adversarial(logits, labels[i:i + batch_size], targeted))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def finish(model: Classifier, x: Tensor, x_raw: Tensor, labels: Tensor, targeted: bool,
           counter: Counter, started: float, **info) -> AttackResult:
    """Clip to the bounds, re-check success on the returned inputs, and measure the norms.

    ``success_raw`` is ``success`` when no coordinate was clipped, else ``None``: the
    :func:`attack` decorator re-checks ``x_raw`` when the caller passed ``check_raw=True``.
    An input whose raw output holds NaN or ±∞ (a model that returned non-finite numbers) gets
    ``x`` back and counts as a failure: no non-finite number leaves an attack.
    """
    x_raw = x_raw.detach()
    broken = ~torch.isfinite(x_raw).flatten(1).all(1)
    if bool(broken.any()):
        x_raw = torch.where(broken.view((-1,) + (1,) * (x.dim() - 1)), x, x_raw)
    x_adv = x_raw.clamp(*model.bounds)
    success = recheck(model, x_adv, labels, targeted)
    same = torch.equal(x_adv, x_raw)
    success_raw = success if same else None
    norms = lp_norms(x_adv - x)
    return AttackResult(
        x=x, x_adv=x_adv, x_raw=x_raw, labels=labels, targeted=targeted,
        success=success, success_raw=success_raw, norms=norms, norms_raw=norms if same else lp_norms(x_raw - x),
        forwards=counter.forwards, backwards=counter.backwards, queries=counter.queries,
        nonfinite_gradients=counter.nonfinite, seconds=time.perf_counter() - started, info=info,
    )


def start(model: Classifier, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Counter, float]:
    """Move the inputs (already checked by :func:`attack`) to the model's device and dtype
    (labels to int64), and open a counter and a clock."""
    device = model.device
    x, y = x.detach().to(device=device, dtype=model_dtype(model)), y.to(device=device, dtype=torch.long)
    return x, y, Counter(model, len(x), device), time.perf_counter()


def _empty(model: Classifier, x: Tensor, y: Tensor, targeted: bool) -> AttackResult:
    x, y, counter, started = start(model, x, y)
    none = torch.zeros(0, dtype=torch.bool, device=x.device)
    norms = lp_norms(x)
    return AttackResult(x=x, x_adv=x.clone(), x_raw=x.clone(), labels=y, targeted=targeted, success=none,
                        success_raw=none, norms=norms, norms_raw=norms, forwards=counter.forwards,
                        backwards=counter.backwards, queries=counter.queries, nonfinite_gradients=counter.nonfinite,
                        seconds=time.perf_counter() - started)


def attack(fn: Callable[..., AttackResult]) -> Callable[..., AttackResult]:
    """Make ``fn(model, x, y, *, targeted=..., **settings)`` a public reprolib attack.

    The wrapped attack checks its inputs (:func:`check_inputs`), answers an empty batch with an
    empty result before any model pass, runs ``fn`` with the model in eval mode and gradients
    enabled (restoring every module's mode afterwards, also on error), and sets the result's
    ``attack`` (the function's name) and ``params`` (every keyword setting, defaults included);
    a result in ``info`` (EAD's other decision rule) gets the same, with the settings it sets
    itself in its ``params`` taking precedence.

    It adds the keyword ``check_raw`` (default False): when True, an unclipped output ``x_raw``
    that differs from ``x_adv`` is re-checked by one more forward pass (not charged to the
    attack), filling ``success_raw``; otherwise ``success_raw`` is ``None`` there.
    An unknown setting raises ``TypeError`` naming it, before anything runs.
    """
    signature = inspect.signature(fn)
    if "check_raw" in signature.parameters:
        raise TypeError(f"{fn.__name__} may not define check_raw: @attack adds it")
    check_raw_param = inspect.Parameter("check_raw", inspect.Parameter.KEYWORD_ONLY, default=False,
                                        annotation="bool")
    params_list = list(signature.parameters.values())
    var_kw = [i for i, q in enumerate(params_list) if q.kind is inspect.Parameter.VAR_KEYWORD]
    params_list.insert(var_kw[0] if var_kw else len(params_list), check_raw_param)
    public = signature.replace(parameters=params_list)

    @functools.wraps(fn)
    def run(model, x, y, *args, check_raw: bool = False, **kwargs) -> AttackResult:
        bound = signature.bind(model, x, y, *args, **kwargs)
        bound.apply_defaults()
        params = {}
        for name, value in list(bound.arguments.items())[3:]:
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                params.update(value)
            else:
                params[name] = value
        if not isinstance(check_raw, bool):
            raise AttackInputError(f"check_raw must be True or False, got {check_raw!r}.")
        params["check_raw"] = check_raw
        check_inputs(model, x, y)
        if len(x) == 0:
            result = _empty(model, x, y, bool(params.get("targeted", False)))
        else:
            with eval_mode(model):
                with torch.enable_grad():
                    result = fn(model, x, y, *args, **kwargs)
                if check_raw:
                    for r in [result, *(v for v in result.info.values() if isinstance(v, AttackResult))]:
                        if r.success_raw is None:
                            r.success_raw = recheck(model, r.x_raw, r.labels, r.targeted)
        result.attack, result.params = fn.__name__, params
        for extra in result.info.values():
            if isinstance(extra, AttackResult):  # another result of the same run: its own settings win
                extra.attack, extra.params = fn.__name__, {**params, **extra.params}
        return result

    run.__signature__ = public
    ATTACKS[fn.__name__] = run
    return run
