"""Query-only access to a classifier, for black-box attacks (ZOO and its successors).

A :class:`BlackBox` wraps a :class:`~reprolib.models.Classifier` and exposes only what a
black-box adversary is allowed to see: :meth:`BlackBox.predict` (output scores for a batch
of inputs), the input ``bounds``, ``input_shape`` and ``num_classes``, and the query counts.

Gradients are made unavailable, not just discouraged:

* the model is held in a closure, never as an attribute (``BlackBox`` has ``__slots__`` and
  no ``nn.Module`` or parameter anywhere in its attributes);
* the query input is detached and cloned, the model runs under ``torch.no_grad()``, and the
  output is a detached copy, so nothing returned has a ``grad_fn``: ``.backward()`` on it
  raises, and no gradient can reach the input or the model's parameters, whatever grad mode
  the caller is in.

(Python cannot hide an object from a determined caller, e.g. through the closure's cells;
the guarantee is that no attack code path can obtain a gradient by accident.)

Every row of every :meth:`predict` call is one query, charged to the attacked input named by
``owner``; the counts are exact, per input.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...models.classifier import Classifier
from ..core import check_logits
from .checks import AttackInputError

#: What :meth:`BlackBox.predict` can return.
OUTPUTS = ("log_probs", "probs", "logits")


def _make_oracle(model: Classifier, output: str) -> Callable[[Tensor], Tensor]:
    """The only reference to ``model`` lives in this closure."""
    checked = [False]

    def oracle(x: Tensor) -> Tensor:
        x = x.detach().clone()
        with torch.no_grad():
            out = model(x)
            if not checked[0]:
                check_logits(model, out, len(x))
                checked[0] = True
            if model.output == "logits" and output != "logits":
                out = torch.log_softmax(out, dim=1)
            if output == "probs":
                out = out.exp()
        return out.detach().clone()

    return oracle


class BlackBox:
    """Score-query access to ``model`` for ``num_inputs`` attacked inputs.

    Args:
        model: the classifier to wrap (kept private).
        num_inputs: how many attacked inputs queries are charged to (the length of
            :attr:`queries`).
        output: ``"log_probs"`` (default; what ZOO uses), ``"probs"``, or ``"logits"``
            (only for a model that exposes its logits; declare it explicitly).
    """

    __slots__ = ("_oracle", "_queries", "_total", "bounds", "input_shape", "num_classes", "output",
                 "device", "dtype")

    def __init__(self, model: Classifier, num_inputs: int = 1, *, output: str = "log_probs") -> None:
        if not isinstance(model, Classifier):
            raise AttackInputError(
                f"BlackBox wraps a reprolib.models.Classifier, got {type(model).__name__}. Wrap your "
                "network first: Classifier(net, input_shape=(C, H, W), num_classes=K, bounds=(0, 1))."
            )
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, not {output!r}.")
        if output == "logits" and model.output != "logits":
            raise ValueError("output='logits' needs a model that returns logits; this one returns "
                             "log-probabilities. Use output='log_probs'.")
        self._oracle = _make_oracle(model, output)
        self.device = model.device
        self.dtype = next(iter(p.dtype for p in model.parameters()), torch.float32)
        self._queries = torch.zeros(int(num_inputs), dtype=torch.long, device=self.device)
        self._total = 0
        self.bounds = model.bounds
        self.input_shape = model.input_shape
        self.num_classes = model.num_classes
        self.output = output

    def predict(self, x: Tensor, owner: Tensor | None = None) -> Tensor:
        """Scores for the batch ``x``: one query per row.

        ``owner[i]`` is the attacked input that row ``i`` is charged to; ``None`` charges row
        ``i`` to input ``i`` (then ``len(x)`` must equal ``num_inputs``). Inputs outside the
        bounds are refused, as a real query API would.
        """
        if tuple(x.shape[1:]) != self.input_shape:
            raise AttackInputError(f"query of shape {tuple(x.shape)}; the model takes "
                                   f"(N, {', '.join(map(str, self.input_shape))}).")
        lower, upper = self.bounds
        if len(x):
            lo, hi = (float(v) for v in torch.aminmax(x.detach()))
            if lo < lower or hi > upper:
                raise AttackInputError(f"query outside the bounds [{lower}, {upper}]: [{lo:.6g}, {hi:.6g}].")
        if owner is None:
            if len(x) != len(self._queries):
                raise ValueError(f"a query of {len(x)} rows for {len(self._queries)} inputs needs owner")
            owner = torch.arange(len(x), device=self.device)
        elif owner.shape != (len(x),):
            raise ValueError(f"owner must have shape ({len(x)},), got {tuple(owner.shape)}")
        out = self._oracle(x)
        self._queries.index_add_(0, owner.to(self.device).long(),
                                 torch.ones(len(x), dtype=torch.long, device=self.device))
        self._total += len(x)
        return out

    __call__ = predict

    @property
    def queries(self) -> Tensor:
        """Queries charged to each attacked input so far (a copy)."""
        return self._queries.clone()

    @property
    def total_queries(self) -> int:
        """All rows ever sent to the model through this wrapper."""
        return self._total

    def __repr__(self) -> str:
        return (f"BlackBox(input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"bounds={self.bounds}, output={self.output!r}, queries={self._total})")

    def __reduce__(self):  # no pickling: a pickle would carry the model
        raise TypeError("a BlackBox cannot be pickled")
