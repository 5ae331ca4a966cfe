"""The smallest successful ε on a grid (reprolib.evaluation.eps_grid, document 002's Table 4
protocol): closed forms on two-class affine models, agreement with a brute-force scan of the
attacks themselves, exact pass counts, failures and the settings' checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from _gn_helpers import SHAPE, inputs, mlp
from reprolib.attacks import fgm, ifgm
from reprolib.attacks.core import AttackInputError
from reprolib.evaluation.eps_grid import smallest_eps_fgm, smallest_eps_ifgm
from reprolib.models import Classifier


class Rows(nn.Module):
    """Counts every row the model sees, with or without gradients."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.rows = net, 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def two_class(seed: int = 0):
    """A float64 affine classifier with two classes on a box wide enough that no step of the
    tests is clipped; returns the model and, per input of :func:`inputs`, its label and the
    margin m0 = Z_label − Z_other and Δw = w_label − w_other."""
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(36, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 36, generator=gen, dtype=torch.float64))
        lin.bias.zero_()
    model = Classifier(Rows(nn.Sequential(nn.Flatten(), lin)), input_shape=SHAPE, num_classes=2,
                       bounds=(-100.0, 100.0)).eval()
    x = inputs(12, seed=seed + 1)
    with torch.no_grad():
        z = lin(x.flatten(1))
    label = z.argmax(1)
    w = lin.weight.detach()
    dw = w[label] - w[1 - label]
    m0 = (z.gather(1, label[:, None]) - z.gather(1, (1 - label)[:, None])).squeeze(1)
    return model, x, label, m0, dw


def closed_form_eps(norm: str, m0: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
    """The ε at which the FGM step (and, on an affine two-class model, the I-FGM run) reaches the
    boundary: the margin falls by ε·‖Δw‖₁ (ℓ∞, sign step), ε·‖Δw‖₂ (ℓ2) or ε·‖Δw‖₂²/‖Δw‖₁
    (ℓ1)."""
    l1, l2 = dw.abs().sum(1), dw.norm(dim=1)
    return {"linf": m0 / l1, "l2": m0 / l2, "l1": m0 * l1 / l2 ** 2}[norm]


GRIDS = {"linf": np.arange(1e-3, 1, 1e-3), "l2": np.arange(1e-2, 10, 1e-2), "l1": np.arange(1, 1e3, 1)}


@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fgm_grid_finds_the_first_grid_value_past_the_boundary(norm, targeted):
    model, x, label, m0, dw = two_class()
    grid = GRIDS[norm]
    want = closed_form_eps(norm, m0, dw)
    assert bool((want < grid[-1]).all())
    expected = torch.as_tensor(np.searchsorted(grid, want.numpy(), side="right"))  # first g > ε*
    y = 1 - label if targeted else label
    r = smallest_eps_fgm(model, x, y, grid=grid, norm=norm, targeted=targeted, chunk=37)
    assert r.success.all()
    assert torch.equal(r.info["grid_index"], expected)
    torch.testing.assert_close(r.info["eps"], torch.as_tensor(grid)[expected])
    # the example is FGM's at that ε, clipped, and no larger grid value was needed
    torch.testing.assert_close(r.x_adv, fgm(model, x, y, eps=r.info["eps"], norm=norm, targeted=targeted).x_adv)
    before = fgm(model, x, y, eps=torch.as_tensor(grid)[(expected - 1).clamp(min=0)], norm=norm, targeted=targeted)
    assert not bool(before.success[expected > 0].any())


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_ifgm_grid_on_an_affine_model_equals_the_closed_form(norm):
    """On an affine two-class model every I-FGM step has the same direction, and the ε-ball
    clipping puts the last iterate at ε·d: the smallest ε is FGM's closed form."""
    model, x, label, m0, dw = two_class(seed=3)
    grid = GRIDS[norm][:400]
    want = closed_form_eps(norm, m0, dw)
    keep = want < grid[-1]
    expected = torch.as_tensor(np.searchsorted(grid, want.numpy(), side="right"))
    r = smallest_eps_ifgm(model, x, label, grid=grid, norm=norm)
    assert torch.equal(r.success, keep)
    assert torch.equal(r.info["grid_index"][keep], expected[keep])
    assert bool(r.info["eps"][~keep].isnan().all()) and bool((r.info["grid_index"][~keep] == -1).all())
    assert torch.equal(r.x_adv[~keep], x[~keep])


def test_both_scans_agree_with_a_brute_force_scan_of_the_attacks():
    """On a ReLU MLP with five classes (no closed form), untargeted and targeted: the first
    success of fgm / ifgm run at every grid value, one value at a time."""
    model = mlp(5, seed=2)
    x = inputs(10, seed=4)
    with torch.no_grad():
        pred = model(x).argmax(1)
    grid = np.arange(0.02, 0.6, 0.02)
    for targeted, y in ((False, pred), (True, (pred + 2) % 5)):
        for norm in ("linf", "l2"):
            g = grid if norm == "linf" else grid * 6
            firsts = {"fgm": torch.full((10,), -1), "ifgm": torch.full((10,), -1)}
            for k, eps in enumerate(g):
                for name, fn in (("fgm", fgm), ("ifgm", ifgm)):
                    ok = fn(model, x, y, eps=float(eps), norm=norm, targeted=targeted).success
                    firsts[name][(firsts[name] < 0) & ok] = k
            a = smallest_eps_fgm(model, x, y, grid=g, norm=norm, targeted=targeted, chunk=4)
            b = smallest_eps_ifgm(model, x, y, grid=g, norm=norm, targeted=targeted)
            assert torch.equal(a.info["grid_index"], firsts["fgm"]), (targeted, norm)
            assert torch.equal(b.info["grid_index"], firsts["ifgm"]), (targeted, norm)
            assert torch.equal(a.success, firsts["fgm"] >= 0) and torch.equal(b.success, firsts["ifgm"] >= 0)
            assert (firsts["fgm"] >= 0).any() and (firsts["ifgm"] >= 0).any()


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_fgm_grid_pass_counts_are_exact(chunk):
    model, x, label, m0, dw = two_class(seed=5)
    grid = GRIDS["l2"][:300]
    want = closed_form_eps("l2", m0, dw)
    expected = torch.as_tensor(np.searchsorted(grid, want.numpy(), side="right"))
    failed = expected >= len(grid)
    model.net.rows = 0
    r = smallest_eps_fgm(model, x, label, grid=grid, norm="l2", chunk=chunk)
    # one gradient (a forward and a backward pass), then the candidates of every chunk up to the
    # one holding the first success (all 300 for an input that never succeeds)
    checked = torch.where(failed, torch.tensor(len(grid)),
                          ((expected // chunk + 1) * chunk).clamp(max=len(grid)))
    assert torch.equal(r.forwards, 1 + checked) and torch.equal(r.backwards, torch.ones(12, dtype=torch.long))
    assert model.net.rows == int(r.forwards.sum()) + len(x)  # + the uncounted re-check of the result
    assert torch.equal(r.success, ~failed)


def test_ifgm_grid_pass_counts_are_exact_and_failures_return_the_input():
    model, x, label, m0, dw = two_class(seed=6)
    want = closed_form_eps("linf", m0, dw)
    grid = GRIDS["linf"][GRIDS["linf"] < float(want.median())]  # about half the inputs succeed
    expected = torch.as_tensor(np.searchsorted(grid, want.numpy(), side="right"))
    tried = torch.where(expected < len(grid), expected + 1, torch.tensor(len(grid)))
    assert bool((expected >= len(grid)).any()) and bool((expected < len(grid)).any())
    model.net.rows = 0
    r = smallest_eps_ifgm(model, x, label, grid=grid, norm="linf", steps=4)
    assert torch.equal(r.forwards, tried * 5) and torch.equal(r.backwards, tried * 4)
    assert model.net.rows == int(r.forwards.sum()) + len(x)
    fail = ~r.success
    assert torch.equal(r.x_adv[fail], x[fail]) and bool(r.info["eps"][fail].isnan().all())
    assert torch.equal(r.norms["l2"][fail], torch.zeros(int(fail.sum()), dtype=x.dtype))
    assert r.attack == "smallest_eps_ifgm" and r.params["steps"] == 4


@pytest.mark.parametrize("fn", [smallest_eps_fgm, smallest_eps_ifgm])
@pytest.mark.parametrize("settings", [
    dict(grid=[]), dict(grid=[0.2, 0.1]), dict(grid=[0.0, 0.1]), dict(grid=[0.1, math.inf]),
    dict(grid=[0.1], norm="l3"), dict(grid=[0.1], loss="hinge?"),
])
def test_bad_settings_are_refused_before_any_pass(fn, settings):
    model, x, label, _, _ = two_class()
    model.net.rows = 0
    with pytest.raises(AttackInputError):
        fn(model, x, label, **settings)
    assert model.net.rows == 0


def test_fgm_grid_refuses_a_bad_chunk_and_inputs_outside_the_box():
    model, x, label, _, _ = two_class()
    with pytest.raises(AttackInputError, match="chunk"):
        smallest_eps_fgm(model, x, label, grid=[0.1], chunk=0)
    with pytest.raises(AttackInputError):
        smallest_eps_fgm(model, x + 500.0, label, grid=[0.1])
