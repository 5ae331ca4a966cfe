"""Figures shared by the chapters, in one seaborn theme.

* :func:`set_theme` — the book's theme; every function here applies it.
* :func:`image_grid` — original / perturbation / adversarial rows, with labels.
* :func:`wilson_interval`, :func:`bootstrap_interval` — confidence intervals.
* :func:`band`, :func:`rate_curve`, :func:`mean_curve` — curves with confidence bands.
* :func:`family_styles` — one hue per family of methods, a distinct dash per member.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

#: The palette of every figure (colour-blind safe).
PALETTE = "colorblind"
#: The order in which families take :data:`PALETTE`'s ten hues: the colour-blind palette's
#: orange and vermillion (1 and 3) are far apart in this order, so up to seven families never get both.
_FAMILY_HUES = (0, 1, 2, 4, 5, 9, 7, 3, 6, 8)
#: The dashes given to the members of one family, in order (solid first).
DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))

_THEMED = False


def set_theme(**rc: Any) -> None:
    """Apply the book's seaborn theme (white grid, colour-blind palette, readable sizes).

    Extra keyword arguments are matplotlib rc settings layered on top.
    """
    global _THEMED
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95,
                  rc={"figure.dpi": 100, "savefig.dpi": 100, "savefig.bbox": "tight",
                      "axes.titlesize": "medium", "axes.spines.top": False,
                      "axes.spines.right": False, "image.interpolation": "nearest", **rc})
    _THEMED = True


def _theme() -> None:
    if not _THEMED:
        set_theme()


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def _as_image(x: np.ndarray) -> np.ndarray:
    """CHW or HW → HW or HWC for imshow."""
    if x.ndim == 3:
        return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    return x


def _label(labels: Any, i: int, class_names: Sequence[str] | None) -> str | None:
    if labels is None:
        return None
    value = int(_np(labels)[i])
    return class_names[value] if class_names is not None else str(value)


def image_grid(x: Any, x_adv: Any, *, labels: Any = None, adv_labels: Any = None,
               class_names: Sequence[str] | None = None, n: int | None = 8,
               title: str | None = None, amplify: str | float = "auto",
               row_names: Sequence[str] = ("original", "perturbation", "adversarial"),
               size: float = 1.3) -> matplotlib.figure.Figure:
    """A grid with one column per example and three rows: the originals, the perturbations
    ``x_adv - x`` and the adversarial examples.

    Args:
        x, x_adv: batches of images in [0, 1] (NCHW or NHW; tensors or arrays).
        labels: the label shown above each original (e.g. the true class).
        adv_labels: the label shown above each adversarial (e.g. the model's prediction);
            it is drawn in red when it differs from ``labels``.
        class_names: names for the label indices.
        n: show at most this many examples (``None``: all).
        title: the figure's title.
        amplify: perturbations are shown on a symmetric scale: ``"auto"`` maps the largest
            absolute value over the shown examples to full contrast; a number ``a`` maps
            ``±a`` to full contrast. The scale is printed in the row's name.
        row_names: the names of the three rows.
        size: inches per image.

    Returns:
        The matplotlib figure.
    """
    _theme()
    x, x_adv = _np(x), _np(x_adv)
    if x.shape != x_adv.shape:
        raise ValueError(f"x has shape {x.shape} but x_adv has shape {x_adv.shape}.")
    count = len(x) if n is None else min(n, len(x))
    if count == 0:
        raise ValueError("image_grid needs at least one example.")
    delta = x_adv[:count] - x[:count]
    scale = float(np.abs(delta).max()) if amplify == "auto" else float(amplify)
    scale = scale if scale > 0 else 1.0
    fig, axes = plt.subplots(3, count, figsize=(size * count + 0.9, size * 3 + (0.45 if title else 0.2)),
                             squeeze=False)
    for i in range(count):
        orig, adv = _as_image(x[i]), _as_image(x_adv[i])
        gray = orig.ndim == 2
        axes[0, i].imshow(orig, cmap="gray" if gray else None, vmin=0, vmax=1)
        d = _as_image(delta[i])
        if gray:
            axes[1, i].imshow(d, cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:  # colour: mid-grey is zero, each channel scaled alike
            axes[1, i].imshow(np.clip(0.5 + d / (2 * scale), 0, 1))
        axes[2, i].imshow(adv, cmap="gray" if gray else None, vmin=0, vmax=1)
        top, bottom = _label(labels, i, class_names), _label(adv_labels, i, class_names)
        if top is not None:
            axes[0, i].set_title(top, fontsize="small")
        if bottom is not None:
            axes[2, i].set_title(bottom, fontsize="small",
                                 color="tab:red" if top is not None and bottom != top else "black")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
    names = list(row_names)
    names[1] = f"{names[1]}\n(±{scale:.3g})"
    for row, name in enumerate(names):
        axes[row, 0].set_ylabel(name, fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def wilson_interval(successes: Any, trials: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval for a binomial rate ``successes / trials``.

    Works elementwise on arrays. Returns ``(lower, upper)``; where ``trials`` is 0 the
    interval is ``(0, 1)``.
    """
    from scipy.stats import norm

    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = float(norm.ppf(0.5 + confidence / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, k / np.where(n > 0, n, 1), 0.0)
        denom = 1 + z**2 / np.where(n > 0, n, 1)
        centre = (p + z**2 / (2 * np.where(n > 0, n, 1))) / denom
        half = z * np.sqrt(p * (1 - p) / np.where(n > 0, n, 1) + z**2 / (4 * np.where(n > 0, n, 1) ** 2)) / denom
    lower = np.where((n > 0) & (k > 0), np.clip(centre - half, 0, 1), 0.0)  # exact at the ends
    upper = np.where((n > 0) & (k < n), np.clip(centre + half, 0, 1), 1.0)
    return lower, upper


def bootstrap_interval(samples: Any, statistic: Callable[[np.ndarray], float] = np.mean, *,
                       confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for ``statistic`` of a 1-D sample (seeded: the same
    data gives the same interval)."""
    data = _np(samples).ravel()
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, data.size, size=(n_boot, data.size))
    stats = np.array([statistic(data[row]) for row in idx])
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def band(ax: plt.Axes, x: Any, y: Any, lower: Any, upper: Any, *, label: str | None = None,
         color: Any = None, marker: str | None = "o", alpha: float = 0.2, **line_kw: Any) -> plt.Line2D:
    """A line through ``(x, y)`` with a shaded band between ``lower`` and ``upper``."""
    _theme()
    (line,) = ax.plot(_np(x), _np(y), label=label, color=color, marker=marker, markersize=4, **line_kw)
    ax.fill_between(_np(x), _np(lower), _np(upper), color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def rate_curve(ax: plt.Axes, x: Any, successes: Any, trials: Any, *, label: str | None = None,
               percent: bool = True, confidence: float = 0.95, **kw: Any) -> plt.Line2D:
    """A rate (e.g. attack success or robust accuracy) against ``x``, with a Wilson band.

    ``successes`` and ``trials`` are counts per point of ``x`` (``trials`` may be a number).
    """
    k = np.asarray(_np(successes), dtype=float)
    n = np.broadcast_to(np.asarray(_np(trials), dtype=float), k.shape)
    lo, hi = wilson_interval(k, n, confidence)
    scale = 100.0 if percent else 1.0
    rate = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    line = band(ax, x, rate * scale, lo * scale, hi * scale, label=label, **kw)
    if percent:
        ax.set_ylim(-2, 102)
    return line


def mean_curve(ax: plt.Axes, x: Any, samples: Sequence[Any], *, label: str | None = None,
               statistic: Callable[[np.ndarray], float] = np.mean, confidence: float = 0.95,
               seed: int = 0, **kw: Any) -> plt.Line2D:
    """``statistic`` of a sample per point of ``x`` (e.g. mean perturbation norm), with a
    bootstrap band."""
    values = np.array([statistic(_np(s).ravel()) for s in samples])
    bounds = np.array([bootstrap_interval(s, statistic, confidence=confidence, seed=seed) for s in samples])
    return band(ax, x, values, bounds[:, 0], bounds[:, 1], label=label, **kw)


def family_styles(families: dict[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """Line styles for methods grouped in families: one hue of :data:`PALETTE` per family,
    and within a family a distinct dash per member (:data:`DASHES`, solid first), so that
    curves read apart in colour and in grey.

    Args:
        families: ``{family: [method, ...]}``, in the order the hues are handed out.

    Returns:
        ``{method: {"color": rgb, "linestyle": dash}}``, ready for ``ax.plot(..., **style)``.

    Raises:
        ValueError: a method in two families, a family with more members than dashes, or more
            than ten families.
    """
    palette = sns.color_palette(PALETTE, 10)
    if len(families) > len(_FAMILY_HUES):
        raise ValueError(f"{len(families)} families; at most {len(_FAMILY_HUES)} hues.")
    hues = [palette[i] for i in _FAMILY_HUES]
    styles: dict[str, dict[str, Any]] = {}
    for hue, (family, members) in zip(hues, families.items()):
        if len(members) > len(DASHES):
            raise ValueError(f"family {family!r} has {len(members)} members; at most {len(DASHES)} dashes.")
        for member, dash in zip(members, DASHES):
            if member in styles:
                raise ValueError(f"{member!r} is in two families.")
            styles[member] = {"color": hue, "linestyle": dash}
    return styles
