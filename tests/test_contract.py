"""The contract every attack keeps, checked over every attack in ``reprolib.attacks.ATTACKS``.

One table of small budgets (``CASES``) drives every check, so a new attack without a row fails
``test_every_attack_has_a_case``. The model is a small MLP with dropout (identity in eval mode)
on 1×4×4 inputs in [0, 1], wrapped in a counter that sees every row of every forward and backward
pass, so the attacks' own per-input counts are compared with what the network really ran.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reprolib.attacks import ATTACKS, AttackInputError, AttackResult, core
from reprolib.models import Classifier

#: Small budgets, one row per attack (the settings named as in reprolib.attacks' naming table).
CASES: dict[str, dict] = {
    "fgsm": dict(eps=0.1),
    "fgm": dict(eps=0.5, norm="l2"),
    "pgd": dict(eps=0.2, steps=5),
    "ifgm": dict(eps=0.5, norm="l2", steps=5),
    "bim": dict(eps=0.1, steps=5),
    "iterative_targeted": dict(steps=5, mode="equal_multiplier", step_size=0.05),
    "deepfool": dict(steps=10),
    "alg1": dict(eps=0.2),
    "alg2": dict(eps=0.2),
    "random_sign": dict(eps=0.2),
    "min_norm_iteration": dict(steps=10),
    "lbfgs": dict(max_doublings=4, steps=10),
    "cw_l2": dict(binary_search_steps=2, steps=10, step_size=0.05, initial_const=1.0),
    "ead": dict(binary_search_steps=2, steps=10, initial_const=1.0),
    "zoo": dict(binary_search_steps=1, steps=4, coords_per_iter=4, initial_const=10.0, step_size=0.1),
    "pdgd": dict(steps=10),
    "pdpgd": dict(steps=10),
}
UNTARGETED_ONLY = {"deepfool", "alg2", "random_sign", "min_norm_iteration"}
TARGETED_ONLY = {"iterative_targeted"}
#: Attacks that return the smallest adversarial they find, so an input that is already
#: misclassified comes back unchanged.
MINIMUM_NORM = {"deepfool", "min_norm_iteration", "cw_l2", "ead", "zoo", "pdgd", "pdpgd"}
#: Attacks whose randomness is drawn for the whole batch, so an input's result depends on the
#: batch it is in (documented in their docstrings).
BATCH_DEPENDENT = {"zoo", "pdgd", "pdpgd", "random_sign"}
#: Attacks whose backward passes in a batch run through the inputs that finish at that iteration
#: (one forward pass both checks them and builds the graph), so an input is charged one more
#: backward round in a batch than alone.
COUNTS_BATCH_DEPENDENT = {"deepfool", "min_norm_iteration"}

#: Attacks whose first gradient is taken at x itself (C&W works in tanh space, which moves a pixel
#: on a bound by about 1e-6; PDGD/PDPGD start from a random point; ZOO takes no gradient).
GRADIENT_AT_X = set(CASES) - {"cw_l2", "pdgd", "pdpgd", "zoo", "random_sign"}

SHAPE, K, N = (1, 4, 4), 4, 6


class Counting(nn.Module):
    """The network, counting the rows of every forward pass and of every backward pass."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.forward_rows, self.backward_rows = net, 0, 0

    def forward(self, x):
        self.forward_rows += len(x)
        if x.requires_grad:
            x = _CountBackward.apply(x, self)
        return self.net(x)


class _CountBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, owner):  # type: ignore[override]
        ctx.owner = owner
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ctx.owner.backward_rows += len(grad)
        return grad, None


def make_model(dtype=torch.float32, seed=0) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, K))
    model = Classifier(Counting(net), input_shape=SHAPE, num_classes=K).to(dtype)
    return model.eval()


def make_inputs(model: Classifier, n: int = N, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *SHAPE), generator=gen).to(next(model.parameters()).dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def targets(y: torch.Tensor) -> torch.Tensor:
    return (y + 1) % K


def run(name: str, model, x, y, targeted: bool | None = None, **extra) -> AttackResult:
    if targeted is None:
        targeted = name in TARGETED_ONLY
    kw = dict(CASES[name], **extra)
    if name in TARGETED_ONLY or targeted:
        kw["targeted"] = True
    return ATTACKS[name](model, x, y, **kw)


def test_every_attack_has_a_case():
    assert set(ATTACKS) == set(CASES), "add a row to CASES for every attack (and remove stale ones)"


@pytest.mark.parametrize("check_raw", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_result_contract(name, check_raw, monkeypatch):
    model = make_model()
    x, y = make_inputs(model)
    labels = targets(y) if name in TARGETED_ONLY else y
    counter = model.net
    counter.forward_rows = counter.backward_rows = 0
    rechecked = []
    recheck = core.recheck

    def counted_recheck(model, x, *args, **kw):
        rechecked.append(len(x))
        return recheck(model, x, *args, **kw)

    monkeypatch.setattr(core, "recheck", counted_recheck)
    r = run(name, model, x, labels, check_raw=check_raw)
    seen_forward, seen_backward = counter.forward_rows, counter.backward_rows
    recheck_rows = sum(rechecked)
    # one re-check of x_adv, and one of x_raw only when asked for and x_raw differs
    raw_differs = not torch.equal(r.x_raw, r.x_adv)
    assert rechecked[0] == N
    assert recheck_rows == N * (1 + (check_raw and raw_differs)) * (2 if "other_rule" in r.info else 1)
    assert r.params["check_raw"] is check_raw
    lo, hi = model.bounds
    # in bounds, shapes, name and settings recorded
    assert r.x_adv.shape == x.shape and r.x_adv.dtype == x.dtype
    assert float(r.x_adv.min()) >= lo and float(r.x_adv.max()) <= hi
    assert torch.isfinite(r.x_adv).all() and torch.isfinite(r.x_raw).all()
    assert r.attack == name and all(r.params[k] == v for k, v in CASES[name].items())
    # success re-checked by a fresh pass, for the clipped and the raw output
    with torch.no_grad():
        pred, pred_raw = model(r.x_adv).argmax(1), model(r.x_raw).argmax(1)
    hit = pred == labels if r.targeted else pred != labels
    hit_raw = pred_raw == labels if r.targeted else pred_raw != labels
    assert torch.equal(r.success, hit)
    if check_raw or not raw_differs:
        assert torch.equal(r.success_raw, hit_raw)
    else:
        assert r.success_raw is None
    assert torch.allclose(r.norms["l2"], (r.x_adv - x).flatten(1).norm(dim=1))
    assert torch.allclose(r.norms_raw["linf"], (r.x_raw - x).flatten(1).abs().amax(1))
    # pass counts: what the network saw, per input, summed (the re-check is not charged)
    assert int(r.forwards.sum()) == seen_forward - recheck_rows
    assert int(r.backwards.sum()) == seen_backward
    assert r.forwards.shape == r.backwards.shape == r.queries.shape == (N,)


@pytest.mark.parametrize("name", sorted(CASES))
def test_modes_dtypes_and_labels(name):
    """Training mode, no_grad, float64 input, int32 labels: the same result, the mode restored."""
    model = make_model()
    x, y = make_inputs(model)
    labels = targets(y) if name in TARGETED_ONLY else y
    ref = run(name, model, x, labels)
    model.train()
    first = next(model.net.children())
    first.eval()  # a mixed state, as with frozen batch-norm layers: restored module by module
    with torch.no_grad():
        r = run(name, model, x.double(), labels.int())
    assert model.training and model.net.training, "the attack must restore the model's mode"
    assert not first.training, "the attack must restore every module's own mode"
    model.eval()
    assert r.x_adv.dtype == torch.float32
    assert torch.equal(r.x_adv, ref.x_adv) and torch.equal(r.success, ref.success)
    assert torch.equal(r.forwards, ref.forwards) and torch.equal(r.backwards, ref.backwards)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_model(name):
    model = make_model(torch.float64)
    x, y = make_inputs(model)
    labels = targets(y) if name in TARGETED_ONLY else y
    r = run(name, model, x, labels)
    assert r.x_adv.dtype == torch.float64


@pytest.mark.parametrize("name", sorted(set(CASES) - BATCH_DEPENDENT))
def test_batch_of_one_equals_the_same_input_in_a_batch(name):
    model = make_model(torch.float64)
    x, y = make_inputs(model)
    labels = targets(y) if name in TARGETED_ONLY else y
    many = run(name, model, x, labels)
    for i in (0, N - 1):
        one = run(name, model, x[i:i + 1], labels[i:i + 1])
        assert torch.allclose(one.x_adv[0], many.x_adv[i], atol=1e-8), f"input {i}"
        assert bool(one.success[0]) == bool(many.success[i])
        assert int(one.forwards[0]) == int(many.forwards[i])
        if name not in COUNTS_BATCH_DEPENDENT:
            assert int(one.backwards[0]) == int(many.backwards[i])


@pytest.mark.parametrize("name", sorted(CASES))
def test_empty_batch(name):
    model = make_model()
    x, y = make_inputs(model)
    r = run(name, model, x[:0], y[:0])
    assert len(r) == 0 and r.x_adv.shape == (0, *SHAPE) and r.success.shape == (0,)
    assert r.forwards.shape == (0,) and model.net.forward_rows == N  # only make_inputs' pass


@pytest.mark.parametrize("name", sorted(set(CASES) - TARGETED_ONLY))
def test_already_misclassified_inputs(name):
    model = make_model()
    x, y = make_inputs(model)
    wrong = targets(y)  # labels the model does not predict: every input starts misclassified
    r = run(name, model, x, wrong, targeted=False)
    if name in MINIMUM_NORM:  # nothing to do: x itself (C&W's tanh box moves it by about 1e-6)
        assert r.success.all() and float(r.norms["linf"].max()) <= 1e-5
    with torch.no_grad():
        assert torch.equal(r.success, model(r.x_adv).argmax(1) != wrong)


@pytest.mark.parametrize("name", sorted(set(CASES) - UNTARGETED_ONLY))
def test_targeted_call(name):
    model = make_model()
    x, y = make_inputs(model)
    t = targets(y)
    r = run(name, model, x, t, targeted=True)
    assert r.targeted and torch.equal(r.labels, t)
    with torch.no_grad():
        assert torch.equal(r.success, model(r.x_adv).argmax(1) == t)


@pytest.mark.parametrize("name", sorted(UNTARGETED_ONLY))
def test_untargeted_only_attacks_refuse_targets(name):
    model = make_model()
    x, y = make_inputs(model)
    with pytest.raises(AttackInputError, match="untargeted"):
        run(name, model, x, targets(y), targeted=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unknown_setting_is_refused_before_any_pass(name):
    model = make_model()
    x, y = make_inputs(model)
    with pytest.raises(TypeError, match="no_such_setting"):
        run(name, model, x, y, no_such_setting=1)
    assert model.net.forward_rows == N


class _SqrtNet(nn.Module):
    """``sqrt(u) @ Wᵀ`` with the weights of pixel 0 at zero: at u₀ = 0 its gradient is 0·∞ = NaN."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.w = nn.Parameter(torch.randn(K, 16))
        with torch.no_grad():
            self.w[:, 0] = 0

    def forward(self, u):
        return u.flatten(1).sqrt() @ self.w.T


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_nan_leaves_an_attack_and_nan_gradients_are_counted(name):
    model = Classifier(_SqrtNet(), input_shape=SHAPE, num_classes=K).eval()
    x = torch.rand((N, *SHAPE), generator=torch.Generator().manual_seed(2)) * 0.8 + 0.1
    x[:, 0, 0, 0] = 0.0
    with torch.no_grad():
        y = model(x).argmax(1)
    labels = targets(y) if name in TARGETED_ONLY else y
    r = run(name, model, x, labels)
    assert torch.isfinite(r.x_adv).all() and torch.isfinite(r.x_raw).all()
    assert r.nonfinite_gradients.shape == (N,)
    if name in GRADIENT_AT_X:  # a gradient was taken at x itself (pixel 0 at 0): its NaN entries were zeroed
        assert (r.nonfinite_gradients > 0).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_model_with_more_outputs_than_declared_is_refused(name):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, K + 2))
    model = Classifier(net, input_shape=SHAPE, num_classes=K).eval()
    x = torch.rand((N, *SHAPE), generator=torch.Generator().manual_seed(1))
    y = torch.zeros(N, dtype=torch.long)
    labels = targets(y) if name in TARGETED_ONLY else y
    with pytest.raises(AttackInputError, match=rf"shape \(N, {K}\)"):
        run(name, model, x, labels)


_NUMERIC = sorted((name, key) for name, case in CASES.items() for key, v in case.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool))


@pytest.mark.parametrize("name, key", _NUMERIC)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5])
def test_a_setting_out_of_range_is_refused_before_any_pass(name, key, bad):
    model = make_model()
    x, y = make_inputs(model)
    labels = targets(y) if name in TARGETED_ONLY else y
    with pytest.raises(AttackInputError, match=key):
        run(name, model, x, labels, **{key: bad})
    assert model.net.forward_rows == N, "refused before any model pass"


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_check_raw_must_be_a_bool(bad):
    model = make_model()
    x, y = make_inputs(model)
    with pytest.raises(AttackInputError, match="check_raw must be True or False"):
        ATTACKS["fgsm"](model, x, y, eps=0.1, check_raw=bad)
