"""The model zoo: named architectures with their training recipes and checked checkpoints.

``load(name)`` returns the trained :class:`Classifier` in eval mode on the default device. It
reads ``<models_dir>/<name>.pt`` and checks it against the sha256 in ``<name>.json``; when the
checkpoint is absent it trains the model by its recipe (with a progress bar, resumable) and
writes both files. A defended model (``spec.defense``, :mod:`reprolib.models.defended`) is
trained by its defence, and its metadata records the defence and, where the spec asks for it,
the robust accuracy under PGD with restarts.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import __version__, data, paths
from ..device import hardware_summary, resolve
from ..files import atomic_open
from ..train import Recipe, accuracy, fit
from . import cifar_nets, mnist_nets
from .classifier import Classifier
from .defended import AdversarialTraining, Distillation, RobustCheck, robust_accuracy

#: The checkpoints committed in ``data/models`` (``make models`` trains whichever are missing).
COMMITTED = ("logreg_mnist", "tabacof_convnet_mnist", "fcnn_mnist", "lenet5_mnist", "cw_mnist",
             "cw_distilled_t1_mnist", "cw_distilled_t10_mnist", "cw_distilled_t100_mnist",
             "madry_nat0_mnist", "madry_nat1_mnist", "madry_nat2_mnist", "madry_linf_mnist",
             "mlp3x1000_mnist", "mlp20x2_mnist", "mlp50_mnist", "fcnn_released_mnist32",
             "lenet5_released_mnist32", "logreg_cifar", "cw_cifar", "nin_cifar_cpu", "densenet22_cifar_cpu",
             "resnet20_cifar", "nin_bn_cifar_cpu")

#: The fixed subset every checkpoint's accuracy is re-checked on: the first N test images.
CHECK_SUBSET = 1000

#: Nets with more parameters than this are stored in float16 (half the bytes in every clone);
#: their metadata is measured on the rounded weights, and records the float32 accuracy beside.
HALF_ABOVE = 2_000_000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dataset: str
    build_net: Callable[[], nn.Module]
    recipe: Recipe
    document: str
    paper_accuracy: float | None  # test accuracy the document reports, as a fraction
    description: str
    defense: Distillation | AdversarialTraining | None = None  # None: plain cross-entropy training
    robust: RobustCheck | None = None  # the robust accuracy the metadata records (and tests re-check)
    paper_robust_accuracy: float | None = None  # the document's figure for the same check, as a fraction

    def build(self) -> Classifier:
        """A freshly initialised (untrained, seeded by the recipe) :class:`Classifier` with this
        spec's input shape and normalisation."""
        torch.manual_seed(self.recipe.seed)  # deterministic initialisation
        if self.dataset == "mnist":
            return Classifier(self.build_net(), input_shape=(1, 28, 28), num_classes=10,
                              mean=mnist_nets.MNIST_MEAN, std=mnist_nets.MNIST_STD)
        if self.dataset == "mnist32":  # document 001's released nets read raw padded pixels, unnormalised
            return Classifier(self.build_net(), input_shape=(1, 32, 32), num_classes=10)
        return Classifier(self.build_net(), input_shape=(3, 32, 32), num_classes=10,
                          mean=cifar_nets.CIFAR_MEAN, std=cifar_nets.CIFAR_STD)


#: Distillation's phases (document 002 §2.6 after C&W's ``train_distillation``: one epoch of
#: shared initialisation at T, then teacher and student). Adam, not C&W's SGD at lr 0.01: its steps
#: do not shrink with the 1/T the temperature puts on every gradient, so one recipe trains every T.
_DISTILL_INIT = Recipe(epochs=1, lr=1e-3, optimizer="adam", schedule="constant")
_DISTILL_RECIPE = Recipe(epochs=8, lr=1e-3, optimizer="adam")

SPECS: dict[str, ModelSpec] = {s.name: s for s in [
    ModelSpec("logreg_mnist", "mnist", mnist_nets.logistic_regression,
              Recipe(epochs=10, lr=0.05, weight_decay=1e-4), "000", 0.925,
              "Logistic regression 784→10 (document 000, M1)."),
    ModelSpec("tabacof_convnet_mnist", "mnist", mnist_nets.tabacof_convnet,
              Recipe(epochs=5, lr=0.05, weight_decay=1e-3), "000", 0.99,
              "The authors' ConvNet adapted to 28×28 (document 000, M2; reproduction notes §4.1)."),
    ModelSpec("fcnn_mnist", "mnist", mnist_nets.fcnn,
              Recipe(epochs=15, lr=0.05), "001", 0.983,
              "FCNN 784-150-100-10 (document 001, as the paper states it)."),
    ModelSpec("lenet5_mnist", "mnist", mnist_nets.LeNet5,
              Recipe(epochs=15, lr=2e-3, optimizer="adam"), "001", 0.991,
              "LeNet-5 on zero-padded 32×32 input (document 001, as released)."),
    ModelSpec("fcnn_released_mnist32", "mnist32", mnist_nets.fcnn_released,
              Recipe(epochs=15, lr=0.05), "001", 0.983,
              "FCNN 1024-500-150-10 on zero-padded 32×32 raw pixels (document 001, as released)."),
    ModelSpec("lenet5_released_mnist32", "mnist32", mnist_nets.lenet5_released,
              Recipe(epochs=15, lr=2e-3, optimizer="adam"), "001", 0.991,
              "LeNet-5 on zero-padded 32×32 raw pixels, padding attackable (document 001, as released)."),
    ModelSpec("cw_mnist", "mnist", mnist_nets.cw_mnist,
              Recipe(epochs=10, lr=0.05), "002", 0.995,
              "C&W MNIST CNN (Carlini & Wagner 2017; documents 002, 004)."),
    ModelSpec("mlp3x1000_mnist", "mnist", mnist_nets.mlp_3x1000,
              Recipe(epochs=10, lr=0.05), "004", None,
              "MLP 784-1000-1000-1000-10 (document 004, chapter 3)."),
    ModelSpec("mlp20x2_mnist", "mnist", lambda: mnist_nets.mlp([784, 20, 20, 10]),
              Recipe(epochs=10, lr=0.05), "appendix", None,
              "MLP 784-20-20-10: small enough for exact minimal perturbations (reprolib.evaluation.exact)."),
    ModelSpec("mlp50_mnist", "mnist", lambda: mnist_nets.mlp([784, 50, 10]),
              Recipe(epochs=10, lr=0.05), "appendix", None,
              "MLP 784-50-10: small enough for exact minimal perturbations (reprolib.evaluation.exact)."),
    *[ModelSpec(f"cw_distilled_t{t}_mnist", "mnist", mnist_nets.cw_mnist, _DISTILL_RECIPE, "002", None,
                f"C&W MNIST CNN, defensively distilled at T = {t}, deployed at T = 1 (document 002, Fig. 7, "
                f"Table 8).",
                defense=Distillation(t, init_recipe=_DISTILL_INIT), robust=RobustCheck(eps=0.3, n_images=1000))
      for t in (1, 10, 100)],
    *[ModelSpec(f"madry_nat{s}_mnist", "mnist", mnist_nets.madry_mnist,
                Recipe(epochs=4, lr=1e-3, optimizer="adam", batch_size=50, seed=s), "002", None,
                f"Madry et al.'s MNIST network, naturally trained (seed {s}): one of document 002's three "
                f"transfer sources (Table 10).")
      for s in range(3)],
    ModelSpec("madry_linf_mnist", "mnist", mnist_nets.madry_mnist,
              Recipe(epochs=8, lr=1e-3, optimizer="adam", batch_size=50), "002", 0.9816,
              "Madry et al.'s MNIST network, PGD-trained in ℓ∞ at ε = 0.3 (document 002, Tables 9–10): a CPU "
              "recipe of PGD-10 with ε ramped over the first quarter, for Madry's PGD-40 over 100 000 steps.",
              defense=AdversarialTraining("pgd_at", {"eps": 0.3, "steps": 10, "eps_ramp": 0.25}),
              robust=RobustCheck(eps=0.3, steps=40, step_size=0.015, restarts=5, n_images=1000),
              paper_robust_accuracy=0.9114),
    ModelSpec("logreg_cifar", "cifar10", cifar_nets.logistic_regression,
              Recipe(epochs=10, lr=0.01, weight_decay=1e-3), "000", None,
              "Logistic regression 3072→10 (document 000, M4: the shallow CIFAR-10 model)."),
    ModelSpec("cw_cifar", "cifar10", cifar_nets.cw_cifar,
              Recipe(epochs=12, lr=0.02, weight_decay=5e-4, augment=True), "002", 0.80,
              "C&W CIFAR CNN (Carlini & Wagner 2017; document 002)."),
    ModelSpec("nin_cifar", "cifar10", cifar_nets.nin,
              Recipe(epochs=100, lr=1e-3, optimizer="adam", augment=True), "001", 0.862,
              "Network-in-Network, full width (document 001, as released). For a GPU."),
    ModelSpec("nin_cifar_cpu", "cifar10", lambda: cifar_nets.nin(width=0.5),
              Recipe(epochs=3, lr=1e-3, optimizer="adam", augment=True), "001", 0.862,
              "Network-in-Network at half width: document 001's NIN, CPU variant."),
    ModelSpec("nin_bn_cifar_cpu", "cifar10", lambda: cifar_nets.nin(width=0.5, batch_norm=True),
              Recipe(epochs=30, lr=0.1, weight_decay=5e-4, augment=True), "001", 0.862,
              "Network-in-Network at half width with batch norm: document 001's NIN, CPU variant."),
    ModelSpec("densenet40_cifar", "cifar10", lambda: cifar_nets.densenet(40),
              Recipe(epochs=300, lr=0.1, batch_size=64, weight_decay=1e-4, augment=True), "001", 0.948,
              "DenseNet-40 (k = 12), document 001. For a GPU."),
    ModelSpec("densenet22_cifar_cpu", "cifar10", lambda: cifar_nets.densenet(22),
              Recipe(epochs=2, lr=0.1, weight_decay=1e-4, augment=True), "001", 0.948,
              "DenseNet-22 (k = 12): document 001's DenseNet-40, CPU variant."),
    ModelSpec("densenet22_cifar", "cifar10", lambda: cifar_nets.densenet(22),
              Recipe(epochs=30, lr=0.1, weight_decay=5e-4, augment=True), "001", 0.948,
              "DenseNet-22 (k = 12) trained for 30 epochs: document 001's DenseNet-40, CPU variant."),
    ModelSpec("resnet20_cifar", "cifar10", lambda: cifar_nets.resnet(20),
              Recipe(epochs=30, lr=0.1, weight_decay=5e-4, augment=True), "003", None,
              "CIFAR ResNet-20: document 003's stand-in for ImageNet ResNet-50."),
]}


def names() -> list[str]:
    """The zoo's model names, in :data:`SPECS` order."""
    return list(SPECS)


def _spec_of(name: str) -> ModelSpec:
    if name not in SPECS:
        raise KeyError(f"Unknown model {name!r}. Known models: {', '.join(SPECS)}.")
    return SPECS[name]


def checkpoint_paths(name: str, root: Path | None = None) -> tuple[Path, Path]:
    """``(checkpoint, metadata)`` paths of model ``name`` in ``root`` (default
    :func:`reprolib.paths.models_dir`); they need not exist."""
    root = paths.models_dir() if root is None else root
    return root / f"{name}.pt", root / f"{name}.json"


def sha256sum(path: Path) -> str:
    """The sha256 of a file, as hex, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint or its metadata is missing, corrupt, or does not match."""


def metadata(name: str, root: Path | None = None) -> dict:
    """The metadata of a trained checkpoint (recipe, accuracies, time, hardware, sha256)."""
    _, meta_path = checkpoint_paths(name, root)
    try:
        return json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"No metadata for model {name!r} at {meta_path}.") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"Metadata {meta_path} is not valid JSON ({exc}). Restore it from git.") from exc


def load(name: str, device: str | torch.device | None = None, *, train_if_missing: bool = True,
         root: Path | None = None) -> Classifier:
    """The trained model ``name`` in eval mode on ``device`` (default: CUDA if present), in the
    channels-last format when it is convolutional (:class:`~reprolib.models.Classifier`).

    Raises :class:`CheckpointError` if the checkpoint fails its sha256 check.
    """
    spec = _spec_of(name)
    device = resolve(device)
    ckpt, meta_path = checkpoint_paths(name, root)
    if not ckpt.is_file():
        if not train_if_missing:
            raise CheckpointError(f"No checkpoint for {name!r} at {ckpt}; call train({name!r}) or "
                                  f"`make models`.")
        train(name, device=device, root=root)
    meta = metadata(name, root)
    actual = sha256sum(ckpt)
    if actual != meta["sha256"]:
        raise CheckpointError(
            f"Checkpoint {ckpt} has sha256 {actual}, but {meta_path} records {meta['sha256']}. "
            f"The file is corrupt or was replaced; restore it with `git checkout -- {ckpt.name}`, "
            f"or move both files away to retrain with `make models`."
        )
    model = spec.build()
    model.net.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    if any(isinstance(m, nn.Conv2d) for m in model.net.modules()):
        model.to_channels_last()  # measured faster for every convolutional net of the zoo (Classifier)
    model.to(device).eval()
    model.name, model.meta = name, meta
    return model


def train(name: str, device: str | torch.device | None = None, *, root: Path | None = None) -> dict:
    """Train ``name`` by its recipe, write ``<name>.pt`` and ``<name>.json``, return the metadata.

    An interrupted run resumes from its last finished epoch (``<name>.resume.pt``).
    """
    spec = _spec_of(name)
    device = resolve(device)
    ckpt, meta_path = checkpoint_paths(name, root)
    if ckpt.exists():
        raise CheckpointError(f"{ckpt} exists; reprolib will not overwrite it. Move it away to retrain.")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    resume = ckpt.with_name(f"{name}.resume.pt")

    def build() -> Classifier:
        model = spec.build()
        if any(isinstance(m, nn.Conv2d) for m in model.net.modules()):
            model.to_channels_last()  # 1.2–1.4× faster training steps on the CPU (measured: ResNet-20, Madry net)
        return model.to(device)

    train_set = data.load(spec.dataset, "train")
    if spec.defense is None:
        model = build()
        seconds = fit(model, spec.recipe, train_set, resume_path=resume, desc=f"train {name}")
        phases = None
    else:  # the defence's resume states live in <name>.resume/, one per phase
        model, phases = spec.defense.train(build, spec.recipe, train_set, resume_dir=resume.with_suffix(""),
                                           desc=f"train {name}")
        seconds = sum(phases.values())
    return _save(name, spec, model.eval(), seconds, phases, device, root)


def _save(name: str, spec: ModelSpec, model: Classifier, seconds: float, phases: dict | None,
          device: torch.device, root: Path | None) -> dict:
    """Measure the trained ``model`` (as it will be stored), write ``<name>.pt`` and its metadata."""
    ckpt, meta_path = checkpoint_paths(name, root)
    test_set = data.load(spec.dataset, "test")
    stored = _as_stored(model, test_set)
    meta = {
        "name": name,
        "description": spec.description,
        "dataset": spec.dataset,
        "document": spec.document,
        "recipe": spec.recipe.as_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        **stored["meta"],
        "test_accuracy": accuracy(model, test_set),
        "check_subset": f"first {CHECK_SUBSET} test images",
        "check_subset_accuracy": accuracy(model, data.first_n(test_set, CHECK_SUBSET)),
        "paper_accuracy": spec.paper_accuracy,
        **({} if spec.defense is None else {"defense": spec.defense.as_dict(), "phase_seconds": phases}),
        **({} if spec.robust is None else {"robust_accuracy": _robust_metadata(spec, model, test_set)}),
        "train_seconds": round(seconds, 1),
        "hardware": hardware_summary(device),
        "torch_version": torch.__version__,
        "reprolib_version": __version__,
        "trained_on": datetime.date.today().isoformat(),
    }
    with atomic_open(ckpt) as fh:  # written last, so a run that fails before it can run again
        torch.save(stored["state"], fh)
    meta["sha256"] = sha256sum(ckpt)
    with atomic_open(meta_path, "w") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
    resume = ckpt.with_name(f"{name}.resume.pt")
    resume.unlink(missing_ok=True)
    shutil.rmtree(resume.with_suffix(""), ignore_errors=True)
    return meta


def _as_stored(model: Classifier, test_set: data.ImageSet) -> dict:
    """The state dict to store and what the metadata says of it. A net of more than
    :data:`HALF_ABOVE` parameters is stored in float16 and ``model`` takes the rounded weights,
    so every accuracy in the metadata is the stored model's; its float32 test accuracy is
    recorded beside them."""
    state = model.net.state_dict()
    if sum(p.numel() for p in model.parameters()) <= HALF_ABOVE:
        return {"state": state, "meta": {"stored_dtype": "float32"}}
    before = accuracy(model, test_set)
    state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    model.net.load_state_dict(state)  # loading casts back to float32: the rounded weights
    return {"state": state, "meta": {"stored_dtype": "float16", "test_accuracy_float32": before}}


def _robust_metadata(spec: ModelSpec, model: Classifier, test_set: data.ImageSet) -> dict:
    """The robust accuracy of ``model`` by ``spec.robust`` on the first test images, with its
    settings, wall time, and the document's figure."""
    subset = data.first_n(test_set, spec.robust.n_images)
    t0 = datetime.datetime.now()
    value = robust_accuracy(model, subset.x, subset.y, spec.robust, progress=True)
    return {"value": value, **spec.robust.as_dict(), "images": f"first {spec.robust.n_images} test images",
            "seconds": round((datetime.datetime.now() - t0).total_seconds(), 1),
            "paper_value": spec.paper_robust_accuracy}
