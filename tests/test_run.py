"""reprolib.evaluation.run: batched, cached, resumable runs of an attack over a set of images."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from reprolib import cache
from reprolib.attacks import cw_l2, fgsm, pgd
from reprolib.attacks.ops.linearized import gnii_value
from reprolib.evaluation import exact, metrics
from reprolib.evaluation.run import run_attack
from reprolib.models import Classifier


def linear_model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), input_shape=(1, 3, 4), num_classes=3).eval()


def images(model, n=10):
    x = torch.rand(n, 1, 3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, model(x).argmax(1)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_CACHE_DIR", str(tmp_path))
    cache.set_enabled(True)
    yield tmp_path
    cache.set_enabled(None)


def test_batches_join_to_the_single_call():
    model = linear_model()
    x, y = images(model)
    settings = dict(eps=0.3, norm="l2", steps=5, stop_at_success=True)
    whole = pgd(model, x, y, **settings)
    joined = run_attack(pgd, model, (x, y), batch_size=3, progress=False, **settings)
    assert torch.allclose(joined.x_adv, whole.x_adv, atol=1e-6)
    assert torch.equal(joined.success, whole.success) and torch.equal(joined.success_raw, whole.success_raw)
    assert torch.equal(joined.forwards, whole.forwards) and torch.equal(joined.backwards, whole.backwards)
    assert torch.equal(joined.info["stopped_at"], whole.info["stopped_at"])
    assert torch.allclose(joined.norms_raw["l2"], whole.norms_raw["l2"])
    assert joined.attack == "pgd" and joined.params == whole.params


def test_summary_is_cached_per_batch_and_resumes(cache_dir):
    model = linear_model()
    x, y = images(model)
    calls, state = [], {"interrupt": True}

    def counted(model, xb, yb, **kw):
        calls.append(len(xb))
        if state["interrupt"] and len(calls) == 3:
            raise KeyboardInterrupt
        return fgsm(model, xb, yb, **kw)

    summary = lambda r: {"success": r.success, "linf": r.norms["linf"]}  # noqa: E731
    run = lambda s=summary: run_attack(counted, model, (x, y), batch_size=4, summary=s,  # noqa: E731
                                       cache_name="t/fgsm", progress=False, eps=0.1)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert calls == [4, 4, 2]
    state["interrupt"] = False
    calls.clear()
    first = run()
    assert calls == [2], "the run resumes after the two batches it had finished"
    again = run()
    assert calls == [2], "a finished run is read from the cache"
    assert torch.equal(first["success"], again["success"]) and first["linf"].shape == (10,)
    assert first["seconds"].shape == (3,)
    other = run(lambda r: {"success": r.success})
    assert calls == [2, 4, 4, 2], "another summary is another key"
    assert set(other) == {"success", "seconds"}


def test_per_input_settings_are_split_with_the_batches():
    model = linear_model()
    x, y = images(model)
    const = torch.logspace(-2, 1, len(x))  # one c per input: batches must not shift or repeat them
    settings = dict(binary_search_steps=2, steps=20, abort_early=False)
    whole = cw_l2(model, x, y, initial_const=const, **settings)
    joined = run_attack(cw_l2, model, (x, y), batch_size=3, progress=False, initial_const=const, **settings)
    assert torch.allclose(joined.x_adv, whole.x_adv, atol=1e-6)
    assert torch.equal(joined.success, whole.success) and torch.equal(joined.forwards, whole.forwards)
    scalar = run_attack(cw_l2, model, (x, y), batch_size=3, progress=False, initial_const=0.5, **settings)
    assert torch.allclose(scalar.x_adv, cw_l2(model, x, y, initial_const=0.5, **settings).x_adv, atol=1e-6)


@pytest.mark.parametrize("disabled", [True, False])
def test_progress_bar_obeys_tqdm_disable(disabled):
    script = ("import torch; from torch import nn; from reprolib.attacks import fgsm; "
              "from reprolib.evaluation.run import run_attack; from reprolib.models import Classifier; "
              "m = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), input_shape=(1, 2, 2), num_classes=2); "
              "run_attack(fgsm, m.eval(), (torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)), batch_size=2, "
              "eps=0.1)")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"} | ({"TQDM_DISABLE": "1"} if disabled else {})
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("fgsm" in proc.stderr) is not disabled, proc.stderr


def test_bad_batch_size():
    model = linear_model()
    with pytest.raises(ValueError, match="batch_size"):
        run_attack(fgsm, model, images(model), batch_size=0, eps=0.1)


def test_margin_gradients_of_a_linear_model_are_its_weight_differences():
    model = linear_model()
    x, y = images(model, 4)
    df, dg = metrics.margin_gradients(model, x, y)
    W = model.net[1].weight.detach()
    for i in range(len(x)):
        others = [j for j in range(3) if j != int(y[i])]
        with torch.no_grad():
            z = model(x[i:i + 1])[0]
        for c, j in enumerate(others):
            assert torch.allclose(dg[i, c].flatten(), W[y[i]] - W[j], atol=1e-6)
            assert math.isclose(float(df[i, c]), float(z[y[i]] - z[j]), abs_tol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_linearized_margin_lp_equals_the_closed_form(norm):
    g = torch.randn(2, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    L = torch.tensor([0.3, -0.2], dtype=torch.float64)
    closed = gnii_value(L, g, 0.05, math.inf if norm == "linf" else 1)
    for i in range(2):
        assert math.isclose(exact.linearized_margin_lp(float(L[i]), g[i], 0.05, norm), float(closed[i]),
                            abs_tol=1e-9)


def test_raw_successes_join_only_when_every_batch_checked_them():
    model = linear_model()
    x, y = images(model)
    unchecked = run_attack(fgsm, model, (x, y), batch_size=4, progress=False, eps=0.5)
    assert not torch.equal(unchecked.x_raw, unchecked.x_adv) and unchecked.success_raw is None
    checked = run_attack(fgsm, model, (x, y), batch_size=4, progress=False, eps=0.5, check_raw=True)
    with torch.no_grad():
        raw_pred = model(checked.x_raw).argmax(1)
    assert torch.equal(checked.success_raw, raw_pred != y)
    assert torch.equal(checked.success, unchecked.success) and checked.params["check_raw"] is True
