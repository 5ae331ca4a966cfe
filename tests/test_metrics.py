"""Robustness metrics of document 001 (card §2.2, §2.7): fooling ratio, ρ̂₁, ρ̂₂ (code and
paper definitions), the DeepFool fooling curve and ε₉₉, robust accuracy."""
from __future__ import annotations

import math

import pytest
import torch

from _gn_helpers import affine, close, exact_distances, inputs
from reprolib.attacks.deepfool_lp import deepfool
from reprolib.evaluation import metrics


def test_fooling_ratio_and_robust_accuracy():
    success = torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)
    correct = torch.tensor([1, 1, 1, 0, 0], dtype=torch.bool)
    assert metrics.fooling_ratio(success) == pytest.approx(0.6)
    assert metrics.fooling_ratio(success, correct) == pytest.approx(2 / 3)
    assert math.isnan(metrics.fooling_ratio(success, torch.zeros(5, dtype=torch.bool)))
    # misclassified counts as broken; a success beyond ε does not break
    norms = torch.tensor([0.1, 0.0, 0.3, 0.1, 0.0])
    assert metrics.robust_accuracy(correct, success) == pytest.approx(1 / 5)
    assert metrics.robust_accuracy(correct, success, norms, 0.2) == pytest.approx(2 / 5)
    assert metrics.robust_accuracy(correct, success, norms, 0.3) == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        metrics.robust_accuracy(correct, success, norms)


def test_rho_1_averages_over_fooled_only():
    x = torch.zeros(3, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([0.5, 1.0, 0.25])
    r = torch.tensor([0.05, 0.2, 99.0])
    fooled = torch.tensor([True, True, False])
    assert metrics.rho_1(r, x, fooled) == pytest.approx((0.1 + 0.2) / 2)
    assert math.isnan(metrics.rho_1(r, x, torch.zeros(3, dtype=torch.bool)))


@pytest.mark.parametrize("p", [math.inf, 2.0])
def test_rho_2_code_definition_is_the_exact_distance_on_affine_models(p):
    model, W, b = affine(10, seed=31, scale=0.5)
    x = inputs(20)
    with torch.no_grad():
        y = model(x).argmax(1)
    d, _ = exact_distances(W, b, x, y, p)
    code = metrics.rho_2_per_input(model, x, y, p=p)
    close(code, d, rtol=1e-10)
    paper = metrics.rho_2_per_input(model, x, y, p=p, definition="paper")
    assert bool((paper >= code - 1e-12).all())
    assert metrics.rho_2(model, x, y, p=p, scale=2.0) == pytest.approx(float(code.mean()) / 2)
    # and DeepFool, minimal on affine models, agrees with it: ρ̂₂ ≤ ρ̂₁'s numerator per input
    res = deepfool(model, x, y, norm=p, overshoot=0.0, overshoot_mode="per_step")
    assert bool((res.info["norm"] >= code * (1 - 1e-9)).all())


def test_rho_2_definitions_differ_when_runner_up_is_not_the_nearest_boundary():
    # class 1 is the runner-up by score but far in input space; class 2 is close in input space
    model, W, b = affine(3, seed=0)
    with torch.no_grad():
        W.zero_()
        b.copy_(torch.tensor([1.0, 0.9, 0.0], dtype=torch.float64))
        W[1, 0] = -0.01   # f_0 − f_1 = 0.1 + 0.01 x_0: ‖∇‖₁ = 0.01
        W[2, 0] = 10.0    # f_0 − f_2 = 1 − 10 x_0:   ‖∇‖₁ = 10
    x = torch.full((1, 1, 6, 6), 0.05, dtype=torch.float64)
    y = torch.tensor([0])
    code = float(metrics.rho_2_per_input(model, x, y, p=math.inf))
    paper = float(metrics.rho_2_per_input(model, x, y, p=math.inf, definition="paper"))
    # f = (1, 0.9 − 0.0005, 0.5): L's class is 1 (margin ≈ 0.1005, ‖g‖₁ = 0.01) → 10.05;
    # class 2: margin 0.5, ‖g‖₁ = 10 → 0.05
    assert code == pytest.approx(0.05) and paper == pytest.approx(10.05)


def test_deepfool_curve_and_eps_99():
    norms = torch.arange(1, 201, dtype=torch.float64) / 100      # 0.01 … 2.00
    fooled = torch.ones(200, dtype=torch.bool)
    fooled[-1] = False                                          # the largest norm never fooled
    curve = metrics.deepfool_fooling_curve(norms, fooled, torch.tensor([0.0, 0.015, 1.0, 5.0]))
    close(curve, torch.tensor([0.0, 1 / 200, 99 / 200, 199 / 200]))
    # grid = linspace(0, 1.99, 200): first ε with mean[‖r‖ < ε ∧ fooled] > 0.99, i.e. 199 of
    # 200 inputs strictly below ε: impossible (199 fooled, the max itself never counts) → 198/200
    assert math.isnan(metrics.eps_99(norms, fooled))
    grid = torch.linspace(0, 1.99, 200, dtype=torch.float64)
    below = (norms[None, :-1] < grid[:, None]).sum(1)              # fooled inputs strictly below ε
    assert metrics.eps_99(norms, fooled, level=0.98) == pytest.approx(float(grid[(below > 196).nonzero()[0, 0]]))
    all_fooled = torch.ones(200, dtype=torch.bool)
    e = metrics.eps_99(norms, all_fooled, scale=2.0)
    grid = torch.linspace(0, 2.0, 200, dtype=torch.float64)
    expected = grid[((norms[None] < grid[:, None]).double().mean(1) > 0.99).nonzero()[0, 0]]
    assert e == pytest.approx(float(expected) / 2)
    assert math.isnan(metrics.eps_99(norms, torch.zeros(200, dtype=torch.bool)))


# ------------------------------------------------------------------ document 002's three cases

def test_best_average_worst_by_hand():
    """Three images × three targets. Best: any target, the minimum per metric (image 0's best L1
    and best L2 come from different targets); worst: all targets, the maximum per metric;
    average: the picked column."""
    success = torch.tensor([[True, True, False],
                            [True, True, True],
                            [False, False, False]])
    l1 = torch.tensor([[2.0, 5.0, 0.1], [4.0, 6.0, 8.0], [1.0, 1.0, 1.0]])
    l2 = torch.tensor([[0.9, 0.5, 0.01], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1]])
    out = metrics.best_average_worst(success, {"l1": l1, "l2": l2}, torch.tensor([1, 2, 0]))
    assert set(out) == set(metrics.CASES) == {"best", "average", "worst"}
    best, avg, worst = out["best"], out["average"], out["worst"]
    assert (best["asr"], best["successes"], best["images"]) == (pytest.approx(2 / 3), 2, 3)
    assert best["l1"] == pytest.approx((2.0 + 4.0) / 2) and best["l2"] == pytest.approx((0.5 + 1.0) / 2)
    assert (avg["asr"], avg["successes"]) == (pytest.approx(2 / 3), 2)
    assert avg["l1"] == pytest.approx((5.0 + 8.0) / 2) and avg["l2"] == pytest.approx((0.5 + 3.0) / 2)
    assert (worst["asr"], worst["successes"]) == (pytest.approx(1 / 3), 1)
    assert worst["l1"] == pytest.approx(8.0) and worst["l2"] == pytest.approx(3.0)


def test_best_average_worst_matches_a_loop_and_reports_nan_without_success():
    gen = torch.Generator().manual_seed(0)
    success = torch.rand(40, 9, generator=gen) < 0.8
    norms = {k: torch.rand(40, 9, generator=gen, dtype=torch.float64) * s for k, s in (("l1", 30), ("linf", 1))}
    pick = torch.randint(0, 9, (40,), generator=gen)
    out = metrics.best_average_worst(success, norms, pick)
    for case, keep, reduce in (("best", lambda s: s.any(), lambda v, s: v[s].min()),
                               ("average", None, None), ("worst", lambda s: s.all(), lambda v, s: v.max())):
        hits, sums = 0, {k: 0.0 for k in norms}
        for i in range(40):
            s = success[i]
            ok = bool(s[pick[i]]) if case == "average" else bool(keep(s))
            if ok:
                hits += 1
                for k, v in norms.items():
                    sums[k] += float(v[i, pick[i]]) if case == "average" else float(reduce(v[i], s))
        assert out[case]["successes"] == hits and out[case]["asr"] == pytest.approx(hits / 40)
        for k in norms:
            assert out[case][k] == pytest.approx(sums[k] / hits)
    none = metrics.best_average_worst(torch.zeros(2, 3, dtype=torch.bool), {"l2": torch.ones(2, 3)},
                                      torch.zeros(2, dtype=torch.long))
    assert all(none[c]["asr"] == 0 and math.isnan(none[c]["l2"]) for c in metrics.CASES)


@pytest.mark.parametrize("success, norms, pick", [
    (torch.ones(3, dtype=torch.bool), {}, torch.zeros(3, dtype=torch.long)),
    (torch.ones(2, 3, dtype=torch.bool), {"l1": torch.ones(2, 4)}, torch.zeros(2, dtype=torch.long)),
    (torch.ones(2, 3, dtype=torch.bool), {}, torch.tensor([0, 3])),
    (torch.ones(2, 3, dtype=torch.bool), {}, torch.tensor([0])),
    (torch.ones(0, 3, dtype=torch.bool), {}, torch.zeros(0, dtype=torch.long)),
])
def test_best_average_worst_refuses_shapes_that_disagree(success, norms, pick):
    with pytest.raises(ValueError):
        metrics.best_average_worst(success, norms, pick)
