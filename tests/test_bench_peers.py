"""reprolib.evaluation.peers (benchmarks/peers.py): the pass counter, equal results where the algorithms are equal
(FGSM and PGD against Foolbox), exact pass counts, and the results file. Needs only Foolbox
(the test extra); ART and torchattacks are never imported."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from reprolib import data
from reprolib.models import Classifier

N = 8


@pytest.fixture(scope="module")
def peers():
    from reprolib.evaluation import peers
    return peers


@pytest.fixture(scope="module")
def sample(cw_mnist, mnist_test):
    s = data.first_correct(cw_mnist, mnist_test, N)
    return s.x, s.y


@pytest.fixture(scope="module")
def rows(peers, cw_mnist, sample):
    pytest.importorskip("foolbox", minversion="3.3.4")
    return peers.run(["fgsm", "pgd_linf", "pgd_l2"], cw_mnist, images=sample, libraries=["foolbox"],
                     settings={"pgd_linf": {"steps": 3, "stop_at_success": False},
                               "pgd_l2": {"steps": 3, "stop_at_success": False}}, name="cw_mnist",
                     progress=False, repeats=2)


def _pair(rows, name):
    ours, fb = [r for r in rows if r["pair"] == name]
    assert (ours["library"], fb["library"]) == ("reprolib", "foolbox")
    assert ours["error"] is None and fb["error"] is None, (ours["error"], fb["error"])
    return ours, fb


def test_pass_counter_counts_forward_and_backward_rows(peers):
    net = nn.Linear(4, 3)
    model = Classifier(net, input_shape=(4,), num_classes=3).eval()
    with peers.counting(model) as counter:
        assert model.net is counter and not any(p.requires_grad for p in model.parameters())
        with torch.no_grad():
            model(torch.rand(5, 4))
        x = torch.rand(2, 4, requires_grad=True)
        out = model(x)
        torch.autograd.grad(out[:, 0].sum(), x, retain_graph=True)
        torch.autograd.grad(out[:, 1].sum(), x)
        assert (counter.forward_rows, counter.backward_rows) == (7, 4)
    assert model.net is net and all(p.requires_grad for p in model.parameters())


def test_fgsm_equals_foolbox_at_equal_eps(rows):
    ours, fb = _pair(rows, "fgsm")
    eps = ours["settings"]["eps"]
    assert fb["native"]["epsilons"] == eps
    assert ours["success"] == fb["success"] and 0 < sum(ours["success"]) < N
    assert max(ours["norms"]["linf"] + fb["norms"]["linf"]) <= eps + 1e-6
    for key in ("l1", "l2", "linf"):  # the same algorithm: the same perturbations
        assert ours["norms"][key] == pytest.approx(fb["norms"][key], abs=1e-4)
    assert ours["median_norm"] == fb["median_norm"] and fb["median_norm_ratio"] == 1.0


@pytest.mark.parametrize("name", ["pgd_linf", "pgd_l2"])
def test_pgd_equals_foolbox_at_equal_budget(rows, name):
    ours, fb = _pair(rows, name)
    s = ours["settings"]
    assert s["steps"] == 3 and s["step_size"] == pytest.approx(2.5 * s["eps"] / 3)
    assert fb["native"]["abs_stepsize"] == s["step_size"] and fb["native"]["steps"] == 3
    assert ours["success"] == fb["success"]
    assert max(ours["norms"][ours["norm"]]) <= s["eps"] + 1e-5
    assert ours["norms"]["l2"] == pytest.approx(fb["norms"]["l2"], abs=1e-4)


def test_pass_counts_are_exact(rows):
    ours, fb = _pair(rows, "fgsm")
    # reprolib: one gradient (1 forward + 1 backward), then its re-check of x_adv (the unclipped
    # x_raw only on request); Foolbox: the gradient + its is_adv check.
    assert (ours["reported_forwards_per_image"], ours["reported_backwards_per_image"]) == (1, 1)
    assert (ours["forward_passes_per_image"], ours["backward_passes_per_image"]) == (2, 1)
    assert (fb["forward_passes_per_image"], fb["backward_passes_per_image"]) == (2, 1)
    for name in ("pgd_linf", "pgd_l2"):
        ours, fb = _pair(rows, name)
        # 3 steps of (forward + backward), plus one final check each (PGD clips every step, so
        # reprolib re-checks x_adv only).
        assert (ours["reported_forwards_per_image"], ours["reported_backwards_per_image"]) == (3, 3)
        for r in (ours, fb):
            assert (r["forward_passes_per_image"], r["backward_passes_per_image"]) == (4, 3)
            assert r["passes_per_image"] == 7


def test_missing_peer_is_a_row_not_a_crash(peers, cw_mnist, sample, monkeypatch):
    real = peers.version
    monkeypatch.setattr(peers, "version", lambda lib: None if lib == "art" else real(lib))
    rows = peers.run(["fgsm"], cw_mnist, images=(sample[0][:2], sample[1][:2]), libraries=["art"],
                     progress=False)
    assert [r["library"] for r in rows] == ["reprolib", "art"]
    assert rows[1]["error"] == "art is not installed" and rows[1]["time_ratio"] is None
    assert rows[0]["error"] is None and len(rows[0]["success"]) == 2


def test_bad_names_and_settings_raise(peers):
    with pytest.raises(ValueError, match="unknown pairs"):
        peers.resolve_pairs(["fgsm", "nope"])
    with pytest.raises(ValueError, match="unknown settings"):
        peers.PAIRS["cw_l2"].settings("mnist", {"max_iter": 5})
    s = peers.PAIRS["zoo"].settings("mnist", {"steps": 30})
    assert s["abort_early_every"] == 3  # ART's fixed rule, derived after the override


def test_resume_takes_finished_rows_from_the_cache(peers, cw_mnist, sample, tmp_path, monkeypatch):
    pytest.importorskip("foolbox", minversion="3.3.4")
    monkeypatch.setenv("REPROLIB_CACHE_DIR", str(tmp_path))
    real, computed = peers.run_one, []
    monkeypatch.setattr(peers, "run_one", lambda pair, lib, *a: computed.append(lib) or real(pair, lib, *a))
    kwargs = dict(images=(sample[0][:3], sample[1][:3]), libraries=["foolbox"], name="cw_mnist",
                  progress=False, resume=True)
    first = peers.run(["fgsm"], cw_mnist, **kwargs)
    again = peers.run(["fgsm"], cw_mnist, **kwargs)
    assert computed == ["reprolib", "foolbox"]  # the second run computed nothing
    assert [r["seconds"] for r in again] == [r["seconds"] for r in first]
    assert again[1]["time_ratio"] == first[1]["time_ratio"]
    peers.run(["fgsm"], cw_mnist, settings={"fgsm": {"eps": 0.25}}, **kwargs)
    assert computed == ["reprolib", "foolbox"] * 2  # other settings: other rows


def test_results_file_and_table(peers, cw_mnist, tmp_path, capsys, monkeypatch):
    pytest.importorskip("foolbox", minversion="3.3.4")
    monkeypatch.setenv("REPROLIB_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "peers.json"
    peers.main(["--models", "cw_mnist", "--pairs", "fgsm", "--libraries", "foolbox", "--images", "4",
                "--set", "fgsm.eps=0.25", "--out", str(out), "--no-progress"])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "peers" and doc["versions"]["foolbox"] == "3.3.4"
    assert {"hardware", "torch_threads", "torch", "python", "seed"} <= set(doc)
    assert doc["images"]["cw_mnist"]["dataset"] == "mnist" and len(doc["images"]["cw_mnist"]["indices"]) == 4
    ours, fb = doc["results"]
    for r in (ours, fb):
        assert r["model"] == "cw_mnist" and r["n_images"] == 4 and r["settings"]["eps"] == 0.25
        for key in ("success_rate", "seconds", "seconds_per_image", "forward_passes_per_image",
                    "backward_passes_per_image", "passes_per_image"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert len(r["success"]) == 4 and set(r["norms"]) == {"l1", "l2", "linf"}
        assert r["success_rate"] == sum(r["success"]) / 4
    assert "reported_forwards_per_image" in ours and "time_ratio" not in ours
    assert fb["time_ratio"] == pytest.approx(ours["seconds"] / fb["seconds"])
    printed = capsys.readouterr().out
    assert "fgsm" in printed and "foolbox" in printed and "written:" in printed


def test_repeats_and_per_image_comparison(rows):
    ours, fb = _pair(rows, "pgd_l2")
    for r in (ours, fb):
        assert len(r["seconds_all"]) == 2 and r["seconds"] == pytest.approx(sum(r["seconds_all"]) / 2)
    lo, hi = fb["time_ratio_range"]
    assert lo <= fb["time_ratio"] <= hi
    assert fb["passes_ratio"] == 1.0
    common = sum(a and b for a, b in zip(ours["success"], fb["success"]))
    assert fb["n_common"] == common == fb["norm_smaller"] + fb["norm_equal"] + fb["norm_larger"]


def test_pgd_stops_each_input_at_its_first_success_by_default(peers, cw_mnist, sample):
    pytest.importorskip("foolbox", minversion="3.3.4")
    assert peers.PAIRS["pgd_linf"].settings("mnist")["stop_at_success"] is True
    ours, fb = peers.run(["pgd_linf"], cw_mnist, images=sample, libraries=["foolbox"], progress=False,
                         settings={"pgd_linf": {"steps": 10}})
    assert sum(ours["success"]) >= sum(fb["success"]) > 0
    assert all(a >= b for a, b in zip(ours["success"], fb["success"]))
    assert ours["passes_per_image"] < fb["passes_per_image"] and fb["passes_ratio"] < 1
