"""The pixel space around adversarial images: noise probes and distortion statistics (document 000).

Source: P. Tabacof and E. Valle, "Exploring the Space of Adversarial Images", IJCNN 2016,
https://arxiv.org/abs/1510.05328 (abstract: "we sample random noise of varying intensity and
distribution around the adversarial images and around the originals"), and the authors' code
``tabacof/adversarial`` (``adversarial.lua``, HEAD dcacc59), whose procedures this module follows
where the paper's text is silent. Everything here works in the model's input units (pixels in
[0, 1] for the zoo), with the model's normalisation inside the :class:`~reprolib.models.Classifier`.

Probes (:func:`probe`, and :func:`gaussian_probes`, :func:`nonparametric_probes`,
:func:`equal_norm_probes`). For each image, with distortion ``D = x_adv − x``, mean μ_D and
standard deviation σ_D over its entries, a probe is ``clip(start + n)`` with ``start`` the
adversarial image (``around="adversarial"``) or the original (``"original"``), and ``n`` one of:

``"gaussian"`` — the authors' "Monte Carlo" pass: i.i.d. ``N(μ_D, (m·σ_D)²)`` per coordinate
    (``noise_mean="zero"``: ``N(0, (m·σ_D)²)``, a control). The authors' levels are
    ``m = 2^(k−5)·0.9^k = 1.8^k/32`` for k = 0…10 (:func:`noise_multipliers`).
``"nonparametric"`` — the authors' "histogram" pass (``-hist``): every coordinate drawn with
    replacement from D's own entries, times ``m`` (1 in the code): D's marginal distribution
    without its spatial structure (``noise_mean="zero"`` resamples ``D − μ_D``).
``"equal_norm"`` — an addition of the reproduction notes (their §4.2): an isotropic Gaussian direction scaled
    to ``‖n‖₂ = m·‖D‖₂``, "noise of the same norm" as the distortion (zero mean whatever
    ``noise_mean`` says).

Each probe is labelled *original*, *adversarial* or *other* by the model's argmax. The same seed
gives the same noise around the adversarial image and around the original (common random
numbers, as the authors' passes that re-used one seed did); each kind of noise and each image has
its own stream (:func:`stream_seed`), so an image's result does not depend on the batch.

Distortion statistics (:func:`distortion_stats`) follow the authors' ``adversarial.lua`` in gray
levels (×255): mean, standard deviation, skewness and excess kurtosis of D's entries, without the
authors' bug of adding back the data set's mean (reported separately, to compare with their
numbers), and ‖D‖₂, RMS and ‖D‖∞. :func:`variance_components` splits the variance of a per-pair
quantity (‖D‖) between images and the targets drawn for them, and :func:`pair_design` draws
the (image, target) pairs of the authors' design.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..models.classifier import Classifier, eval_mode

__all__ = ["KINDS", "AROUND", "NOISE_MEANS", "CATEGORIES", "CODE_LEVELS", "PixelSpaceInputError",
           "noise_multipliers", "stream_seed", "sample_noise", "ProbeResult", "probe", "gaussian_probes",
           "nonparametric_probes", "equal_norm_probes", "distortion_stats", "probability_margin",
           "crossing_level", "variance_components", "Pairs", "pair_design"]

#: The three kinds of noise of :func:`probe`.
KINDS = ("gaussian", "nonparametric", "equal_norm")
#: Where the probes start: the adversarial image ``x_adv`` or the original ``x``.
AROUND = ("adversarial", "original")
#: The mean of the Gaussian noise: the distortion's own mean (the authors') or zero (a control).
NOISE_MEANS = ("distortion", "zero")
#: The label categories a probe falls in, in the order of :attr:`ProbeResult.counts`' last axis.
CATEGORIES = ("original", "adversarial", "other")
#: The authors' eleven noise levels k = 0…10 (:func:`noise_multipliers`).
CODE_LEVELS = tuple(range(11))
_CONVENTIONS = ("scipy", "code")


class PixelSpaceInputError(ValueError):
    """An input of this module is unusable; the message names the problem and the fix."""


# ----------------------------------------------------------------------------- checks

def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PixelSpaceInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def _choice(name: str, value, options: Sequence[str]) -> str:
    if value not in options:
        raise PixelSpaceInputError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}.")
    return value


def _positive_grid(name: str, values) -> Tensor:
    try:
        grid = torch.as_tensor(values, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise PixelSpaceInputError(f"{name} must be a sequence of numbers, got {values!r}.") from exc
    if grid.numel() == 0 or not bool(torch.isfinite(grid).all()) or not bool((grid > 0).all()):
        raise PixelSpaceInputError(f"{name} must hold at least one finite number > 0, got {grid.tolist()}.")
    return grid


def _labels(name: str, y, n: int, num_classes: int) -> Tensor:
    if not torch.is_tensor(y) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool \
            or tuple(y.shape) != (n,):
        raise PixelSpaceInputError(f"{name} must be an integer tensor of shape ({n},), got "
                                   f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}.")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise PixelSpaceInputError(f"{name} must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}].")
    return y.long()


def _images(model: Classifier, name: str, x) -> Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise PixelSpaceInputError(f"{name} must be a floating-point tensor, got {type(x).__name__} "
                                   f"{getattr(x, 'dtype', '')}.")
    if x.dim() != len(model.input_shape) + 1 or tuple(x.shape[1:]) != model.input_shape:
        raise PixelSpaceInputError(
            f"{name} has shape {tuple(x.shape)}; the model takes (N, {', '.join(map(str, model.input_shape))}). "
            "Add the batch dimension with .unsqueeze(0) for one image.")
    if not bool(torch.isfinite(x).all()):
        raise PixelSpaceInputError(f"{name} holds NaN or infinite values; clean them first.")
    lower, upper = model.bounds
    if x.numel() and (float(x.min()) < lower or float(x.max()) > upper):
        raise PixelSpaceInputError(f"{name} spans [{float(x.min()):.4g}, {float(x.max()):.4g}], outside the model's "
                                   f"bounds [{lower}, {upper}]; pass raw inputs (normalisation belongs in the model).")
    return x


# ----------------------------------------------------------------------------- noise

def noise_multipliers(levels: Sequence[int] = CODE_LEVELS) -> Tensor:
    """The authors' noise levels: ``m_k = 2^(k−5) · 0.9^k = 1.8^k / 32`` (their code multiplies
    the distortion's SD by 2^i, i = −5…5, and shrinks the base SD by 0.9 after each level).

    Args:
        levels: the indices k (integers in [0, 30]); the authors used k = 0…10, multipliers
            0.031, 0.056, 0.101, 0.182, 0.328, 0.590, 1.063, 1.913, 3.444, 6.199, 11.158.

    Returns:
        ``(L,)`` float64, the multipliers of σ_D (dimensionless), in the order of ``levels``.

    Raises:
        PixelSpaceInputError: an empty list, or a level that is not an integer in [0, 30].
    """
    levels = list(levels)
    if not levels or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= 30
                         for k in levels):
        raise PixelSpaceInputError(f"levels must be a non-empty list of integers in [0, 30] (the authors' "
                                   f"k = 0…10), got {levels!r}.")
    return torch.tensor([1.8 ** int(k) / 32 for k in levels], dtype=torch.float64)


def stream_seed(seed: int, kind: str, stream: int) -> int:
    """The seed of one probe stream: image ``stream`` of noise ``kind`` under the run's ``seed``
    (numpy's ``SeedSequence``, so nearby seeds give unrelated streams). The starting point is
    not part of it: around the original and the adversarial image the draws are the same."""
    _choice("kind", kind, KINDS)
    state = np.random.SeedSequence([int(seed), KINDS.index(kind), int(stream)]).generate_state(2)
    return int(state[0]) << 31 | int(state[1]) >> 1


def sample_noise(kind: str, d: Tensor, n_probes: int, multiplier: float = 1.0, *,
                 generator: torch.Generator | None = None, noise_mean: str = "distortion") -> Tensor:
    """``n_probes`` noise draws for one image with distortion ``d`` (see the module docstring).

    Args:
        kind: ``"gaussian"``, ``"nonparametric"`` or ``"equal_norm"``.
        d: ``(*input_shape)`` one image's distortion ``x_adv − x``, in input units.
        n_probes: how many draws (≥ 1).
        multiplier: m > 0: the SD in units of σ_D (gaussian), the factor on D's resampled
            entries (nonparametric), the norm in units of ‖D‖₂ (equal_norm).
        generator: a CPU torch generator (``None``: torch's global one).
        noise_mean: ``"distortion"`` (μ_D, the authors') or ``"zero"``; equal-norm noise is
            always zero-mean.

    Returns:
        ``(n_probes, *d.shape)`` noise in ``d``'s dtype, on ``d``'s device, before clipping.

    Raises:
        PixelSpaceInputError: a bad setting, or a distortion with non-finite entries, or one
            whose entries are all equal (σ_D = 0; ‖D‖₂ = 0 for equal_norm): such an attack failed,
            exclude it.
    """
    _choice("kind", kind, KINDS)
    _choice("noise_mean", noise_mean, NOISE_MEANS)
    n_probes = _count("n_probes", n_probes)
    m = float(_positive_grid("multiplier", [multiplier])[0])
    if not torch.is_tensor(d) or not d.is_floating_point() or d.numel() < 2 or not bool(torch.isfinite(d).all()):
        raise PixelSpaceInputError("d must be a finite floating-point tensor with at least 2 entries (one image's "
                                   "distortion x_adv − x).")
    flat = d.detach().flatten().double().cpu()
    mu, sd, norm = float(flat.mean()), float(flat.std(unbiased=False)), float(flat.norm())
    if (kind == "equal_norm" and norm == 0) or (kind != "equal_norm" and sd == 0):
        raise PixelSpaceInputError(f"the distortion is constant (σ_D = {sd:g}, ‖D‖₂ = {norm:g}): probes scaled to "
                                   "it are undefined. Exclude the images whose attack failed (x_adv = x).")
    shape = (n_probes, flat.numel())
    if kind == "gaussian":
        noise = torch.randn(shape, generator=generator, dtype=torch.float64) * (m * sd)
        if noise_mean == "distortion":
            noise += mu
    elif kind == "nonparametric":
        pool = flat if noise_mean == "distortion" else flat - mu
        noise = pool[torch.randint(0, flat.numel(), shape, generator=generator)] * m
    else:
        g = torch.randn(shape, generator=generator, dtype=torch.float64)
        noise = g * (m * norm / g.norm(dim=1, keepdim=True))
    return noise.to(dtype=d.dtype, device=d.device).reshape(n_probes, *d.shape)


# ----------------------------------------------------------------------------- probing

@dataclass
class ProbeResult:
    """What :func:`probe` returns. ``N`` images, ``L`` noise levels.

    Attributes:
        kind, around, noise_mean: the settings (see :func:`probe`).
        multipliers: ``(L,)`` float64, the noise scale of each level (units: σ_D for gaussian,
            D's entries for nonparametric, ‖D‖₂ for equal_norm).
        n_probes: probes per image and level.
        counts: ``(N, L, 3)`` int64, probes labelled original / adversarial / other
            (:data:`CATEGORIES`); each row sums to ``n_probes``.
        noise_sd: ``(N, L)`` float64, the SD over coordinates of the noise actually added (after
            clipping, ``probe − start``), averaged over the probes, in input units.
        noise_l2: ``(N, L)`` float64, its ℓ2 norm, averaged over the probes, in input units.
        forwards: ``(N,)`` int64, probes run through the model per image (``L · n_probes``).
        model_calls: the number of batched forward calls.
        seed: the seed of every stream (:func:`stream_seed`).
        seconds: wall time.
    """

    kind: str
    around: str
    noise_mean: str
    multipliers: Tensor
    n_probes: int
    counts: Tensor
    noise_sd: Tensor
    noise_l2: Tensor
    forwards: Tensor
    model_calls: int
    seed: int
    seconds: float

    @property
    def fractions(self) -> Tensor:
        """``(N, L, 3)`` float64: the shares of the probes in each category."""
        return self.counts.double() / self.n_probes

    @property
    def kept(self) -> Tensor:
        """``(N, L)`` float64: the share of probes that keep the starting point's label
        (adversarial around adversarial images, original around originals)."""
        return self.fractions[..., 1 if self.around == "adversarial" else 0]

    @property
    def pooled(self) -> Tensor:
        """``(L, 3)`` float64: the shares over all images' probes (the authors' averaged columns)."""
        return self.counts.sum(0).double() / (self.n_probes * max(len(self.counts), 1))

    def __len__(self) -> int:
        return len(self.counts)


def probe(model: Classifier, x: Tensor, x_adv: Tensor, original: Tensor, adversarial: Tensor, *,
          kind: str = "gaussian", around: str = "adversarial", multipliers: Sequence[float] | Tensor | None = None,
          n_probes: int = 100, noise_mean: str = "distortion", seed: int = 0, ids: Tensor | None = None,
          batch_size: int = 100, progress: bool = False) -> ProbeResult:
    """Probe the model with noise around adversarial images or their originals (module docstring).

    For each image i and level ℓ, ``n_probes`` noise draws ``n`` (:func:`sample_noise` with
    ``D = x_adv[i] − x[i]``) give probes ``clip(start + n)`` within the model's bounds; each is
    classified by one forward pass, in batches of ``batch_size`` rows.

    Args:
        model: the classifier (put in eval mode for the call, its mode restored afterwards).
        x: ``(N, *input_shape)`` the originals, in the model's bounds.
        x_adv: ``(N, *input_shape)`` their adversarial images (successful attacks only).
        original: ``(N,)`` int, the originals' labels (correctly classified images: true = predicted).
        adversarial: ``(N,)`` int, the adversarial labels (the targets); none may equal ``original``.
        kind: ``"gaussian"``, ``"nonparametric"`` or ``"equal_norm"``.
        around: ``"adversarial"`` (start at ``x_adv``) or ``"original"`` (start at ``x``).
        multipliers: the noise scales m > 0, one per level. Default: the authors' 11 levels
            (:func:`noise_multipliers`) for gaussian, ``[1.0]`` otherwise.
        n_probes: probes per image and level (the authors: 100).
        noise_mean: ``"distortion"`` (the authors') or ``"zero"``.
        seed: the seed of every noise stream.
        ids: ``(N,)`` int, the stream of each image (default ``0…N−1``): pass the images'
            positions in a larger set to reproduce that set's draws on a subset.
        batch_size: probes per forward call (≥ 1).
        progress: show a progress bar over the images.

    Returns:
        A :class:`ProbeResult`.

    Raises:
        PixelSpaceInputError: before any model pass, for any input or setting outside the above.
    """
    if not isinstance(model, Classifier):
        raise PixelSpaceInputError(f"model must be a reprolib.models.Classifier, got {type(model).__name__}; wrap "
                                   "your network: Classifier(net, input_shape=..., num_classes=...).")
    _choice("kind", kind, KINDS)
    _choice("around", around, AROUND)
    _choice("noise_mean", noise_mean, NOISE_MEANS)
    n_probes = _count("n_probes", n_probes)
    batch_size = _count("batch_size", batch_size)
    seed = _count("seed", seed, 0)
    if multipliers is None:
        multipliers = noise_multipliers() if kind == "gaussian" else [1.0]
    grid = _positive_grid("multipliers", multipliers)
    x = _images(model, "x", x)
    x_adv = _images(model, "x_adv", x_adv)
    n = len(x)
    if x_adv.shape != x.shape:
        raise PixelSpaceInputError(f"x_adv has shape {tuple(x_adv.shape)} but x has {tuple(x.shape)}; pass one "
                                   "adversarial image per original.")
    original = _labels("original", original, n, model.num_classes)
    adversarial = _labels("adversarial", adversarial, n, model.num_classes)
    same = (original == adversarial).nonzero().flatten().tolist()
    if same:
        raise PixelSpaceInputError(f"images {same[:10]} have the same original and adversarial label; probes "
                                   "cannot tell the two apart. Pass only successful (targeted) attacks.")
    if ids is None:
        ids = torch.arange(n)
    elif not torch.is_tensor(ids) or ids.is_floating_point() or tuple(ids.shape) != (n,) or \
            (n and int(ids.min()) < 0):
        raise PixelSpaceInputError(f"ids must be a tensor of {n} non-negative integers (one stream per image), "
                                   f"got {ids!r}.")
    delta = x_adv - x
    flat = delta.flatten(1)
    constant = (flat == flat[:, :1]).all(1).nonzero().flatten().tolist() if n else []
    if constant:
        raise PixelSpaceInputError(f"the distortions of images {constant[:10]} are constant (x_adv − x has one "
                                   "value): probes scaled to them are undefined. Exclude failed attacks (x_adv = x).")
    lower, upper = model.bounds
    dev = model.device
    levels = len(grid)
    counts = torch.zeros(n, levels, 3, dtype=torch.long)
    noise_sd = torch.zeros(n, levels, dtype=torch.float64)
    noise_l2 = torch.zeros(n, levels, dtype=torch.float64)
    calls = 0
    started = time.perf_counter()
    with eval_mode(model), torch.no_grad():
        for i in tqdm(range(n), desc=f"{kind} probes around {around}", disable=not progress, leave=False):
            gen = torch.Generator().manual_seed(stream_seed(seed, kind, int(ids[i])))
            start = (x_adv[i] if around == "adversarial" else x[i]).to(dev)
            for j, m in enumerate(grid.tolist()):
                noise = sample_noise(kind, delta[i].cpu(), n_probes, m, generator=gen,
                                     noise_mean=noise_mean).to(dev)
                probes = (start + noise).clamp(lower, upper)
                effective = (probes - start).flatten(1).double()
                noise_sd[i, j] = float(effective.std(1, unbiased=False).mean())
                noise_l2[i, j] = float(effective.norm(dim=1).mean())
                for b in range(0, n_probes, batch_size):
                    pred = model(probes[b:b + batch_size]).argmax(1).cpu()
                    calls += 1
                    is_orig, is_adv = pred == original[i], pred == adversarial[i]
                    counts[i, j, 0] += int(is_orig.sum())
                    counts[i, j, 1] += int(is_adv.sum())
                    counts[i, j, 2] += int((~is_orig & ~is_adv).sum())
    return ProbeResult(kind=kind, around=around, noise_mean=noise_mean, multipliers=grid, n_probes=n_probes,
                       counts=counts, noise_sd=noise_sd, noise_l2=noise_l2,
                       forwards=torch.full((n,), levels * n_probes, dtype=torch.long), model_calls=calls,
                       seed=seed, seconds=time.perf_counter() - started)


def gaussian_probes(model: Classifier, x: Tensor, x_adv: Tensor, original: Tensor, adversarial: Tensor,
                    **settings) -> ProbeResult:
    """:func:`probe` with ``kind="gaussian"``: the authors' "Monte Carlo" pass, ``N(μ_D, (m σ_D)²)``
    per coordinate on their 1.8^k/32 schedule by default."""
    return probe(model, x, x_adv, original, adversarial, kind="gaussian", **settings)


def nonparametric_probes(model: Classifier, x: Tensor, x_adv: Tensor, original: Tensor, adversarial: Tensor,
                         **settings) -> ProbeResult:
    """:func:`probe` with ``kind="nonparametric"``: the authors' "histogram" pass, each coordinate
    resampled with replacement from D's entries (one level, m = 1, by default)."""
    return probe(model, x, x_adv, original, adversarial, kind="nonparametric", **settings)


def equal_norm_probes(model: Classifier, x: Tensor, x_adv: Tensor, original: Tensor, adversarial: Tensor,
                      **settings) -> ProbeResult:
    """:func:`probe` with ``kind="equal_norm"``: isotropic Gaussian directions scaled to
    ``‖n‖₂ = m ‖D‖₂`` (m = 1 by default), then clipped; ``noise_l2`` records the norm after clipping."""
    return probe(model, x, x_adv, original, adversarial, kind="equal_norm", **settings)


# ----------------------------------------------------------------------------- statistics

def distortion_stats(d: Tensor, *, scale: float = 255.0, dataset_mean: float | None = None,
                     convention: str = "scipy") -> dict[str, Tensor]:
    """Per-image statistics of distortions ``d = x_adv − x`` (the authors' ``adversarial.lua``).

    Args:
        d: ``(N, ...)`` distortions in input units (pixels in [0, 1]).
        scale: gray levels per input unit (255: the moments come out in gray levels).
        dataset_mean: the data set's mean in input units; when given, ``"mean_code"`` is the mean
            plus it, in gray levels: the authors' reported "mean" (their conversion added the data
            set's mean back, +25.51 gray levels on their padded MNIST).
        convention: ``"scipy"``: population moments, equal to ``scipy.stats.skew`` and
            ``scipy.stats.kurtosis`` (``bias=True``, Fisher) and SD with ``ddof=0``; ``"code"``:
            the authors' formulas, SD with n − 1, skewness = m₃ / (Σ(d − d̄)²/(n − 1))^{3/2},
            excess kurtosis = m₄/m₂² − 3 (they differ from scipy's by a factor (1 − 1/n)^{3/2} on
            the skewness, 0.998 for MNIST).

    Returns:
        ``{name: (N,) float64}``: ``mean``, ``sd``, ``skewness``, ``kurtosis`` (excess), in gray
        levels where they have units; ``l2`` (‖D‖₂), ``rms`` (‖D‖₂/√n) and ``linf`` (‖D‖∞) in input
        units; ``rms_gray`` and ``linf_gray`` in gray levels; ``mean_code`` with ``dataset_mean``.
        Skewness and kurtosis are NaN for a constant distortion.

    Raises:
        PixelSpaceInputError: ``d`` is not a finite floating-point tensor of shape (N, ...) with
            at least 2 entries per image, or a bad setting.
    """
    _choice("convention", convention, _CONVENTIONS)
    if not torch.is_tensor(d) or not d.is_floating_point() or d.dim() < 2 or d[0].numel() < 2:
        raise PixelSpaceInputError("d must be a floating-point tensor of shape (N, ...) with at least 2 entries per "
                                   f"image (a batch of x_adv − x), got {getattr(d, 'dtype', type(d).__name__)} "
                                   f"{tuple(getattr(d, 'shape', ()))}; add the batch dimension with .unsqueeze(0).")
    if not bool(torch.isfinite(d).all()):
        raise PixelSpaceInputError("d holds NaN or infinite values; check the attack's output.")
    if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale) and scale > 0):
        raise PixelSpaceInputError(f"scale must be a finite number > 0 (255 for gray levels), got {scale!r}.")
    flat = d.detach().flatten(1).double().cpu()
    n = flat.shape[1]
    centred = flat - flat.mean(1, keepdim=True)
    m2 = centred.pow(2).mean(1)
    m3 = centred.pow(3).mean(1)
    m4 = centred.pow(4).mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if convention == "scipy":
            var = m2
            skew = m3 / m2.pow(1.5)
        else:
            var = m2 * n / (n - 1)
            skew = m3 / var.pow(1.5)
        kurt = m4 / m2.pow(2) - 3
    flat_const = m2 == 0
    skew = skew.masked_fill(flat_const, math.nan)
    kurt = kurt.masked_fill(flat_const, math.nan)
    l2 = flat.norm(dim=1)
    out = {"mean": flat.mean(1) * scale, "sd": var.sqrt() * scale, "skewness": skew, "kurtosis": kurt,
           "l2": l2, "rms": l2 / math.sqrt(n), "linf": flat.abs().amax(1),
           "rms_gray": l2 / math.sqrt(n) * scale, "linf_gray": flat.abs().amax(1) * scale}
    if dataset_mean is not None:
        out["mean_code"] = out["mean"] + float(dataset_mean) * scale
    return out


@torch.no_grad()
def probability_margin(model: Classifier, x: Tensor, target: Tensor, *, batch_size: int = 1024) -> Tensor:
    """``p_t(x) − max_{j≠t} p_j(x)`` per input, softmax probabilities: how far past the boundary an
    adversarial image lies (positive when the model predicts the target ``t``; the reproduction notes'
    "final margin", §4.4). One forward pass per input, in batches.

    Args:
        model: the classifier (logits or log-probabilities; softmax is applied to either).
        x: ``(N, *input_shape)`` inputs in the model's bounds.
        target: ``(N,)`` int labels.
        batch_size: inputs per forward call.

    Returns:
        ``(N,)`` float64 in [−1, 1].
    """
    x = _images(model, "x", x)
    target = _labels("target", target, len(x), model.num_classes)
    batch_size = _count("batch_size", batch_size)
    out = []
    with eval_mode(model):
        for b in range(0, len(x), batch_size):
            p = model(x[b:b + batch_size].to(model.device)).double().softmax(1).cpu()
            t = target[b:b + batch_size]
            own = p.gather(1, t[:, None]).squeeze(1)
            out.append(own - p.scatter(1, t[:, None], -math.inf).amax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def crossing_level(kept: Tensor, multipliers: Tensor | Sequence[float], threshold: float = 0.5) -> Tensor:
    """Per image, the noise level at which the share of probes keeping the label first falls below
    ``threshold``, interpolated linearly in log(multiplier) between the two levels around it
    (the issue's "noise level at which half the probes leave the adversarial class").

    Args:
        kept: ``(N, L)`` shares in [0, 1] (:attr:`ProbeResult.kept`).
        multipliers: ``(L,)`` increasing noise scales.
        threshold: the share in (0, 1).

    Returns:
        ``(N,)`` float64 multipliers: ``multipliers[0]`` where the share is already below the
        threshold at the first level (the level is at most that), ``inf`` where it never falls
        below it on the grid.

    Raises:
        PixelSpaceInputError: mismatched shapes, multipliers not positive and increasing, or a
            threshold outside (0, 1).
    """
    grid = _positive_grid("multipliers", multipliers)
    if len(grid) > 1 and not bool((grid[1:] > grid[:-1]).all()):
        raise PixelSpaceInputError(f"multipliers must increase, got {grid.tolist()}.")
    if not torch.is_tensor(kept) or kept.dim() != 2 or kept.shape[1] != len(grid):
        raise PixelSpaceInputError(f"kept must be a tensor of shape (N, {len(grid)}), one column per multiplier; got "
                                   f"{tuple(getattr(kept, 'shape', ()))}.")
    if not 0 < threshold < 1:
        raise PixelSpaceInputError(f"threshold must lie in (0, 1), got {threshold!r}.")
    kept = kept.double().cpu()
    logm = grid.log()
    out = torch.full((len(kept),), math.inf, dtype=torch.float64)
    below = kept < threshold
    for i in range(len(kept)):
        hits = below[i].nonzero().flatten()
        if len(hits) == 0:
            continue
        j = int(hits[0])
        if j == 0:
            out[i] = grid[0]
            continue
        a, b = float(kept[i, j - 1]), float(kept[i, j])
        t = (a - threshold) / (a - b)
        out[i] = math.exp(float(logm[j - 1]) + t * float(logm[j] - logm[j - 1]))
    return out


def variance_components(values: Tensor | Sequence[float], groups: Tensor | Sequence[int],
                        second: Tensor | Sequence[int] | None = None) -> dict[str, float]:
    """How much of the variance of a per-pair quantity is due to the image and how much to the
    target drawn for it: a one-way random-effects analysis of variance with the image as group
    (moment estimates; the reproduction notes, §4.4, F6: "the target label as a random factor").

    Args:
        values: ``(M,)`` one number per (image, target) pair, e.g. log ‖D‖₂.
        groups: ``(M,)`` int, the image of each pair (at least 2 images, each with ≥ 2 pairs).
        second: ``(M,)`` int, optional: the target class of each pair; then an additive
            least-squares fit ``image + target class`` also says what the target class explains
            beyond the image.

    Returns:
        ``between`` (σ²_image), ``within`` (σ²_target|image), ``image_share`` (σ²_image /
        (σ²_image + σ²_within), the intraclass correlation, 0 when the estimate is negative),
        ``f`` and ``p_value`` (the F test of no image effect), ``groups``, ``pairs``; with
        ``second``: ``r2_image``, ``r2_full``, ``r2_second_extra`` and ``p_second`` (the F test
        of the target class given the image).

    Raises:
        PixelSpaceInputError: mismatched lengths, non-finite values, fewer than 2 groups, a group
            with fewer than 2 pairs, or no variance within the groups.
    """
    from scipy.stats import f as f_dist

    y = torch.as_tensor(values, dtype=torch.float64).flatten().numpy()
    g = torch.as_tensor(groups).flatten().numpy()
    if len(y) != len(g) or not np.isfinite(y).all():
        raise PixelSpaceInputError(f"values ({len(y)}) and groups ({len(g)}) must have the same length, and values "
                                   "must be finite (take the log of positive norms only).")
    labels, inverse, sizes = np.unique(g, return_inverse=True, return_counts=True)
    k, m = len(labels), len(y)
    if k < 2 or sizes.min() < 2:
        raise PixelSpaceInputError(f"need at least 2 groups with at least 2 values each; got {k} groups with sizes "
                                   f"{sizes.tolist()[:10]}.")
    means = np.bincount(inverse, weights=y) / sizes
    grand = y.mean()
    ssb = float((sizes * (means - grand) ** 2).sum())
    ssw = float(((y - means[inverse]) ** 2).sum())
    if ssw <= 0:
        raise PixelSpaceInputError("the values do not vary within any group; the decomposition is undefined.")
    msb, msw = ssb / (k - 1), ssw / (m - k)
    n0 = (m - float((sizes ** 2).sum()) / m) / (k - 1)
    between = max((msb - msw) / n0, 0.0)
    out = {"between": between, "within": msw, "image_share": between / (between + msw),
           "f": msb / msw, "p_value": float(f_dist.sf(msb / msw, k - 1, m - k)), "groups": k, "pairs": m}
    if second is not None:
        s = torch.as_tensor(second).flatten().numpy()
        if len(s) != m:
            raise PixelSpaceInputError(f"second has {len(s)} entries; values has {m}.")
        _, s_inv = np.unique(s, return_inverse=True)
        design = np.concatenate([np.eye(k)[inverse], np.eye(s_inv.max() + 1)[s_inv][:, 1:]], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse_full = float(((y - design @ coef) ** 2).sum())
        rank = int(np.linalg.matrix_rank(design))
        sst = float(((y - grand) ** 2).sum())
        extra_df = rank - k
        df_e = m - rank
        out["r2_image"] = ssb / sst
        out["r2_full"] = 1 - sse_full / sst
        out["r2_second_extra"] = out["r2_full"] - out["r2_image"]
        out["p_second"] = (float(f_dist.sf(((ssw - sse_full) / extra_df) / (sse_full / df_e), extra_df, df_e))
                           if extra_df > 0 and df_e > 0 and sse_full > 0 else math.nan)
    return out


# ----------------------------------------------------------------------------- design

@dataclass
class Pairs:
    """(image, target) pairs drawn by :func:`pair_design`, one row per pair.

    Attributes:
        positions: ``(M,)`` int64, the image's position in the set passed to :func:`pair_design`
            (repeated once per target).
        labels: ``(M,)`` int64, the image's label.
        targets: ``(M,)`` int64, the adversarial target (never the label).
        image: ``(M,)`` int64, the image's number 0…n−1 in the design (the groups of
            :func:`variance_components`).
    """

    positions: Tensor
    labels: Tensor
    targets: Tensor
    image: Tensor

    def __len__(self) -> int:
        return len(self.positions)


def pair_design(labels: Tensor, eligible: Tensor, num_classes: int, *, n_images: int | None = None,
                classes: int | Sequence[int] | None = None, per_class: int | None = None,
                targets_per_image: int = 1, seed: int = 0) -> Pairs:
    """Draw the (image, target) pairs of the authors' design (the reproduction notes, §4.2), seeded.

    The set is visited in a seeded random order; only ``eligible`` images (e.g. correctly
    classified by every model compared) are taken. Either ``n_images`` images in that order (the
    authors' MNIST runs), or ``per_class`` images of each of ``classes`` (a number of classes drawn
    at random, or a list of class indices; their ImageNet runs: 5 × 5). Each image gets
    ``targets_per_image`` distinct targets drawn uniformly among the other classes.

    Args:
        labels: ``(N,)`` int labels of the set.
        eligible: ``(N,)`` bool.
        num_classes: the number of classes.
        n_images, classes, per_class: the design (give ``n_images``, or ``classes`` and ``per_class``).
        targets_per_image: distinct targets per image (1 … num_classes − 1).
        seed: the seed of the order, the classes and the targets.

    Returns:
        :class:`Pairs`, grouped by image (its targets consecutive), images in draw order.

    Raises:
        PixelSpaceInputError: an inconsistent design, or too few eligible images.
    """
    labels = torch.as_tensor(labels).long().flatten()
    eligible = torch.as_tensor(eligible).bool().flatten()
    if len(eligible) != len(labels):
        raise PixelSpaceInputError(f"eligible has {len(eligible)} entries; labels has {len(labels)}.")
    num_classes = _count("num_classes", num_classes, 2)
    targets_per_image = _count("targets_per_image", targets_per_image)
    if targets_per_image > num_classes - 1:
        raise PixelSpaceInputError(f"targets_per_image must be at most num_classes − 1 = {num_classes - 1}, got "
                                   f"{targets_per_image}.")
    if (n_images is None) == (classes is None):
        raise PixelSpaceInputError("give either n_images, or classes and per_class.")
    gen = torch.Generator().manual_seed(_count("seed", seed, 0))
    order = torch.randperm(len(labels), generator=gen)
    order = order[eligible[order]]
    if n_images is not None:
        n_images = _count("n_images", n_images)
        if len(order) < n_images:
            raise PixelSpaceInputError(f"only {len(order)} eligible images; asked for {n_images}.")
        chosen = order[:n_images]
    else:
        per_class = _count("per_class", per_class if per_class is not None else 0)
        if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
            if not 1 <= classes <= num_classes:
                raise PixelSpaceInputError(f"classes must be between 1 and {num_classes}, got {classes}.")
            picked = torch.randperm(num_classes, generator=gen)[:int(classes)].tolist()
        else:
            picked = [int(c) for c in classes]
            if not picked or any(not 0 <= c < num_classes for c in picked) or len(set(picked)) != len(picked):
                raise PixelSpaceInputError(f"classes must be distinct class indices in [0, {num_classes - 1}], "
                                           f"got {classes!r}.")
        chosen = []
        for c in picked:
            members = order[labels[order] == c][:per_class]
            if len(members) < per_class:
                raise PixelSpaceInputError(f"class {c} has only {len(members)} eligible images; asked for {per_class}.")
            chosen.append(members)
        chosen = torch.cat(chosen)
    rows = []
    for number, pos in enumerate(chosen.tolist()):
        others = torch.tensor([c for c in range(num_classes) if c != int(labels[pos])])
        picks = others[torch.randperm(len(others), generator=gen)[:targets_per_image]]
        rows += [(pos, int(labels[pos]), int(t), number) for t in picks.tolist()]
    pos_, lab_, tar_, img_ = (torch.tensor(col, dtype=torch.long) for col in zip(*rows))
    return Pairs(positions=pos_, labels=lab_, targets=tar_, image=img_)
