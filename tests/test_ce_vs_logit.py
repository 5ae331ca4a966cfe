"""Document 003 (Ozbulak et al., cross-entropy against logit losses): the four perturbation
sources against their formulas, iteration counts derived in closed form on a linear toy, the
float32 stall of CE at the underflow margin, the statistics of
:mod:`reprolib.evaluation.trajectories`, and the 2-D toy of :mod:`reprolib.evaluation.toy2d`
against its closed form and scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_circles
from torch import nn

from reprolib.attacks import iterative_targeted
from reprolib.evaluation import toy2d, trajectories as tr
from reprolib.models import Classifier

SHAPE = (1, 4, 8)
D = 32
LOSSES = ("ce", "ce_sign", "logit", "mlogit")
MODES = ("equal_multiplier", "equal_perturbation")


def linear(weight: torch.Tensor, bias: torch.Tensor, dtype=torch.float64) -> Classifier:
    """g(x) = W·vec(x) + b on inputs of SHAPE in [0, 1]."""
    lin = nn.Linear(D, len(weight)).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return Classifier(nn.Sequential(nn.Flatten(), lin), input_shape=SHAPE, num_classes=len(weight)).to(dtype).eval()


def random_linear(k: int, seed: int = 0, dtype=torch.float64) -> tuple[Classifier, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, D, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return linear(w, b, dtype), w, b


def close(a, b, rtol=1e-9, atol=1e-12):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=rtol, atol=atol), float((a - b).abs().max())


# ----------------------------------------------------------------------------- the four sources

@pytest.mark.parametrize("loss", LOSSES)
def test_each_source_is_its_formula_on_an_affine_model(loss):
    """One step of size α from an interior point moves X by α·P_0, P_0 the card's §2.7 column:
    −∇CE = W_c − Σ p_m W_m, −sign ∇CE, ∇g_c = W_c, and W_c − W_{c*} below the κ margin, 0 above."""
    model, w, b = random_linear(5, seed=1)
    g = torch.Generator().manual_seed(2)
    x = (0.4 + 0.2 * torch.rand(12, *SHAPE, generator=g)).double()
    t = torch.arange(12) % 5
    alpha, kappa = 1e-3, 1.5
    res = iterative_targeted(model, x, t, loss=loss, mode="equal_multiplier", step_size=alpha, steps=1,
                             confidence=kappa)
    moved = (res.x_adv - x).flatten(1) / alpha
    z = x.flatten(1) @ w.T + b
    p = z.softmax(1)
    if loss in ("ce", "ce_sign"):
        expected = w[t] - p @ w  # −∇_x CE(g, c)
        raw = expected
        if loss == "ce_sign":
            expected = expected.sign()
    elif loss == "logit":
        expected = raw = w[t]
    else:
        other = z.masked_fill(F.one_hot(t, 5).bool(), -math.inf)
        star = other.argmax(1)
        margin = z.gather(1, t[:, None]).squeeze(1) - other.max(1).values
        raw = w[t] - w[star]
        expected = torch.where((margin < kappa)[:, None], raw, torch.zeros_like(raw))
        raw = expected
    close(moved, expected, rtol=1e-7, atol=1e-9)
    # the recorded raw gradient norm is that of the source before the sign
    close(res.info["trajectory"]["grad_l2"][0], raw.norm(dim=1), rtol=1e-6, atol=1e-9)


def test_mlogit_is_zero_exactly_above_the_margin():
    model, w, b = random_linear(3, seed=4)
    x = torch.full((1, *SHAPE), 0.5, dtype=torch.float64)
    z = x.flatten(1) @ w.T + b
    c = int(z.argmax())  # the prediction: its margin is positive
    m = float(z[0, c] - z[0, [i for i in range(3) if i != c]].max())
    for kappa, moves in ((m / 2, False), (2 * m, True)):
        res = iterative_targeted(model, x, torch.tensor([c]), loss="mlogit", mode="equal_perturbation",
                                 step_l1=0.1, steps=1, confidence=kappa)
        assert bool(res.info["stalled"][0]) is not moves
        assert torch.equal(res.x_adv, x) is not moves


# ----------------------------------------------------------------------------- exact iteration counts

def two_class_toy(dtype=torch.float64, scale: float = 1.0):
    """A 2-class linear model whose margin g_c − g_r at X_0 = 0.5 is −gap, with u = W_c − W_r
    dense (no zero entries, so sign(u) has d non-zero entries) and |u_i| in scale·[0.5, 1.5]."""
    g = torch.Generator().manual_seed(7)
    u = scale * (0.5 + torch.rand(D, generator=g, dtype=torch.float64)) * torch.where(
        torch.arange(D) % 3 == 0, -1.0, 1.0)
    w_c = 0.3 * torch.randn(D, generator=g, dtype=torch.float64) + u / 2
    w_r = w_c - u
    x0 = torch.full((1, *SHAPE), 0.5, dtype=torch.float64)
    gap = 3.3  # g_r − g_c at X_0
    b_c = -float(w_c @ x0.flatten()) - gap / 2
    b_r = -float(w_r @ x0.flatten()) + gap / 2
    return (linear(torch.stack([w_c, w_r]), torch.tensor([b_c, b_r], dtype=torch.float64), dtype), w_c, w_r,
            x0.to(dtype), gap)


def expected_first_success(loss: str, mode: str, w_c, w_r, gap: float, alpha: float, beta: float) -> int:
    """The first n with margin M_n = g_c − g_r > 0, derived without the attack (card §2.7 rules;
    two classes, so c* = r and −∇CE = p_r·u with u = W_c − W_r)."""
    u = w_c - w_r
    l1, l2sq, d = float(u.abs().sum()), float(u @ u), u.numel()
    if loss == "ce" and mode == "equal_multiplier":  # M_{n+1} = M_n + α·σ(−M_n)·‖u‖²
        m, n = -gap, 0
        while m <= 0:
            m += alpha * l2sq / (1 + math.exp(m))
            n += 1
        return n
    per_step = {("ce", "equal_perturbation"): beta * l2sq / l1,
                ("ce_sign", "equal_multiplier"): alpha * l1,
                ("ce_sign", "equal_perturbation"): beta / d * l1,
                ("logit", "equal_multiplier"): alpha * float(w_c @ u),
                ("logit", "equal_perturbation"): beta * float(w_c @ u) / float(w_c.abs().sum()),
                ("mlogit", "equal_multiplier"): alpha * l2sq,
                ("mlogit", "equal_perturbation"): beta * l2sq / l1}[(loss, mode)]
    ratio = gap / per_step
    assert abs(ratio - round(ratio)) > 1e-3, "a tie at the boundary: choose another gap"
    return math.floor(ratio) + 1


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("mode", MODES)
def test_iteration_counts_are_exact_on_a_linear_toy(loss, mode):
    model, w_c, w_r, x0, gap = two_class_toy()
    alpha, beta = 2e-3, 0.05
    assert float((w_c - w_r) @ w_c) > 0  # the logit source raises the margin
    want = expected_first_success(loss, mode, w_c, w_r, gap, alpha, beta)
    res = iterative_targeted(model, x0, torch.tensor([0]), loss=loss, mode=mode, step_size=alpha, step_l1=beta,
                             steps=want + 5, confidence=1e6)
    assert 5 < want < 200
    assert int(res.info["first_success"][0]) == want
    # no coordinate reached the box, so the derivation's assumption held
    assert 0 < float(res.x_adv.min()) and float(res.x_adv.max()) < 1
    if mode == "equal_perturbation":  # every step has the same l1 mass β
        close(res.info["trajectory"]["step_l1"][:, 0], torch.full((want + 5,), beta), rtol=1e-9)


def test_mlogit_stops_at_kappa_and_logit_does_not():
    model, w_c, w_r, x0, gap = two_class_toy()
    alpha, kappa, steps = 2e-3, 2.0, 150
    u = w_c - w_r
    per_step = alpha * float(u @ u)
    res = iterative_targeted(model, x0, torch.tensor([0]), loss="mlogit", mode="equal_multiplier",
                             step_size=alpha, steps=steps, confidence=kappa)
    z = model(res.x_adv).detach()
    final = float(z[0, 0] - z[0, 1])
    k = math.ceil((kappa + gap) / per_step)  # the first step count whose margin is ≥ κ
    assert final == pytest.approx(-gap + k * per_step, rel=1e-9)
    assert kappa <= final < kappa + per_step
    assert bool(res.info["stalled"][0])  # the hinge is flat above κ
    logit = iterative_targeted(model, x0, torch.tensor([0]), loss="logit", mode="equal_multiplier",
                               step_size=alpha, steps=steps)
    z_t = logit.info["trajectory"]["z_target"][:, 0]
    assert bool((z_t[1:] > z_t[:-1]).all())  # the target logit rises at every step


def test_ce_stalls_exactly_where_float32_underflows():
    """Equal perturbation rescues CE from its vanishing gradient (card §5.3) until p_r underflows
    to exactly 0: the attack then flags the input as stalled, at the margin
    softmax_underflow_margins() predicts (within one step)."""
    model, w_c, w_r, x0, gap = two_class_toy(torch.float32, scale=10.0)  # margins ≫ 104 inside the box
    beta = 0.5
    u = (w_c - w_r).double()
    per_step = beta * float(u @ u) / float(u.abs().sum())
    res = iterative_targeted(model, x0, torch.tensor([0]), loss="ce", mode="equal_perturbation", step_l1=beta,
                             steps=400)
    info = res.info
    assert bool(info["stalled"][0])
    n = int(info["stalled_at"][0])
    traj = info["trajectory"]
    assert bool(traj["stalled"][n:, 0].all()) and not bool(traj["stalled"][:n, 0].any())
    z = model(res.x_adv).detach().double()
    stall_margin = float(z[0, 0] - z[0, 1])
    limit = tr.softmax_underflow_margins(torch.float32)["all_terms"]
    assert abs(stall_margin - limit) <= per_step + 0.5, (stall_margin, limit, per_step)
    assert 0 < float(res.x_adv.min()) and float(res.x_adv.max()) < 1


# ----------------------------------------------------------------------------- trajectories module

def test_underflow_margins_match_the_card():
    f32 = tr.softmax_underflow_margins(torch.float32)
    assert 16.5 <= f32["target_term"] <= 17.1
    assert 87.0 <= f32["all_terms"] <= 104.5
    f64 = tr.softmax_underflow_margins(torch.float64)
    assert f64["target_term"] == pytest.approx(36.74, abs=0.05)
    assert f64["all_terms"] == pytest.approx(745.13, abs=0.05)
    assert tr.softmax_underflow_margins(torch.float32, classes=10) == f32  # e^{−m} terms, one per class
    # flushed denormals (a GPU's default): every term is 0 once e^{−m} drops below the smallest normal float32
    flushed = tr.softmax_underflow_margins(torch.float32, flush_denormal=True)
    assert flushed["all_terms"] == pytest.approx(-math.log(torch.finfo(torch.float32).tiny), abs=0.05)  # 87.34
    assert flushed["target_term"] == f32["target_term"]
    assert tr.softmax_underflow_margins(torch.float32)["all_terms"] == f32["all_terms"]  # restored afterwards


def test_regions_follow_definition_iv1():
    p_max = torch.tensor([[0.95, 0.5, 0.92, float("nan")], [0.9, 0.89, 0.99, 0.3]])
    pred = torch.tensor([[0, 1, 2, -1], [2, 2, 1, 0]])
    target = torch.tensor([2, 2, 2, 0])
    codes = tr.regions(p_max, pred, target)
    assert codes.tolist() == [[tr.D1, tr.D2, tr.D3, 0], [tr.D3, tr.D2, tr.D1, tr.D2]]
    shares = tr.region_shares(codes)
    np.testing.assert_allclose(shares[0], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(shares[1], [0.25, 0.5, 0.25])
    with pytest.raises(ValueError):
        tr.regions(p_max, pred[:1], target)


def test_phase_spans_take_the_majority_region():
    # 3 inputs over 6 states: D1 majority at 0–1, D2 at 2–3, D3 at 4–5
    codes = torch.tensor([[1, 1, 1], [1, 1, 2], [2, 2, 1], [2, 3, 2], [3, 3, 2], [3, 3, 3]])
    assert tr.phase_spans(codes) == [("D1", 0, 1), ("D2", 2, 3), ("D3", 4, 5)]
    codes[5] = 0  # a state nobody visited is left out
    assert tr.phase_spans(codes)[-1] == ("D3", 4, 4)


def test_mean_band_ignores_unvisited_states():
    v = np.array([[1.0, 2.0, 3.0, np.nan], [np.nan, np.nan, 5.0, np.nan], [np.nan] * 4])
    mean, lo, hi = tr.mean_band(v)
    assert mean[0] == pytest.approx(2.0) and mean[1] == 5.0 and np.isnan(mean[2])
    assert hi[0] - mean[0] == pytest.approx(1.96 * 1.0 / math.sqrt(3))
    assert lo[1] == hi[1] == 5.0


def test_iteration_summary_counts_never_apart():
    s = tr.iteration_summary(torch.tensor([10, 20, -1, 30, -1]))
    assert (s["n"], s["reached"]) == (5, 3) and s["never"] == pytest.approx(0.4)
    assert s["mean"] == 20 and s["std"] == pytest.approx(10.0) and s["median"] == 20
    assert s["median_all"] == 30  # never counted as +inf: sorted 10, 20, 30, inf, inf


def test_choose_step_follows_the_card_rule():
    t = torch.tensor
    runs = {0.1: {"ce": t([200, 150, -1, 120]), "logit": t([100] * 4)},       # CE reaches 75 %: out
            0.2: {"ce": t([80, 90, 100, 110]), "logit": t([60] * 4)},         # median 95
            0.5: {"ce": t([30, 40, 45, 50]), "logit": t([20, 30, 40, -1])},   # logit 75 %: out
            1.0: {"ce": t([10, 12, 14, 16]), "logit": t([5] * 4)}}            # median 13
    cal = tr.choose_step(runs, min_reach=0.95, target_median=50)
    # |log(95/50)| = 0.64 < |log(13/50)| = 1.35
    assert cal.value == 0.2 and "closest to 50" in cal.reason
    assert len(cal.rows) == 8 and sum(r["qualifies"] for r in cal.rows) == 4
    none = {v: {"ce": t([-1, 5]), "logit": t([-1, -1] if v == 1.0 else [3, -1])} for v in (1.0, 2.0)}
    cal = tr.choose_step(none)
    assert cal.value == 2.0 and "no candidate" in cal.reason
    with pytest.raises(ValueError):
        tr.choose_step({1.0: {"logit": t([1])}})


def test_plateau_ratio():
    steps = np.arange(251.0)
    assert tr.plateau_ratio(3 * steps) == pytest.approx(50 / 250)
    assert tr.plateau_ratio(1 - np.exp(-steps / 10)) < 1e-3
    assert math.isnan(tr.plateau_ratio(-steps))


def test_quantise_and_summarize():
    x = torch.tensor([0.0, 0.5 / 255, 0.51 / 255, 1.0])
    assert (tr.quantise(x) * 255).tolist() == [0.0, 0.0, 1.0, 255.0]
    model, *_ = random_linear(3)
    x = torch.full((4, *SHAPE), 0.5, dtype=torch.float64)
    res = iterative_targeted(model, x, torch.tensor([0, 1, 2, 0]), loss="ce", steps=7, mode="equal_perturbation",
                             step_l1=0.1)
    s = tr.summarize(res, model=model)
    assert s["p_target"].shape == (4, 8) and s["step_l1"].shape == (4, 7) and s["success_x"].shape == (4, *SHAPE)
    close(s["success_x"], res.info["success_x"])
    z = model(res.x_adv).detach()
    others = z.clone()
    others[torch.arange(4), res.labels] = -math.inf
    close(s["final_margin"], z[torch.arange(4), res.labels] - others.amax(1), rtol=1e-6)


def test_time_per_iteration_rotates_the_order():
    model, *_ = random_linear(3, dtype=torch.float32)
    x = torch.full((3, *SHAPE), 0.5)
    settings = {"a": {"loss": "ce"}, "b": {"loss": "logit"}, "c": {"loss": "mlogit"}}
    rows = tr.time_per_iteration(model, x, torch.tensor([1, 2, 0]), settings=settings, steps=2)
    assert [r["setting"] for r in rows] == list("abc" "bca" "cab")
    assert all(r["per_iteration"] == pytest.approx(r["seconds"] / 2) for r in rows)


# ----------------------------------------------------------------------------- the 2-D toy

def circles(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_circles(n, noise=0.05, factor=0.5, random_state=seed)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


def test_gradient_maps_match_the_closed_form():
    x, y = circles(200, seed=1)
    net = toy2d.mlp(hidden=8, seed=0)
    toy2d.train_full_batch(net, x, y, steps=200)
    maps = toy2d.gradient_maps(net, n=21, dtype=torch.float64)
    yy, xx = np.meshgrid(maps.coords, maps.coords, indexing="ij")
    pts = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1))
    grads = toy2d.closed_form_gradients(net, pts)
    np.testing.assert_allclose(maps.logit_l1.ravel(), grads[:, toy2d.INNER].abs().sum(1).numpy(), rtol=1e-10)
    ce = toy2d.ce_gradient_closed_form(net, pts)
    np.testing.assert_allclose(maps.ce_l1.ravel(), ce.abs().sum(1).numpy(), rtol=1e-8, atol=1e-300)
    z = toy2d.float64_logits(net, pts)
    np.testing.assert_allclose(maps.margin.ravel(), (z[:, 1] - z[:, 0]).numpy(), rtol=1e-10, atol=1e-12)
    # two classes: ∇CE_R = p_B (∇g_B − ∇g_R), so Σ|∇CE| = p_B·Σ|∇g_B − ∇g_R| (Theorem IV.2 with M = 2)
    p_b = z.softmax(1)[:, 0]
    np.testing.assert_allclose(maps.ce_l1.ravel(),
                               (p_b[:, None] * (grads[:, 0] - grads[:, 1]).abs()).sum(1).numpy(), rtol=1e-8)
    codes = tr.regions(torch.from_numpy(np.maximum(maps.p_target, 1 - maps.p_target)).ravel(),
                       torch.from_numpy((maps.p_target > 0.5).astype(np.int64)).ravel(), torch.tensor(1))
    assert (codes.reshape(21, 21).numpy() == maps.region).mean() > 0.99  # ties at p = 0.5 aside


def test_ce_map_is_exactly_zero_only_beyond_the_underflow_margin():
    """Scale a trained toy's last layer so the margin spans ±300: CE's float32 gradient is exactly
    zero where the target's margin passes the float32 limit, and nowhere else."""
    x, y = circles(200, seed=1)
    net = toy2d.mlp(hidden=16, seed=0)
    toy2d.train_full_batch(net, x, y, steps=300)
    maps = toy2d.gradient_maps(net, n=41)
    with torch.no_grad():
        net[2].weight.mul_(300 / toy2d.largest_margin(maps))
        net[2].bias.mul_(300 / toy2d.largest_margin(maps))
    maps = toy2d.gradient_maps(net, n=41)
    limit = tr.softmax_underflow_margins(torch.float32)["all_terms"]
    zero = maps.ce_zero
    assert zero.any() and (maps.margin[zero] > limit - 1).all()
    assert (maps.logit_l1 > 0).mean() > 0.99  # the logit gradient has no such collapse
    assert not zero[maps.margin < limit - 5].any()
    flushed = toy2d.gradient_maps(net, n=41, flush_denormal=True)
    low = tr.softmax_underflow_margins(torch.float32, flush_denormal=True)["all_terms"]
    assert flushed.flushed and flushed.ce_zero.sum() > zero.sum()  # zeros start earlier, at ≈ 87
    assert (flushed.margin[flushed.ce_zero] > low - 1).all() and flushed.ce_zero[flushed.margin > low + 5].all()


def test_ce_gradient_decomposition_on_an_affine_model():
    """∇CE = Σ_{m≠c} p_m (W_m − W_c) exactly; it tends to W_r − W_c as p_r → 1 (Theorem IV.2, eq. 8)."""
    model, w, b = random_linear(4, seed=3)
    x = torch.full((6, *SHAPE), 0.5, dtype=torch.float64)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 0, 1])
    out = tr.ce_gradient_decomposition(model, x, t)
    z = x.flatten(1) @ w.T + b
    p = z.softmax(1)
    rival = z.masked_fill(F.one_hot(t, 4).bool(), -math.inf).argmax(1)
    g_ce = p @ w - w[t]
    g_lim = w[rival] - w[t]
    close(out["cosine"], F.cosine_similarity(g_ce, g_lim, dim=1), rtol=1e-9)
    close(out["norm_ratio"], g_ce.norm(dim=1) / g_lim.norm(dim=1), rtol=1e-9)
    close(out["p_rival"], p[torch.arange(6), rival])
    # scaling the logits sends p_rival → 1 (D1) and the gradient to its limit
    sharp = linear(50 * w, 50 * b)
    far = tr.ce_gradient_decomposition(sharp, x, t)
    confident = far["p_rival"] > 0.999
    assert confident.any()
    assert bool((far["cosine"][confident] > 0.999).all())
    assert bool((far["norm_ratio"][confident] - 1).abs().max() < 2e-3)
    assert bool((far["region"][confident] == tr.D1).all())


def test_the_paper_profile_stops_before_any_work_and_names_what_to_supply():
    from reprolib.book import runner
    from reprolib.book.params import ParameterError

    for profile in ("smoke", "cpu"):
        assert runner.validate("ce_vs_logit", profile).profile == profile
    with pytest.raises(ParameterError) as err:
        runner.validate("ce_vs_logit", "paper")
    message = str(err.value)
    for what in ("nothing was run", "imagenet_dir", "extra_genuine_dir", "weights_dir", "resnet50.pth", "resnet152.pth"):
        assert what in message
