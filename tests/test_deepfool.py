"""DeepFool l2/l∞: exact minimal distances on affine classifiers, both overshoot conventions,
per-input stopping, exact pass counts, and a cross-check against Foolbox 3.3.4 on cw_mnist."""
from __future__ import annotations

import math

import pytest
import torch

from _gn_helpers import affine, close, exact_distances, inputs, mlp
from reprolib.attacks import AttackInputError
from reprolib.attacks.core import recheck
from reprolib.attacks.deepfool_lp import deepfool


@pytest.mark.parametrize("p", [2.0, math.inf])
@pytest.mark.parametrize("K", [2, 10])
def test_reaches_the_closed_form_minimal_distance_on_affine_models(p, K):
    model, W, b = affine(K, seed=20 + K, scale=0.5)
    x = inputs(16)
    with torch.no_grad():
        y = model(x).argmax(1)
    d, _ = exact_distances(W, b, x, y, p)
    res = deepfool(model, x, y, norm=p, overshoot=0.002, overshoot_mode="per_step")
    assert torch.equal(res.x_raw, res.x_adv), "the test inputs must stay away from the bounds"
    assert bool(res.success.all())
    ratio = res.info["norm"] / d
    assert bool((ratio >= 1 - 1e-9).all()) and bool((ratio <= 1.01).all()), ratio
    close(ratio, torch.full_like(ratio, 1.002), rtol=1e-9)  # one exact step, overshoot 0.2 %
    assert torch.equal(res.info["iterations"], torch.ones(16, dtype=torch.long))


@pytest.mark.parametrize("p", [2.0, math.inf])
def test_overshoot_conventions(p):
    model, W, b = affine(5, seed=4, scale=0.5)
    x = inputs(8)
    with torch.no_grad():
        y = model(x).argmax(1)
    d, _ = exact_distances(W, b, x, y, p)
    per_step = deepfool(model, x, y, norm=p, overshoot=0.02, overshoot_mode="per_step")
    total = deepfool(model, x, y, norm=p, overshoot=0.02, overshoot_mode="total")
    # document 001: (1 + o)·r on every step, no stabiliser; LTS4/Foolbox: (1 + o)·Σ (r + 1e-4)
    close(per_step.info["norm"], 1.02 * d, rtol=1e-9)
    close(total.info["norm"], 1.02 * (d + 1e-4), rtol=1e-9)
    with pytest.raises(AttackInputError):
        deepfool(model, x, y, overshoot_mode="both")


def test_per_input_stop_counts_bounds_and_recheck():
    model = mlp(5, counting=True)
    net = model.net
    x = inputs(24, lo=0.0, hi=1.0, seed=9)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred.clone()
    y[:4] = (pred[:4] + 1) % 5                  # four inputs already "misclassified"
    for p in (2.0, math.inf):
        net.reset()
        res = deepfool(model, x, y, norm=p, candidates=4)
        it = res.info["iterations"]
        assert torch.equal(it[:4], torch.zeros(4, dtype=torch.long))
        assert float((res.x_adv[:4] - x[:4]).abs().max()) == 0
        stopped = res.info["fooled_in_loop"]
        # one forward per iteration and for the final check; in an iteration where inputs stop,
        # either the others' graph is rebuilt (one more forward each) or the finished ones are
        # back-propagated with them (candidates − 1 backward each), whichever is fewer passes
        assert ((res.forwards >= it + stopped.long()) & (res.forwards <= 2 * it + stopped.long())).all()
        assert ((res.backwards >= 3 * it) & (res.backwards <= 3 * (it + stopped.long()))).all()
        assert bool((res.forwards > it + stopped.long()).any()) and bool((res.backwards > 3 * it).any())
        assert net.forward_rows == int(res.forwards.sum())
        assert net.backward_rows == int(res.backwards.sum())
        assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
        assert torch.equal(res.success, recheck(model, res.x_adv, y, False))
        assert torch.equal(res.success_raw, recheck(model, res.x_raw, y, False))
        assert bool(res.success.all()) and bool((it > 0)[4:].all())
        close(res.info["norm"], (res.x_adv - x).flatten(1).norm(p=p, dim=1))


def test_iteration_cap_and_no_clip_option():
    model = mlp(5)
    x = inputs(10, lo=0.0, hi=1.0)
    with torch.no_grad():
        y = model(x).argmax(1)
    capped = deepfool(model, x, y, norm=math.inf, steps=1, overshoot=0.0, overshoot_mode="per_step")
    assert int(capped.info["iterations"].max()) <= 1
    raw = deepfool(model, x, y, norm=2.0, clip=False, overshoot_mode="per_step", check_raw=True)
    assert bool(raw.success_raw.all())
    assert torch.equal(raw.success, recheck(model, raw.x_adv, y, False))
    assert float(raw.x_adv.min()) >= 0 and float(raw.x_adv.max()) <= 1
    with pytest.raises(AttackInputError):
        deepfool(model, x, y, targeted=True)


def test_norm_names_numbers_and_bad_settings():
    model = mlp(5, counting=True)
    x = inputs(6)
    with torch.no_grad():
        y = model(x).argmax(1)
    by_name = deepfool(model, x, y, norm="linf", overshoot_mode="per_step")
    by_number = deepfool(model, x, y, norm=math.inf, overshoot_mode="per_step")
    assert torch.equal(by_name.x_adv, by_number.x_adv) and by_name.params["norm"] == "linf"
    p3 = deepfool(model, x, y, norm=3)
    assert bool(p3.success.all())
    close(p3.info["norm"], (p3.x_adv - x).flatten(1).norm(p=3, dim=1))
    model.net.reset()
    for kw, match in [(dict(norm=0.5), "norm"), (dict(steps=-1), "steps"), (dict(overshoot=-0.1), "overshoot"),
                      (dict(candidates=1), "candidates"), (dict(stabiliser=-1.0), "stabiliser"),
                      (dict(proxy="probs"), "proxy"), (dict(targeted=True), "untargeted")]:
        with pytest.raises(AttackInputError, match=match):
            deepfool(model, x, y, **kw)
    assert model.net.forward_rows == 0


# ----------------------------------------------------------------------------- vs Foolbox 3.3.4
@pytest.fixture(scope="module")
def cw_mnist_batch(cw_mnist, mnist_test):
    from reprolib import data

    model = cw_mnist
    # 16 images: the comparison takes ~100 s at 64 on a busy 2-core box (ours agrees with Foolbox
    # per input to 1e-6 relative at 64 as well).
    ds = data.first_correct(model, mnist_test, 16)
    return model, ds.x, ds.y


@pytest.mark.slow
@pytest.mark.parametrize("p", [2.0, math.inf])
def test_matches_foolbox_deepfool(cw_mnist_batch, p):
    fb = pytest.importorskip("foolbox", minversion="3.3.4")
    model, x, y = cw_mnist_batch
    attack = (fb.attacks.L2DeepFoolAttack if p == 2 else fb.attacks.LinfDeepFoolAttack)(
        steps=50, candidates=10, overshoot=0.02)
    _, clipped, _ = attack(fb.PyTorchModel(model, bounds=model.bounds), x, y, epsilons=None)
    theirs_ok = recheck(model, clipped, y, False)
    theirs_norm = (clipped - x).flatten(1).norm(p=p, dim=1)
    ours = deepfool(model, x, y, norm=p, steps=50, candidates=10, overshoot=0.02, overshoot_mode="total")
    assert ours.success_rate >= float(theirs_ok.float().mean())
    assert float(ours.info["norm"][ours.success].median()) <= 1.01 * float(theirs_norm[theirs_ok].median())


def test_finished_inputs_cost_the_fewest_passes():
    """In an iteration where inputs stop, rebuilding the graph for the others (a forward each)
    replaces back-propagating through the finished ones (candidates − 1 backward each) exactly
    when it costs fewer passes."""
    from reprolib.attacks.ops.jacobian import regraph_pays
    assert regraph_pays(finished=3, going_on=20, backward_passes=9) and not regraph_pays(2, 20, 9)
    model = mlp(5, counting=True)
    net = model.net
    x = inputs(12, lo=0.0, hi=1.0, seed=3)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:8] = (y[:8] + 1) % 5  # eight finished at the first forward, four go on: rebuild (4·8 > 4)
    net.reset()
    res = deepfool(model, x, y, norm=2.0, candidates=5, steps=1)
    assert res.backwards[:8].tolist() == [0] * 8 and res.forwards[:8].tolist() == [1] * 8
    assert res.forwards[8:].tolist() == [2] * 4 and res.backwards[8:].tolist() == [4] * 4
    assert (net.forward_rows, net.backward_rows) == (int(res.forwards.sum()), int(res.backwards.sum()))
