"""Gradient attacks and losses: closed forms on affine models, projections, exact pass counts,
document 003's trajectories, and a cross-check against Foolbox 3.3.4 on the trained C&W MNIST CNN."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reprolib.attacks import AttackInputError, Counter
from reprolib.attacks.fast_gradient import fgm, fgsm
from reprolib.attacks.targeted_iteration import iterative_targeted
from reprolib.attacks.ops import losses
from reprolib.attacks.ops.norms import project, project_l1, project_l2, rescale
from reprolib.attacks.projected_gradient import bim, ifgm, pgd, sparse_l1_direction
from reprolib.models import Classifier

SHAPE = (1, 4, 4)
D = 16


class CountingNet(nn.Module):
    """Counts its own forward rows (only with grad enabled, so the attacks' uncounted re-check
    under no_grad is left out) and, by a hook on its input, the rows of every backward pass."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.fw = 0
        self.bw = 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.fw += x.shape[0]
            if x.requires_grad:
                x.register_hook(self._count_backward)
        return self.net(x)

    def _count_backward(self, g):
        self.bw += g.shape[0]


def affine(k: int = 3, seed: int = 0, counting: bool = False, dtype=torch.float64) -> Classifier:
    torch.manual_seed(seed)
    lin = nn.Linear(D, k)
    net = nn.Sequential(nn.Flatten(), lin)
    if counting:
        net = CountingNet(net)
    return Classifier(net, input_shape=SHAPE, num_classes=k).to(dtype).eval()


def mlp(k: int = 4, seed: int = 0, counting: bool = True) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, k))
    with torch.no_grad():
        net[3].weight.mul_(4)
    if counting:
        net = CountingNet(net)
    return Classifier(net, input_shape=SHAPE, num_classes=k).eval()


def weights(model: Classifier):
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    return lin.weight.detach(), lin.bias.detach()


def inputs(n: int, lo: float = 0.3, hi: float = 0.7, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (lo + (hi - lo) * torch.rand(n, *SHAPE, generator=g)).to(dtype)


def close(actual, expected, rtol=1e-5, atol=1e-6, msg=""):
    """torch.allclose with a message (torch.testing's first call imports a lot: slow on CI)."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected).to(torch.as_tensor(actual).dtype)
    assert actual.shape == expected.shape, f"{msg} shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True), \
        f"{msg} max |diff| = {float((actual - expected).abs().max())}"


def assert_in_box(res, model):
    lo, hi = model.bounds
    assert float(res.x_adv.min()) >= lo and float(res.x_adv.max()) <= hi


def assert_success_rechecked(res, model):
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    expected = pred == res.labels if res.targeted else pred != res.labels
    assert torch.equal(res.success, expected)


# ---------------------------------------------------------------------------------- losses
def test_loss_gradients_match_hand_computed():
    torch.manual_seed(0)
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    lab = torch.tensor([0, 3, 1, 2, 3])
    p = F.softmax(z.detach(), 1)
    onehot = F.one_hot(lab, 4).double()
    cases = {
        ("ce", True): onehot - p,           # −∇CE(t)
        ("ce", False): p - onehot,          # +∇CE(y)
        ("ce_sign", True): onehot - p,
        ("logit", True): onehot,
        ("logit", False): -onehot,
    }
    for (name, targeted), expected in cases.items():
        (g,) = torch.autograd.grad(losses.LOSSES[name](z, lab, targeted).sum(), z)
        close(g, expected, msg=f"{name} targeted={targeted}")
    # M-logit with a large κ: e_t − e_{c*} (targeted), e_{c*} − e_y (untargeted)
    other = z.detach().masked_fill(onehot.bool(), float("-inf")).argmax(1)
    e_other = F.one_hot(other, 4).double()
    (g,) = torch.autograd.grad(losses.LOSSES["mlogit"](z, lab, True, confidence=1e3).sum(), z)
    close(g, onehot - e_other)
    (g,) = torch.autograd.grad(losses.LOSSES["mlogit"](z, lab, False, confidence=1e3).sum(), z)
    close(g, e_other - onehot)


def test_mlogit_with_all_negative_logits_and_confidence_hinge():
    z = torch.tensor([[-5.0, -1.0, -3.0, -2.0]], requires_grad=True)
    t = torch.tensor([1])
    val, idx = losses.best_other(z.detach(), t)
    assert int(idx) == 3 and float(val) == -2.0  # masking with 0 would pick the label itself
    assert float(losses.margin(z.detach(), t)) == pytest.approx(1.0)
    # C&W f6 = max(max_{j≠t} Z_j − Z_t, −κ)
    assert float(losses.cw_f6(z.detach(), t, True, confidence=0.0)) == pytest.approx(-0.0)
    assert float(losses.cw_f6(z.detach(), t, True, confidence=0.5)) == pytest.approx(-0.5)
    assert float(losses.cw_f6(z.detach(), t, True, confidence=5.0)) == pytest.approx(-1.0)
    assert float(losses.cw_f6(z.detach(), torch.tensor([0]), False, confidence=5.0)) == pytest.approx(-4.0)
    (g,) = torch.autograd.grad(losses.LOSSES["mlogit"](z, t, True, confidence=5.0).sum(), z)
    assert g.tolist() == [[0.0, 1.0, 0.0, -1.0]]
    # margin 1 ≥ κ = 1 and κ = 0.5: the hinge is flat
    for confidence in (1.0, 0.5):
        (g,) = torch.autograd.grad(losses.LOSSES["mlogit"](z, t, True, confidence=confidence).sum(), z)
        assert g.abs().sum() == 0
    # untargeted with all-negative logits: best other than class 2 is class 1
    (g,) = torch.autograd.grad(losses.LOSSES["mlogit"](z, torch.tensor([2]), False, confidence=5.0).sum(), z)
    assert g.tolist() == [[0.0, 1.0, -1.0, 0.0]]


def test_loss_registry_and_errors():
    assert set(losses.LOSSES) == {"ce", "ce_sign", "logit", "mlogit"}
    assert losses.get("ce_sign").sign and not losses.get("ce").sign
    with pytest.raises(AttackInputError, match="loss must be one of .*'hinge'"):
        losses.get("hinge")
    with pytest.raises(TypeError, match="confidence"):
        losses.get("ce")(torch.zeros(1, 3), torch.tensor([0]), True, confidence=1.0)
    with pytest.raises(TypeError, match="confidence.*'ce' takes no settings"):
        losses.get("ce", {"confidence": 1.0})
    with pytest.raises(AttackInputError, match="confidence must be a finite number ≥ 0"):
        losses.get("mlogit", {"confidence": -1.0})


def test_gradient_is_summed_not_averaged_over_the_batch():
    model = affine(k=4)
    x = inputs(6)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    full = losses.objective_and_grad(Counter(model, 6, x.device), x, y, losses.get("ce"), False)[2]
    one = losses.objective_and_grad(Counter(model, 1, x.device), x[:1], y[:1], losses.get("ce"), False)[2]
    close(full[:1], one)


# -------------------------------------------------------------------- FGSM / FGM closed forms
def test_fgsm_closed_forms_on_affine_models():
    eps = 0.05
    # two classes: ∇CE(y) ∝ w_other − w_y, so FGSM is x + ε·sign(w_other − w_y)
    model = affine(k=2)
    w, _ = weights(model)
    x = inputs(8)
    y = torch.tensor([0, 1] * 4)
    res = fgsm(model, x, y, eps=eps)
    expected = x + eps * (w[1 - y] - w[y]).sign().view_as(x)
    close(res.x_adv, expected)
    # targeted on two classes: x − ε·sign(∇CE(t)) = x + ε·sign(w_t − w_other)
    res = fgsm(model, x, 1 - y, eps=eps, targeted=True)
    close(res.x_adv, x + eps * (w[1 - y] - w[y]).sign().view_as(x))

    model = affine(k=3, seed=3)
    w, b = weights(model)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    t = (y + 1) % 3
    flat = x.flatten(1)
    z = flat @ w.T + b
    p = F.softmax(z, 1)
    # K classes, targeted CE: x + ε·sign(Wᵀ(e_t − p))
    res = fgsm(model, x, t, eps=eps, targeted=True)
    close(res.x_adv.flatten(1), flat + eps * ((F.one_hot(t, 3) - p) @ w).sign())
    # targeted logit: x + ε·sign(w_t); untargeted logit: x − ε·sign(w_y)
    res = fgsm(model, x, t, eps=eps, targeted=True, loss="logit")
    close(res.x_adv.flatten(1), flat + eps * w[t].sign())
    res = fgsm(model, x, y, eps=eps, loss="logit")
    close(res.x_adv.flatten(1), flat - eps * w[y].sign())
    # targeted M-logit: x + ε·sign(w_t − w_{c*}), c* the best other class
    other = z.masked_fill(F.one_hot(t, 3).bool(), float("-inf")).argmax(1)
    res = fgsm(model, x, t, eps=eps, targeted=True, loss="mlogit", confidence=50.0)
    close(res.x_adv.flatten(1), flat + eps * (w[t] - w[other]).sign())
    assert res.forwards.tolist() == [1] * 8 and res.backwards.tolist() == [1] * 8


@pytest.mark.parametrize("norm,order", [("l2", 2), ("l1", 1)])
def test_fgm_step_has_norm_eps_and_the_normalised_gradient(norm, order):
    model = affine(k=3, seed=5)
    w, b = weights(model)
    x = inputs(6)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    eps = 0.2 if order == 2 else 0.6
    res = fgm(model, x, y, eps=eps, norm=norm)
    delta = (res.x_adv - x).flatten(1)
    close(delta.norm(p=order, dim=1), torch.full((6,), eps, dtype=x.dtype))
    flat = x.flatten(1)
    g = (F.softmax(flat @ w.T + b, 1) - F.one_hot(y, 3)) @ w  # ∇CE(y)
    close(delta, eps * g / g.norm(p=order, dim=1, keepdim=True))
    assert torch.equal(res.x_adv, res.x_raw)  # nowhere near the bounds
    # per-input ε
    eps_t = torch.tensor([0.1, 0.2, 0.3, 0.0, 0.05, 0.15], dtype=x.dtype)
    res = fgm(model, x, y, eps=eps_t, norm=norm)
    close((res.x_adv - x).flatten(1).norm(p=order, dim=1), eps_t)


def test_fgsm_clips_to_box_and_rechecks_success():
    model = mlp(counting=False).double()
    x = inputs(32, lo=0.0, hi=1.0, dtype=torch.float64)
    y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(0))
    res = fgsm(model, x, y, eps=0.3)
    assert_in_box(res, model)
    assert not torch.equal(res.x_adv, res.x_raw)  # the box clip did something
    assert_success_rechecked(res, model)
    assert float((res.x_adv - x).abs().max()) <= 0.3 + 1e-12


# ---------------------------------------------------------------------------------- projections
def _l1_projection_bisection(v: np.ndarray, eps: float) -> np.ndarray:
    a = np.abs(v)
    if a.sum() <= eps:
        return v.copy()
    lo, hi = 0.0, a.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(a - mid, 0).sum() > eps else (lo, mid)
    return np.sign(v) * np.maximum(a - hi, 0)


def _l1_projection_enumeration(v: np.ndarray, eps: float) -> np.ndarray:
    """Brute force over supports: for every non-empty set S, the candidate sign(v)·(|v| − θ) on
    S (0 elsewhere) with θ = (Σ_S |v| − ε)/|S|; keep the valid one (θ ≥ 0, |v_S| ≥ θ) nearest v."""
    a = np.abs(v)
    if a.sum() <= eps:
        return v.copy()
    best, best_dist = None, np.inf
    for mask in itertools.product([False, True], repeat=len(v)):
        s = np.array(mask)
        if not s.any():
            continue
        theta = (a[s].sum() - eps) / s.sum()
        if theta < 0 or (a[s] < theta).any():
            continue
        w = np.where(s, np.sign(v) * (a - theta), 0.0)
        dist = ((w - v) ** 2).sum()
        if dist < best_dist:
            best, best_dist = w, dist
    return best


def test_l1_ball_projection_matches_brute_force():
    rng = np.random.default_rng(0)
    vs, epss = [], []
    for i in range(16):
        v = rng.normal(size=6) * rng.uniform(0.2, 3)
        if i % 4 == 0:
            v[rng.integers(6)] = 0.0
        vs.append(v)
        epss.append(rng.uniform(0.1, 4.0))
    P = project_l1(torch.tensor(np.array(vs)), torch.tensor(epss, dtype=torch.float64)).numpy()
    for v, e, p in zip(vs, epss, P):
        assert np.abs(p).sum() <= e + 1e-9
        np.testing.assert_allclose(p, _l1_projection_bisection(v, e), atol=1e-9)
        np.testing.assert_allclose(p, _l1_projection_enumeration(v, e), atol=1e-9)
    # inside rows unchanged; ε = 0 gives 0; idempotent; image-shaped input
    inside = torch.tensor([[0.1, -0.2, 0.0]], dtype=torch.float64)
    assert torch.equal(project_l1(inside, 1.0), inside)
    assert project_l1(torch.tensor([[1.0, -2.0]]), 0.0).abs().sum() == 0
    img = torch.randn(3, *SHAPE, dtype=torch.float64)
    once = project_l1(img, 1.5)
    close(project_l1(once, 1.5), once)
    close(once.flatten(1).abs().sum(1), torch.full((3,), 1.5, dtype=torch.float64))


def test_l2_projection_rescale_and_sparse_l1_direction():
    d = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    close(project_l2(d, 1.0), torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    close(rescale(d, 1.0, "l2"), torch.tensor([[0.6, 0.8], [0.6, 0.8], [0.0, 0.0]]))
    close(rescale(d, 1.4, "l1"), torch.tensor([[0.6, 0.8], [0.6, 0.8], [0.0, 0.0]]))
    close(project(d, 0.35, "linf"), d.clamp(-0.35, 0.35))
    g = torch.tensor([[0.5, -3.0, 2.0, 0.1, -2.5, 1.0]])
    x = torch.tensor([[0.5, 0.0, 0.5, 0.5, 0.5, 0.5]])  # coordinate 1 is pinned at 0 with g < 0
    dirn = sparse_l1_direction(g, x, (0.0, 1.0), sparsity=0.5)  # keep the top 3 free coordinates
    close(dirn, torch.tensor([[0.0, 0.0, 1 / 3, 0.0, -1 / 3, 1 / 3]]))


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5), ("l1", 1.5)])
def test_pgd_stays_in_ball_and_box(norm, eps):
    model = mlp(counting=False)
    x = inputs(24, lo=0.0, hi=1.0, dtype=torch.float32)
    x[:4] = torch.where(x[:4] > 0.5, 1.0, 0.0)  # inputs on the bounds
    y = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(2))
    order = {"linf": float("inf"), "l2": 2.0, "l1": 1.0}[norm]
    for kw in (dict(random_start=True, seed=0),
               dict(l1_step="dense"), dict(ball="rescale"), dict(targeted=True, loss="mlogit", confidence=2.0)):
        res = pgd(model, x, y, eps=eps, norm=norm, steps=6, step_size=eps / 2, **kw)
        assert_in_box(res, model)
        assert float((res.x_adv - x).flatten(1).norm(p=order, dim=1).max()) <= eps * (1 + 1e-5)
        assert_success_rechecked(res, model)
    # I-FGM's ℓ2/ℓ1 rescaling gives norm exactly ε before the box clip (inputs away from it)
    if norm != "linf":
        xm = inputs(8, lo=0.4, hi=0.6, dtype=torch.float32)
        res = ifgm(model, xm, y[:8], eps=0.05 if norm == "l2" else 0.1, norm=norm, steps=3)
        close((res.x_adv - xm).flatten(1).norm(p=order, dim=1),
                                   torch.full((8,), 0.05 if norm == "l2" else 0.1))


def test_bim_closed_form_on_affine_model():
    # targeted logit on an affine model: every step is +α·sign(w_t), clipped to the ε-ball
    model = affine(k=3, seed=4)
    w, _ = weights(model)
    x = inputs(5)
    t = torch.tensor([0, 1, 2, 0, 1])
    res = bim(model, x, t, eps=0.1, step_size=0.03, steps=5, targeted=True, loss="logit")
    close(res.x_adv.flatten(1), x.flatten(1) + 0.1 * w[t].sign())
    assert res.attack == "bim" and res.forwards.tolist() == [5] * 5


# ------------------------------------------------------------------------------------ counts
def test_pass_counts_are_exact():
    model = mlp()
    net = model.net
    x = inputs(20, lo=0.0, hi=1.0, dtype=torch.float32)
    with torch.no_grad():
        y = model(x).argmax(1)  # every input starts correctly classified
    net.fw = 0

    def run(fn, **kw):
        net.fw = net.bw = 0
        res = fn(model, x, y, **kw)
        assert int(res.forwards.sum()) == net.fw and int(res.backwards.sum()) == net.bw
        return res

    res = run(fgsm, eps=0.1)
    assert res.forwards.tolist() == [1] * 20 and res.backwards.tolist() == [1] * 20
    res = run(pgd, eps=0.1, steps=7)
    assert res.forwards.tolist() == [7] * 20 and res.backwards.tolist() == [7] * 20
    res = run(pgd, eps=0.15, steps=15, norm="linf", stop_at_success=True)
    stop = res.info["stopped_at"]
    assert (stop >= 0).any() and (stop < 0).any()  # the test exercises both kinds of input
    # a frozen input was visited stop+1 times; one never frozen, every step
    close(res.forwards, torch.where(stop >= 0, stop + 1, torch.full_like(stop, 15)))
    assert bool((res.success[stop >= 0]).all())  # frozen at an adversarial iterate
    run(pgd, eps=1.0, steps=5, norm="l1", stop_at_success=True, random_start=True)

    tg = (y + 1) % 4
    net.fw = net.bw = 0
    res = iterative_targeted(model, x, tg, loss="mlogit", mode="equal_perturbation", step_l1=0.5, steps=9)
    assert res.forwards.tolist() == [10] * 20 and res.backwards.tolist() == [9] * 20
    assert net.fw == 200 and net.bw == 180
    net.fw = net.bw = 0
    res = iterative_targeted(model, x, tg, loss="ce", mode="equal_perturbation", step_l1=0.5, steps=30,
                             stop_at_success=True)
    assert int(res.forwards.sum()) == net.fw and int(res.backwards.sum()) == net.bw
    first = res.info["first_success"]
    assert (first > 0).any()
    close(res.forwards, torch.where(first >= 0, first + 1, torch.full_like(first, 31)))


# ------------------------------------------------------------------- document 003's update rule
@pytest.mark.parametrize("loss", ["ce", "ce_sign", "logit", "mlogit"])
@pytest.mark.parametrize("mode", ["equal_multiplier", "equal_perturbation"])
def test_iterative_targeted_trajectories(loss, mode):
    model = mlp(counting=False)
    x = inputs(16, lo=0.0, hi=1.0, dtype=torch.float32)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % 4
    steps = 25
    step_size = 0.02 if loss == "ce_sign" else 0.3  # a sign step is far larger than a gradient step
    res = iterative_targeted(model, x, t, loss=loss, mode=mode, step_size=step_size, step_l1=0.5,
                             steps=steps, confidence=1.0)
    assert_in_box(res, model)
    assert_success_rechecked(res, model)
    info, tr = res.info, res.info["trajectory"]
    for k in ("p_target", "z_target", "p_initial", "z_initial", "p_max", "pred"):
        assert tr[k].shape == (steps + 1, 16)
    for k in ("grad_l2", "step_l1", "step_size", "stalled"):
        assert tr[k].shape == (steps, 16)
    assert torch.equal(tr["pred"][0], info["initial_class"])
    first = info["first_success"]
    assert (first > 0).sum() >= 8  # most inputs reach the target
    for i in range(16):
        hits = (tr["pred"][:, i] == t[i]).nonzero().flatten()
        assert int(first[i]) == (int(hits[0]) if len(hits) else -1)
    ok = first >= 0
    with torch.no_grad():
        assert bool((model(info["success_x"][ok]).argmax(1) == t[ok]).all())
    delta = (info["success_x"] - x).flatten(1)
    close(info["success_l2"][ok], delta.norm(dim=1)[ok])
    close(info["success_linf"][ok], delta.abs().amax(1)[ok])
    assert torch.isnan(info["success_l2"][~ok]).all()
    # the last state is what the attack returns
    close(tr["p_target"][-1], F.softmax(model(res.x_adv).detach(), 1)[torch.arange(16), t])
    # step sizes: the rule's own definition
    moving = ~tr["stalled"]
    if mode == "equal_perturbation":
        close(tr["step_l1"][moving], torch.full_like(tr["step_l1"][moving], 0.5))
    else:
        assert torch.all(tr["step_size"] == step_size)
        if loss == "ce_sign":  # Σ|α·sign(∇)| = α·(number of non-zero gradient entries) ≤ α·d
            assert float(tr["step_l1"].max()) <= 0.02 * D + 1e-6
    assert torch.equal(info["stalled"], tr["stalled"].any(0))
    if loss != "mlogit":
        assert not info["stalled"].any()


def test_mlogit_stalls_at_confidence_and_does_not_divide_by_zero():
    model = mlp(counting=False)
    x = inputs(16, lo=0.0, hi=1.0, dtype=torch.float32)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % 4
    res = iterative_targeted(model, x, t, loss="mlogit", mode="equal_perturbation", step_l1=0.5,
                             steps=40, confidence=0.2)
    info, tr = res.info, res.info["trajectory"]
    stalled = info["stalled"]
    assert stalled.sum() >= 4
    assert torch.isfinite(res.x_adv).all() and torch.isfinite(tr["step_l1"]).all()
    for i in stalled.nonzero().flatten().tolist():
        n = int(info["stalled_at"][i])
        assert tr["step_l1"][n, i] == 0 and tr["step_size"][n, i] == 0
        # at a stalled step the margin had reached κ, and the target was the prediction
        assert tr["pred"][n, i] == t[i]
        assert 0 <= info["first_success"][i] <= n


def test_stop_at_success_freezes_and_trajectories_end():
    model = mlp(counting=False)
    x = inputs(16, lo=0.0, hi=1.0, dtype=torch.float32)
    with torch.no_grad():
        t = (model(x).argmax(1) + 1) % 4
    res = iterative_targeted(model, x, t, loss="ce_sign", mode="equal_multiplier", step_size=0.02,
                             steps=30, stop_at_success=True)
    first, tr = res.info["first_success"], res.info["trajectory"]
    ok = first >= 0
    assert ok.any()
    assert torch.equal(res.success[ok], torch.ones(int(ok.sum()), dtype=torch.bool))
    close(res.x_adv[ok], res.info["success_x"][ok])
    for i in ok.nonzero().flatten().tolist():
        n = int(first[i])
        assert not torch.isnan(tr["z_target"][n, i]) and torch.isnan(tr["z_target"][n + 1:, i]).all()


def test_bad_arguments_are_refused_before_any_pass():
    model = mlp()
    x, y = inputs(2, dtype=torch.float32), torch.tensor([0, 1])
    net = model.net
    net.fw = net.bw = 0
    bad = [
        (iterative_targeted, dict(loss="hinge"), "loss"),
        (iterative_targeted, dict(mode="equal"), "mode"),
        (iterative_targeted, dict(targeted=False), "targeted only"),
        (iterative_targeted, dict(step_l1=0.0), "step_l1"),
        (iterative_targeted, dict(steps=-1), "steps"),
        (iterative_targeted, dict(confidence=-1.0), "confidence"),
        (pgd, dict(eps=0.1, norm="l3"), "norm"),
        (pgd, dict(eps=-0.1), "eps"),
        (pgd, dict(eps=float("nan")), "eps"),
        (pgd, dict(eps=torch.tensor([0.1, 0.1, 0.1])), "eps"),
        (pgd, dict(eps=0.1, steps=-1), "steps"),
        (pgd, dict(eps=0.1, step_size=0.0), "step_size"),
        (pgd, dict(eps=0.1, rel_step_size=-1.0), "rel_step_size"),
        (pgd, dict(eps=0.1, ball="clip"), "ball"),
        (pgd, dict(eps=0.1, l1_step="topk"), "l1_step"),
        (pgd, dict(eps=0.1, l1_sparsity=1.0), "l1_sparsity"),
        (pgd, dict(eps=0.1, seed=-1), "seed"),
        (pgd, dict(eps=0.1, loss="mlogit", confidence=-1.0), "confidence"),
        (ifgm, dict(eps=0.1, step_size=torch.tensor([0.1, 0.0])), "step_size"),
        (bim, dict(eps=-0.1), "eps"),
        (fgm, dict(eps=-1.0), "eps"),
        (fgm, dict(eps=1.0, norm="l0"), "norm"),
        (fgsm, dict(eps=0.1), "bounds"),
    ]
    for fn, kw, match in bad:
        with pytest.raises(AttackInputError, match=match):
            fn(model, x + 2 if match == "bounds" else x, y, **kw)
    # a keyword the objective does not take is refused by name
    for fn in (fgm, fgsm, pgd, ifgm, bim):
        with pytest.raises(TypeError, match="confidence"):
            fn(model, x, y, eps=0.1, loss="ce", confidence=1.0)
    assert net.fw == net.bw == 0, "every check comes before the first model pass"


# ----------------------------------------------------------------------------- vs Foolbox 3.3.4
@pytest.fixture(scope="module")
def cw_mnist_batch(cw_mnist, mnist_test):
    return cw_mnist, mnist_test.x[:64], mnist_test.y[:64]


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps,steps", [("linf", 0.1, 10), ("l2", 1.5, 10)])
def test_success_at_least_foolbox_pgd(cw_mnist_batch, norm, eps, steps):
    fb = pytest.importorskip("foolbox", minversion="3.3.4")
    model, x, y = cw_mnist_batch
    rel = 0.25
    attack = (fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD)(
        rel_stepsize=rel, abs_stepsize=None, steps=steps, random_start=False)
    _, clipped, fb_success = attack(fb.PyTorchModel(model, bounds=model.bounds), x, y, epsilons=eps)
    ours = pgd(model, x, y, eps=eps, norm=norm, steps=steps, rel_step_size=rel, stop_at_success=True)
    assert_success_rechecked(ours, model)
    assert ours.success_rate >= float(fb_success.float().mean())
    # inputs never frozen took the same steps as Foolbox's PGD: the iterates agree
    never = ours.info["stopped_at"] < 0
    if bool(never.any()):
        diff = (ours.x_adv[never] - clipped[never]).flatten(1).abs().amax(1)
        assert float((diff < 1e-4).float().mean()) >= 0.9
