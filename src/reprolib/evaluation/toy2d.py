"""Document 003's 2-D toy (supplementary, Fig. 6): two circles, a 2-50-2 ReLU network, and the
input-gradient maps of the CE, logit and CE-sign sources over the plane.

Ozbulak et al. (https://arxiv.org/abs/2006.01456, §VIII "Experiments on 2-D") sample two
concentric circles with ``sklearn.datasets.make_circles`` (the text cites SciPy), fit a
network with one hidden layer of 50 ReLUs, and draw over (x, y) ∈ [−1, 1]², with the inner
class R as the target:

* (b) CE: log Σ|∇_x J(g)_R|, (c) logit: log Σ|∇_x g_R|, (d) CE-sign: sign Σ|∇_x J(g)_R|.

Their claims: CE's gradient vanishes inside the target region D3; the logit gradient exists
everywhere but is smaller than CE's in D1; the CE-sign map is non-zero on more of D3 than CE's
non-negligible area, with an exactly-zero area left at the centre. The text gives no sample
count, noise, factor, optimiser or grid; the defaults here are the reproduction notes' (§4):
``make_circles(1000, noise=0.05, factor=0.5, random_state=0)``, Adam (lr 1e-2) on the full batch,
a 401 × 401 grid in float32.

Everything is computed, not estimated: the maps come from autograd through the network in the
chosen dtype (so exact zeros are the floating-point zeros an attack would see), and
:func:`closed_form_gradients` gives the same gradients from the weights, for checking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Class indices: scikit-learn's ``make_circles`` labels the outer circle 0 ("B", black) and the inner one 1
#: ("R", red, the target of the paper's attack).
OUTER, INNER = 0, 1


def mlp(hidden: int = 50, seed: int = 0) -> nn.Sequential:
    """The paper's network: 2 → ``hidden`` (ReLU) → 2 logits, initialised by torch's default
    under ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def train_full_batch(net: nn.Module, x: Tensor, y: Tensor, *, steps: int = 5000, lr: float = 1e-2) -> dict:
    """Fit ``net`` to all of ``(x, y)`` at once with Adam for ``steps`` steps (cross-entropy).

    Training long matters: CE's gradient reaches exactly zero only where the logit margin is
    large (≈ 87–104 in float32, :func:`reprolib.evaluation.trajectories.softmax_underflow_margins`).

    Returns:
        ``{"loss": final training loss, "accuracy": training accuracy in [0, 1]}``.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}.")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        out = net(x)
        return {"loss": float(F.cross_entropy(out, y)), "accuracy": float((out.argmax(1) == y).float().mean())}


@dataclass(frozen=True)
class GradientMaps:
    """The maps of :func:`gradient_maps` over an n × n grid; row i is y = ``coords[i]``, column j is
    x = ``coords[j]`` (draw with ``origin="lower"``).

    ``ce_l1``: Σ|∇_x CE(g, target)|; ``logit_l1``: Σ|∇_x g_target|; ``margin``: g_target − g_other
    (logit units); ``p_target``: the target's softmax; ``region``: Definition IV.1's codes
    (1 D1, 2 D2, 3 D3; :func:`reprolib.evaluation.trajectories.regions`). All ``(n, n)`` float64
    arrays of values computed in ``dtype`` (``region`` int64); ``flushed``: whether denormal
    numbers were flushed to zero.
    """

    coords: np.ndarray
    ce_l1: np.ndarray
    logit_l1: np.ndarray
    margin: np.ndarray
    p_target: np.ndarray
    region: np.ndarray
    dtype: str
    target: int
    flushed: bool = False

    @property
    def ce_zero(self) -> np.ndarray:
        """Where CE's gradient is exactly zero (and so is its sign)."""
        return self.ce_l1 == 0


def gradient_maps(net: nn.Module, *, target: int = INNER, n: int = 401, lim: float = 1.0,
                  dtype: torch.dtype = torch.float32, threshold: float = 0.9, flush_denormal: bool = False,
                  chunk: int = 65536) -> GradientMaps:
    """Input-gradient maps of the CE and logit sources of a 2-class network over [−lim, lim]².

    Args:
        net: a network from 2-D points ``(P, 2)`` to 2 logits; cast to ``dtype`` on a copy.
        target: the class the attack moves points into (the paper's R, :data:`INNER`).
        n: grid points per axis (the notes: 401), ≥ 2.
        lim: the half-width of the square.
        dtype: the floating-point type of the computation (float32: what an attack sees).
        threshold: Definition IV.1's confidence threshold.
        flush_denormal: compute with denormal numbers flushed to zero, as a GPU does
            (:func:`reprolib.evaluation.trajectories.denormals_flushed`); exact zeros of CE then
            start at a margin of ≈ 87 instead of ≈ 104 in float32.
        chunk: points per backward pass.

    Returns:
        :class:`GradientMaps`.
    """
    import copy

    from .trajectories import denormals_flushed, regions

    if n < 2:
        raise ValueError(f"n must be ≥ 2, got {n}.")
    model = copy.deepcopy(net).to(dtype).eval()
    coords = torch.linspace(-lim, lim, n, dtype=dtype)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    ce, lg, mg, pt, pm, pred = [], [], [], [], [], []
    tgt_all = torch.full((len(pts),), target, dtype=torch.long)
    with denormals_flushed(flush_denormal):
        for i in range(0, len(pts), chunk):
            _grid_chunk(model, pts[i:i + chunk], tgt_all[i:i + chunk], target, (ce, lg, mg, pt, pm, pred))
    shape = (n, n)

    def grid(parts: list[Tensor]) -> np.ndarray:
        return torch.cat(parts).reshape(shape).double().numpy()

    codes = regions(torch.cat(pm), torch.cat(pred), tgt_all, threshold).reshape(shape).numpy()
    return GradientMaps(coords.double().numpy(), grid(ce), grid(lg), grid(mg), grid(pt), codes,
                        str(dtype).replace("torch.", ""), target, bool(flush_denormal))


def _grid_chunk(model: nn.Module, points: Tensor, targets: Tensor, target: int, out: tuple) -> None:
    """The maps' values at one chunk of grid points, appended to the lists in ``out``."""
    ce, lg, mg, pt, pm, pred = out
    p = points.clone().requires_grad_(True)
    z = model(p)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(z, targets, reduction="sum"), p, retain_graph=True)
    (g_lg,) = torch.autograd.grad(z[:, target].sum(), p)
    z = z.detach()
    ce.append(g_ce.abs().sum(1))
    lg.append(g_lg.abs().sum(1))
    mg.append(z[:, target] - z[:, 1 - target])
    prob = z.softmax(1)
    pt.append(prob[:, target])
    pm.append(prob.amax(1))
    pred.append(z.argmax(1))


def closed_form_gradients(net: nn.Sequential, points: Tensor) -> Tensor:
    """∇_x g_k of a ``Linear → ReLU → Linear`` network at ``points``, from its weights in float64:
    ∇g_k = W2[k] · diag(1[W1 x + b1 > 0]) · W1 (the ReLU's derivative taken as 0 at 0, as torch does).

    Args:
        net: ``nn.Sequential(nn.Linear(2, h), nn.ReLU(), nn.Linear(h, K))``.
        points: ``(P, 2)``.

    Returns:
        ``(P, K, 2)`` float64: the gradient of each logit at each point.
    """
    w1, b1 = net[0].weight.double(), net[0].bias.double()
    w2 = net[2].weight.double()
    active = ((points.double() @ w1.T + b1) > 0).double()  # P × h
    return torch.einsum("kh,ph,hd->pkd", w2, active, w1).detach()


def ce_gradient_closed_form(net: nn.Sequential, points: Tensor, target: int = INNER) -> Tensor:
    """∇_x CE(g, target) = Σ_m (p_m − 1[m = target]) ∇_x g_m (the paper's eq. 23) in float64.

    Returns:
        ``(P, 2)`` float64.
    """
    grads = closed_form_gradients(net, points)
    coef = float64_logits(net, points).softmax(1)
    coef[:, target] -= 1
    return torch.einsum("pk,pkd->pd", coef, grads)


def float64_logits(net: nn.Sequential, points: Tensor) -> Tensor:
    """The logits of a ``Linear → ReLU → Linear`` network at ``points`` ``(P, 2)``, computed in float64
    from its weights (the network itself is not changed): ``(P, K)``."""
    w1, b1 = net[0].weight.double(), net[0].bias.double()
    w2, b2 = net[2].weight.double(), net[2].bias.double()
    return (torch.relu(points.double() @ w1.T + b1) @ w2.T + b2).detach()


def largest_margin(maps: GradientMaps) -> float:
    """The largest |g_R − g_B| on the grid: exact zeros of CE need ≈ 87–104 in float32."""
    return float(np.abs(maps.margin).max()) if maps.margin.size else math.nan
