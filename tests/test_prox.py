"""Proximal operators, EAD's shrinkage-thresholding and projections against their definitions
(brute force, scipy)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import optimize

from reprolib.attacks.ops import prox as P
from reprolib.attacks.ops.norms import per_input

DT = torch.float64


def _rand(n, d, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=DT) * scale


def _objective(f, u, v, t):
    return f(u) + np.sum((u - v) ** 2) / (2 * t)


# ---------------------------------------------------------------- l1


def test_prox_l1_matches_per_coordinate_minimisation():
    v = _rand(4, 7, 0)
    t = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=DT)
    out = P.prox_l1(v, t)
    for i in range(len(v)):
        for j in range(v.shape[1]):
            vi, ti = float(v[i, j]), float(t[i])
            res = optimize.minimize_scalar(lambda u: abs(u) + (u - vi) ** 2 / (2 * ti),
                                           bounds=(-abs(vi) - 1, abs(vi) + 1), method="bounded",
                                           options={"xatol": 1e-12})
            assert float(out[i, j]) == pytest.approx(res.x, abs=1e-6)


def test_soft_threshold_formula_and_moreau_with_linf_ball():
    v = _rand(3, 9, 1)
    t = 0.4
    out = P.prox_l1(v, t)
    assert torch.equal(out, torch.sign(v) * (v.abs() - t).clamp_min(0))
    # Moreau: prox_{t||.||_1}(v) + t * Pi_{l_inf ball}(v / t) = v
    assert torch.allclose(out + t * (v / t).clamp(-1, 1), v, atol=1e-12)


# ---------------------------------------------------------------- l2


def _brute_force(f, v, t):
    """Minimise f(u) + ||u - v||^2 / (2t) from several starts with Nelder-Mead."""
    best = None
    for start in (v, np.zeros_like(v), 0.5 * v):
        res = optimize.minimize(lambda u: _objective(f, u, v, t), start, method="Nelder-Mead",
                                options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
        if best is None or res.fun < best.fun:
            best = res
    return best


def test_prox_l2_matches_brute_force():
    v = _rand(6, 3, 2)
    t = torch.tensor([0.05, 0.3, 0.8, 1.5, 3.0, 10.0], dtype=DT)  # the last ones zero the vector
    out = P.prox_l2(v, t)
    for i in range(len(v)):
        vi, ti = v[i].numpy(), float(t[i])
        res = _brute_force(np.linalg.norm, vi, ti)
        ours = _objective(np.linalg.norm, out[i].numpy(), vi, ti)
        assert ours <= res.fun + 1e-9
        assert np.allclose(out[i].numpy(), res.x, atol=1e-4)
    assert torch.equal(P.prox_l2(v[-1:], 10.0), torch.zeros_like(v[-1:]))


# ---------------------------------------------------------------- l_inf and the l1-ball projection


def _linf_prox_reference(v, t):
    """prox of t||.||_inf: u = clip(v, -s, s) for the s minimising s + ||clip(v,-s,s) - v||^2/(2t)."""
    res = optimize.minimize_scalar(
        lambda s: s + np.sum((np.clip(v, -s, s) - v) ** 2) / (2 * t),
        bounds=(0, np.abs(v).max()), method="bounded", options={"xatol": 1e-12})
    s = res.x
    return np.clip(v, -s, s)


def _project_l1_reference(v, r):
    """Euclidean projection on the l1 ball by SLSQP on the split u = p - q, p, q >= 0."""
    d = len(v)
    res = optimize.minimize(
        lambda z: np.sum((z[:d] - z[d:] - v) ** 2), np.zeros(2 * d),
        jac=lambda z: np.concatenate([2 * (z[:d] - z[d:] - v), -2 * (z[:d] - z[d:] - v)]),
        bounds=[(0, None)] * (2 * d),
        constraints=[{"type": "ineq", "fun": lambda z: r - z.sum(), "jac": lambda z: -np.ones(2 * d)}],
        method="SLSQP", options={"ftol": 1e-14, "maxiter": 1000})
    return res.x[:d] - res.x[d:]


def _linf_prox_slsqp(v, t):
    """prox of t||.||_inf in epigraph form: min s + ||u - v||^2/(2t) s.t. -s <= u_i <= s."""
    d = len(v)
    A = np.vstack([np.hstack([-np.eye(d), np.ones((d, 1))]), np.hstack([np.eye(d), np.ones((d, 1))])])
    res = optimize.minimize(
        lambda z: z[-1] + np.sum((z[:d] - v) ** 2) / (2 * t), np.append(v, np.abs(v).max()),
        jac=lambda z: np.append((z[:d] - v) / t, 1.0),
        constraints=[{"type": "ineq", "fun": lambda z: A @ z, "jac": lambda z: A}],
        method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
    return res.x[:d]


def test_prox_linf_matches_numerical_minimisation():
    v = _rand(5, 6, 3)
    t = torch.tensor([0.01, 0.2, 0.7, 2.0, 100.0], dtype=DT)
    out = P.prox_linf(v, t)
    for i in range(len(v)):
        vi, ti = v[i].numpy(), float(t[i])
        assert np.allclose(out[i].numpy(), _linf_prox_reference(vi, ti), atol=1e-6)
        assert np.allclose(out[i].numpy(), _linf_prox_slsqp(vi, ti), atol=1e-5)


def test_prox_linf_is_moreau_of_l1_ball_projection():
    v = _rand(4, 8, 4)
    t = torch.tensor([0.05, 0.5, 1.0, 5.0], dtype=DT)
    out = P.prox_linf(v, t)
    for i in range(len(v)):
        vi, ti = v[i].numpy(), float(t[i])
        proj = _project_l1_reference(vi / ti, 1.0)  # independent of the sort-based projection
        assert np.allclose(out[i].numpy(), vi - ti * proj, atol=1e-5)
    # t = 0 is the identity; a huge t gives 0
    assert torch.equal(P.prox_linf(v, 0.0), v)
    assert torch.allclose(P.prox_linf(v, 1e6), torch.zeros_like(v), atol=1e-9)


def test_project_l1_ball_known_examples():
    v = torch.tensor([[3.0, 1.0, 0.0], [0.5, 0.5, 0.5], [2.0, -1.5, 0.1], [0.2, -0.3, 0.1]], dtype=DT)
    want = torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.75, -0.25, 0.0], [0.2, -0.3, 0.1]],
                        dtype=DT)
    assert torch.allclose(P.project_l1_ball(v, 1.0), want, atol=1e-12)
    # a row inside the ball keeps its signs (the reference code returned |v| there)
    assert torch.equal(P.project_l1_ball(v[3:], 1.0), v[3:])
    # radius per input
    assert torch.allclose(P.project_l1_ball(torch.tensor([[3.0, 1.0], [3.0, 1.0]], dtype=DT),
                                            torch.tensor([2.0, 4.0], dtype=DT)),
                          torch.tensor([[2.0, 0.0], [3.0, 1.0]], dtype=DT))


@pytest.mark.parametrize("radius", [0.3, 1.0, 4.0])
def test_project_l1_ball_lands_on_ball_is_idempotent_and_matches_qp(radius):
    v = _rand(6, 5, 5, scale=2.0)
    p = P.project_l1_ball(v, radius)
    norms = p.abs().sum(1)
    outside = v.abs().sum(1) > radius
    assert torch.allclose(norms[outside], torch.full_like(norms[outside], radius), atol=1e-10)
    assert torch.equal(p[~outside], v[~outside])
    assert torch.allclose(P.project_l1_ball(p, radius), p, atol=1e-12)
    for i in range(len(v)):
        assert np.allclose(p[i].numpy(), _project_l1_reference(v[i].numpy(), radius), atol=1e-5)


# ---------------------------------------------------------------- l0


def _l0_brute_force(v, t):
    """Exact prox of t||.||_0 by enumerating the support: keep S, zero the rest."""
    best, arg = np.inf, None
    for k in range(len(v) + 1):
        for S in itertools.combinations(range(len(v)), k):
            u = np.zeros_like(v)
            u[list(S)] = v[list(S)]
            val = k + np.sum((u - v) ** 2) / (2 * t)
            if val < best:
                best, arg = val, u
    return arg


def test_prox_l0_is_hard_threshold_and_exact():
    v = _rand(6, 6, 7)
    t = torch.tensor([0.01, 0.1, 0.3, 0.6, 1.0, 3.0], dtype=DT)
    out = P.prox_l0(v, t)
    for i in range(len(v)):
        th = float(torch.sqrt(2 * t[i]))
        assert torch.equal(out[i], torch.where(v[i].abs() > th, v[i], torch.zeros_like(v[i])))
        assert np.array_equal(out[i].numpy(), _l0_brute_force(v[i].numpy(), float(t[i])))


def _group_l0_brute_force(v, t):
    """Exact prox of t * (number of non-zero pixels); v is (C, L), a pixel = a column."""
    L = v.shape[1]
    best, arg = np.inf, None
    for k in range(L + 1):
        for S in itertools.combinations(range(L), k):
            u = np.zeros_like(v)
            u[:, list(S)] = v[:, list(S)]
            val = k + np.sum((u - v) ** 2) / (2 * t)
            if val < best:
                best, arg = val, u
    return arg


def prox_l0_group_exact(v, t):
    """The exact prox of t·||·||_{0,G} (groups = channels, dimension 1): keep pixel g iff
    ||v_g||₂ > √(2t) — the oracle the thesis's max-channel rule is compared with."""
    th = torch.sqrt(2 * per_input(t, len(v), v))
    return torch.where(v.norm(dim=1, keepdim=True) > th, v, torch.zeros_like(v))


def test_prox_l0_group_exact_matches_brute_force():
    g = torch.Generator().manual_seed(8)
    v = torch.randn(5, 3, 5, generator=g, dtype=DT)  # 3 channels, 5 pixels
    t = torch.tensor([0.05, 0.3, 0.8, 1.5, 4.0], dtype=DT)
    out = prox_l0_group_exact(v, t)
    for i in range(len(v)):
        assert np.array_equal(out[i].numpy(), _group_l0_brute_force(v[i].numpy(), float(t[i])))


def test_prox_l0_group_thesis_rule():
    g = torch.Generator().manual_seed(9)
    v = torch.randn(4, 3, 2, 3, generator=g, dtype=DT)  # (N, C, H, W)
    t = torch.tensor([0.1, 0.4, 0.9, 2.0], dtype=DT)
    out = P.prox_l0_group(v, t)
    keep = v.abs().amax(1, keepdim=True) > torch.sqrt(2 * t).reshape(-1, 1, 1, 1)
    assert torch.equal(out, torch.where(keep, v, torch.zeros_like(v)))
    # with one channel it is the l0 prox, which is exact
    one = v[:, :1]
    assert torch.equal(P.prox_l0_group(one, t), P.prox_l0(one, t))
    assert torch.equal(P.prox_l0_group(one, t), prox_l0_group_exact(one, t))
    # with several channels the thesis's max-channel rule is not the exact prox: at t = 0.5
    # (threshold 1) the pixel (0.9, 0.9, 0.9) is zeroed by the rule, but zeroing costs
    # ||v_g||^2 / (2t) = 2.43 > 1 = the cost of keeping it, so the exact prox keeps it
    w = torch.tensor([[[0.9], [0.9], [0.9]]], dtype=DT)
    assert torch.equal(P.prox_l0_group(w, 0.5), torch.zeros_like(w))
    assert torch.equal(prox_l0_group_exact(w, 0.5), w)


# ---------------------------------------------------------------- EAD's shrinkage-thresholding


@pytest.mark.parametrize("bounds", [(0.0, 1.0), (-1.0, 2.0)])
def test_shrinkage_matches_definition(bounds):
    lower, upper = bounds
    g = torch.Generator().manual_seed(1)
    x0 = lower + (upper - lower) * torch.rand(500, generator=g)
    z = x0 + 0.6 * (upper - lower) * torch.randn(500, generator=g)  # some leave the box
    for beta in (0.0, 0.05, 0.3):
        out = P.shrinkage_threshold(z, x0, beta, lower, upper)
        for zi, xi, oi in zip(z.tolist(), x0.tolist(), out.tolist()):
            if zi - xi > beta:
                want = min(zi - beta, upper)
            elif zi - xi < -beta:
                want = max(zi + beta, lower)
            else:
                want = xi
            assert oi == pytest.approx(want, abs=1e-6)
        assert lower <= float(out.min()) and float(out.max()) <= upper
    # β = 0 is the box projection; the operator keeps x0 for |z − x0| ≤ β exactly
    assert torch.equal(P.shrinkage_threshold(z, x0, 0.0, lower, upper), z.clamp(lower, upper))
    near = x0 + 0.01 * torch.randn(500, generator=g).clamp(-1, 1)
    assert torch.equal(P.shrinkage_threshold(near, x0, 0.011, lower, upper), x0)


def test_shrinkage_is_the_prox_of_l1_plus_box():
    """S_β(z) minimises β‖u − x0‖₁ + ‖u − z‖²/2 over the box, coordinate by coordinate."""
    g = torch.Generator().manual_seed(2)
    x0 = torch.rand(40, generator=g, dtype=DT)
    z = x0 + 0.8 * torch.randn(40, generator=g, dtype=DT)
    beta = 0.2
    out = P.shrinkage_threshold(z, x0, beta, 0.0, 1.0)
    for zi, xi, oi in zip(z.tolist(), x0.tolist(), out.tolist()):
        res = optimize.minimize_scalar(lambda u: beta * abs(u - xi) + (u - zi) ** 2 / 2, bounds=(0.0, 1.0),
                                       method="bounded", options={"xatol": 1e-12})
        assert oi == pytest.approx(res.x, abs=1e-6)


# ---------------------------------------------------------------- common behaviour


@pytest.mark.parametrize("norm", P.NORMS)
def test_batched_thresholds_shapes_and_zero_threshold(norm):
    g = torch.Generator().manual_seed(10)
    v = torch.randn(3, 2, 4, 4, generator=g)
    t = torch.tensor([0.01, 0.1, 0.5])
    out = P.prox(norm, v, t)
    assert out.shape == v.shape
    for i in range(3):  # row by row = batched
        assert torch.allclose(P.prox(norm, v[i:i + 1], float(t[i])), out[i:i + 1], atol=1e-6)
    assert torch.allclose(P.prox(norm, v, 0.0), v)


def test_box_projection_idempotent_and_prox_box_in_bounds():
    g = torch.Generator().manual_seed(11)
    x = torch.rand(4, 10, generator=g, dtype=DT)
    u = torch.randn(4, 10, generator=g, dtype=DT)
    p = P.project_box(x, u, (0.0, 1.0))
    assert ((x + p) >= 0).all() and ((x + p) <= 1).all()
    assert torch.allclose(P.project_box(x, p, (0.0, 1.0)), p)
    for norm in ("linf", "l2", "l1", "l0"):
        q = P.prox_box(norm, x, u, 0.3, (0.0, 1.0))
        assert ((x + q) >= -1e-12).all() and ((x + q) <= 1 + 1e-12).all()
        # the clip never makes a zero of the prox non-zero (sparsity survives the box)
        assert (q[P.prox(norm, u, 0.3) == 0] == 0).all()


def test_errors():
    v = torch.zeros(2, 3)
    with pytest.raises(ValueError):
        P.prox("l3", v, 0.1)
    with pytest.raises(ValueError):
        P.prox_l1(v, -1.0)
    with pytest.raises(ValueError):
        P.prox_l1(v, torch.ones(3))
