"""ZOO and the black-box wrapper: exact query counts, budgets, no gradients, finite differences,
and success on the trained C&W MNIST net compared with white-box C&W."""
from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from reprolib.attacks.core import AttackInputError, start
from reprolib.attacks.cw import cw_l2
from reprolib.attacks.ops.blackbox import BlackBox
from reprolib.attacks.zeroth_order import (IMAGENET_SCHEDULE, _derivatives, _Problem, _sample_coords, importance_probs,
                                  zoo)
from reprolib.models import Classifier


class RowCounter(nn.Module):
    """Wraps a network and counts the rows (inputs) of every forward call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows = 0
        self.calls: list[int] = []

    def forward(self, x):
        self.rows += len(x)
        self.calls.append(len(x))
        return self.net(x)


def affine_model(shape=(1, 8, 8), k=10, seed=0, dtype=torch.float32, scale=3.0) -> Classifier:
    torch.manual_seed(seed)
    d = int(torch.tensor(shape).prod())
    lin = nn.Linear(d, k)
    nn.init.normal_(lin.weight, std=scale / d ** 0.5)
    net = nn.Sequential(nn.Flatten(), lin).to(dtype)
    return Classifier(RowCounter(net), input_shape=shape, num_classes=k).to(dtype).eval()


def inputs(n, shape=(1, 8, 8), seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (0.2 + 0.6 * torch.rand(n, *shape, generator=g)).to(dtype)


def predicted(model, x):
    """The model's labels for x; the rows are not left on the model's counter."""
    with torch.no_grad():
        pred = model(x).argmax(1)
    counter = model.net
    if isinstance(counter, RowCounter):
        counter.rows -= len(x)
        counter.calls.pop()
    return pred


# ---------------------------------------------------------------- the black-box wrapper

def test_blackbox_gives_no_gradients():
    model = affine_model()
    x = inputs(3).requires_grad_(True)
    bb = BlackBox(model, 3)
    with torch.enable_grad():
        out = bb.predict(x)
    assert not out.requires_grad and out.grad_fn is None
    with pytest.raises(RuntimeError):
        out.sum().backward()
    with pytest.raises(RuntimeError):
        torch.autograd.grad(out.sum(), x)
    assert x.grad is None and all(p.grad is None for p in model.parameters())
    # nothing reachable as an attribute is the model, a module or a parameter
    assert not hasattr(bb, "__dict__")
    for name in BlackBox.__slots__:
        value = getattr(bb, name)
        assert not isinstance(value, nn.Module)
        assert not (torch.is_tensor(value) and value.requires_grad)
    with pytest.raises(TypeError):
        pickle.dumps(bb)
    # log-probabilities by default
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))


def test_blackbox_counts_rows_per_owner_and_refuses_out_of_box():
    model = affine_model()
    bb = BlackBox(model, 3)
    x = inputs(5)
    bb.predict(x, owner=torch.tensor([0, 0, 2, 2, 2]))
    bb.predict(x[:3])
    assert bb.queries.tolist() == [3, 1, 4] and bb.total_queries == 8
    assert model.net.rows == 8
    with pytest.raises(AttackInputError):
        bb.predict(x + 1.0, owner=torch.zeros(5, dtype=torch.long))
    assert bb.total_queries == 8


# ---------------------------------------------------------------- finite differences

def zoo_derivatives(model, x, y, coords, *, const=1.0, targeted=False, confidence=0.0, h=1e-4,
                    use_tanh=False, prob_floor=1e-30):
    """ZOO's estimates of ∂L/∂y_i and ∂²L/∂y_i² at y = 0 (the clean input), for the
    coordinates ``coords`` (N, B) of each input, from one batch of 2B + 1 queries per input,
    through the attack's own objective (``_Problem``) and differences (``_derivatives``).
    Returns ``(grad, hess, queries)``."""
    x, y, _, _ = start(model, x, y)
    bb = BlackBox(model, len(x))
    prob = _Problem(bb, x, y, targeted=targeted, confidence=confidence, use_tanh=use_tanh, prob_floor=prob_floor)
    const_t = torch.as_tensor(const, dtype=x.dtype, device=x.device).expand(len(x))
    coords = coords.to(x.device)
    losses, *_ = prob.query(torch.arange(len(x), device=x.device), torch.zeros_like(x), coords,
                            torch.ones_like(coords, dtype=torch.bool), h, const_t)
    g, hs = _derivatives(losses, h)
    return g, hs, bb.queries


@pytest.mark.parametrize("use_tanh", [False, True])
@pytest.mark.parametrize("targeted", [False, True])
def test_gradient_estimate_equals_true_derivative(use_tanh, targeted):
    """On a smooth (affine-logit, float64) model the symmetric differences with h = 1e-4
    equal the autograd derivatives of the same total loss, coordinate by coordinate."""
    model = affine_model(dtype=torch.float64, seed=3)
    x = inputs(4, dtype=torch.float64)
    pred = predicted(model, x)
    labels = (pred + 1) % 10 if targeted else pred  # hinge active in both cases
    const = 2.5
    coords = torch.stack([torch.randperm(64, generator=torch.Generator().manual_seed(i))[:20] for i in range(4)])
    g, hs, queries = zoo_derivatives(model, x, labels, coords, const=const, targeted=targeted, use_tanh=use_tanh)
    assert queries.tolist() == [41] * 4

    w0 = torch.atanh((2 * x - 1) * 0.999999)
    w = torch.zeros_like(x, requires_grad=True)

    def total(w):
        xa = (torch.tanh(w + w0) + 1) / 2 if use_tanh else x + w
        lp = torch.log_softmax(model(xa), 1)
        real = lp.gather(1, labels[:, None]).squeeze(1)
        other = lp.scatter(1, labels[:, None], float("-inf")).amax(1)
        f = (other - real if targeted else real - other).clamp_min(0)
        return ((xa - x) ** 2).flatten(1).sum(1) + const * f

    (grad,) = torch.autograd.grad(total(w).sum(), w, create_graph=True)
    true_g = grad.flatten(1).gather(1, coords)
    torch.testing.assert_close(g, true_g, rtol=1e-4, atol=1e-9)
    # diagonal second derivatives, coordinate by coordinate
    flat = grad.flatten(1)
    true_h = torch.stack([torch.stack([torch.autograd.grad(flat[i, j], w, retain_graph=True)[0].flatten(1)[i, j]
                                       for j in coords[i].tolist()]) for i in range(4)])
    torch.testing.assert_close(hs, true_h, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- query counts and budgets

def test_query_count_equals_rows_seen_by_the_model_over_search_rounds():
    model = affine_model()
    x = inputs(5)
    y = predicted(model, x)
    res = zoo(model, x, y, binary_search_steps=3, initial_const=0.01, steps=12,
              abort_early_every=4, coords_per_iter=16, step_size=0.05)
    rows = model.net.rows
    recheck = len(x)  # finish()'s re-check is one uncounted forward row per input (x_adv in the box)
    assert rows == int(res.queries.sum()) + recheck
    # per input: 2B + 1 queries per iteration, iterations over all search rounds
    assert res.queries.tolist() == (33 * res.info["iterations"]).tolist()
    assert (res.info["iterations"] > 12).any()  # several search rounds were run
    assert (res.info["iterations"] < 36).any()  # and early abort stopped some inputs
    assert torch.equal(res.forwards, res.queries) and int(res.backwards.sum()) == 0
    # every query batch of an iteration went through the model as one call
    assert all(c % 33 == 0 for c in model.net.calls[:-1])


def test_abort_early_never_ends_a_falling_loss_at_the_first_check():
    """The first abort check compares with +∞ (the reference's 1e6 would end the round at
    iteration 0 here: with c = 1e8 the loss starts far above 1e6)."""
    model = affine_model()
    x = inputs(3)
    res = zoo(model, x, predicted(model, x), binary_search_steps=1, initial_const=1e8, steps=10,
              abort_early_every=5, coords_per_iter=16)
    assert bool((res.info["iterations"] > 1).all())


def _expected_budget_use(budget, b=128):
    """Queries ZOO spends under ``budget`` with ``b`` coordinates per full iteration."""
    used = 0
    while True:
        k = min(b, (budget - used - 1) // 2)
        if k < 1:
            return used
        used += 2 * k + 1


def test_max_queries_is_respected_exactly():
    model = affine_model(shape=(1, 16, 16))
    x = inputs(4, shape=(1, 16, 16))
    y = predicted(model, x)
    budgets = torch.tensor([300, 1000, 1001, 2570])
    res = zoo(model, x, y, binary_search_steps=4, steps=6, abort_early=False, max_queries=budgets)
    expected = [_expected_budget_use(int(b)) for b in budgets]
    assert expected == [300, 1000, 1000, 2570]
    assert res.queries.tolist() == expected
    assert model.net.rows == sum(expected) + len(x)
    assert res.info["exhausted"].all()
    # a scalar budget applies to every input
    res = zoo(model, x[:2], y[:2], binary_search_steps=2, steps=50, abort_early=False, max_queries=701)
    assert res.queries.tolist() == [701, 701]  # 257 + 257 + 187


def test_hierarchical_schedule_grows_the_space_at_the_given_iterations():
    """Query counts reveal the attack-space size per iteration: 2·min(B, m) + 1."""
    model = affine_model(shape=(1, 16, 16))
    x = inputs(2, shape=(1, 16, 16))
    y = predicted(model, x)
    res = zoo(model, x, y, binary_search_steps=1, steps=12, abort_early=False,
              attack_space=((0, 2), (5, 4), (10, 16)), importance_sampling=True, use_tanh=True)
    assert res.queries.tolist() == [5 * 9 + 5 * 33 + 2 * 257] * 2
    assert IMAGENET_SCHEDULE == ((0, 32), (2000, 64), (10000, 128))


def test_record_keeps_the_current_point_and_the_modifier_before_each_resize():
    """The recorded trajectory is the row-0 objective: L = ‖δ‖2² + c·f per iteration; the first
    iterate with c·f = 0 is where the first success was seen; the modifiers before each resize
    give the importance probabilities the attack sampled by."""
    model = affine_model(shape=(1, 16, 16))
    x = inputs(3, shape=(1, 16, 16))
    y = predicted(model, x)
    kw = dict(binary_search_steps=2, steps=12, abort_early=False, initial_const=5.0, step_size=0.05,
              attack_space=((0, 4), (6, 8)), importance_sampling=True)
    res = zoo(model, x, y, record=True, **kw)
    plain = zoo(model, x, y, **kw)
    assert torch.equal(res.x_adv, plain.x_adv) and torch.equal(res.queries, plain.queries)  # recording changes nothing
    loss, l2, attack_loss = (res.info[k] for k in ("loss_history", "l2_history", "attack_loss_history"))
    assert loss.shape == l2.shape == attack_loss.shape == (2, 12, 3)
    assert not torch.isnan(loss).any()  # no abort, no budget: every iteration ran
    assert torch.allclose(loss, l2 ** 2 + attack_loss, rtol=1e-5, atol=1e-6)
    assert (attack_loss >= 0).all() and torch.allclose(l2[:, 0], torch.zeros(2, 3))  # each round restarts at x0
    # the first iterate with c·f = 0 is where the first success was seen (2·16 + 1, then 2·64 + 1
    # queries per iteration)
    per_iteration = torch.tensor([33] * 6 + [129] * 6)
    for i in range(3):
        zero = (attack_loss[:, :, i] == 0).flatten().nonzero().flatten()
        if res.info["first_success_queries"][i] < 0:
            assert len(zero) == 0
        else:
            first = int(zero[0])
            assert int(res.info["first_success_queries"][i]) == int(per_iteration.repeat(2)[:first + 1].sum())
    (mods,) = res.info["modifiers_before_resize"]
    assert mods.shape == (2, 3, 1, 4, 4) and not torch.isnan(mods).any() and mods.abs().sum() > 0
    assert set(res.info) == {"const", "iterations", "first_success_queries", "l2_best", "exhausted", "loss_history",
                             "l2_history", "attack_loss_history", "modifiers_before_resize"}


def test_importance_probabilities_follow_the_maxpool_rule():
    prev = torch.zeros(1, 2, 32, 32)
    prev[0, 0, 5, 7] = -2.0   # region (1, 1) of channel 0 (4×4 regions)
    prev[0, 1, 30, 0] = 1.0   # region (7, 0) of channel 1
    p = importance_probs(prev, (64, 64)).view(2, 64, 64)
    assert torch.isclose(p.sum(), torch.tensor(1.0))
    # each region becomes an 8×8 block at 64×64; values ∝ the region max of |prev|
    assert torch.allclose(p[0, 8:16, 8:16], torch.full((8, 8), 2.0 / (64 * 2 + 64 * 1)))
    assert torch.allclose(p[1, 56:64, 0:8], torch.full((8, 8), 1.0 / (64 * 3)))
    assert int((p > 0).sum()) == 128
    # zero-probability coordinates are never drawn
    coords = _sample_coords(p.view(1, -1), 1, p.numel(), 128, torch.Generator().manual_seed(0), "cpu", torch.float32)
    assert bool((p.view(-1)[coords] > 0).all()) and len(set(coords.flatten().tolist())) == 128
    assert torch.allclose(importance_probs(torch.zeros(1, 1, 4, 4), (8, 8)), torch.full((1, 64), 1 / 64))


# ---------------------------------------------------------------- results

@pytest.mark.parametrize("kwargs", [
    dict(solver="adam"),
    dict(solver="newton"),
    dict(solver="adam", use_tanh=True, attack_space=((0, 4), (10, 8)), importance_sampling=True,
         importance_refresh="iteration", reset_adam=True),
    dict(solver="adam", targeted=True),
])
def test_results_are_in_bounds_and_success_is_a_fresh_forward(kwargs):
    model = affine_model(shape=(1, 8, 8), scale=6.0)
    x = inputs(6)
    y = predicted(model, x)
    if kwargs.get("targeted"):
        y = (y + 3) % 10
    res = zoo(model, x, y, binary_search_steps=2, initial_const=5.0, steps=40,
              step_size=0.05, coords_per_iter=32, **kwargs)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    fresh = pred == y if kwargs.get("targeted") else pred != y
    assert torch.equal(res.success, fresh)
    assert res.success.any()
    # failures return x itself; successes are at the recorded distance
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    torch.testing.assert_close(res.norms["l2"][res.success], res.info["l2_best"][res.success])


@pytest.mark.parametrize("setting, value", [
    ("solver", "sgd"), ("attack_space", ((5, 4),)), ("attack_space", 9), ("attack_space", "big"),
    ("steps", 0), ("binary_search_steps", 0), ("step_size", 0.0), ("h", -1e-4), ("coords_per_iter", 0),
    ("abort_early_every", 0), ("confidence", -1.0), ("initial_const", 0.0), ("initial_const", torch.ones(3)),
    ("importance_refresh", "never"), ("max_queries", -1), ("max_queries", torch.tensor([10, -1])),
    ("prob_floor", 1.0), ("seed", -1),
])
def test_bad_settings_are_refused_before_any_query(setting, value):
    model = affine_model()
    x = inputs(2)
    with pytest.raises(AttackInputError, match=setting):
        zoo(model, x, torch.tensor([0, 1]), **{setting: value})
    assert model.net.rows == 0
    with pytest.raises(AttackInputError):
        zoo(model, x + 2, torch.tensor([0, 1]))


def test_result_records_the_settings_and_no_copy_in_info():
    model = affine_model()
    x = inputs(2)
    res = zoo(model, x, predicted(model, x), binary_search_steps=1, steps=3, coords_per_iter=4)
    assert res.attack == "zoo" and res.params["steps"] == 3 and res.params["seed"] == 0
    assert set(res.info) == {"const", "iterations", "first_success_queries", "l2_best", "exhausted"}


# ---------------------------------------------------------------- the trained C&W MNIST net

def _whitebox_cw(model, x, y, *, const, steps, step_size):
    """White-box C&W with the same objective (logit loss, fixed c)."""
    return cw_l2(model, x, y, binary_search_steps=1, initial_const=const, steps=steps, step_size=step_size,
                 abort_early=False).success


@pytest.mark.slow
def test_zoo_matches_whitebox_cw_success_on_cw_mnist(cw_mnist, mnist_test):
    from reprolib import data

    model = cw_mnist
    test = data.first_correct(model, mnist_test, 8)
    # A budget-sized ZOO-ADAM (the test must run in seconds on 2 busy cores): c fixed at 10 (one
    # search step), a 7×7 attack space bilinearly up-sampled to 28×28 (49 coordinates, so
    # 2·49 + 1 = 99 queries per iteration), at most 1,200 queries per image (12 iterations).
    zres = zoo(model, test.x, test.y, binary_search_steps=1, initial_const=10.0, steps=100,
               step_size=0.1, attack_space=7, abort_early=False, max_queries=1200)
    wb = _whitebox_cw(model, test.x, test.y, const=10.0, steps=50, step_size=0.1)
    assert zres.queries.tolist() == [_expected_budget_use(1200, b=49)] * 8 == [1199] * 8
    assert zres.success_rate >= wb.float().mean().item() - 0.125, (zres.success.tolist(), wb.tolist())


# ---------------------------------------------------------------- the chapter (document 002, part 1)

def test_the_chapter_resolves_every_profile_and_refuses_zoo_sets_outside_the_whitebox_sets():
    """ZOO attacks the first images of the white-box sets (so that L2 compares image by image):
    a ZOO count above its white-box count, or a schedule that switches after the run, is refused
    before any work."""
    from reprolib.book import runner
    from reprolib.book.params import ParameterError

    for profile in ("smoke", "cpu", "paper"):
        params = runner.validate("zoo", profile)
        assert params.n_zoo <= params.n_whitebox and params.n_zoo_cifar <= params.n_cifar
    paper = runner.validate("zoo", "paper")
    assert (paper.zoo_search_steps, paper.zoo_initial_const, paper.zoo_steps, paper.cifar_zoo_steps) == (9, 0.01, 3000, 1000)
    assert (paper.n_whitebox, paper.n_whitebox_targeted, paper.targets) == (200, 100, "all")
    with pytest.raises(ParameterError, match="n_zoo .* cannot exceed n_whitebox"):
        runner.validate("zoo", "smoke", {"n_zoo": 3})
    with pytest.raises(ParameterError, match="must switch before table3_steps"):
        runner.validate("zoo", "smoke", {"table3_steps": 8})
