"""reprolib.cache entries: self-describing, read with the safe loader, recomputed when foreign."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reprolib import cache
from reprolib.attacks import fgsm
from reprolib.evaluation.exact import ExactResult
from reprolib.models import Classifier


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def _entry(tmp_path, name="s", inputs=None):
    return cache.entry_path(name, cache.key(name, inputs or {"i": 1}), tmp_path)


@pytest.mark.parametrize("planted", ["crafted", "tensor", "other_key", "truncated"])
def test_a_foreign_entry_runs_nothing_and_is_recomputed(tmp_path, planted):
    marker = tmp_path / "ran"
    path = _entry(tmp_path)
    path.parent.mkdir(parents=True)
    if planted == "crafted":
        torch.save({"format": cache.ENTRY_FORMAT, "key": "x", "value": _RunsCode(marker)}, path)
    elif planted == "tensor":
        torch.save(torch.ones(3), path)
    elif planted == "other_key":
        torch.save({"format": cache.ENTRY_FORMAT, "name": "s", "key": "0" * 32, "value": 7}, path)
    else:
        path.write_bytes(b"truncated")
    calls = []
    with pytest.warns(UserWarning, match="ignoring .*recomputing step 's'"):
        value = cache.cached("s", {"i": 1}, lambda: calls.append(1) or 42, root=tmp_path)
    assert value == 42 and calls == [1] and not marker.exists()
    assert cache.cached("s", {"i": 1}, lambda: calls.append(1) or 43, root=tmp_path) == 42 and calls == [1]


def test_results_round_trip_through_the_safe_loader(tmp_path):
    torch.manual_seed(0)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), input_shape=(1, 2, 2), num_classes=3).eval()
    x = torch.rand(5, 1, 2, 2)
    y = model(x).argmax(1)
    value = {"result": fgsm(model, x, y, eps=0.1), "array": np.arange(6).reshape(2, 3), "scalar": np.float64(0.5),
             "exact": [ExactResult(norm=1.0, bound=0.5, gap=0.5, status="time_limit", delta=torch.zeros(1, 2, 2),
                                   target=2, margin=0.1, verified=True, unstable=3, seconds=0.1, programs=1)],
             "tuple": (1, "a", None), "state": model.state_dict()}
    first = cache.cached("r", {"i": 1}, lambda: value, root=tmp_path)
    again = cache.cached("r", {"i": 1}, lambda: pytest.fail("recomputed"), root=tmp_path)
    r, r2 = first["result"], again["result"]
    assert type(r2).__name__ == "AttackResult" and r2.attack == "fgsm" and r2.params["eps"] == 0.1
    assert torch.equal(r.x_adv, r2.x_adv) and torch.equal(r.norms_raw["l2"], r2.norms_raw["l2"])
    assert isinstance(again["array"], np.ndarray) and (again["array"] == value["array"]).all()
    assert again["scalar"] == 0.5 and again["tuple"] == (1, "a", None)
    e = again["exact"][0]
    assert isinstance(e, ExactResult) and (e.status, e.target, e.programs) == ("time_limit", 2, 1)
    assert torch.equal(e.delta, torch.zeros(1, 2, 2))
    assert torch.equal(again["state"]["net.1.weight"], model.state_dict()["net.1.weight"])


def test_what_cannot_be_stored_is_named(tmp_path):
    with pytest.raises(TypeError, match="cannot store a set"):
        cache.cached("u", {"i": 1}, lambda: {1, 2}, root=tmp_path)
    with pytest.raises(ValueError, match="only reprolib dataclasses"):
        cache.decode({"__dataclass__": "os:system", "fields": {}})
