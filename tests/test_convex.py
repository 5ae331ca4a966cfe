"""Document 001's GN family: the closed forms of Propositions 1–2 (eq. 6–8), Algorithms 1, 1-n
and 2, the random baseline, and the Section III regression attacks; exact pass counts."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _gn_helpers import DIM, SHAPE, CountingNet, affine, close, exact_distances, inputs, mlp
from reprolib.attacks import AttackInputError, Counter
from reprolib.attacks.convex import alg1, alg2, random_sign
from reprolib.attacks.core import recheck
from reprolib.attacks.gn_iteration import min_norm_iteration
from reprolib.attacks.ops.jacobian import jacobian, other_classes
from reprolib.attacks.ops.linearized import gnii_step, gnii_value, min_norm_step
from reprolib.attacks.ops.norms import dual_exponent, dual_norm, lp_norm
from reprolib.attacks.regression import l1_attack, l2_attack

PS = [1.0, 2.0, math.inf, 3.0]


def _grads(n=16, d=DIM, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64)


def _random_in_ball(n, d, p, radius, gen):
    """Random points of the lp ball: random directions scaled to random radii ≤ ``radius``."""
    v = torch.randn(n, d, generator=gen, dtype=torch.float64)
    v = v * torch.rand(n, d, generator=gen, dtype=torch.float64).pow(3)  # also sparse-ish ones
    u = torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return v / lp_norm(v, p)[:, None] * radius * u


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("p", PS)
def test_gnii_closed_form_norm_value_and_optimality(p):
    g = _grads()
    eps, L = 0.3, torch.linspace(-1, 2, len(g), dtype=torch.float64)
    eta = gnii_step(g, eps, p)
    close(lp_norm(eta, p), torch.full((len(g),), eps, dtype=torch.float64))
    value = L + (eta * g).sum(1)
    close(value, L - eps * dual_norm(g, p))
    close(value, gnii_value(L, g, eps, p))
    # Proposition 2: no feasible η does better (random feasible points, 2000 per input)
    gen = torch.Generator().manual_seed(3)
    for i in range(4):
        cand = _random_in_ball(2000, g.shape[1], p, eps, gen)
        assert bool(((cand @ g[i]) >= (eta[i] @ g[i]) - 1e-12).all())


def test_gnii_special_cases_and_shapes():
    g = _grads(4).reshape(4, *SHAPE)
    close(gnii_step(g, 0.1, math.inf), -0.1 * g.sign())
    close(gnii_step(g, 0.1, 2), -0.1 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
    e1 = gnii_step(g, 0.1, 1).flatten(1)
    assert ((e1 != 0).sum(1) == 1).all()
    i = g.flatten(1).abs().argmax(1)
    close(e1.gather(1, i[:, None]).squeeze(1), -0.1 * g.flatten(1).gather(1, i[:, None]).squeeze(1).sign())
    # per-input radii, and a zero gradient gives a zero step (no NaN)
    eps = torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64)
    close(lp_norm(gnii_step(g, eps, 2), 2), eps)
    for p in PS:
        assert torch.equal(gnii_step(torch.zeros(2, 5), 0.1, p), torch.zeros(2, 5))
    assert dual_exponent(1) == math.inf and dual_exponent(math.inf) == 1 and dual_exponent(2) == 2
    with pytest.raises(AttackInputError, match="norm"):
        gnii_step(g, 0.1, 0.5)
    close(gnii_step(g, 0.1, "linf"), gnii_step(g, 0.1, math.inf))


@pytest.mark.parametrize("p", PS)
def test_proposition_1_no_smaller_eta_flips_the_linearised_margin(p):
    g = _grads(8, seed=5)
    L = torch.rand(8, dtype=torch.float64) + 0.1
    bound = L / dual_norm(g, p)
    gen = torch.Generator().manual_seed(7)
    cand = _random_in_ball(8 * 3000, g.shape[1], p, 1.0, gen).view(8, 3000, -1) * bound[:, None, None]
    # plus the worst direction of all, just inside the bound
    worst = gnii_step(g, bound * (1 - 1e-9), p)
    cand = torch.cat([cand, worst[:, None]], 1)
    assert bool((L[:, None] + (cand * g[:, None]).sum(2) > 0).all())
    # and the minimum-norm step (eq. 8) reaches the bound exactly, landing on the boundary
    eta = min_norm_step(L, g, p)
    close(lp_norm(eta, p), bound)
    close(L + (eta * g).sum(1), torch.zeros_like(L), atol=1e-12, rtol=0)
    # L ≤ 0 needs no step; L > 0 with g = 0 is infeasible (NaN, never a fake solution)
    assert torch.equal(min_norm_step(-L, g, p), torch.zeros_like(g))
    assert torch.isnan(min_norm_step(L[:1], torch.zeros(1, DIM, dtype=torch.float64), p)).all()


@pytest.mark.parametrize("p", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("K", [2, 10])
def test_min_norm_step_is_the_exact_distance_on_affine_models(p, K):
    model, W, b = affine(K, seed=K)
    x = inputs(12)
    with torch.no_grad():
        f = model(x)
    k = f.argmax(1)
    d, j = exact_distances(W, b, x, k, p)
    L = f.gather(1, k[:, None]).squeeze(1) - f.gather(1, j[:, None]).squeeze(1)
    g = (W[k] - W[j]).reshape(len(x), *SHAPE)
    eta = min_norm_step(L, g, p)
    close(lp_norm(eta, p), d, rtol=1e-12, atol=0)
    with torch.no_grad():
        f2 = model(x + eta)
    margin = f2.gather(1, k[:, None]).squeeze(1) - f2.gather(1, j[:, None]).squeeze(1)
    close(margin, torch.zeros_like(margin), atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- Algorithm 1
@pytest.mark.parametrize("p", [math.inf, 2.0, 1.0])
def test_alg1_class_rule_is_the_exact_gnii_optimum_for_min_of_affine(p):
    model, W, b = affine(10, seed=11)
    x = inputs(40, seed=2)
    with torch.no_grad():
        f = model(x)
    k = f.argmax(1)
    eps = {math.inf: 0.05, 2.0: 0.3, 1.0: 3.0}[p]
    # brute force over the pieces of the min: min_j [(f_k − f_j) − ε‖w_k − w_j‖_q]
    G = W[k][:, None, :] - W[None, :, :]
    q = dual_exponent(p)
    pieces = (f.gather(1, k[:, None]) - f) - eps * torch.linalg.vector_norm(G, ord=q, dim=2)
    best = pieces.scatter(1, k[:, None], math.inf).min(1).values

    def margin(res):
        with torch.no_grad():
            out = model(res.x_raw)
        return (out.gather(1, k[:, None]) - out).scatter(1, k[:, None], math.inf).min(1).values

    res = alg1(model, x, k, eps=eps, norm=p, check_raw=True)
    close(margin(res), best, rtol=0, atol=1e-10)
    naive = alg1(model, x, k, eps=eps, norm=p, class_rule="runner_up")
    assert bool((margin(naive) >= best - 1e-10).all())
    assert bool((margin(naive) > best + 1e-6).any()), "the naive rule should be worse on some inputs"
    assert torch.equal(res.success_raw, margin(res) < 0)


def test_alg1_n_budget_no_early_stop_counts_and_clipping():
    model = mlp(5, counting=True)
    net: CountingNet = model.net
    x = inputs(20, seed=4, lo=0.0, hi=1.0)
    with torch.no_grad():
        y = model(x).argmax(1)
    eps, n = 0.08, 5
    net.reset()
    res = alg1(model, x, y, eps=eps, steps=n, check_raw=True)
    assert float((res.x_raw - x).abs().amax()) <= eps + 1e-12
    assert torch.equal(res.forwards, torch.full((20,), n))
    assert torch.equal(res.backwards, torch.full((20,), n * 4))
    assert (net.forward_rows, net.backward_calls, net.backward_rows) == (20 * n, n * 4, 20 * n * 4)
    assert res.info["chosen"].shape == (20, n) and not (res.info["chosen"] == y[:, None]).any()
    # no clipping by default: raw leaves the box, x_adv does not; both successes re-checked
    assert float(res.x_raw.min()) < 0 or float(res.x_raw.max()) > 1
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert torch.equal(res.success, recheck(model, res.x_adv, y, False))
    assert torch.equal(res.success_raw, recheck(model, res.x_raw, y, False))
    close(res.norms_raw["linf"], (res.x_raw - x).flatten(1).abs().amax(1))
    clipped = alg1(model, x, y, eps=eps, steps=n, clip=True)
    assert torch.equal(clipped.x_raw, clipped.x_adv)
    assert float((clipped.x_raw - x).abs().amax()) <= eps + 1e-12


def test_alg1_n_equals_one_step_alg1_on_affine_when_n_is_1_and_iterates_otherwise():
    model, W, b = affine(6, seed=3)
    x = inputs(10)
    with torch.no_grad():
        y = model(x).argmax(1)
    one = alg1(model, x, y, eps=0.04)
    g = (W[y] - W[one.info["chosen"][:, 0]]).reshape(len(x), *SHAPE)
    close(one.x_raw - x, -0.04 * g.sign())
    ten = alg1(model, x, y, eps=0.04, steps=10)
    assert float((ten.x_raw - x).abs().amax()) <= 0.04 + 1e-12
    # on an affine model each step solves the same problem: Alg1-n is at least as strong
    with torch.no_grad():
        def m(z):
            out = model(z)
            return (out.gather(1, y[:, None]) - out).scatter(1, y[:, None], math.inf).min(1).values
        assert bool((m(ten.x_raw) <= m(one.x_raw) + 1e-10).all())


def test_alg1_targeted_and_softmax_proxy():
    model = mlp(5)
    x = inputs(8)
    with torch.no_grad():
        pred = model(x).argmax(1)
    t = (pred + 1) % 5
    res = alg1(model, x, t, eps=0.5, targeted=True)
    assert res.targeted and torch.equal(res.success, recheck(model, res.x_adv, t, True))
    assert torch.equal(res.forwards, torch.full((8,), 2)) and torch.equal(res.backwards, torch.ones(8, dtype=torch.long))
    soft = alg1(model, x, pred, eps=0.05, proxy="softmax")
    assert float((soft.x_raw - x).abs().amax()) <= 0.05 + 1e-12


# ----------------------------------------------------------------------------- Algorithm 2, random
def test_alg2_is_a_sign_step_against_the_label_logit():
    model, W, b = affine(4, seed=8, counting=True)
    x = inputs(6)
    with torch.no_grad():
        y = model(x).argmax(1)
    model.net.reset()
    res = alg2(model, x, y, eps=0.03)
    close(res.x_raw - x, -0.03 * W[y].reshape(6, *SHAPE).sign())
    assert torch.equal(res.forwards, torch.ones(6, dtype=torch.long))
    assert torch.equal(res.backwards, torch.ones(6, dtype=torch.long))
    assert (model.net.forward_rows, model.net.backward_calls) == (6, 1)
    assert torch.equal(res.success, recheck(model, res.x_adv, y, False))


def test_random_sign_is_seeded_pm_eps_and_free():
    model = mlp(5)
    x = inputs(30)
    y = torch.zeros(30, dtype=torch.long)
    a = random_sign(model, x, y, eps=0.1, seed=3, check_raw=True)
    b = random_sign(model, x, y, eps=0.1, seed=3)
    c = random_sign(model, x, y, eps=0.1, seed=4)
    assert torch.equal(a.x_raw, b.x_raw) and not torch.equal(a.x_raw, c.x_raw)
    close((a.x_raw - x).abs(), torch.full_like(x, 0.1))
    frac = float(((a.x_raw - x) > 0).double().mean())
    assert 0.45 < frac < 0.55
    assert int(a.forwards.sum()) == int(a.backwards.sum()) == 0
    assert torch.equal(a.success_raw, recheck(model, a.x_raw, y, False))
    with pytest.raises(AttackInputError):
        random_sign(model, x, y, eps=-1.0)


def test_bad_settings_are_refused_before_any_pass():
    model = mlp(5, counting=True)
    x = inputs(4)
    y = torch.zeros(4, dtype=torch.long)
    model.net.reset()
    for fn, kw, match in [
        (alg1, dict(eps=-0.1), "eps"), (alg1, dict(eps=math.inf), "eps"), (alg1, dict(eps=0.1, steps=0), "steps"),
        (alg1, dict(eps=0.1, norm=0.5), "norm"), (alg1, dict(eps=0.1, class_rule="best"), "class_rule"),
        (alg1, dict(eps=0.1, proxy="probs"), "proxy"), (alg1, dict(eps=0.1, targeted=True, proxy="probs"), "proxy"),
        (alg2, dict(eps=0.1, targeted=True), "untargeted"), (alg2, dict(eps=0.1, norm="l0"), "norm"),
        (alg2, dict(eps=0.1, proxy="probs"), "proxy"),
        (random_sign, dict(eps=0.1, seed=-1), "seed"), (random_sign, dict(eps=0.1, targeted=True), "untargeted"),
        (min_norm_iteration, dict(steps=-1), "steps"), (min_norm_iteration, dict(overshoot=-1.0), "overshoot"),
        (min_norm_iteration, dict(norm="l0"), "norm"), (min_norm_iteration, dict(targeted=True), "untargeted"),
    ]:
        with pytest.raises(AttackInputError, match=match):
            fn(model, x, y, **kw)
    assert (model.net.forward_rows, model.net.backward_calls) == (0, 0)
    net = _regressor("linear")
    for fn, kw, match in [(l2_attack, dict(eps=0.1, steps=0), "steps"), (l2_attack, dict(eps=0.1, tol=-1.0), "tol"),
                          (l2_attack, dict(eps=0.1, seed=-1), "seed"), (l2_attack, dict(eps=-0.1), "eps"),
                          (l1_attack, dict(eps=math.nan), "eps")]:
        with pytest.raises(AttackInputError, match=match):
            fn(net, x, **kw)


def test_jacobian_helper_counts_and_matches_autograd():
    model = mlp(5, counting=True)
    x = inputs(3)
    counter = Counter(model, 3, x.device)
    out, J = jacobian(counter, x)
    assert J.shape == (3, 5) + SHAPE
    for i in range(3):
        ref = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], x[i])
        close(J[i], ref)
    assert torch.equal(counter.forwards, torch.ones(3, dtype=torch.long))
    assert torch.equal(counter.backwards, torch.full((3,), 5))
    assert other_classes(torch.tensor([0, 2]), 3).tolist() == [[1, 2], [0, 1]]


# ----------------------------------------------------------------------------- Section III
def _regressor(kind: str, d_in: int = DIM, d_out: int = 7, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "linear":
        net = nn.Sequential(nn.Flatten(), nn.Linear(d_in, d_out))
    else:
        net = nn.Sequential(nn.Flatten(), nn.Linear(d_in, 20), nn.Tanh(), nn.Linear(20, d_out))
    return net.double().eval()


def _full_jacobians(net, x):
    return torch.stack([torch.autograd.functional.jacobian(lambda z: net(z[None])[0], xi).reshape(-1, xi.numel())
                        for xi in x])


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_regression_l2_power_iteration_matches_svd(kind):
    net = _regressor(kind)
    counting = CountingNet(net)
    x = inputs(5)
    steps = 100
    res = l2_attack(counting, x, eps=0.01, steps=steps)
    J = _full_jacobians(net, x)
    sv = torch.linalg.svdvals(J)[:, 0]
    close(res.operator_norm, sv, rtol=1e-6, atol=0)
    close(res.gain_first_order, 0.01 * sv, rtol=1e-6, atol=0)
    close(res.eta.flatten(1).norm(dim=1), torch.full((5,), 0.01, dtype=torch.float64))
    # the direction is the top right-singular vector (up to sign)
    V = torch.linalg.svd(J).Vh[:, 0]
    cos = (res.info["v"].flatten(1) * V).sum(1).abs()
    assert bool((cos > 1 - 1e-6).all())
    assert torch.equal(res.forwards, torch.full((5,), steps + 2))
    assert torch.equal(res.backwards, torch.full((5,), steps + 1))
    assert counting.forward_rows == 5  # one real forward pass: the rest run on its graph
    # first order ≈ actual for small ε; beats random directions of the same norm
    close(res.gain_raw, res.gain_first_order, rtol=2e-2, atol=0)
    gen = torch.Generator().manual_seed(0)
    rnd = torch.randn(200, *SHAPE, generator=gen, dtype=torch.float64)
    rnd = 0.01 * rnd / rnd.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    rnd_gain = (J[0] @ rnd.flatten(1).T).norm(dim=0)
    assert float(rnd_gain.max()) <= float(res.gain_first_order[0]) + 1e-12


def test_regression_l1_single_pixel_is_the_largest_jacobian_column():
    net = _regressor("mlp", d_out=4)
    counting = CountingNet(net)
    x = inputs(6)
    res = l1_attack(counting, x, eps=0.05)
    J = _full_jacobians(net, x)
    cols = J.norm(dim=1)
    assert torch.equal(res.info["pixel"], cols.argmax(1))
    close(res.operator_norm, cols.max(1).values)
    assert torch.equal((res.eta != 0).flatten(1).sum(1), torch.ones(6, dtype=torch.long))
    close(res.eta.abs().flatten(1).sum(1), torch.full((6,), 0.05, dtype=torch.float64))
    assert torch.equal(res.forwards, torch.ones(6, dtype=torch.long))
    assert torch.equal(res.backwards, torch.full((6,), 4))
    assert (counting.forward_rows, counting.backward_calls) == (6, 4)
    # ‖J e_i‖ over all single pixels: the chosen one is the maximum (brute force)
    assert float(res.gain_first_order.min()) > 0
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    with pytest.raises(AttackInputError):
        l1_attack(net, x + 1.0, eps=0.05)


def test_min_norm_iteration_steps_onto_the_linear_boundary():
    # On an affine two-class model the first step of (8) lands on the boundary, at distance
    # L/‖w_k − w_l‖_q; the 2 % overshoot crosses it, so one step fools, with norm 1.02·L/‖·‖_q.
    model, W, b = affine(2, seed=3, counting=True)
    x = inputs(5)
    y = model(x).argmax(1)
    for p in (math.inf, 2.0, 1.0):
        model.net.reset() if hasattr(model.net, "reset") else None
        r = min_norm_iteration(model, x, y, norm=p, clip=False, check_raw=True)
        dist, _ = exact_distances(W, b, x, y, p)
        key = {math.inf: "linf", 2.0: "l2", 1.0: "l1"}[p]
        assert r.success_raw.all() and (r.info["iterations"] == 1).all()
        close(lp_norm(r.x_raw - r.x, p), 1.02 * dist, rtol=1e-9)
        assert r.forwards.tolist() == [2] * 5 and r.backwards.tolist() == [1] * 5


def test_min_norm_iteration_stays_in_the_box_and_stops_at_the_cap():
    model = mlp(5, seed=2)
    x = inputs(8, lo=0.0, hi=1.0)
    y = model(x).argmax(1)
    r = min_norm_iteration(model, x, y, norm="linf", steps=50)
    assert r.success.all() and (r.x_adv == r.x_raw).all()
    assert float(r.x_raw.min()) >= 0 and float(r.x_raw.max()) <= 1
    it = r.info["iterations"]
    # in an iteration where inputs stop: a forward more for each that goes on (its graph rebuilt)
    # when more stop than go on, else a backward more for each that stops
    assert ((r.forwards >= it + 1) & (r.forwards <= 2 * it + 1)).all()
    assert ((r.backwards >= it) & (r.backwards <= it + 1)).all()
    r0 = min_norm_iteration(model, x, y, steps=0)
    assert not r0.success.any() and (r0.x_raw == x).all() and (r0.backwards == 0).all()
