"""Substitute-model training by Jacobian-based dataset augmentation, against a black box.

Source: N. Papernot, P. McDaniel, I. Goodfellow, S. Jha, Z. B. Celik and A. Swami, "Practical
Black-Box Attacks against Machine Learning", AsiaCCS 2017, https://arxiv.org/abs/1602.02697,
Algorithm 1 and eq. 4; as run for document 002's Table 1 (Sharma's thesis, §3.1: "150 hold-out
images from the test set, 5 Jacobian augmentation epochs, λ = 0.1") by the authors'
``substitute_blackbox.py`` (``huanzhang12/ZOO-Attack``, after CleverHans' tutorial).

The adversary holds a small seed set S₀ and may only ask the black box (the *oracle* Õ) for
labels. For ρ = 0, …, ``rounds`` − 1:

1. label S_ρ by the oracle, Õ(x) = argmax of its output scores (only the label is used);
2. train the substitute F on {(x, Õ(x)) : x ∈ S_ρ} (``recipe.epochs`` epochs; the weights carry
   over from round to round, each round with a fresh optimiser, as the reference code);
3. unless it is the last round, augment (eq. 4):
   S_{ρ+1} = S_ρ ∪ {clip(x + λ · sign(∇ₓ log F(x)_{Õ(x)})) : x ∈ S_ρ}.

The set doubles each round: |S_ρ| = |S₀| · 2^ρ. Only the new points of a round are sent to the
oracle, so the oracle answers exactly |S₀| · 2^(rounds − 1) queries in all (150 · 32 = 4,800 for
the thesis's 6 rounds). The oracle is a :class:`~reprolib.attacks.ops.blackbox.BlackBox`:
no gradient of it is ever taken, and every row is counted.

Deviations from the reference code, deliberate:

* the seed set is labelled by the oracle (Papernot et al.'s Algorithm 1); the reference code
  uses the seed images' true labels;
* the augmented points are clipped to the oracle's input box (a query API refuses inputs
  outside it; the reference code queries them unclipped);
* the sign is that of ∇ log F(x)_y, which equals the sign of the reference's ∇ F(x)_y (the
  softmax probability), since log is increasing.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from ..attacks.ops.blackbox import BlackBox
from ..data import ImageSet
from ..models.classifier import Classifier, eval_mode
from ..train import Recipe, fit

__all__ = ["SubstituteResult", "jacobian_augmentation", "train_substitute"]


@dataclass
class SubstituteResult:
    """What :func:`train_substitute` returns.

    ``model`` is the trained substitute (eval mode); ``x`` (shape ``(|S₀|·2^(rounds−1), *input_shape)``) and
    ``labels`` the final synthetic set and its oracle labels; ``queries`` the oracle rows spent
    (= ``len(x)``); ``round_sizes`` |S_ρ| per round; ``agreement`` per round the share of the
    check inputs on which the substitute predicts the check labels (empty without a check
    set); ``seconds`` the wall time of training and augmentation.
    """

    model: Classifier
    x: Tensor
    labels: Tensor
    queries: int
    round_sizes: list[int]
    agreement: list[float]
    seconds: float


def jacobian_augmentation(substitute: Classifier, x: Tensor, labels: Tensor, lam: float,
                          batch_size: int = 512) -> Tensor:
    """The new points of one augmentation (eq. 4): clip(x + λ · sign(∇ₓ log F(x)_label)).

    Args:
        substitute: the substitute F (its gradient is taken, in eval mode; its modes are restored).
        x: points ``(N, *input_shape)`` inside the substitute's bounds.
        labels: the oracle labels ``(N,)``.
        lam: the step λ, in input units.
        batch_size: points per backward pass.

    Returns:
        ``(N, *input_shape)``, inside the bounds.
    """
    out = []
    with eval_mode(substitute):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].detach().clone().requires_grad_(True)
            logp = torch.log_softmax(substitute(xb), dim=1)
            (g,) = torch.autograd.grad(logp.gather(1, labels[i:i + batch_size, None]).sum(), xb)
            out.append((xb.detach() + lam * g.sign()).clamp(*substitute.bounds))
    return torch.cat(out) if out else x.detach().clone()


def _labels(oracle: BlackBox, x: Tensor, batch_size: int) -> Tensor:
    """The oracle's labels of ``x``: one query per row, charged to input 0."""
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        out.append(oracle.predict(xb, torch.zeros(len(xb), dtype=torch.long, device=oracle.device)).argmax(1))
    return torch.cat(out)


@torch.no_grad()
def _agreement(model: Classifier, x: Tensor, y: Tensor, batch_size: int) -> float:
    pred = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def train_substitute(oracle: BlackBox, seed_x: Tensor, substitute: Classifier, recipe: Recipe, *,
                     rounds: int = 6, lam: float = 0.1, check: tuple[Tensor, Tensor] | None = None,
                     batch_size: int = 512) -> SubstituteResult:
    """Train ``substitute`` against ``oracle`` by Jacobian-based dataset augmentation (Papernot et
    al., Algorithm 1; see the module docstring).

    Document 002's settings (Table 1): 150 seed images (the first test images), ``rounds=6``
    (five augmentations), λ = 0.1, the target's own architecture as the substitute, Adam at
    lr 1e-3 for 30 epochs per round on MNIST (5e-4, 50 epochs on CIFAR-10), batch 128,
    constant learning rate.

    Args:
        oracle: the black box; only its labels are used, through ``oracle.predict``.
        seed_x: the seed set S₀, ``(N₀, *oracle.input_shape)``, N₀ ≥ 1, inside the oracle's
            bounds (pixels in [0, 1] for the zoo's models).
        substitute: a freshly built classifier with the oracle's input shape, classes and
            bounds; it is trained in place.
        recipe: how each round trains (:class:`~reprolib.train.Recipe`); round ρ uses the seed
            ``recipe.seed + ρ``.
        rounds: training rounds ρ = 0 … rounds − 1 (≥ 1), with an augmentation between two
            rounds.
        lam: the augmentation step λ > 0, in input units.
        check: optional ``(x, labels)``: after every round the substitute's agreement with
            ``labels`` on ``x`` is recorded (give the oracle's labels, computed outside the
            attack, to measure how well the substitute imitates it).
        batch_size: points per oracle query batch and per Jacobian batch.

    Every training round shows a progress bar (:func:`~reprolib.train.fit`).

    Returns:
        A :class:`SubstituteResult`.

    Raises:
        ValueError: ``oracle`` is not a :class:`BlackBox`, the substitute's input shape, classes
            or bounds differ from the oracle's, ``seed_x`` is empty, of the wrong shape or
            outside the bounds, ``rounds`` < 1, ``lam`` ≤ 0, or ``check`` is malformed.
    """
    if not isinstance(oracle, BlackBox):
        raise ValueError(f"oracle must be a reprolib BlackBox (query access only), got {type(oracle).__name__}; "
                         "wrap the target: BlackBox(model).")
    if not isinstance(substitute, Classifier):
        raise ValueError(f"substitute must be a reprolib Classifier, got {type(substitute).__name__}.")
    if (substitute.input_shape, substitute.num_classes, substitute.bounds) != \
            (oracle.input_shape, oracle.num_classes, oracle.bounds):
        raise ValueError(f"the substitute takes {substitute.input_shape} with {substitute.num_classes} classes in "
                         f"{substitute.bounds}; the oracle takes {oracle.input_shape} with {oracle.num_classes} "
                         f"classes in {oracle.bounds}. Build the substitute for the oracle's inputs and classes.")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer ≥ 1, got {rounds!r}.")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam > 0 or lam == float("inf"):
        raise ValueError(f"lam (λ) must be a finite number > 0 in input units, got {lam!r}.")
    if not torch.is_tensor(seed_x) or not seed_x.is_floating_point() or len(seed_x) == 0 \
            or tuple(seed_x.shape[1:]) != oracle.input_shape:
        raise ValueError(f"seed_x must be a non-empty float tensor of shape (N, {', '.join(map(str, oracle.input_shape))}), "
                         f"got {getattr(seed_x, 'dtype', type(seed_x).__name__)} {tuple(getattr(seed_x, 'shape', ()))}.")
    lo, hi = oracle.bounds
    if float(seed_x.min()) < lo or float(seed_x.max()) > hi or not bool(torch.isfinite(seed_x).all()):
        raise ValueError(f"seed_x must lie inside the oracle's bounds [{lo}, {hi}], got "
                         f"[{float(seed_x.min()):.4g}, {float(seed_x.max()):.4g}].")
    if check is not None:
        cx, cy = check
        if tuple(cx.shape[1:]) != oracle.input_shape or cy.shape != (len(cx),) or len(cx) == 0:
            raise ValueError(f"check must be (x, labels) with x of shape (M, {', '.join(map(str, oracle.input_shape))}) "
                             f"and labels of shape (M,), M ≥ 1; got {tuple(cx.shape)} and {tuple(cy.shape)}.")
    started = time.perf_counter()
    device = substitute.device
    spent_before = oracle.total_queries
    x = seed_x.detach().to(device)
    labels = _labels(oracle, x, batch_size).to(device)
    sizes, agreement = [], []
    for rho in range(rounds):
        sizes.append(len(x))
        data = ImageSet("substitute", x, labels, torch.arange(len(x)), tuple(map(str, range(oracle.num_classes))))
        fit(substitute, dataclasses.replace(recipe, seed=recipe.seed + rho), data,
            desc=f"substitute round {rho + 1}/{rounds}")
        if check is not None:
            agreement.append(_agreement(substitute, check[0].to(device), check[1].to(device), batch_size))
        if rho < rounds - 1:
            new = jacobian_augmentation(substitute, x, labels, lam, batch_size)
            labels = torch.cat([labels, _labels(oracle, new, batch_size).to(device)])
            x = torch.cat([x, new])
    substitute.eval()
    return SubstituteResult(model=substitute, x=x, labels=labels, queries=oracle.total_queries - spent_before,
                            round_sizes=sizes, agreement=agreement, seconds=time.perf_counter() - started)
