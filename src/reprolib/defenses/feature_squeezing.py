"""Feature squeezing: squeezers, the joint detector, and a squeezed model an attack can target.

Xu, Evans & Qi, *Feature Squeezing: Detecting Adversarial Examples in Deep Neural Networks*
(NDSS 2018, https://arxiv.org/abs/1704.01155), as attacked in document 002 (§4.3.7.3, Tables
11–12) and implemented in the authors' EvadeML-Zoo (https://github.com/mzweilin/EvadeML-Zoo,
``utils/squeeze.py``, ``detections/feature_squeezing.py``). Inputs are images ``(N, C, H, W)``
in the model's bounds (``[0, 1]`` for every model of the zoo; other bounds are mapped to
``[0, 1]`` and back).

**Squeezers** (Xu et al.):

* bit-depth reduction to b bits: s(x) = round(x·(2^b − 1)) / (2^b − 1), rounding half to even
  (``np.rint``, as EvadeML-Zoo); b = 1 on MNIST, 5 on CIFAR-10;
* median smoothing with a k×k window (2×2 in the paper): ``scipy.ndimage.median_filter`` with
  ``size=(1, 1, k, k)`` on NCHW and ``mode="reflect"`` (the edge pixel repeated: d c b a | a b c
  d | d c b a). For an even window the median is the upper of the two middle values (scipy's rank
  ⌊k²/2⌋), and the window covers offsets −⌊k/2⌋ … k − 1 − ⌊k/2⌋ (scipy's origin 0). Implemented
  in torch; the tests check it against scipy;
* non-local means (OpenCV, as the authors): each image is quantised to uint8
  (``clip(rint(255·x), 0, 255)``), denoised by ``cv2.fastNlMeansDenoisingColored(img, None, h,
  h, patch, window)`` (3 channels) or ``cv2.fastNlMeansDenoising(img, None, h, patch, window)``
  (1 channel), and divided by 255. The CIFAR-10 detector uses window 13, patch 3, h = 2. Like
  EvadeML-Zoo, the RGB array is passed as it is (OpenCV reads it as BGR for its colour
  conversion). Needs ``opencv-python-headless`` (the ``defenses`` extra: ``pip install
  -e ".[defenses]"``).

**Joint detector** (Xu et al.): with p(x) the model's softmax,

    score(x) = max_s ‖p(x) − p(s(x))‖₁,

and x is flagged adversarial when score(x) > τ. τ is set on legitimate examples for a target
false-positive rate r as EvadeML-Zoo does: the ⌈n(1 − r)⌉-th smallest of their n scores, so at
most ⌊n·r⌋ of them exceed it. MNIST: {1-bit, 2×2 median}; CIFAR-10: {5-bit, 2×2 median, NLM
13-3-2} (document 002 §4.3.7.3: FPR 5 %).

**Squeezed model** (:class:`SqueezedClassifier`): ``f(s(x))`` as a
:class:`~reprolib.models.Classifier`, so every reprolib attack can target the squeezed model.
The gradient an attack sees through a squeezer is stated by its ``gradient`` attribute:

* bit depth: the rounding has zero gradient almost everywhere, so it is passed straight
  through: the backward pass treats s as the identity (BPDA, Athalye, Carlini & Wagner,
  https://arxiv.org/abs/1802.00420, §4.1);
* median (torch): the exact gradient a.e. (each output pixel's gradient flows to the input pixel
  that is the median of its window), or straight-through if asked;
* non-local means (OpenCV, not differentiable): straight-through.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..models.classifier import Classifier, eval_mode


def _to_unit(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    lower, upper = bounds
    return x if (lower, upper) == (0.0, 1.0) else (x - lower) / (upper - lower)


def _from_unit(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    lower, upper = bounds
    return x if (lower, upper) == (0.0, 1.0) else x * (upper - lower) + lower


def _check_images(x: Tensor) -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point image batch (N, C, H, W), got "
                         f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}.")


def _straight_through(x: Tensor, squeezed: Tensor) -> Tensor:
    """``squeezed`` in the forward pass, the identity in the backward pass."""
    return x + (squeezed - x).detach()


# --------------------------------------------------------------------------------- squeezers
def reduce_bit_depth(x: Tensor, bits: int, *, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """Bit-depth reduction: ``round(u·(2^b − 1)) / (2^b − 1)`` on u = x mapped to [0, 1]
    (round half to even), mapped back to ``bounds``. No gradient (the rounding is flat).

    Args:
        x: any float tensor in ``bounds``.
        bits: b, an integer in [1, 16].
        bounds: the input box.

    Raises:
        ValueError: ``bits`` outside [1, 16].
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}.")
    levels = 2 ** bits - 1
    with torch.no_grad():
        return _from_unit(torch.round(_to_unit(x, bounds) * levels) / levels, bounds)


def _pair(name: str, size) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in pair):
        raise ValueError(f"{name} must be an integer ≥ 1 or a pair (height, width) of them, got {size!r}.")
    return pair


def _symmetric_index(n: int, before: int, after: int, device) -> Tensor:
    """Indices into an axis of length n padded in scipy's ``reflect`` mode (edge repeated)."""
    idx = torch.arange(-before, n + after, device=device)
    period = 2 * n
    idx = idx % period
    return torch.where(idx >= n, period - 1 - idx, idx)


def median_filter(x: Tensor, size: int | tuple[int, int] = 2) -> Tensor:
    """Median smoothing per channel, ``scipy.ndimage.median_filter(x, size=(1, 1, kh, kw),
    mode="reflect")`` semantics (module text), in torch. Differentiable almost everywhere.

    Args:
        x: images ``(N, C, H, W)``.
        size: the window k or ``(kh, kw)``, integers ≥ 1 (Xu et al.: 2).

    Raises:
        ValueError: ``x`` not an image batch, or a bad ``size``.
    """
    _check_images(x)
    kh, kw = _pair("size", size)
    n, c, h, w = x.shape
    rows = _symmetric_index(h, kh // 2, kh - 1 - kh // 2, x.device)
    cols = _symmetric_index(w, kw // 2, kw - 1 - kw // 2, x.device)
    padded = x[:, :, rows][:, :, :, cols]
    windows = padded.unfold(2, kh, 1).unfold(3, kw, 1).reshape(n, c, h, w, kh * kw)
    rank = (kh * kw) // 2
    return windows.sort(dim=-1).values[..., rank]


def _check_nlm(strength, patch_size, search_window) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) \
            or strength <= 0:
        raise ValueError(f"strength must be a finite number > 0, got {strength!r}.")
    for name, v in (("patch_size", patch_size), ("search_window", search_window)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % 2 == 0:
            raise ValueError(f"{name} must be an odd integer ≥ 1, got {v!r}.")


def non_local_means(x: Tensor, *, strength: float = 2.0, patch_size: int = 3, search_window: int = 13,
                    bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """OpenCV's fast non-local means per image (module text), on uint8 quantisations.

    Args:
        x: images ``(N, C, H, W)`` in ``bounds``, with C = 1 or 3.
        strength: the filter strength h > 0 (both h and hColor for colour images; Xu et al.: 2).
        patch_size: the template patch side, an odd integer ≥ 1 (Xu et al.: 3).
        search_window: the search window side, an odd integer ≥ 1 (Xu et al.: 13).
        bounds: the input box.

    Returns:
        The denoised images, float, multiples of 1/255 mapped to ``bounds``, on ``x``'s device;
        no gradient.

    Raises:
        ValueError: a bad setting or channel count.
        ImportError: OpenCV is not installed (install the ``defenses`` extra).
    """
    _check_images(x)
    _check_nlm(strength, patch_size, search_window)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"non-local means takes 1 or 3 channels, got {x.shape[1]}.")
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("non_local_means needs OpenCV: pip install opencv-python-headless "
                          "(or the reprolib extra: pip install -e '.[defenses]').") from exc
    with torch.no_grad():
        u = _to_unit(x, bounds).detach().cpu().double().numpy()
    images = np.clip(np.rint(u * 255), 0, 255).astype(np.uint8)
    out = np.empty(images.shape, dtype=np.uint8)
    for i, img in enumerate(images):
        if img.shape[0] == 3:
            hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
            out[i] = cv2.fastNlMeansDenoisingColored(hwc, None, float(strength), float(strength), patch_size,
                                                     search_window).transpose(2, 0, 1)
        else:
            out[i, 0] = cv2.fastNlMeansDenoising(np.ascontiguousarray(img[0]), None, float(strength),
                                                 patch_size, search_window)
    result = torch.from_numpy(out.astype(np.float32) / 255.0).to(device=x.device, dtype=x.dtype)
    return _from_unit(result, bounds)


class Squeezer:
    """A squeezer ``s(x)`` on image batches ``(N, C, H, W)``; subclasses set ``name`` and
    ``gradient`` (``"straight_through"`` or ``"exact"``), which :meth:`differentiable` applies."""

    name = "squeezer"
    gradient = "straight_through"

    def __call__(self, x: Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        raise NotImplementedError

    def differentiable(self, x: Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        """s(x) in the forward pass; in the backward pass the identity (``"straight_through"``)
        or s's own gradient (``"exact"``)."""
        if self.gradient == "exact":
            return self(x, bounds)
        return _straight_through(x, self(x, bounds))

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, repr=False)
class BitDepth(Squeezer):
    """Bit-depth reduction to ``bits`` bits (:func:`reduce_bit_depth`); straight-through gradient."""

    bits: int

    def __post_init__(self) -> None:
        reduce_bit_depth(torch.zeros(1), self.bits)  # checks bits

    @property
    def name(self) -> str:
        return f"bit_depth_{self.bits}"

    def __call__(self, x: Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        return reduce_bit_depth(x, self.bits, bounds=bounds)


@dataclass(frozen=True, repr=False)
class MedianSmoothing(Squeezer):
    """k×k median smoothing (:func:`median_filter`). ``gradient``: ``"exact"`` (default, the
    median's own gradient) or ``"straight_through"``."""

    size: int | tuple[int, int] = 2
    gradient: str = "exact"

    def __post_init__(self) -> None:
        _pair("size", self.size)
        if self.gradient not in ("exact", "straight_through"):
            raise ValueError(f"gradient must be 'exact' or 'straight_through', got {self.gradient!r}.")

    @property
    def name(self) -> str:
        kh, kw = _pair("size", self.size)
        return f"median_{kh}x{kw}"

    def __call__(self, x: Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        return median_filter(x, self.size)


@dataclass(frozen=True, repr=False)
class NonLocalMeans(Squeezer):
    """OpenCV non-local means (:func:`non_local_means`); straight-through gradient."""

    search_window: int = 13
    patch_size: int = 3
    strength: float = 2.0

    def __post_init__(self) -> None:
        _check_nlm(self.strength, self.patch_size, self.search_window)

    @property
    def name(self) -> str:
        return f"nlm_{self.search_window}_{self.patch_size}_{self.strength:g}"

    def __call__(self, x: Tensor, bounds: tuple[float, float] = (0.0, 1.0)) -> Tensor:
        return non_local_means(x, strength=self.strength, patch_size=self.patch_size,
                               search_window=self.search_window, bounds=bounds)


def mnist_squeezers() -> tuple[Squeezer, ...]:
    """Xu et al.'s MNIST joint detector: 1-bit depth and 2×2 median smoothing."""
    return (BitDepth(1), MedianSmoothing(2))


def cifar_squeezers() -> tuple[Squeezer, ...]:
    """Xu et al.'s CIFAR-10 joint detector: 5-bit depth, 2×2 median, NLM 13-3-2."""
    return (BitDepth(5), MedianSmoothing(2), NonLocalMeans(13, 3, 2.0))


# ---------------------------------------------------------------------------- the detector
def _probabilities(model: Classifier, x: Tensor) -> Tensor:
    out = model(x)
    return out.exp() if model.output == "log_probs" else out.softmax(dim=1)


class JointDetector:
    """Xu et al.'s joint detector: ``score(x) = max_s ‖p(x) − p(s(x))‖₁`` against a threshold τ.

    Args:
        model: the protected classifier.
        squeezers: the squeezers s (e.g. :func:`mnist_squeezers`), at least one.
        threshold: τ ≥ 0, or ``None`` until :meth:`calibrate` sets it.

    Raises:
        ValueError: no squeezers, or a negative threshold.
    """

    def __init__(self, model: Classifier, squeezers: Sequence[Squeezer], *, threshold: float | None = None) -> None:
        self.model = model
        self.squeezers = tuple(squeezers)
        if not self.squeezers:
            raise ValueError("squeezers must hold at least one squeezer.")
        if threshold is not None and (not math.isfinite(threshold) or threshold < 0):
            raise ValueError(f"threshold must be a finite number ≥ 0, got {threshold!r}.")
        self.threshold = threshold
        self.fpr: float | None = None

    @torch.no_grad()
    def scores(self, x: Tensor, *, batch_size: int = 500) -> Tensor:
        """``score(x)`` per input ``(N,)`` on the CPU; the model runs in eval mode (restored)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}.")
        with eval_mode(self.model):
            device, out = self.model.device, []
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(device)
                p = _probabilities(self.model, xb)
                dist = torch.stack([(p - _probabilities(self.model, s(xb, self.model.bounds))).abs().sum(1)
                                    for s in self.squeezers])
                out.append(dist.max(0).values.cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def calibrate(self, x_clean: Tensor, fpr: float = 0.05) -> float:
        """Set τ from legitimate inputs for a false-positive rate ≤ ``fpr`` on them: the
        ⌈n(1 − fpr)⌉-th smallest score (EvadeML-Zoo's rule). Returns τ.

        Args:
            x_clean: legitimate inputs ``(n, ...)``, n ≥ 1 (Xu et al. use held-out test images).
            fpr: the target false-positive rate, in [0, 1).

        Raises:
            ValueError: ``fpr`` outside [0, 1) or no inputs.
        """
        if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 <= fpr < 1:
            raise ValueError(f"fpr must lie in [0, 1), got {fpr!r}.")
        if len(x_clean) == 0:
            raise ValueError("x_clean must hold at least one legitimate input.")
        s = self.scores(x_clean).sort().values
        k = max(1, math.ceil(len(s) * (1 - fpr)))
        self.threshold, self.fpr = float(s[k - 1]), float(fpr)
        return self.threshold

    def detect(self, x: Tensor) -> Tensor:
        """``score(x) > τ`` per input ``(N,)`` bool: True means flagged adversarial.

        Raises:
            RuntimeError: no threshold (call :meth:`calibrate` or pass ``threshold``).
        """
        if self.threshold is None:
            raise RuntimeError("the detector has no threshold: call calibrate(x_clean, fpr) or pass threshold=.")
        return self.scores(x) > self.threshold


# -------------------------------------------------------------------------- squeezed model
class _Squeeze(nn.Module):
    def __init__(self, squeezer: Squeezer, model: Classifier) -> None:
        super().__init__()
        self.squeezer = squeezer
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.squeezer.differentiable(x, self.model.bounds))


class SqueezedClassifier(Classifier):
    """``f(s(x))``: the classifier ``model`` behind the squeezer ``s``, as a
    :class:`~reprolib.models.Classifier` any attack can target (gradients: module text).

    Args:
        model: the protected classifier (its normalisation is applied after squeezing).
        squeezer: a :class:`Squeezer`.

    ``net`` is a module holding both; parameters are shared with ``model``.
    """

    def __init__(self, model: Classifier, squeezer: Squeezer) -> None:
        if not isinstance(model, Classifier):
            raise ValueError(f"model must be a reprolib.models.Classifier, got {type(model).__name__}.")
        if not isinstance(squeezer, Squeezer):
            raise ValueError(f"squeezer must be a Squeezer (BitDepth, MedianSmoothing, NonLocalMeans), "
                             f"got {type(squeezer).__name__}.")
        super().__init__(_Squeeze(squeezer, model), input_shape=model.input_shape, num_classes=model.num_classes,
                         bounds=model.bounds, output=model.output)
        self.squeezer = squeezer
