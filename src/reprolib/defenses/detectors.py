"""Binary adversarial detectors: a network trained to tell genuine images from adversarial ones.

Document 003 (Ozbulak, Gasparian, De Neve & Van Messem, *Perturbation Analysis of
Gradient-based Adversarial Attacks*, https://arxiv.org/abs/2006.01456, §V-C, Tables II–III)
retrains classifiers as two-output detectors, class 0 "genuine" and class 1 "adversarial":

* Table II, one attack at a time: train on genuine images and their adversarial counterparts,
  test on held-out images, half genuine and half adversarial (47 500 + 47 500 / 2 500 + 2 500);
* Table III, all attacks together, with extra genuine images balancing the classes, split
  stratified (380 000 / 20 000).

The reported accuracies are the genuine and the adversarial accuracy and their mean ("overall").

**The split is by source image.** An adversarial example is a small perturbation of its source:
with the source (or another adversarial of it) on the training side, a test example is almost a
training example. :func:`detection_split` therefore assigns *source images* to a side, and every
image made from a source (the genuine one and all its adversarials) follows it; the extra genuine
images without adversarials are split separately with the same fraction, so both sides keep the
same mix (the stratification of Table III). The detector is any 2-class
:class:`~reprolib.models.Classifier` (e.g. :func:`small_detector`), trained by
:func:`reprolib.train.fit`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..data import ImageSet
from ..models.classifier import Classifier, eval_mode
from ..train import Recipe, fit

GENUINE, ADVERSARIAL = 0, 1
CLASSES = ("genuine", "adversarial")


@dataclass(frozen=True)
class DetectionSplit:
    """A genuine-vs-adversarial data set split by source image (:func:`detection_split`).

    ``train`` and ``test`` are :class:`~reprolib.data.ImageSet` s with labels 0 (genuine) and 1
    (adversarial) and, as ``indices``, the row of ``genuine`` each image is or was made from (its
    source). ``train_kind`` / ``test_kind`` ``(len,)`` give each image's attack (an index into
    ``kinds``), −1 for genuine images.
    """

    train: ImageSet
    test: ImageSet
    train_kind: Tensor
    test_kind: Tensor
    kinds: tuple[str, ...]

    @property
    def train_sources(self) -> set[int]:
        return set(self.train.indices.tolist())

    @property
    def test_sources(self) -> set[int]:
        return set(self.test.indices.tolist())


def detection_split(genuine: Tensor, adversarial: Tensor, source: Tensor, *, kind: Tensor | None = None,
                    kinds: Sequence[str] = ("adversarial",), test_fraction: float = 0.05, seed: int = 0,
                    name: str = "detection") -> DetectionSplit:
    """Split genuine images and their adversarials into train and test sides by source image.

    Args:
        genuine: genuine images ``(N, ...)``: the sources of the adversarials, plus any extra
            genuine images (rows no adversarial names).
        adversarial: adversarial images ``(M, ...)``, same shape per image.
        source: ``(M,)`` integers in [0, N): the row of ``genuine`` each adversarial was made from.
        kind: ``(M,)`` integers in [0, len(kinds)): which attack made each adversarial
            (default: all 0).
        kinds: the attacks' names.
        test_fraction: the share of source images on the test side, in (0, 1); applied
            separately to the sources with adversarials and to the extra genuine images
            (the test side gets ``round(fraction·count)`` of a group, clamped to [1, count − 1]
            for a group of two or more; a group of one stays on the training side).
        seed: the seed of the split's permutation (≥ 0).
        name: the sets' name prefix.

    Returns:
        A :class:`DetectionSplit`; no source image has images on both sides.

    Raises:
        ValueError: mismatched shapes, a ``source`` or ``kind`` out of range, or
            ``test_fraction`` outside (0, 1).
    """
    if not torch.is_tensor(genuine) or not torch.is_tensor(adversarial) or genuine.shape[1:] != adversarial.shape[1:]:
        raise ValueError(f"genuine and adversarial must be image tensors of the same image shape, got "
                         f"{tuple(getattr(genuine, 'shape', ()))} and {tuple(getattr(adversarial, 'shape', ()))}.")
    n, m = len(genuine), len(adversarial)
    source = torch.as_tensor(source, dtype=torch.long).cpu()
    if source.shape != (m,) or (m and (int(source.min()) < 0 or int(source.max()) >= n)):
        raise ValueError(f"source must hold one row index in [0, {n - 1}] per adversarial ({m}), got shape "
                         f"{tuple(source.shape)}" + (f" and range [{int(source.min())}, {int(source.max())}]." if
                                                      source.numel() else "."))
    kinds = tuple(kinds)
    kind = torch.zeros(m, dtype=torch.long) if kind is None else torch.as_tensor(kind, dtype=torch.long).cpu()
    if kind.shape != (m,) or (m and (int(kind.min()) < 0 or int(kind.max()) >= len(kinds))):
        raise ValueError(f"kind must hold one index in [0, {len(kinds) - 1}] per adversarial ({m}).")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer ≥ 0, got {seed!r}.")

    gen = torch.Generator().manual_seed(seed)
    has_adv = torch.zeros(n, dtype=torch.bool)
    has_adv[source] = True
    test_rows = torch.zeros(n, dtype=torch.bool)
    for group in (has_adv.nonzero().flatten(), (~has_adv).nonzero().flatten()):
        if len(group) == 0:
            continue
        k = min(max(int(round(test_fraction * len(group))), 1), len(group) - 1) if len(group) > 1 else 0
        test_rows[group[torch.randperm(len(group), generator=gen)[:k]]] = True

    rows = torch.arange(n)

    def side(on_test: bool) -> tuple[ImageSet, Tensor]:
        g = rows[test_rows == on_test]
        a = (test_rows[source] == on_test).nonzero().flatten()
        x = torch.cat([genuine[g], adversarial[a].to(genuine)])
        y = torch.cat([torch.full((len(g),), GENUINE), torch.full((len(a),), ADVERSARIAL)]).long()
        src = torch.cat([g, source[a]])
        kd = torch.cat([torch.full((len(g),), -1), kind[a]]).long()
        return ImageSet(f"{name}-{'test' if on_test else 'train'}", x, y, src, CLASSES), kd

    train, train_kind = side(False)
    test, test_kind = side(True)
    return DetectionSplit(train, test, train_kind, test_kind, kinds)


def small_detector(input_shape: Sequence[int], *, width: int = 32, hidden: int = 128,
                   mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                   seed: int = 0) -> Classifier:
    """A small "AlexNet-lite" detector: three 3×3 conv layers (``width``, 2·``width``,
    4·``width`` channels, each ReLU and 2×2 max-pool), FC ``hidden`` + ReLU, FC 2; no batch norm.

    Args:
        input_shape: ``(C, H, W)``, H and W ≥ 8.
        width: channels of the first conv layer, ≥ 1.
        hidden: units of the hidden FC layer, ≥ 1.
        mean, std: per-channel normalisation (as the protected model's).
        seed: the initialisation's seed.

    Returns:
        A 2-class :class:`~reprolib.models.Classifier` (0 genuine, 1 adversarial) on ``bounds``
        (0, 1).

    Raises:
        ValueError: a bad shape, ``width`` or ``hidden``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[1] < 8 or shape[2] < 8 or shape[0] < 1:
        raise ValueError(f"input_shape must be (C, H, W) with H, W ≥ 8, got {tuple(input_shape)}.")
    for label, v in (("width", width), ("hidden", hidden)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{label} must be an integer ≥ 1, got {v!r}.")
    torch.manual_seed(seed)
    c, h, w = shape
    layers: list[nn.Module] = []
    for c_in, c_out in ((c, width), (width, 2 * width), (2 * width, 4 * width)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    features = 4 * width * (h // 8) * (w // 8)
    net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    return Classifier(net, input_shape=shape, num_classes=2, mean=mean, std=std)


def train_detector(detector: Classifier, split: DetectionSplit, recipe: Recipe, *,
                   resume_path: Path | None = None, desc: str = "detector") -> float:
    """Train ``detector`` on ``split.train`` by ``recipe`` with :func:`reprolib.train.fit`
    (cross-entropy on the labels genuine / adversarial); returns the wall time in seconds.

    Raises:
        ValueError: a detector without exactly two outputs.
    """
    if detector.num_classes != 2:
        raise ValueError(f"a detector has 2 outputs (genuine, adversarial), got num_classes={detector.num_classes}.")
    return fit(detector, recipe, split.train, resume_path=resume_path, desc=desc)


@torch.no_grad()
def detection_accuracy(detector: Classifier, data: ImageSet, kind: Tensor | None = None,
                       kinds: Sequence[str] = (), *, batch_size: int = 1000) -> dict[str, float]:
    """Document 003's accuracies of a detector on a side of a split, as fractions.

    Args:
        detector: the trained detector.
        data: e.g. ``split.test``.
        kind, kinds: ``split.test_kind`` and ``split.kinds`` for one accuracy per attack.
        batch_size: inputs per forward pass.

    Returns:
        ``{"genuine": …, "adversarial": …, "overall": …}`` (overall: the mean of the two, as
        Table II), plus ``"adversarial/<kind>"`` per attack when ``kind`` is given. An empty
        class gives NaN.
    """
    with eval_mode(detector):
        device = detector.device
        pred = torch.cat([detector(data.x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(data), batch_size)]) if len(data) else torch.zeros(0, dtype=torch.long)
    right = pred == data.y

    def mean(mask: Tensor) -> float:
        return float(right[mask].float().mean()) if bool(mask.any()) else math.nan

    out = {"genuine": mean(data.y == GENUINE), "adversarial": mean(data.y == ADVERSARIAL)}
    out["overall"] = (out["genuine"] + out["adversarial"]) / 2
    if kind is not None:
        for i, label in enumerate(kinds):
            out[f"adversarial/{label}"] = mean(kind == i)
    return out
