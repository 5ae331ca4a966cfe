"""What every attack shares: input checks, pass counting, and the result it returns.

An attack is a function ``attack(model, x, y, *, targeted=False, ...) -> AttackResult``:

* ``model`` is a :class:`reprolib.models.Classifier`: it owns the input bounds and any
  normalisation, and returns logits (or log-probabilities).
* ``x`` is a batch inside the model's bounds, ``y`` the true labels (untargeted) or the
  target labels (``targeted=True``).
* The attack counts every forward and backward pass it spends, per input, through a
  :class:`Counter`, and ends with :func:`finish`, which clips to the bounds and re-checks
  success with a fresh forward pass that is not charged to the attack.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..models.classifier import Classifier


class AttackInputError(ValueError):
    """The model, inputs or labels given to an attack are not usable; the message says why."""


def check_inputs(model: Classifier, x: Tensor, y: Tensor) -> None:
    """Raise :class:`AttackInputError` for a non-Classifier model, a wrong shape, NaN, inputs
    outside the model's bounds, or labels out of range."""
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
    lo, hi = float(x.min()), float(x.max())
    if lo < lower or hi > upper:
        raise AttackInputError(
            f"x spans [{lo:.4g}, {hi:.4g}], outside the model's bounds [{lower}, {upper}]. "
            "Pass raw inputs in the model's bounds; put normalisation inside the Classifier (mean/std)."
        )
    if not torch.is_tensor(y) or y.dtype not in (torch.int64, torch.int32) or y.shape != (len(x),):
        raise AttackInputError(f"y must be an integer tensor of shape ({len(x)},), got "
                               f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}.")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= model.num_classes):
        raise AttackInputError(f"labels must lie in [0, {model.num_classes - 1}], got "
                               f"[{int(y.min())}, {int(y.max())}].")


def check_logits(model: Classifier, out: Tensor) -> None:
    """Refuse a model whose outputs are probabilities: the attacks need logits or log-probabilities."""
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
        self._checked = False

    def logits(self, x: Tensor, idx: Tensor | None = None) -> Tensor:
        """One forward pass of ``x`` (the inputs ``idx`` of the batch; all when ``None``)."""
        out = self.model(x)
        if not self._checked:
            check_logits(self.model, out.detach())
            self._checked = True
        self._add(self.forwards, idx, len(x))
        return out

    def grad(self, output: Tensor, x: Tensor, idx: Tensor | None = None, *, retain_graph: bool = False) -> Tensor:
        """One backward pass: the gradient of ``output.sum()`` with respect to ``x``."""
        (g,) = torch.autograd.grad(output.sum(), x, retain_graph=retain_graph)
        self._add(self.backwards, idx, len(x))
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


def lp_norms(delta: Tensor) -> dict[str, Tensor]:
    """The l0 (number of changed values), l1, l2 and l∞ norms of each perturbation in a batch."""
    flat = delta.flatten(1)
    return {
        "l0": (flat != 0).sum(1).to(flat.dtype),
        "l1": flat.abs().sum(1),
        "l2": flat.norm(dim=1),
        "linf": flat.abs().amax(1) if flat.shape[1] else flat.sum(1),
    }


@dataclass
class AttackResult:
    """What an attack returns. Every field is per input unless stated.

    ``x_adv`` is clipped to the model's bounds; ``x_raw`` is the attack's output before
    clipping (identical for attacks that never leave the box). ``success`` and
    ``success_raw`` are re-checked by running the model on those inputs, never taken from the
    optimiser. ``norms`` are of ``x_adv - x``. Pass counts include every model call the
    attack made, and none of the re-check.
    """

    x: Tensor
    x_adv: Tensor
    x_raw: Tensor
    labels: Tensor  # true labels, or targets when targeted
    targeted: bool
    success: Tensor
    success_raw: Tensor
    norms: dict[str, Tensor]
    forwards: Tensor
    backwards: Tensor
    queries: Tensor
    seconds: float
    info: dict = field(default_factory=dict)  # attack-specific: trajectories, chosen c, ...

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean())

    def __len__(self) -> int:
        return len(self.x)

    def cpu(self) -> "AttackResult":
        move = lambda v: v.cpu() if torch.is_tensor(v) else v  # noqa: E731
        return AttackResult(**{k: ({n: move(t) for n, t in v.items()} if k == "norms" else move(v))
                               for k, v in self.__dict__.items()})


def is_adversarial(logits: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


@torch.no_grad()
def recheck(model: Classifier, x: Tensor, labels: Tensor, targeted: bool, batch_size: int = 1024) -> Tensor:
    """Success per input by a fresh forward pass of ``x`` (not counted against any attack)."""
    out = [is_adversarial(model(x[i:i + batch_size]), labels[i:i + batch_size], targeted)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


def finish(model: Classifier, x: Tensor, x_raw: Tensor, labels: Tensor, targeted: bool,
           counter: Counter, started: float, **info) -> AttackResult:
    """Clip to the bounds, re-check success on the returned inputs, and measure the norms."""
    x_raw = x_raw.detach()
    x_adv = x_raw.clamp(*model.bounds)
    success = recheck(model, x_adv, labels, targeted)
    success_raw = success if torch.equal(x_adv, x_raw) else recheck(model, x_raw, labels, targeted)
    return AttackResult(
        x=x, x_adv=x_adv, x_raw=x_raw, labels=labels, targeted=targeted,
        success=success, success_raw=success_raw, norms=lp_norms(x_adv - x),
        forwards=counter.forwards, backwards=counter.backwards, queries=counter.queries,
        seconds=time.perf_counter() - started, info=info,
    )


def start(model: Classifier, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Counter, float]:
    """Check the inputs, move them to the model's device, and open a counter and a clock."""
    check_inputs(model, x, y)
    device = model.device
    x, y = x.detach().to(device), y.to(device)
    return x, y, Counter(model, len(x), device), time.perf_counter()
