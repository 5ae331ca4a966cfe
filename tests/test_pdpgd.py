"""PDGD / PDPGD on affine classifiers whose minimal perturbations are known in closed form."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reprolib.attacks import AttackInputError
from reprolib.attacks.core import recheck
from reprolib.attacks.ops.losses import attack_margin as margin
from reprolib.attacks.primal_dual import pdgd, pdpgd
from reprolib.models import Classifier

D = 10


class Affine(nn.Module):
    """Two-class affine net that counts forward rows and backward calls (tensor hook)."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(W)
            self.lin.bias.copy_(b)
        self.rows = 0
        self.backward_calls = 0
        self.backward_rows = 0

    def forward(self, x):
        self.rows += len(x)
        out = self.lin(x.flatten(1))
        if out.requires_grad and x.requires_grad:
            out.register_hook(self._count)
        return out

    def _count(self, grad):
        self.backward_calls += 1
        self.backward_rows += len(grad)


@pytest.fixture(scope="module")
def problem():
    """Inputs at a chosen margin t_i from the boundary of a 2-class affine model, away from
    the box bounds, so the minimal l_p perturbation is |t_i| / ||w_0 - w_1||_q (q dual to p)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(2, D, generator=g) * 0.22
    wd = W[0] - W[1]
    b = -W @ torch.full((D,), 0.5)
    n = 6
    noise = 0.05 * torch.randn(n, D, generator=g)
    noise = noise - (noise @ wd)[:, None] * wd / wd.dot(wd)
    t = (0.04 + 0.11 * torch.rand(n, generator=g)) * torch.tensor([1.0, -1.0]).repeat(n // 2)
    x = 0.5 + noise + t[:, None] * wd / wd.dot(wd)
    net = Affine(W, b)
    model = Classifier(net, input_shape=(D,), num_classes=2)
    y = (t < 0).long()  # class 0 where f_0 - f_1 = t > 0
    assert torch.equal(model(x).argmax(1), y)
    optimum = {"l2": t.abs() / wd.norm(), "linf": t.abs() / wd.abs().sum(), "l1": t.abs() / wd.abs().max()}
    # the optimal points lie inside the box (for l1 the single step on the largest |wd_i|)
    i = wd.abs().argmax()
    step = -torch.sign(t) * torch.sign(wd[i]) * optimum["l1"]
    assert ((x[:, i] + step) > 0).all() and ((x[:, i] + step) < 1).all()
    assert (x > optimum["linf"][:, None]).all() and (x < 1 - optimum["l2"][:, None]).all()
    return model, x, y, optimum, wd


def _check_result(res, model, x):
    lo, hi = model.bounds
    assert (res.x_adv >= lo).all() and (res.x_adv <= hi).all()
    assert torch.equal(res.x_raw, res.x_adv)  # the attack itself never left the box
    assert torch.equal(res.success, recheck(model, res.x_adv, res.labels, res.targeted))
    assert torch.allclose(res.norms["l2"], (res.x_adv - x).flatten(1).norm(dim=1))


@pytest.mark.parametrize("attack,norm", [(pdpgd, "l2"), (pdpgd, "linf"), (pdgd, "l2")])
def test_reaches_closed_form_optimum(problem, attack, norm):
    model, x, y, optimum, _ = problem
    res = attack(model, x, y, norm=norm, steps=200)
    _check_result(res, model, x)
    assert res.success.all()
    ratio = res.norms[norm] / optimum[norm]
    assert (ratio >= 1 - 1e-4).all(), "beat the true optimum: the norm or the box is wrong"
    assert (ratio <= 1.01).all(), ratio
    assert torch.allclose(res.info["best_norm"], res.norms[norm], rtol=1e-5)


def test_l1_reaches_single_coordinate_optimum(problem):
    model, x, y, optimum, wd = problem
    res = pdpgd(model, x, y, norm="l1", steps=200)
    _check_result(res, model, x)
    assert res.success.all()
    ratio = res.norms["l1"] / optimum["l1"]
    assert (ratio >= 1 - 1e-4).all() and (ratio <= 1.01).all(), ratio
    # the mass sits on the coordinate of largest |w_0 - w_1|
    r = (res.x_adv - x).abs()
    assert (r[:, wd.abs().argmax()] >= 0.99 * r.sum(1)).all()


def test_l0_never_beats_exact_optimum_and_reaches_it(problem):
    model, x, y, _, wd = problem
    # larger margins so that several coordinates are needed; the l0 optimum with the box is
    # the fewest coordinates whose largest possible margin reductions add up to the margin
    xs = 0.5 + (x - 0.5) * 0.3
    xs = xs + (0.45 * torch.tensor([1.0, -1.0]).repeat(3))[:, None] * wd / wd.dot(wd)
    ys = model(xs).argmax(1)
    m = (model(xs)[:, 0] - model(xs)[:, 1]).detach()
    k_opt = []
    for i in range(len(xs)):
        w = wd * (1 if ys[i] == 0 else -1)
        cap = torch.where(w > 0, w * xs[i], -w * (1 - xs[i]))
        k_opt.append(int((cap.sort(descending=True).values.cumsum(0) < m[i].abs()).sum()) + 1)
    k_opt = torch.tensor(k_opt, dtype=torch.float32)
    assert (k_opt >= 2).any()
    res = pdpgd(model, xs, ys, norm="l0", steps=100, restarts=2, step_size=1.0)
    _check_result(res, model, xs)
    assert res.success.all()
    assert (res.norms["l0"] >= k_opt).all()
    assert (res.norms["l0"] <= k_opt + 1).all() and (res.norms["l0"] == k_opt).float().mean() >= 0.5


def test_pass_counts_exact_on_counting_model(problem):
    model, x, y, _, _ = problem
    y = y.clone()
    y[0] = 1 - y[0]  # input 0 is misclassified from the start: r = 0, one forward pass only
    net = model.net
    net.rows = net.backward_calls = net.backward_rows = 0
    T, R, F = 20, 2, 7
    res = pdpgd(model, x, y, norm="linf", steps=T, restarts=R, finetune_steps=F)
    ft = torch.isfinite(res.info["best_norm"][1:]).long()  # finetune runs only where one was found
    assert res.forwards[0] == 1 and res.backwards[0] == 0
    assert torch.equal(res.forwards[1:], 1 + R * (T + 1) + ft * (F + 1))
    assert torch.equal(res.backwards[1:], R * T + ft * F)
    assert net.rows == int(res.forwards.sum()) + len(x)  # + the uncounted re-check in finish
    assert net.backward_rows == int(res.backwards.sum())
    assert net.backward_calls == R * T + F * int(ft.any())
    assert res.success[0] and torch.equal(res.x_adv[0], x[0]) and res.norms["l2"][0] == 0


def test_restarts_reproduce_with_the_same_seed(problem):
    model, x, y, _, _ = problem
    kw = dict(norm="l1", steps=25, restarts=3, init_radius=0.3)
    a = pdpgd(model, x, y, seed=5, **kw)
    b = pdpgd(model, x, y, seed=5, **kw)
    c = pdpgd(model, x, y, seed=6, **kw)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.info["found_at"], b.info["found_at"])
    assert not torch.equal(a.x_adv, c.x_adv)
    # restart 1 of a 3-restart run is the 1-restart run with the same seed: never worse
    one = pdpgd(model, x, y, seed=5, **{**kw, "restarts": 1})
    assert (a.info["best_norm"] <= one.info["best_norm"]).all()


def test_bounds_respected_near_the_box_edges():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(3, 2, 2, 2, generator=g)  # 3 classes, inputs (2 channels, 2x2 pixels)
    net = Affine(W.flatten(1), torch.zeros(3))
    model = Classifier(net, input_shape=(2, 2, 2), num_classes=3)
    x = (torch.rand(8, 2, 2, 2, generator=g) > 0.5).float()  # every value on a bound
    y = model(x).argmax(1)
    for norm in ("linf", "l2", "l1", "l0", "l0_group"):
        res = pdpgd(model, x, y, norm=norm, steps=40, init_radius=1.0)
        _check_result(res, model, x)
        ok = res.success & ~res.info["already_adversarial"]
        if norm == "l0_group":  # best_norm counts changed pixels
            pixels = (res.x_adv != x).any(1).flatten(1).sum(1).float()
            assert torch.equal(res.info["best_norm"][ok], pixels[ok])
            assert (pixels <= res.norms["l0"]).all()


def test_targeted_and_margin_sign():
    g = torch.Generator().manual_seed(4)
    net = Affine(torch.randn(4, D, generator=g), torch.zeros(4))
    model = Classifier(net, input_shape=(D,), num_classes=4)
    x = 0.4 + 0.2 * torch.rand(5, D, generator=g)
    logits = model(x)
    y = logits.argmin(1)  # the least likely class as the target
    assert (margin(logits, y, targeted=True) > 0).all()
    assert (margin(logits, logits.argmax(1), targeted=False) >= 0).all()
    res = pdpgd(model, x, y, targeted=True, norm="l2", steps=100)
    _check_result(res, model, x)
    assert res.success.all() and torch.equal(model(res.x_adv).argmax(1), y)


def test_confidence_reaches_the_margin(problem):
    model, x, y, _, _ = problem
    res = pdpgd(model, x, y, norm="l2", steps=100, confidence=0.5)
    m = margin(model(res.x_adv), y, targeted=False)
    assert (m <= -0.5 + 1e-5).all()


@pytest.mark.parametrize("setting, value", [
    ("norm", "l3"), ("solver", "rmsprop"), ("steps", 0), ("restarts", 0), ("step_size", 0.0),
    ("step_size_final_ratio", 0.0), ("step_size_final_ratio", 1.5), ("dual_step_size", -0.1),
    ("dual_step_size_final", -0.1), ("initial_lambda", 0.0), ("dual_ema", 1.0), ("min_dual_weight", 0.5),
    ("init_radius", -1.0), ("confidence", -1.0), ("finetune_steps", -1), ("finetune_dual_step_size", -1.0),
    ("seed", -1),
])
def test_bad_settings_are_refused_before_any_pass(problem, setting, value):
    model, x, y, _, _ = problem
    net = model.net
    net.rows = 0
    for attack in (pdpgd, pdgd):
        with pytest.raises(AttackInputError, match=setting):
            attack(model, x, y, **{setting: value})
    assert net.rows == 0


def test_errors(problem):
    model, x, y, _, _ = problem
    with pytest.raises(AttackInputError, match="use pdpgd for 'l0'"):
        pdgd(model, x, y, norm="l0")
    with pytest.raises(AttackInputError):
        pdpgd(model, x + 2, y)


def test_adam_solver_and_recorded_settings(problem):
    """PDPGD with Adam (lazy: an adversarial iterate takes no Adam step) also gets near the l2
    optimum (loosely: the prox threshold no longer matches Adam's step); the result names the
    attack and every setting, and ``info`` holds no copy of them."""
    model, x, y, optimum, _ = problem
    res = pdpgd(model, x, y, norm="l2", steps=200, solver="adam", step_size=0.01)
    _check_result(res, model, x)
    ratio = res.norms["l2"] / optimum["l2"]
    assert res.success.all() and (ratio >= 1 - 1e-4).all() and (ratio <= 1.25).all(), ratio
    assert res.attack == "pdpgd" and res.params["solver"] == "adam" and res.params["steps"] == 200
    assert set(res.info) == {"best_norm", "best_lambda", "final_lambda", "found_at", "already_adversarial"}
