"""reprolib.evaluation.pixel_space (document 000): noise probes against closed forms on linear
models, distortion statistics against scipy, exact pass counts, seeding and input errors.

Statistical tolerance of the closed-form checks. A share of P probes that keep a label is a
binomial proportion with standard deviation √(p(1 − p)/P) ≤ 0.5/√P. With P = 20 000 probes per
(image, level) the checks accept |share − p| ≤ 5 SD (at most 0.018; 5/P near p = 0 or 1). The
tests are seeded, so they are deterministic; the 5-SD bound says that a correct implementation
would pass with probability > 1 − 10⁻⁵ over all ~30 checks for any seed, while the mistakes the
checks are there to catch (a zero noise mean where the authors use μ_D, σ² in place of σ, noise
of the wrong norm) move the share by 0.05 or more at the levels tested.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch import nn

from reprolib.evaluation import pixel_space as ps
from reprolib.evaluation.pixel_space import PixelSpaceInputError
from reprolib.models import Classifier

from _checks import CountingNet

DIM = 50
P = 20_000


def linear(W: torch.Tensor, b: torch.Tensor, bounds=(-100.0, 100.0), counting: bool = False) -> Classifier:
    """An affine classifier in float64 with a box wide enough that no probe is clipped."""
    lin = nn.Linear(W.shape[1], W.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    net = nn.Sequential(nn.Flatten(), lin)
    net = CountingNet(net) if counting else net
    return Classifier(net, input_shape=(W.shape[1],), num_classes=W.shape[0], bounds=bounds).double().eval()


def two_class_case(n: int = 3, seed: int = 0):
    """Two classes; originals of class 0, adversarial images of class 1 whose distortions have a
    mean comparable to their SD (so a noise mean of 0 instead of μ_D would show)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(2, DIM, generator=g, dtype=torch.float64)
    W[1] += 0.3  # Σa ≠ 0, so the noise mean moves the margin
    b = torch.zeros(2, dtype=torch.float64)
    a = W[1] - W[0]
    xs, advs = [], []
    while len(xs) < n:
        x = torch.randn(DIM, generator=g, dtype=torch.float64)
        if float(a @ x) >= -1.0:
            continue
        d = 0.1 + 0.1 * torch.randn(DIM, generator=g, dtype=torch.float64)
        # scale d so that the adversarial margin a·(x + d) is +1
        t = (1.0 - float(a @ x)) / float(a @ d)
        if t <= 0:
            continue
        xs.append(x), advs.append(x + t * d)
    x, x_adv = torch.stack(xs), torch.stack(advs)
    return linear(W, b), a, x, x_adv, torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)


def binomial_ok(share: torch.Tensor, p: torch.Tensor, n: int) -> torch.Tensor:
    sd = torch.sqrt(torch.clamp(p * (1 - p), min=1.0 / n) / n)
    return (share - p).abs() <= 5 * sd


# ----------------------------------------------------------------------------- schedule

def test_noise_multipliers_are_the_authors_schedule():
    m = ps.noise_multipliers()
    code = [0.031, 0.056, 0.101, 0.182, 0.328, 0.590, 1.063, 1.913, 3.444, 6.199, 11.158]
    assert m.dtype == torch.float64 and len(m) == 11
    assert np.allclose(m.numpy(), code, atol=6e-4)
    assert np.allclose(m.numpy(), [2.0 ** (k - 5) * 0.9 ** k for k in range(11)], rtol=1e-12)
    assert ps.noise_multipliers([4, 6, 10]).tolist() == [m[4].item(), m[6].item(), m[10].item()]
    for bad in ([], [1.5], [-1], [31], [True]):
        with pytest.raises(PixelSpaceInputError, match="levels must be"):
            ps.noise_multipliers(bad)


# ----------------------------------------------------------------------------- closed forms

@pytest.mark.parametrize("noise_mean", ["distortion", "zero"])
def test_gaussian_probes_match_the_normal_cdf_of_the_margin(noise_mean):
    """Two classes, no clipping: probe margin = M + a·n with a·n ~ N(μ Σa, (mσ_D)²‖a‖²), so the
    share that keeps the adversarial label is Φ((M_adv + μΣa)/(mσ_D‖a‖)) and the share around the
    original that keeps its label is Φ((−M_orig − μΣa)/(mσ_D‖a‖))."""
    model, a, x, x_adv, orig, adv = two_class_case()
    grid = [0.5, 1.0, 2.0, 4.0]
    d = x_adv - x
    mu = d.mean(1) if noise_mean == "distortion" else torch.zeros(len(d), dtype=torch.float64)
    sd = d.std(1, unbiased=False)
    shift = (mu * a.sum())[:, None]
    scale = torch.tensor(grid, dtype=torch.float64)[None, :] * sd[:, None] * a.norm()
    normal = torch.distributions.Normal(0.0, 1.0)
    # the shift the other choice of noise_mean would give: the checks must be able to tell them apart
    alt_shift = (d.mean(1) * a.sum())[:, None] if noise_mean == "zero" else torch.zeros_like(shift)
    for around, start, sign in (("adversarial", x_adv, 1), ("original", x, -1)):
        r = ps.gaussian_probes(model, x, x_adv, orig, adv, around=around, multipliers=grid, n_probes=P,
                               noise_mean=noise_mean, seed=1, batch_size=5000)
        margin = (start @ a)[:, None]
        expected = normal.cdf(sign * (margin + shift) / scale)
        assert r.counts[..., 2].sum() == 0  # two classes: never "other"
        assert bool(binomial_ok(r.kept, expected, P).all()), (r.kept, expected)
        assert not bool(binomial_ok(r.kept, normal.cdf(sign * (margin + alt_shift) / scale), P).all())
        # no clipping here: the SD over the DIM coordinates of N(μ, s²) noise averages s·√(2/d)·Γ(d/2)/Γ((d − 1)/2)
        c = math.sqrt(2 / DIM) * math.exp(math.lgamma(DIM / 2) - math.lgamma((DIM - 1) / 2))
        nominal = torch.tensor(grid, dtype=torch.float64)[None, :] * sd[:, None]
        assert torch.allclose(r.noise_sd, c * nominal, rtol=0.003)


def test_equal_norm_probes_match_the_sphere_closed_form():
    """n = r u with u uniform on the sphere S^(d−1): a·n = r‖a‖u₁ and (1 + u₁)/2 ~ Beta((d−1)/2, (d−1)/2),
    so the share keeping the adversarial label is P(u₁ > −M/(r‖a‖))."""
    model, a, x, x_adv, orig, adv = two_class_case(n=3, seed=4)
    d = x_adv - x
    dist = (x_adv @ a) / a.norm()  # distance of the adversarial image to the boundary
    ratios = (dist / d.norm(dim=1))
    grid = (float(ratios.max()) * torch.tensor([2.0, 5.0, 10.0, 30.0])).tolist()
    r = ps.equal_norm_probes(model, x, x_adv, orig, adv, multipliers=grid, n_probes=P, seed=2, batch_size=10000)
    r_abs = torch.tensor(grid, dtype=torch.float64)[None, :] * d.norm(dim=1)[:, None]
    threshold = -(x_adv @ a)[:, None] / (r_abs * a.norm())
    half = (DIM - 1) / 2
    expected = torch.from_numpy(st.beta.sf(((1 + threshold) / 2).numpy(), half, half))
    assert bool(binomial_ok(r.kept, expected, P).all()), (r.kept, expected)
    assert bool(((expected > 0.55) & (expected < 0.99)).any())  # the grid reaches the interesting range
    # every probe has exactly the norm asked for (no clipping in this box)
    assert torch.allclose(r.noise_l2, r_abs, rtol=1e-9)


def test_clipping_shrinks_the_noise_as_a_half_normal():
    """Starting at the lower bound, zero-mean noise is clipped to max(n, 0): per probe its SD over
    coordinates is s·√(1/2 − 1/(2π)) and its norm √(d/2)·s (the authors' clipped MNIST background)."""
    g = torch.Generator().manual_seed(5)
    W = torch.randn(2, 400, generator=g, dtype=torch.float64)
    model = linear(W, torch.zeros(2, dtype=torch.float64), bounds=(0.0, 1.0))
    x = torch.zeros(2, 400, dtype=torch.float64)
    x_adv = 0.02 * torch.rand(2, 400, generator=g, dtype=torch.float64)
    orig, adv = torch.tensor([0, 1]), torch.tensor([1, 0])
    r = ps.gaussian_probes(model, x, x_adv, orig, adv, around="original", multipliers=[1.0, 3.0], n_probes=400,
                           noise_mean="zero", seed=0)
    s = torch.tensor([1.0, 3.0], dtype=torch.float64)[None, :] * (x_adv - x).std(1, unbiased=False)[:, None]
    assert torch.allclose(r.noise_sd, s * math.sqrt(0.5 - 0.5 / math.pi), rtol=0.02)
    assert torch.allclose(r.noise_l2, s * math.sqrt(400 / 2), rtol=0.02)


def test_nonparametric_noise_resamples_the_distortion():
    d = torch.tensor([0.0, 0.0, 0.1, 0.1, 0.1, -0.2, 0.3, 0.5], dtype=torch.float64).reshape(1, 2, 4)
    g = torch.Generator().manual_seed(0)
    n = ps.sample_noise("nonparametric", d, 5000, generator=g)
    assert n.shape == (5000, 1, 2, 4) and n.dtype == torch.float64
    values, counts = n.flatten().unique(return_counts=True)
    assert set(values.tolist()) <= set(d.flatten().tolist())
    share = {round(v, 6): c / n.numel() for v, c in zip(values.tolist(), counts.tolist())}
    for v, p in ((0.0, 2 / 8), (0.1, 3 / 8), (-0.2, 1 / 8), (0.3, 1 / 8), (0.5, 1 / 8)):
        assert abs(share[v] - p) <= 5 * math.sqrt(p * (1 - p) / n.numel())
    centred = ps.sample_noise("nonparametric", d, 10, multiplier=2.0, generator=torch.Generator().manual_seed(0),
                              noise_mean="zero")
    assert set(centred.flatten().tolist()) <= set((2 * (d - d.mean())).flatten().tolist())
    gauss = ps.sample_noise("gaussian", d, 20000, multiplier=2.0, generator=g)
    assert abs(float(gauss.mean()) - float(d.mean())) < 0.01
    assert abs(float(gauss.std()) - 2 * float(d.std(unbiased=False))) < 0.01


# ----------------------------------------------------------------------------- counting and seeding

def test_pass_counts_are_exact():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(3, 6, generator=g, dtype=torch.float64)
    model = linear(W, torch.zeros(3, dtype=torch.float64), bounds=(0.0, 1.0), counting=True)
    x = torch.rand(4, 6, generator=g, dtype=torch.float64) * 0.5 + 0.25
    x_adv = (x + 0.1 * torch.randn(4, 6, generator=g, dtype=torch.float64)).clamp(0, 1)
    orig, adv = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    r = ps.gaussian_probes(model, x, x_adv, orig, adv, multipliers=[0.5, 1.0], n_probes=7, batch_size=3)
    net = model.net
    assert net.forward_rows == 4 * 2 * 7 and net.backward_rows == 0
    assert net.calls == r.model_calls == 4 * 2 * math.ceil(7 / 3)
    assert torch.equal(r.forwards, torch.full((4,), 14)) and bool((r.counts.sum(2) == 7).all())
    assert r.counts.shape == (4, 2, 3) and r.fractions.shape == (4, 2, 3)
    assert torch.allclose(r.pooled, r.fractions.mean(0))
    # categories come from the model's own labels
    with torch.no_grad():
        labels = model(x_adv).argmax(1)
    tiny = ps.gaussian_probes(model, x, x_adv, orig, adv, multipliers=[1e-9], n_probes=2, noise_mean="zero")
    for i in range(4):
        cat = 0 if labels[i] == orig[i] else 1 if labels[i] == adv[i] else 2
        assert tiny.counts[i, 0, cat] == 2


def test_seeded_reproducible_and_independent_of_the_batch():
    model, a, x, x_adv, orig, adv = two_class_case(n=3)
    run = lambda **kw: ps.gaussian_probes(model, x, x_adv, orig, adv, multipliers=[1.0, 4.0], n_probes=50, **kw)  # noqa: E731
    first, again, other = run(seed=3), run(seed=3), run(seed=4)
    assert torch.equal(first.counts, again.counts) and torch.equal(first.noise_sd, again.noise_sd)
    assert not torch.equal(first.noise_sd, other.noise_sd)
    part = ps.gaussian_probes(model, x[1:], x_adv[1:], orig[1:], adv[1:], multipliers=[1.0, 4.0], n_probes=50,
                              seed=3, ids=torch.tensor([1, 2]))
    assert torch.equal(part.counts, first.counts[1:]) and torch.equal(part.noise_sd, first.noise_sd[1:])
    # common random numbers: the same draws around the original (no clipping here)
    around_orig = run(seed=3, around="original")
    assert torch.allclose(around_orig.noise_sd, first.noise_sd, rtol=1e-12)
    # each kind has its own stream
    assert ps.stream_seed(3, "gaussian", 0) != ps.stream_seed(3, "nonparametric", 0)
    assert ps.stream_seed(3, "gaussian", 0) != ps.stream_seed(3, "gaussian", 1)


# ----------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("convention", ["scipy", "code"])
def test_distortion_stats_against_scipy(convention):
    g = torch.Generator().manual_seed(0)
    d = torch.distributions.StudentT(3.0).sample((5, 1, 12, 12)) * 0.01
    d[0] = d[0].abs()  # a skewed one
    s = ps.distortion_stats(d, dataset_mean=0.1307, convention=convention)
    flat = d.flatten(1).double().numpy() * 255
    n = flat.shape[1]
    skew = st.skew(flat, axis=1, bias=True)
    kurt = st.kurtosis(flat, axis=1, fisher=True, bias=True)
    if convention == "code":
        skew = skew * ((n - 1) / n) ** 1.5
    assert np.allclose(s["skewness"].numpy(), skew, rtol=1e-10)
    assert np.allclose(s["kurtosis"].numpy(), kurt, rtol=1e-10)
    assert np.allclose(s["mean"].numpy(), flat.mean(1), rtol=1e-12)
    assert np.allclose(s["sd"].numpy(), flat.std(1, ddof=0 if convention == "scipy" else 1), rtol=1e-12)
    assert np.allclose(s["mean_code"].numpy(), flat.mean(1) + 0.1307 * 255, rtol=1e-12)
    unit = d.flatten(1).double()
    assert torch.allclose(s["l2"], unit.norm(dim=1)) and torch.allclose(s["linf"], unit.abs().amax(1))
    assert torch.allclose(s["rms"], unit.pow(2).mean(1).sqrt()) and torch.allclose(s["rms_gray"], s["rms"] * 255)
    assert bool((s["kurtosis"] > 0).all())  # Student t with 3 degrees of freedom: heavy tails
    const = ps.distortion_stats(torch.full((1, 4), 0.5))
    assert math.isnan(const["skewness"]) and math.isnan(const["kurtosis"]) and float(const["sd"]) == 0


def test_probability_margin():
    g = torch.Generator().manual_seed(2)
    W = torch.randn(4, 6, generator=g, dtype=torch.float64)
    model = linear(W, torch.zeros(4, dtype=torch.float64))
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3, 0])
    p = (x @ W.T).softmax(1)
    expected = torch.stack([p[i, t[i]] - torch.cat([p[i, :t[i]], p[i, t[i] + 1:]]).max() for i in range(5)])
    assert torch.allclose(ps.probability_margin(model, x, t, batch_size=2), expected)
    assert torch.equal(ps.probability_margin(model, x, t) > 0, (x @ W.T).argmax(1) == t)


def test_crossing_level():
    m = ps.noise_multipliers([4, 6, 8, 10])
    kept = torch.tensor([[1.0, 0.8, 0.2, 0.0],   # crosses between levels 6 and 8
                         [0.4, 0.3, 0.1, 0.0],   # already below at the first level
                         [1.0, 1.0, 0.9, 0.6],   # never below
                         [1.0, 0.5, 0.5, 0.4]],  # exactly 0.5 is not below
                        dtype=torch.float64)
    c = ps.crossing_level(kept, m)
    t = (0.8 - 0.5) / (0.8 - 0.2)
    assert math.isclose(float(c[0]), math.exp(math.log(m[1]) + t * (math.log(m[2]) - math.log(m[1]))), rel_tol=1e-12)
    assert float(c[1]) == float(m[0]) and math.isinf(c[2])
    assert math.isclose(float(c[3]), float(m[2]), rel_tol=1e-12)  # 0.5 at level 8, below only at level 10
    with pytest.raises(PixelSpaceInputError, match="must increase"):
        ps.crossing_level(kept, m.flip(0))
    with pytest.raises(PixelSpaceInputError, match="shape"):
        ps.crossing_level(kept[:, :3], m)


def test_variance_components():
    rng = np.random.default_rng(0)
    images, per = 400, 5
    effect = rng.normal(0, 2.0, images)  # σ²_image = 4
    groups = np.repeat(np.arange(images), per)
    values = effect[groups] + rng.normal(0, 1.0, images * per)  # σ²_within = 1
    v = ps.variance_components(values, groups)
    assert abs(v["between"] - 4) < 0.6 and abs(v["within"] - 1) < 0.1
    assert abs(v["image_share"] - 0.8) < 0.03
    f, p = st.f_oneway(*[values[groups == i] for i in range(images)])
    assert math.isclose(v["f"], f, rel_tol=1e-9) and math.isclose(v["p_value"], p, rel_tol=1e-6, abs_tol=1e-300)
    # a quantity driven by the target class only: the image explains little, the class a lot
    targets = rng.integers(0, 10, images * per)
    by_target = targets * 1.0 + rng.normal(0, 0.1, images * per)
    w = ps.variance_components(by_target, groups, second=targets)
    assert w["image_share"] < 0.1 and w["r2_second_extra"] > 0.8 and w["p_second"] < 1e-10
    with pytest.raises(PixelSpaceInputError, match="at least 2 groups"):
        ps.variance_components([1.0, 2.0, 3.0], [0, 0, 1])


def test_pair_design():
    labels = torch.arange(1000) % 10
    eligible = torch.rand(1000, generator=torch.Generator().manual_seed(0)) < 0.7
    flat = ps.pair_design(labels, eligible, 10, n_images=125, seed=3)
    assert len(flat) == 125 and bool(eligible[flat.positions].all())
    assert bool((flat.targets != flat.labels).all()) and torch.equal(flat.labels, labels[flat.positions])
    assert len(set(flat.positions.tolist())) == 125
    again = ps.pair_design(labels, eligible, 10, n_images=125, seed=3)
    assert torch.equal(again.positions, flat.positions) and torch.equal(again.targets, flat.targets)
    grid = ps.pair_design(labels, eligible, 10, classes=5, per_class=5, targets_per_image=5, seed=1)
    assert len(grid) == 125 and len(set(grid.labels.tolist())) == 5 and len(set(grid.image.tolist())) == 25
    for i in range(25):
        rows = grid.image == i
        assert len(set(grid.targets[rows].tolist())) == 5 and len(set(grid.positions[rows].tolist())) == 1
    chosen = ps.pair_design(labels, eligible, 10, classes=[3, 7], per_class=2, seed=0)
    assert sorted(set(chosen.labels.tolist())) == [3, 7]
    with pytest.raises(PixelSpaceInputError, match="only .* eligible"):
        ps.pair_design(labels, eligible, 10, n_images=900)
    with pytest.raises(PixelSpaceInputError, match="either n_images"):
        ps.pair_design(labels, eligible, 10, n_images=5, classes=2, per_class=1)
    with pytest.raises(PixelSpaceInputError, match="targets_per_image"):
        ps.pair_design(labels, eligible, 10, n_images=5, targets_per_image=10)


# ----------------------------------------------------------------------------- errors

def test_bad_inputs_are_refused_with_the_fix():
    model, a, x, x_adv, orig, adv = two_class_case(n=2)
    ok = dict(multipliers=[1.0], n_probes=4)

    def call(**kw):
        args = {"x": x, "x_adv": x_adv, "original": orig, "adversarial": adv, **ok, **kw}
        return ps.probe(model, args.pop("x"), args.pop("x_adv"), args.pop("original"), args.pop("adversarial"), **args)

    cases = [
        (dict(kind="uniform"), "kind must be one of"),
        (dict(around="both"), "around must be one of"),
        (dict(noise_mean="median"), "noise_mean must be one of"),
        (dict(n_probes=0), "n_probes must be an integer ≥ 1"),
        (dict(batch_size=2.5), "batch_size must be an integer"),
        (dict(multipliers=[]), "multipliers must hold"),
        (dict(multipliers=[1.0, float("nan")]), "multipliers must hold"),
        (dict(multipliers=[-1.0]), "multipliers must hold"),
        (dict(x=x[0]), r"add the batch dimension|Add the batch dimension"),
        (dict(x_adv=x_adv[:1]), "one adversarial image per original"),
        (dict(x=x.clone().fill_(float("nan"))), "NaN"),
        (dict(original=orig.double()), "original must be an integer tensor"),
        (dict(adversarial=torch.tensor([0, 5])), r"adversarial must lie in \[0, 1\]"),
        (dict(adversarial=orig), "Pass only successful"),
        (dict(x_adv=x), "Exclude failed attacks"),
        (dict(ids=torch.tensor([0.0, 1.0])), "ids must be"),
        (dict(seed=-1), "seed must be an integer ≥ 0"),
    ]
    for kw, message in cases:
        with pytest.raises(PixelSpaceInputError, match=message):
            call(**kw)
    with pytest.raises(PixelSpaceInputError, match="outside the model's bounds"):
        ps.probe(linear(torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), bounds=(0, 1)),
                 torch.full((1, 2), 2.0, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64),
                 torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(PixelSpaceInputError, match="Classifier"):
        ps.probe(nn.Linear(2, 2), x, x_adv, orig, adv)
    with pytest.raises(PixelSpaceInputError, match="batch dimension"):
        ps.distortion_stats(torch.zeros(5))
    with pytest.raises(PixelSpaceInputError, match="NaN"):
        ps.distortion_stats(torch.full((2, 3), float("nan")))
    with pytest.raises(PixelSpaceInputError, match="convention"):
        ps.distortion_stats(torch.zeros(2, 3), convention="torch")
    with pytest.raises(PixelSpaceInputError, match="Exclude the images whose attack failed"):
        ps.sample_noise("gaussian", torch.zeros(4), 3)
