"""Substitute training by Jacobian-based augmentation (Papernot et al.; document 002, Table 1):
the substitute learns the oracle round by round, the oracle is only queried (never
differentiated), the queries are counted exactly, and bad inputs are refused."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reprolib.attacks.ops.blackbox import BlackBox
from reprolib.evaluation.substitute import jacobian_augmentation, train_substitute
from reprolib.models import Classifier
from reprolib.train import Recipe


class _CountBackward(torch.autograd.Function):
    """Identity whose backward counts how often a gradient reaches the oracle's input."""

    @staticmethod
    def forward(ctx, x, box):  # type: ignore[override]
        ctx.box = box
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ctx.box["backward"] += 1
        return grad, None


class Spy(nn.Module):
    """Counts the rows the oracle's network sees and every backward pass through it."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.box = net, {"rows": 0, "backward": 0}

    def forward(self, x):
        self.box["rows"] += len(x)
        return self.net(_CountBackward.apply(x, self.box))


def oracle_model() -> Classifier:
    """Three classes on the unit square: three 120° sectors around its centre (a linear net)."""
    lin = nn.Linear(2, 3)
    angle = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3]) + 0.3
    with torch.no_grad():
        lin.weight.copy_(10 * torch.stack([angle.cos(), angle.sin()], 1))
        lin.bias.copy_(-lin.weight @ torch.tensor([0.5, 0.5]))
    return Classifier(Spy(lin), input_shape=(2,), num_classes=3).eval()


def substitute_model(seed: int = 1) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3)), input_shape=(2,), num_classes=3)


GRID = torch.stack(torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 30), indexing="ij"), -1).view(-1, 2)
RECIPE = Recipe(epochs=150, lr=1e-2, optimizer="adam", schedule="constant", batch_size=128)


def seed_points(n: int = 8) -> torch.Tensor:
    """A small cluster inside one sector: the seed set alone shows the substitute one class."""
    return torch.tensor([0.45, 0.3]) + 0.15 * torch.rand(n, 2, generator=torch.Generator().manual_seed(0))


def test_agreement_with_the_oracle_grows_over_the_rounds_and_queries_are_exact():
    model = oracle_model()
    seed = seed_points()
    with torch.no_grad():
        truth = model(GRID).argmax(1)
        assert model(seed).argmax(1).unique().numel() == 1
    model.net.box["rows"] = 0
    oracle = BlackBox(model)
    res = train_substitute(oracle, seed, substitute_model(), RECIPE, rounds=6, lam=0.1, check=(GRID, truth))
    # the set doubles each round, and only the points new in a round are queried
    assert res.round_sizes == [8, 16, 32, 64, 128, 256]
    assert res.queries == oracle.total_queries == model.net.box["rows"] == 8 * 2 ** 5 == len(res.x)
    assert oracle.queries.tolist() == [256]
    # the oracle was never differentiated and holds no gradient
    assert model.net.box["backward"] == 0
    assert all(p.grad is None for p in model.parameters())
    # the labels are the oracle's, and every point stays in the box
    with torch.no_grad():
        assert torch.equal(res.labels, model(res.x).argmax(1))
    assert float(res.x.min()) >= 0.0 and float(res.x.max()) <= 1.0
    # the seed set is kept, and the first augmentation moves every coordinate of a seed point by λ
    assert torch.equal(res.x[:8], seed)
    assert torch.allclose((res.x[8:16] - res.x[:8]).abs(), torch.full((8, 2), 0.1), atol=1e-6)
    # the augmented points reach a second sector, and the substitute imitates the oracle far
    # better after the augmentations than on the seed set alone (one class: about a third)
    assert res.labels.unique().numel() >= 2
    assert len(res.agreement) == 6
    assert res.agreement[0] < 0.4 and res.agreement[-1] >= res.agreement[0] + 0.25, res.agreement
    assert not res.model.training


def test_jacobian_augmentation_is_the_sign_step_of_a_linear_substitute():
    # for F = softmax(Wx + b), ∇ log F(x)_y = W_y − Σ_k F_k W_k: the step is λ·sign of that, clipped
    torch.manual_seed(3)
    lin = nn.Linear(4, 3)
    sub = Classifier(lin, input_shape=(4,), num_classes=3).eval()
    x = 0.1 + 0.8 * torch.rand(20, 4)
    y = torch.randint(0, 3, (20,))
    with torch.no_grad():
        p = torch.softmax(lin(x), 1)
        grad = lin.weight[y] - p @ lin.weight
    expected = (x + 0.05 * grad.sign()).clamp(0, 1)
    assert torch.allclose(jacobian_augmentation(sub, x, y, 0.05, batch_size=7), expected, atol=1e-7)
    big = jacobian_augmentation(sub, x, y, 5.0)
    assert set(big.unique().tolist()) <= {0.0, 1.0}  # clipped to the box


@pytest.mark.parametrize("change, fragment", [
    ({"oracle": "model"}, "BlackBox"),
    ({"rounds": 0}, "rounds must be an integer"),
    ({"rounds": 2.0}, "rounds must be an integer"),
    ({"lam": 0.0}, "lam (λ) must be"),
    ({"lam": -0.1}, "lam (λ) must be"),
    ({"seed_x": torch.rand(0, 2)}, "non-empty"),
    ({"seed_x": torch.rand(4, 3)}, "shape (N, 2)"),
    ({"seed_x": torch.rand(4, 2) + 1.0}, "inside the oracle's bounds"),
    ({"substitute": Classifier(nn.Linear(2, 4), input_shape=(2,), num_classes=4)}, "Build the substitute"),
    ({"check": (torch.rand(5, 2), torch.zeros(4, dtype=torch.long))}, "check must be"),
])
def test_bad_inputs_are_refused_before_any_query(change, fragment):
    model = oracle_model()
    args = {"oracle": BlackBox(model), "seed_x": seed_points(), "substitute": substitute_model(), "rounds": 2,
            "lam": 0.1, "check": None}
    if change.get("oracle") == "model":
        change = {"oracle": model}
    args.update(change)
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        train_substitute(args.pop("oracle"), args.pop("seed_x"), args.pop("substitute"), RECIPE, **args)
    assert model.net.box["rows"] == 0
