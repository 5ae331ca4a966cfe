"""reprolib.models: architectures, the checked registry, and deterministic resumable training."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
from torch import nn

from reprolib import data, models
from reprolib.models import Classifier
from reprolib.models import defended, mnist_nets, registry
from reprolib.train import Recipe, accuracy, fit


@pytest.mark.parametrize("name", list(models.SPECS))
def test_every_architecture_maps_inputs_to_ten_logits(name):
    spec = models.SPECS[name]
    model = spec.build().eval()
    x = torch.rand(2, *model.input_shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.bounds == (0.0, 1.0)


def test_build_is_deterministic():
    a, b = models.SPECS["lenet5_mnist"].build(), models.SPECS["lenet5_mnist"].build()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("name, first_layer", [("fcnn_released_mnist32", (500, 1024)),
                                               ("lenet5_released_mnist32", (6, 1, 5, 5))])
def test_released_nets_read_raw_padded_32x32_pixels(name, first_layer):
    model = models.SPECS[name].build().eval()
    assert model.input_shape == (1, 32, 32)
    assert torch.equal(model.mean, torch.zeros(1, 1, 1, 1)) and torch.equal(model.std, torch.ones(1, 1, 1, 1))
    first = next(m for m in model.net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    assert tuple(first.weight.shape) == first_layer
    with pytest.raises(RuntimeError):  # 28×28 MNIST does not fit
        model(torch.rand(1, 1, 28, 28))


def test_released_init_is_the_truncated_normal_of_the_released_graph():
    layers = [m for m in mnist_nets.fcnn_released() if isinstance(m, torch.nn.Linear)]
    for layer, std in zip(layers, (0.07, 0.08, 0.11)):
        w = layer.weight.detach()
        assert w.abs().max() <= 2 * std and not layer.bias.any()
        assert abs(float(w.std()) / std - 0.88) < 0.03  # a normal cut at ±2σ has std 0.880σ


def test_released_fcnn_border_weights_keep_their_initial_values():
    """The zero border of the padded input gives its first-layer weights no gradient, so the
    trained checkpoint keeps them at their seeded initial values (document 001's leverage)."""
    trained = models.load("fcnn_released_mnist32", device="cpu", train_if_missing=False).net[1].weight
    initial = models.SPECS["fcnn_released_mnist32"].build().net[1].weight
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert torch.equal(trained[:, border.flatten()], initial[:, border.flatten()])
    assert not torch.equal(trained[:, ~border.flatten()], initial[:, ~border.flatten()])


def test_classifier_normalises_inside():
    net = torch.nn.Flatten()
    clf = models.Classifier(net, input_shape=(3, 1, 1), num_classes=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    out = clf(torch.ones(1, 3, 1, 1))
    assert torch.allclose(out, torch.tensor([[2.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match="lower < upper"):
        models.Classifier(net, input_shape=(1,), num_classes=1, bounds=(1, 0))


def test_unknown_model_lists_known_ones():
    with pytest.raises(KeyError, match="cw_mnist"):
        models.load("resnet50_imagenet")


@pytest.mark.parametrize("name", registry.COMMITTED)
def test_committed_checkpoint_loads_and_keeps_its_accuracy(name, mirror):
    model = models.load(name, device="cpu", train_if_missing=False)
    meta = model.meta
    assert meta["sha256"] == registry.sha256sum(registry.checkpoint_paths(name)[0])
    test = data.load(meta["dataset"], "test")
    subset = data.first_n(test, registry.CHECK_SUBSET)
    assert abs(accuracy(model, subset) - meta["check_subset_accuracy"]) <= 0.005
    for key in ("recipe", "test_accuracy", "train_seconds", "hardware", "torch_version", "paper_accuracy"):
        assert key in meta


def test_corrupt_checkpoint_is_refused(tmp_path):
    src, meta = registry.checkpoint_paths("logreg_mnist")
    shutil.copy(src, tmp_path / src.name)
    shutil.copy(meta, tmp_path / meta.name)
    models.load("logreg_mnist", device="cpu", train_if_missing=False, root=tmp_path)  # intact: loads
    blob = bytearray((tmp_path / src.name).read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / src.name).write_bytes(bytes(blob))
    with pytest.raises(models.CheckpointError, match="sha256"):
        models.load("logreg_mnist", device="cpu", train_if_missing=False, root=tmp_path)
    (tmp_path / meta.name).write_text("{not json")
    with pytest.raises(models.CheckpointError, match="not valid JSON"):
        models.load("logreg_mnist", device="cpu", train_if_missing=False, root=tmp_path)


def test_missing_checkpoint_without_training(tmp_path):
    with pytest.raises(models.CheckpointError, match="make models"):
        models.load("cw_mnist", device="cpu", train_if_missing=False, root=tmp_path)


def _toy_set(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = (x.flatten(1).sum(1) > 8).long()
    return data.ImageSet("toy", x, y, torch.arange(n), ("lo", "hi"))


def _toy_model():
    torch.manual_seed(0)
    return models.Classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                                 torch.nn.Dropout(0.2), torch.nn.Linear(8, 2)),
                             input_shape=(1, 4, 4), num_classes=2, mean=(0.5,), std=(0.29,))


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from reprolib import train as train_module

    recipe = Recipe(epochs=3, lr=0.1, batch_size=16, seed=3)
    toy = _toy_set()
    straight, again = _toy_model(), _toy_model()
    fit(straight, recipe, toy)
    fit(again, recipe, toy)

    class Killed(Exception):
        pass

    save = train_module._save_atomic

    def save_then_die(obj, path):  # the process dies right after epoch 1 is saved
        save(obj, path)
        if obj["epoch"] == 1:
            raise Killed

    resume = tmp_path / "toy.resume.pt"
    monkeypatch.setattr(train_module, "_save_atomic", save_then_die)
    with pytest.raises(Killed):
        fit(_toy_model(), recipe, toy, resume_path=resume)
    monkeypatch.setattr(train_module, "_save_atomic", save)
    assert torch.load(resume, weights_only=True)["epoch"] == 1
    resumed = _toy_model()
    fit(resumed, recipe, toy, resume_path=resume)
    for a, b, c in zip(straight.parameters(), again.parameters(), resumed.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert accuracy(straight, toy) > accuracy(_toy_model(), toy) + 0.2  # it did learn


def test_fit_trains_a_regressor_on_given_targets():
    toy = _toy_set(256)
    targets = toy.x.flatten(1)[:, :2] @ torch.tensor([[1.0], [-2.0]])  # a linear function of two pixels
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1))

    def mse() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.mse_loss(net(toy.x), targets))

    before = mse()
    fit(net, Recipe(epochs=30, lr=0.05, batch_size=32), toy, targets=targets, loss=torch.nn.functional.mse_loss)
    assert mse() < 0.01 * before
    with pytest.raises(ValueError, match="one per image"):
        fit(net, Recipe(epochs=1, lr=0.1), toy, targets=targets[:10], loss=torch.nn.functional.mse_loss)


def test_resume_refuses_another_recipe(tmp_path):
    toy = _toy_set(64)
    resume = tmp_path / "toy.resume.pt"
    fit(_toy_model(), Recipe(epochs=1, lr=0.1, batch_size=32), toy, resume_path=resume)
    with pytest.raises(RuntimeError, match="another recipe"):
        fit(_toy_model(), Recipe(epochs=2, lr=0.1, batch_size=32), toy, resume_path=resume)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_resume_file_runs_nothing(tmp_path):
    resume, marker = tmp_path / "toy.resume.pt", tmp_path / "ran"
    torch.save({"recipe": _RunsCode(marker)}, resume)
    with pytest.raises(RuntimeError, match="not a reprolib resume state.*move it away"):
        fit(_toy_model(), Recipe(epochs=1, lr=0.1, batch_size=32), _toy_set(64), resume_path=resume)
    assert not marker.exists()


def test_metadata_files_are_consistent():
    for name in registry.COMMITTED:
        ckpt, meta_path = registry.checkpoint_paths(name)
        if not ckpt.exists():
            pytest.fail(f"committed checkpoint {ckpt} is missing; run `make models`")
        meta = json.loads(meta_path.read_text())
        assert meta["name"] == name
        spec = models.SPECS[name]
        assert meta["recipe"] == spec.recipe.as_dict()
        assert meta.get("defense") == (None if spec.defense is None else spec.defense.as_dict())
        assert ("robust_accuracy" in meta) == (spec.robust is not None)


def test_channels_last_changes_speed_not_results():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 15 * 15, 4))
    plain = Classifier(net, input_shape=(3, 32, 32), num_classes=4, mean=[0.5] * 3, std=[0.25] * 3)
    fast = Classifier(copy.deepcopy(net), input_shape=(3, 32, 32), num_classes=4, mean=[0.5] * 3,
                      std=[0.25] * 3, channels_last=True)
    assert fast.channels_last and fast.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(6, 3, 32, 32, requires_grad=True)
    a, b = plain(x), fast(x)
    (ga,), (gb,) = torch.autograd.grad(a[:, 1].sum(), x), torch.autograd.grad(b[:, 1].sum(), x)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ga, gb, atol=1e-6)
    assert gb.is_contiguous() and b.is_contiguous()  # the caller's layout is kept
    with pytest.raises(ValueError, match="channels_last needs image inputs"):
        Classifier(nn.Linear(5, 2), input_shape=(5,), num_classes=2, channels_last=True)


def test_zoo_loads_convolutional_nets_channels_last():
    conv = [n for n, s in registry.SPECS.items() if any(isinstance(m, nn.Conv2d) for m in s.build_net().modules())]
    assert "cw_mnist" in conv and "fcnn_mnist" not in conv
    model = registry.load("cw_mnist", "cpu", train_if_missing=False)
    assert model.channels_last
    assert not registry.load("fcnn_mnist", "cpu", train_if_missing=False).channels_last


# ------------------------------------------------------------------------------ defended models
def test_robust_accuracy_of_a_linear_model_is_its_closed_form():
    """Two-class linear model, inputs well inside the box: the ℓ∞ worst case of x is
    x − ε·sign(w_y − w_other), so x is robust iff its margin exceeds ε‖w_y − w_other‖₁."""
    torch.manual_seed(0)
    net = nn.Linear(20, 2)
    model = Classifier(net, input_shape=(20,), num_classes=2).eval()
    x = 0.4 + 0.2 * torch.rand(400, 20)
    y = torch.randint(0, 2, (400,))
    eps = 0.05
    with torch.no_grad():
        w = net.weight[1] - net.weight[0]
        margin = (x @ w + net.bias[1] - net.bias[0]) * (2 * y - 1).float()
    expected = int((margin > eps * w.abs().sum()).sum()) / len(x)
    check = registry.RobustCheck(eps=eps, steps=10, restarts=2, n_images=400)
    assert 0.2 < expected < 0.8  # the closed form splits the inputs: the comparison is informative
    assert defended.robust_accuracy(model, x, y, check, batch_size=150) == expected


def test_a_defended_spec_trains_through_the_registry_and_records_its_defence(tmp_path, monkeypatch, mirror):
    train_small = data.first_n(data.load("mnist", "train"), 500)
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda name, split, **kw: train_small if split == "train"
                        else real_load(name, split, **kw))
    spec = registry.ModelSpec(
        "toy_at_mnist", "mnist", mnist_nets.logistic_regression, Recipe(epochs=2, lr=0.05, batch_size=100),
        "test", None, "toy", defense=registry.AdversarialTraining("fgsm_rs_at", {"eps": 0.1}),
        robust=registry.RobustCheck(eps=0.1, steps=5, restarts=2, n_images=200), paper_robust_accuracy=0.5)
    monkeypatch.setitem(registry.SPECS, spec.name, spec)
    meta = registry.train(spec.name, "cpu", root=tmp_path)
    assert meta["defense"] == spec.defense.as_dict() and meta["defense"]["attack"] == "pgd"
    assert meta["defense"]["settings"]["steps"] == 1 and meta["phase_seconds"] == {"train": meta["train_seconds"]}
    robust = meta["robust_accuracy"]
    assert robust["eps"] == 0.1 and robust["restarts"] == 2 and robust["paper_value"] == 0.5
    assert 0 <= robust["value"] <= meta["check_subset_accuracy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_at_mnist.json", "toy_at_mnist.pt"]  # resumes gone
    model = registry.load(spec.name, "cpu", train_if_missing=False, root=tmp_path)
    subset = data.first_n(data.load("mnist", "test"), 200)
    assert defended.robust_accuracy(model, subset.x, subset.y, spec.robust) == robust["value"]


@pytest.mark.parametrize("name", [n for n in registry.COMMITTED if registry.SPECS[n].robust is not None])
def test_committed_defended_model_keeps_its_robust_accuracy(name, mirror):
    model = models.load(name, device="cpu", train_if_missing=False)
    check = models.SPECS[name].robust
    recorded = model.meta["robust_accuracy"]
    assert {k: recorded[k] for k in check.as_dict()} == check.as_dict()
    subset = data.first_n(data.load(model.meta["dataset"], "test"), check.n_images)
    assert abs(defended.robust_accuracy(model, subset.x, subset.y, check) - recorded["value"]) <= 0.01


def test_a_large_net_is_stored_in_float16_and_measured_as_stored(tmp_path, monkeypatch, mirror):
    train_small = data.first_n(data.load("mnist", "train"), 500)
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda name, split, **kw: train_small if split == "train"
                        else real_load(name, split, **kw))
    spec = registry.ModelSpec("toy_half_mnist", "mnist", mnist_nets.logistic_regression,
                              Recipe(epochs=1, lr=0.05, batch_size=100), "test", None, "toy")
    monkeypatch.setitem(registry.SPECS, spec.name, spec)
    monkeypatch.setattr(registry, "HALF_ABOVE", 1000)  # the toy's 7 850 parameters count as large
    meta = registry.train(spec.name, "cpu", root=tmp_path)
    state = torch.load(tmp_path / "toy_half_mnist.pt", weights_only=True)
    assert meta["stored_dtype"] == "float16" and all(v.dtype == torch.float16 for v in state.values())
    assert abs(meta["test_accuracy"] - meta["test_accuracy_float32"]) <= 0.002
    model = registry.load(spec.name, "cpu", train_if_missing=False, root=tmp_path)
    assert model.net[1].weight.dtype == torch.float32
    assert accuracy(model, data.load("mnist", "test")) == meta["test_accuracy"]  # the stored model, exactly
