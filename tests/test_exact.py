"""reprolib.evaluation.exact: exact minimal l∞ / l1 perturbations of ReLU MLPs by MILP (HiGHS).

Closed forms on linear classifiers (with and without the box active), brute force and attacks
on tiny ReLU MLPs, the upper bound ``ub``, and the errors.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reprolib.attacks.core import AttackInputError
from reprolib.attacks.deepfool_lp import deepfool
from reprolib.attacks.projected_gradient import pgd
from reprolib.evaluation.exact import UnsupportedModelError, affine_layers, minimal_perturbation
from reprolib.models import Classifier
from reprolib.models.mnist_nets import mlp

MARGIN = 1e-4
MODES = [("per_class", True), ("per_class", False), ("selector", True), ("selector", False)]
LIMIT = 600.0  # seconds per input: never reached by these programs, even on a loaded machine


def _mlp(seed: int, sizes: list[int], input_shape: tuple[int, ...], **norm) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(mlp(sizes), input_shape=input_shape, num_classes=sizes[-1], **norm).double().eval()


def _linear(seed: int, *, scale: float = 10.0, **norm) -> Classifier:
    """A linear classifier 6 → 4 on 1×2×3 inputs, its weights scaled up."""
    model = _mlp(seed, [6, 4], (1, 2, 3), **norm)
    with torch.no_grad():
        model.net[1].weight.mul_(scale)
    return model


def _effective(model: Classifier) -> torch.Tensor:
    """The linear model's weights on the raw input (its normalisation folded by hand)."""
    std = model.std.expand(1, *model.input_shape).flatten()
    return model.net[1].weight.detach() / std


def _check(model: Classifier, x: torch.Tensor, y: int, r, order: float) -> None:
    """The returned perturbation is in the box, has the reported norm, and fools the model."""
    lo, hi = model.bounds
    x_adv = x + r.delta
    assert bool((x_adv >= lo).all() and (x_adv <= hi).all())
    flat = r.delta.flatten()
    assert r.norm == pytest.approx(float(flat.abs().max() if order == math.inf else flat.abs().sum()), rel=1e-12)
    with torch.no_grad():
        out = model(x_adv[None])[0]
    assert r.verified and int(out.argmax()) != y and int(out.argmax()) == r.target
    assert r.margin == pytest.approx(MARGIN, abs=2e-6)  # the optimum sits on the margin
    assert r.bound <= r.norm and r.gap <= 1e-4


@pytest.mark.parametrize("disjunction,tighten", MODES)
def test_linear_closed_form_inside_the_box(disjunction, tighten):
    model = _linear(0, mean=(0.3,), std=(0.7,))
    w = _effective(model)
    x = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64)
    f = model(x)[0].detach()
    y = int(f.argmax())
    others = [j for j in range(4) if j != y]
    for norm, order, dual in (("linf", math.inf, 1), ("l1", 1.0, math.inf)):
        # min_j (f_y − f_j + m)/‖w_y − w_j‖_q, q the dual norm, when the box is not active
        expected = min(float((f[y] - f[j] + MARGIN) / (w[y] - w[j]).norm(p=dual)) for j in others)
        assert expected < 0.5  # every coordinate can move by that much: the box is inactive
        r = minimal_perturbation(model, x, torch.tensor([y]), norm=norm, disjunction=disjunction,
                                 tighten=tighten, rel_gap=1e-9)[0]
        assert r.status == "optimal"
        assert r.norm == pytest.approx(expected, rel=1e-7)
        _check(model, x[0], y, r, order)


@pytest.mark.parametrize("disjunction", ["per_class", "selector"])
def test_linear_closed_form_with_the_box_active(disjunction):
    # At x = 0 only increases are allowed: the l∞ optimum is (f_y − f_j + m)/‖(w_j − w_y)⁺‖₁ and
    # the l1 optimum (f_y − f_j + m)/max_i (w_j − w_y)⁺_i, both below 1 (the box's far side).
    model = _linear(3, scale=4.0)
    w = _effective(model)
    x = torch.zeros(1, 1, 2, 3, dtype=torch.float64)
    f = model(x)[0].detach()
    y = int(f.argmax())
    others = [j for j in range(4) if j != y]
    pos = {j: (w[j] - w[y]).clamp(min=0) for j in others}
    linf = min(float((f[y] - f[j] + MARGIN) / pos[j].sum()) for j in others)
    l1 = min(float((f[y] - f[j] + MARGIN) / pos[j].max()) for j in others)
    free = min(float((f[y] - f[j] + MARGIN) / (w[y] - w[j]).abs().sum()) for j in others)
    assert linf < 1 and l1 < 1 and free < linf  # the box matters here
    for norm, order, expected in (("linf", math.inf, linf), ("l1", 1.0, l1)):
        r = minimal_perturbation(model, x, torch.tensor([y]), norm=norm, disjunction=disjunction, rel_gap=1e-9)[0]
        assert r.status == "optimal"
        assert r.norm == pytest.approx(expected, rel=1e-7)
        assert bool((r.delta >= 0).all())
        _check(model, x[0], y, r, order)


def test_affine_layers_fold_the_normalisation():
    model = _mlp(1, [12, 7, 5, 3], (3, 2, 2), mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    x = torch.rand(5, 3, 2, 2, dtype=torch.float64)
    a = x.flatten(1).numpy()
    layers = affine_layers(model)
    for i, (w, b) in enumerate(layers):
        a = a @ w.T + b
        if i < len(layers) - 1:
            a = a.clip(min=0)
    assert torch.allclose(torch.from_numpy(a), model(x).detach(), atol=1e-12)


def _margins(model: Classifier, x: torch.Tensor, y: int) -> torch.Tensor:
    """``max_{j≠y} f_j − f_y`` of each row of ``x``."""
    with torch.no_grad():
        out = model(x)
    return out.masked_fill(torch.arange(out.shape[1]) == y, -math.inf).amax(1) - out[:, y]


def _grid_max_margin(model: Classifier, x: torch.Tensor, y: int, radius: float, order: float, n: int = 401) -> float:
    """The largest margin of the other classes on an n×n grid over the 2-D ball of ``radius`` (∩ box)."""
    t = torch.linspace(-radius, radius, n, dtype=torch.float64)
    d = torch.cartesian_prod(t, t)
    if order == 1.0:
        d = d[d.abs().sum(1) <= radius]
    return float(_margins(model, (x.flatten() + d).clamp(*model.bounds), y).max())


@pytest.mark.parametrize("norm,order", [("linf", math.inf), ("l1", 1.0)])
def test_tiny_mlp_in_two_dimensions_by_brute_force(norm, order):
    model = _mlp(2, [2, 16, 16, 3], (2,), mean=(0.4, 0.6), std=(0.3, 0.2))
    x = torch.tensor([[0.45, 0.55], [0.2, 0.7], [0.8, 0.3]], dtype=torch.float64)
    y = model(x).argmax(1)
    for i, r in enumerate(minimal_perturbation(model, x, y, norm=norm, time_limit=LIMIT)):
        assert r.status == "optimal"
        _check(model, x[i], int(y[i]), r, order)
        # The program's statement: no point within 0.99 × the optimum reaches the margin (a
        # 401 × 401 grid of the ball); and an adversarial exists at the optimum (``_check``).
        assert _grid_max_margin(model, x[i], int(y[i]), 0.99 * r.norm, order) < MARGIN


def test_tiny_mlp_no_attack_beats_the_optimum():
    model = _mlp(4, [16, 12, 12, 4], (1, 4, 4), mean=(0.5,), std=(0.25,))
    g = torch.Generator().manual_seed(0)
    x = 0.2 + 0.6 * torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    y = model(x).argmax(1)
    ub = 1.01 * deepfool(model, x, y, norm="linf").norms["linf"]  # an adversarial with some margin
    for norm, order in (("linf", math.inf), ("l1", 1.0)):
        results = minimal_perturbation(model, x, y, norm=norm, ub=ub, time_limit=LIMIT)
        opt = torch.tensor([r.norm for r in results], dtype=torch.float64)
        for i, r in enumerate(results):
            assert r.status == "optimal"
            _check(model, x[i], int(y[i]), r, order)
        # DeepFool's adversarials are never smaller than the optimum
        df = deepfool(model, x, y, norm=order)
        assert bool((df.norms[norm][df.success] >= opt[df.success] * (1 - 1e-6)).all())
        # the l∞ optimum's perturbation is an l1 upper bound: ub for the l1 programs
        ub = 1.01 * torch.tensor([float(r.delta.abs().sum()) for r in results])
        # PGD with 64 random restarts reaches the margin nowhere within 0.99 × the optimum, but
        # does within 1.5 ×
        rep = 64
        xs, ys = x.repeat_interleave(rep, 0), y.repeat_interleave(rep, 0)
        for factor, expect in ((0.99, False), (1.5, True)):
            res = pgd(model, xs, ys, eps=factor * opt.repeat_interleave(rep), norm=norm, steps=100,
                      random_start=True, loss="mlogit", confidence=1.0, seed=1)
            reached = torch.tensor([bool((_margins(model, res.x_adv[k * rep:(k + 1) * rep], int(y[k])) >= MARGIN).any())
                                    for k in range(len(x))])
            assert bool(reached.all()) if expect else not bool(reached.any())


def test_upper_bound_gives_the_same_optimum_and_infeasible_below_it():
    model = _mlp(7, [8, 8, 8, 4], (1, 2, 4))
    g = torch.Generator().manual_seed(2)
    x = 0.2 + 0.6 * torch.rand(2, 1, 2, 4, generator=g, dtype=torch.float64)
    y = model(x).argmax(1)
    for norm in ("linf", "l1"):
        free = minimal_perturbation(model, x, y, norm=norm, rel_gap=1e-6, time_limit=LIMIT)
        opt = torch.tensor([r.norm for r in free], dtype=torch.float64)
        assert all(r.status == "optimal" for r in free) and bool(opt.isfinite().all())
        for mode in MODES:  # every formulation, with ub, finds the optimum found without it
            with_ub = minimal_perturbation(model, x, y, norm=norm, ub=1.05 * opt, disjunction=mode[0],
                                           tighten=mode[1], rel_gap=1e-6, time_limit=LIMIT)
            for a, b in zip(free, with_ub):
                assert b.status == "optimal" and b.norm == pytest.approx(a.norm, rel=1e-5)
                assert b.unstable <= a.unstable  # a smaller region: no more binaries
            below = minimal_perturbation(model, x, y, norm=norm, ub=0.99 * opt, disjunction=mode[0],
                                         tighten=mode[1], time_limit=LIMIT)
            for r, ub in zip(below, 0.99 * opt):
                assert r.status == "infeasible" and r.norm == math.inf and r.target == -1 and not r.verified
                assert r.bound == pytest.approx(float(ub)) and bool((r.delta == 0).all())


def test_misclassified_input_needs_no_perturbation():
    model = _linear(6)
    x = torch.full((1, 1, 2, 3), 0.5, dtype=torch.float64)
    wrong = (model(x).argmax(1) + 1) % 4
    r = minimal_perturbation(model, x, wrong)[0]
    assert r.status == "misclassified" and r.norm == 0.0 and r.programs == 0 and r.verified
    assert bool((r.delta == 0).all())


@pytest.mark.parametrize("net,match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)), "Conv2d"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 3)), "Sigmoid"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.ReLU(), nn.Linear(8, 3)), "ReLU where Linear"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3), nn.ReLU()), "end with nn.Linear"),
    (nn.Sequential(nn.Linear(16, 3)), "leading nn.Flatten"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(7, 3)), "do not chain"),
    (nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)), "3 classes"),
    (nn.Flatten(), "its net is a Flatten"),
])
def test_unsupported_architectures_are_refused(net, match):
    model = Classifier(net, input_shape=(1, 4, 4), num_classes=3)
    with pytest.raises(UnsupportedModelError, match=match):
        affine_layers(model)
    x, y = torch.rand(1, 1, 4, 4), torch.tensor([0])
    with pytest.raises(UnsupportedModelError, match="nn.Sequential"):
        minimal_perturbation(model, x, y)


def test_bad_arguments_are_refused():
    model = _linear(7)
    x, y = torch.full((2, 1, 2, 3), 0.5, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="l∞ and l1"):
        minimal_perturbation(model, x, y, norm="l2")
    with pytest.raises(ValueError, match="disjunction"):
        minimal_perturbation(model, x, y, disjunction="big-m")
    with pytest.raises(ValueError, match="positive"):
        minimal_perturbation(model, x, y, ub=torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="one per input"):
        minimal_perturbation(model, x, y, ub=[0.1, 0.2, 0.3])
    with pytest.raises(AttackInputError, match="Classifier"):
        minimal_perturbation(model.net, x, y)
    with pytest.raises(AttackInputError, match="outside the model's bounds"):
        minimal_perturbation(model, x + 1, y)
