"""reprolib.evaluation.scaling: rows per batch size and image count, errors, and the memory probe."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reprolib.attacks import pgd
from reprolib.evaluation import scaling
from reprolib.models import Classifier


def _model() -> Classifier:
    torch.manual_seed(0)
    return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), input_shape=(1, 4, 4), num_classes=3).eval()


def _images(n=12):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_by_batch_size_gives_the_same_attack_at_every_batch_size():
    model = _model()
    x, y = _images()
    rows = scaling.by_batch_size(pgd, model, x, y, [1, 5, 12], eps=0.1, steps=3)
    assert [r["batch_size"] for r in rows] == [1, 5, 12] and all(r["n_images"] == 12 for r in rows)
    assert len({r["success_rate"] for r in rows}) == 1  # per-input attack: batching changes nothing
    assert all(r["passes_per_image"] == 6 for r in rows)
    assert all(r["seconds_per_image"] == pytest.approx(r["seconds"] / 12) for r in rows)


def test_by_images_and_errors():
    model = _model()
    x, y = _images()
    rows = scaling.by_images(pgd, model, x, y, [3, 12], batch_size=4, eps=0.1, steps=2)
    assert [r["n_images"] for r in rows] == [3, 12]
    with pytest.raises(ValueError, match="only 12 images"):
        scaling.by_batch_size(pgd, model, x, y, [16], eps=0.1)
    with pytest.raises(ValueError, match="integers ≥ 1"):
        scaling.by_images(pgd, model, x, y, [0], batch_size=4, eps=0.1)


def test_peak_memory_sees_a_large_allocation():
    def allocate():
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        return float(t.sum())

    value, peak = scaling.peak_memory(allocate, torch.device("cpu"))
    assert value == 64 * 2**20 // 4 and peak >= 48 * 2**20
    row = scaling.memory(pgd, _model(), *_images(), batch_size=6, eps=0.1, steps=2)
    assert row["n_images"] == 12 and row["peak_bytes"] >= 0


def test_breakdown_times_the_network_passes():
    model = _model()
    x, y = _images()
    b = scaling.breakdown(pgd, model, x, y, eps=0.1, steps=3)
    assert b["forward_seconds"] > 0 and b["backward_seconds"] > 0
    assert b["seconds"] == pytest.approx(b["forward_seconds"] + b["backward_seconds"] + b["other_seconds"])
    assert 0 < b["share_in_model"] < 1
    assert not model.net._forward_hooks and not model.net._backward_hooks  # the hooks are removed
