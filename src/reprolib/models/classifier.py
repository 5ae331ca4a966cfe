"""The model wrapper every attack takes: it owns the input bounds and the preprocessing."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Classifier(nn.Module):
    """A classifier on raw inputs in ``bounds``, returning logits (or log-probabilities).

    Normalisation lives here, inside the model, so attacks, norms and ε are all measured in
    the true input space (pixels in [0, 1] for every model of the zoo).

    Args:
        net: the network proper; it sees ``(x - mean) / std``.
        input_shape: the shape of one input, e.g. ``(1, 28, 28)``.
        num_classes: the number of outputs.
        bounds: the valid input box ``(lower, upper)``.
        mean, std: per-channel normalisation applied before ``net`` (optional).
        output: what ``net`` returns: ``"logits"`` or ``"log_probs"``.

    Wrap your own model in one line:
    ``reprolib.models.Classifier(my_net, input_shape=(3, 32, 32), num_classes=10)``.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        output: str = "logits",
    ) -> None:
        super().__init__()
        if output not in ("logits", "log_probs"):
            raise ValueError(f"output must be 'logits' or 'log_probs', not {output!r}.")
        lower, upper = map(float, bounds)
        if not lower < upper:
            raise ValueError(f"bounds must satisfy lower < upper, got {bounds}.")
        self.net = net
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.bounds = (lower, upper)
        self.output = output
        channels = self.input_shape[0]
        shape = (1, channels) + (1,) * (len(self.input_shape) - 1)
        mean_t = torch.zeros(shape) if mean is None else torch.tensor(mean, dtype=torch.float32).reshape(shape)
        std_t = torch.ones(shape) if std is None else torch.tensor(std, dtype=torch.float32).reshape(shape)
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device
