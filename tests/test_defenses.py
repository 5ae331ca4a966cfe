"""reprolib.defenses on tiny synthetic problems (seconds each, no data sets)."""
from __future__ import annotations


import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from reprolib.attacks import fgsm, pgd
from reprolib.data import ImageSet
from reprolib.defenses import (ADVERSARIAL, GENUINE, AdversarialLoss, BitDepth, JointDetector, MedianSmoothing,
                               NonLocalMeans, SqueezedClassifier, VATLoss, adversarial_examples, at_temperature,
                               defensive_distillation, detection_accuracy, detection_split, fgsm_at, fgsm_rs_at,
                               kl_divergence, median_filter, mnist_squeezers, non_local_means, pgd_at,
                               power_iteration, reduce_bit_depth, small_detector, soft_cross_entropy, soft_labels,
                               train_detector, virtual_adversarial_perturbation, with_adversarials)
from reprolib.models import Classifier
from reprolib.train import Recipe, Step, fit


# ------------------------------------------------------------------------------- toy data
def robust_vs_weak(n: int, seed: int, k: int = 100) -> ImageSet:
    """Tsipras et al.'s robustness/accuracy toy (https://arxiv.org/abs/1805.12152, §2.1) in [0, 1]:
    one robust feature 0.5 ± 0.4 that agrees with the label 90 % of the time, and k weak features
    0.5 ± 0.05 + N(0, 0.1²) that always do. An ℓ∞ shift of 0.1 flips every weak feature but no
    robust one, so the ε = 0.1 robust optimum is the robust feature alone (90 %)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    s = (2 * y - 1).float()[:, None]
    agree = torch.where(torch.rand(n, 1, generator=g) < 0.9, 1.0, -1.0)
    x = torch.cat([0.5 + 0.4 * s * agree, 0.5 + 0.05 * s + 0.1 * torch.randn(n, k, generator=g)], 1).clamp(0, 1)
    return ImageSet("toy", x, y, torch.arange(n), ("a", "b"))


def mlp(d: int, k: int, seed: int = 0, hidden: int = 32) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, k)), input_shape=(d,),
                      num_classes=k)


def blobs(n: int, seed: int, k: int = 3, d: int = 8) -> ImageSet:
    """k overlapping Gaussian blobs in [0, 1]^d (fixed centres)."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.5 + 0.15 * torch.randn(k, d, generator=torch.Generator().manual_seed(99))
    y = torch.randint(0, k, (n,), generator=g)
    x = (centres[y] + 0.12 * torch.randn(n, d, generator=g)).clamp(0, 1)
    return ImageSet("blobs", x, y, torch.arange(n), tuple("abcdefghij"[:k]))


def robust_accuracy(model: Classifier, data: ImageSet, eps: float, norm: str = "linf") -> float:
    ok = model(data.x).argmax(1) == data.y
    result = pgd(model, data.x, data.y, eps=eps, norm=norm, steps=20, random_start=True)
    return float((ok & ~result.success).float().mean())


AT_RECIPE = Recipe(epochs=30, lr=3e-3, optimizer="adam", batch_size=100, schedule="constant")


# ------------------------------------------------------------------- fit's batch_loss hook
class _ModeRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_adversarial_training_forward_passes_run_in_train_mode_and_the_attack_in_eval_mode():
    data = robust_vs_weak(200, 0, k=4)
    torch.manual_seed(0)
    recorder = _ModeRecorder()
    model = Classifier(nn.Sequential(recorder, nn.Linear(5, 2)), input_shape=(5,), num_classes=2)
    loss = fgsm_at(0.1)  # clean + adversarial: two trained forward passes per step
    fit(model, Recipe(epochs=1, lr=0.01, batch_size=50), data, batch_loss=loss)
    steps = 4
    # per step: the attack's forward and its re-checks (eval), then f(x) and f(x') (train)
    runs = "".join("T" if m else "e" for m in recorder.modes).split("TT")
    assert len(runs) == steps + 1 and runs[-1] == ""
    assert all(run in ("ee", "eee") for run in runs[:-1])  # a second re-check when the clip bites
    assert not model.training  # fit leaves the model in eval mode, as before


def test_fit_with_a_batch_loss_resumes_to_the_same_weights_and_refuses_another(tmp_path):
    data = robust_vs_weak(200, 0, k=4)
    recipe = Recipe(epochs=2, lr=0.05, batch_size=50)
    straight = mlp(5, 2)
    fit(straight, recipe, data, batch_loss=pgd_at(0.1, steps=3))

    class Interrupt(Exception):
        pass

    inner = pgd_at(0.1, steps=3)

    def stops_in_epoch_two(model, x, y, step: Step):
        if step.epoch == 1:
            raise Interrupt
        return inner(model, x, y, step)

    stops_in_epoch_two.as_dict = inner.as_dict
    resume = tmp_path / "at.resume.pt"
    with pytest.raises(Interrupt):
        fit(mlp(5, 2), recipe, data, resume_path=resume, batch_loss=stops_in_epoch_two)
    resumed = mlp(5, 2)
    fit(resumed, recipe, data, resume_path=resume, batch_loss=pgd_at(0.1, steps=3))
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="another batch_loss"):
        fit(mlp(5, 2), recipe, data, resume_path=resume, batch_loss=pgd_at(0.2, steps=3))
    with pytest.raises(RuntimeError, match="another batch_loss"):
        fit(mlp(5, 2), recipe, data, resume_path=resume)


def test_random_starts_differ_between_batches_and_follow_the_step_seed():
    data = robust_vs_weak(8, 0, k=4)
    model = mlp(5, 2)
    loss = pgd_at(0.1, steps=0)  # zero steps: x' is the random start itself
    a = loss.perturb(model, data.x, data.y, Step(0, 0, 10, seed=1))
    b = loss.perturb(model, data.x, data.y, Step(0, 1, 10, seed=2))
    again = loss.perturb(model, data.x, data.y, Step(0, 0, 10, seed=1))
    assert not torch.equal(a, b) and torch.equal(a, again)


# ------------------------------------------------------------------- adversarial training
@pytest.mark.parametrize("make", [lambda: pgd_at(0.1, steps=7), lambda: fgsm_rs_at(0.1), lambda: fgsm_at(0.1)],
                         ids=["pgd_at", "fgsm_rs_at", "fgsm_at"])
def test_adversarial_training_raises_pgd_robust_accuracy_far_above_plain_training(make):
    train, test = robust_vs_weak(1000, 0), robust_vs_weak(500, 1)
    plain, defended = mlp(101, 2), mlp(101, 2)
    fit(plain, AT_RECIPE, train)
    fit(defended, AT_RECIPE, train, batch_loss=make())
    plain_robust, defended_robust = robust_accuracy(plain, test, 0.1), robust_accuracy(defended, test, 0.1)
    # measured: plain 0.00, every AT variant 0.92 (the robust optimum is 0.90 ± sampling)
    assert plain_robust < 0.2
    assert defended_robust > 0.8


def test_l2_pgd_training_perturbs_inside_the_l2_ball_and_ramps_eps():
    data = robust_vs_weak(64, 0, k=8)
    model = mlp(9, 2)
    loss = pgd_at(0.5, norm="l2", steps=5, eps_ramp=0.5)
    full = loss.perturb(model, data.x, data.y, Step(0, 99, 100, seed=3))
    assert float((full - data.x).norm(dim=1).max()) <= 0.5 + 1e-5
    assert float((full - data.x).norm(dim=1).max()) > 0.45
    assert loss.settings_at(Step(0, 9, 100, 0))["eps"] == pytest.approx(0.5 * 10 / 50)
    assert loss.as_dict()["settings"]["norm"] == "l2"
    fixed = fgsm_rs_at(0.2, step_size=0.1, eps_ramp=0.5)
    assert fixed.settings_at(Step(0, 24, 100, 0))["step_size"] == pytest.approx(0.1 * 0.5)


def test_fgsm_at_is_the_thesis_mix_of_clean_and_adversarial_loss():
    data = robust_vs_weak(32, 0, k=4)
    model = mlp(5, 2)
    loss = fgsm_at(0.2, adv_weight=0.7, clean_weight=0.3, clip=False)
    value = loss(model, data.x, data.y, None)
    x_adv = fgsm(model, data.x, data.y, eps=0.2).x_raw
    expected = 0.3 * F.cross_entropy(model(data.x), data.y) + 0.7 * F.cross_entropy(model(x_adv), data.y)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_adversarial_loss_checks_its_settings():
    with pytest.raises(ValueError, match="clean_weight"):
        AdversarialLoss(pgd, clean_weight=-1, eps=0.1)
    with pytest.raises(ValueError, match="clean_weight \\+ adv_weight"):
        AdversarialLoss(pgd, clean_weight=0, adv_weight=0, eps=0.1)
    with pytest.raises(ValueError, match="eps_ramp"):
        pgd_at(0.1, eps_ramp=1.5)
    with pytest.raises(ValueError, match="eps must"):
        fgsm_at(-0.1)
    with pytest.raises(ValueError, match="targeted"):
        AdversarialLoss(pgd, eps=0.1, targeted=True)
    with pytest.raises(TypeError, match="Classifier"):
        pgd_at(0.1)(nn.Linear(5, 2), torch.rand(2, 5), torch.zeros(2, dtype=torch.long), None)


def test_a_fixed_set_of_targeted_adversarials_carries_true_labels_and_sources():
    data = blobs(6, 0)
    model = mlp(8, 3)
    adv = adversarial_examples(pgd, model, data, all_targets=True, only_successful=False, progress=False,
                               eps=1.0, steps=30, step_size=0.1)
    assert len(adv) == 6 * 2
    assert torch.equal(adv.y, data.y.repeat_interleave(2))
    assert torch.equal(adv.indices, data.indices.repeat_interleave(2))
    kept = adversarial_examples(pgd, model, data, progress=False, eps=1.0, steps=30, step_size=0.1)
    assert torch.all(model(kept.x).argmax(1) != kept.y)
    joined = with_adversarials(data, adv)
    assert len(joined) == 18 and torch.equal(joined.x[6:], adv.x)
    with pytest.raises(ValueError, match="all_targets"):
        adversarial_examples(pgd, model, data, targeted=True, eps=0.1)


# ------------------------------------------------------------------------------ distillation
def test_distilled_student_matches_the_teachers_soft_labels_better_than_a_fresh_net():
    train, held_out = blobs(600, 0), blobs(300, 1)
    build = lambda: mlp(8, 3, seed=0)  # noqa: E731
    t = 10.0
    d = defensive_distillation(build, train, temperature=t,
                               recipe=Recipe(epochs=15, lr=1e-2, optimizer="adam", batch_size=50))

    def kl(model):
        with torch.no_grad():
            return float(kl_divergence(d.teacher(held_out.x) / t, model(held_out.x) / t).mean())

    # measured: student 0.008, a fresh net 0.18
    assert kl(d.student) < 0.2 * kl(mlp(8, 3, seed=1))
    assert kl(d.student) < 0.2 * kl(build())
    assert torch.allclose(d.soft_labels.sum(1), torch.ones(len(train)))
    assert d.student.output == "logits" and not d.student.training


def test_deployment_at_temperature_one_multiplies_the_training_logits_by_t():
    x = blobs(50, 0).x
    student = mlp(8, 3)
    for t in (1.0, 10.0, 100.0):
        trained_view = at_temperature(student, t)  # what the softmax saw in training: z/T
        with torch.no_grad():
            z_t, z = trained_view(x), student(x)
        assert torch.allclose(z, t * z_t, rtol=1e-5, atol=1e-6)
        # log-odds between classes at test time are T times those at training temperature
        lp, lp_t = F.log_softmax(z, 1), F.log_softmax(z_t, 1)
        assert torch.allclose(lp[:, 0] - lp[:, 1], t * (lp_t[:, 0] - lp_t[:, 1]), rtol=1e-4, atol=1e-4)
    assert list(at_temperature(student, 5).parameters())[0] is list(student.parameters())[0]
    with pytest.raises(ValueError, match="temperature"):
        at_temperature(student, 0)
    with pytest.raises(ValueError, match="temperature"):
        soft_cross_entropy(float("nan"))


def test_teacher_and_student_start_from_the_same_initialisation():
    train = blobs(60, 0)
    d = defensive_distillation(lambda: mlp(8, 3, seed=7), train, temperature=20,
                               recipe=Recipe(epochs=0, lr=0.1), init_recipe=Recipe(epochs=1, lr=0.1))
    for a, b, fresh in zip(d.teacher.parameters(), d.student.parameters(), mlp(8, 3, seed=7).parameters()):
        assert torch.equal(a, b) and not torch.equal(a, fresh)  # both copies of the trained init


# ----------------------------------------------------------------------------------- VAT
def test_power_iteration_finds_the_dominant_curvature_direction_of_a_softmax_model():
    torch.manual_seed(0)
    d, k = 6, 4
    lin = nn.Linear(d, k).double()
    x = torch.rand(3, d, dtype=torch.float64)
    u = power_iteration(lin, x, xi=1e-6, iterations=30, generator=torch.Generator().manual_seed(0))
    w = lin.weight.detach()
    for i in range(len(x)):
        p = F.softmax(lin(x[i:i + 1]), 1)[0].detach()
        hessian = w.T @ (torch.diag(p) - torch.outer(p, p)) @ w  # KL(p‖p(x + r)) ≈ ½ rᵀHr
        top = torch.linalg.eigh(hessian).eigenvectors[:, -1]
        assert abs(float(u[i] @ top)) > 0.999
        assert float(u[i].norm()) == pytest.approx(1.0)


def test_virtual_adversarial_perturbation_has_norm_eps_and_beats_random_directions():
    model = mlp(8, 3).double()
    x = blobs(20, 0).x.double()
    r, clean = virtual_adversarial_perturbation(model, x, eps=0.5, iterations=3, seed=0)
    assert torch.allclose(r.norm(dim=1), torch.full((20,), 0.5, dtype=torch.float64))
    kl_adv = kl_divergence(clean, model(x + r))
    rand = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kl_rand = kl_divergence(clean, model(x + 0.5 * rand / rand.norm(dim=1, keepdim=True)))
    assert bool((kl_adv >= kl_rand).all())


def test_vat_training_lowers_the_local_distributional_smoothness_term():
    train, held_out = blobs(600, 0), blobs(200, 1)
    recipe = Recipe(epochs=15, lr=1e-2, optimizer="adam", batch_size=50)
    plain, vat, vat3 = mlp(8, 3), mlp(8, 3), mlp(8, 3)
    fit(plain, recipe, train)
    loss = VATLoss(eps=0.3, xi=1e-6, iterations=1)  # Miyato et al.'s ξ and K, α = 1
    fit(vat, recipe, train, batch_loss=loss)
    fit(vat3, recipe, train, batch_loss=VATLoss(eps=0.3, weight=3.0))

    def lds(model):
        r, clean = virtual_adversarial_perturbation(model, held_out.x, eps=0.3, iterations=3, seed=0)
        with torch.no_grad():
            return float(kl_divergence(clean, model(held_out.x + r)).mean())

    # measured: plain 0.50, VAT α = 1 0.27, α = 3 0.10 (clean accuracy 0.99, 0.98, 0.985)
    assert lds(vat) < 0.75 * lds(plain)
    assert lds(vat3) < 0.4 * lds(plain)
    assert set(loss.last) == {"lds", "ce"}
    with pytest.raises(ValueError, match="xi"):
        VATLoss(eps=1.0, xi=0)
    with pytest.raises(ValueError, match="iterations"):
        VATLoss(eps=1.0, iterations=0)


# ---------------------------------------------------------------------- feature squeezing
def test_bit_depth_reduction_on_hand_made_pixels():
    x = torch.tensor([0.0, 0.2, 0.25, 0.49, 0.5, 0.51, 0.75, 0.9, 1.0]).view(1, 1, 3, 3)
    one = reduce_bit_depth(x, 1).flatten().tolist()
    assert one == [0, 0, 0, 0, 0, 1, 1, 1, 1]  # 0.5 rounds half to even (np.rint), as EvadeML-Zoo
    two = reduce_bit_depth(x, 2).flatten()  # levels 0, 1/3, 2/3, 1
    assert torch.equal(two, torch.tensor([0, 1, 1, 1, 2, 2, 2, 3, 3]) / 3.0)
    grey = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16) / 255
    assert torch.equal(reduce_bit_depth(grey, 8), grey)
    assert torch.equal(reduce_bit_depth(grey, 5), torch.from_numpy(np.rint(grey.numpy() * 31) / 31).float())
    shifted = reduce_bit_depth(x * 2 - 1, 1, bounds=(-1.0, 1.0))
    assert torch.equal(shifted, torch.tensor(one, dtype=torch.float32).view(1, 1, 3, 3) * 2 - 1)
    with pytest.raises(ValueError, match="bits"):
        reduce_bit_depth(x, 0)


def test_median_smoothing_is_scipys_median_filter():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]).view(1, 1, 3, 3)
    # 2×2 windows over offsets {−1, 0} with the edge repeated; the upper middle of four values
    assert median_filter(x, 2).flatten().tolist() == [1, 2, 3, 4, 4, 5, 7, 7, 8]
    expected = scipy.ndimage.median_filter(x.numpy(), size=(1, 1, 2, 2), mode="reflect")
    assert np.array_equal(median_filter(x, 2).numpy(), expected)
    g = torch.Generator().manual_seed(0)
    for size in (1, 2, 3, (2, 3), (4, 1)):
        images = torch.rand(2, 3, 9, 7, generator=g)
        ref = scipy.ndimage.median_filter(images.numpy(), size=(1, 1, *((size, size) if isinstance(size, int) else size)),
                                          mode="reflect")
        assert np.array_equal(median_filter(images, size).numpy(), ref), size
    # EvadeML-Zoo's call on NHWC images
    images = torch.rand(2, 3, 8, 8, generator=g)
    nhwc = scipy.ndimage.median_filter(images.permute(0, 2, 3, 1).numpy(), size=(1, 2, 2, 1), mode="reflect")
    assert np.array_equal(median_filter(images, 2).permute(0, 2, 3, 1).numpy(), nhwc)
    with pytest.raises(ValueError, match="size"):
        median_filter(images, 0)


def test_non_local_means_is_opencvs_on_uint8_images():
    cv2 = pytest.importorskip("cv2")
    g = torch.Generator().manual_seed(0)
    colour = torch.randint(0, 256, (2, 3, 16, 16), generator=g).float() / 255
    ours = non_local_means(colour, strength=2, patch_size=3, search_window=13)
    for i in range(2):
        img = np.ascontiguousarray((colour[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        ref = cv2.fastNlMeansDenoisingColored(img, None, 2, 2, 3, 13).astype(np.float32) / 255
        assert np.array_equal(ours[i].permute(1, 2, 0).numpy(), ref)
    grey = torch.randint(0, 256, (2, 1, 12, 12), generator=g).float() / 255
    ours = non_local_means(grey, strength=10, patch_size=3, search_window=7)
    for i in range(2):
        img = np.ascontiguousarray((grey[i, 0].numpy() * 255).round().astype(np.uint8))
        assert np.array_equal(ours[i, 0].numpy(), cv2.fastNlMeansDenoising(img, None, 10, 3, 7).astype(np.float32) / 255)
    with pytest.raises(ValueError, match="patch_size"):
        NonLocalMeans(13, 2, 2.0)


def _image_model(seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4)  # confident outputs, so squeezing moves the softmax
    return Classifier(net, input_shape=(1, 8, 8), num_classes=10)


@pytest.mark.parametrize("fpr", [0.0, 0.05, 0.1, 0.33])
def test_joint_detector_false_positive_rate_on_its_calibration_data_is_at_most_the_target(fpr):
    model = _image_model()
    clean = torch.rand(203, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    detector = JointDetector(model, mnist_squeezers())
    threshold = detector.calibrate(clean, fpr=fpr)
    flagged = detector.detect(clean).float().mean().item()
    assert flagged <= fpr
    assert flagged >= fpr - 2 / len(clean)  # and not needlessly below it (no ties here)
    assert threshold == detector.threshold >= 0


def test_joint_detector_score_is_the_max_l1_distance_of_softmaxes():
    model = _image_model()
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    squeezers = (BitDepth(1), MedianSmoothing(2))
    with torch.no_grad():
        p = model(x).softmax(1)
        expected = torch.stack([(p - model(s(x)).softmax(1)).abs().sum(1) for s in squeezers]).max(0).values
    assert torch.allclose(JointDetector(model, squeezers).scores(x), expected)
    with pytest.raises(RuntimeError, match="threshold"):
        JointDetector(model, squeezers).detect(x)
    with pytest.raises(ValueError, match="fpr"):
        JointDetector(model, squeezers).calibrate(x, fpr=1.0)


def test_squeezed_classifier_is_an_attackable_model_with_the_documented_gradients():
    model = _image_model()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    for squeezer in (BitDepth(1), MedianSmoothing(2), NonLocalMeans(7, 3, 10.0)):
        if isinstance(squeezer, NonLocalMeans):
            pytest.importorskip("cv2")
        squeezed = SqueezedClassifier(model, squeezer)
        assert torch.allclose(squeezed(x), model(squeezer(x)))
        xv = x.clone().requires_grad_(True)
        F.cross_entropy(squeezed(xv), y).backward()
        if squeezer.gradient == "straight_through":  # BPDA: the model's gradient at s(x)
            sx = squeezer(x).requires_grad_(True)
            F.cross_entropy(model(sx), y).backward()
            assert torch.allclose(xv.grad, sx.grad)
        else:
            assert xv.grad.abs().sum() > 0
        result = fgsm(squeezed, x, y, eps=0.3)
        assert result.backwards.tolist() == [1] * 4
    with pytest.raises(ValueError, match="Squeezer"):
        SqueezedClassifier(model, lambda z: z)


# ------------------------------------------------------------------------------ detectors
def _detection_data():
    g = torch.Generator().manual_seed(0)
    genuine = torch.rand(100, 1, 8, 8, generator=g) * 0.5
    source = torch.arange(60).repeat(2)  # two attacks on the first 60 images; 40 extra genuine
    kind = torch.arange(2).repeat_interleave(60)
    adversarial = (genuine[source] + 0.4 * torch.sign(torch.randn(120, 1, 8, 8, generator=g))).clamp(0, 1)
    return genuine, adversarial, source, kind


def test_detection_split_keeps_every_source_image_on_one_side():
    genuine, adversarial, source, kind = _detection_data()
    split = detection_split(genuine, adversarial, source, kind=kind, kinds=("ce", "logit"), test_fraction=0.2,
                            seed=3)
    assert not split.train_sources & split.test_sources
    assert split.train_sources | split.test_sources == set(range(100))
    assert len(split.train) + len(split.test) == 100 + 120
    for side, kinds in ((split.train, split.train_kind), (split.test, split.test_kind)):
        genuine_rows = set(side.indices[side.y == GENUINE].tolist())
        assert set(side.indices[side.y == ADVERSARIAL].tolist()) <= genuine_rows
        assert torch.equal(kinds == -1, side.y == GENUINE)
        for i in range(len(side)):  # every image is its source, or an adversarial of it
            if side.y[i] == GENUINE:
                assert torch.equal(side.x[i], genuine[side.indices[i]])
    # stratified: 20 % of the attacked sources and 20 % of the extra genuine images on the test side
    attacked = split.test.indices[split.test.y == GENUINE] < 60
    assert int(attacked.sum()) == 12 and int((~attacked).sum()) == 8
    again = detection_split(genuine, adversarial, source, kind=kind, kinds=("ce", "logit"), test_fraction=0.2, seed=3)
    assert split.test_sources == again.test_sources
    with pytest.raises(ValueError, match="source"):
        detection_split(genuine, adversarial, source + 50)
    with pytest.raises(ValueError, match="test_fraction"):
        detection_split(genuine, adversarial, source, test_fraction=1.0)


def test_a_small_detector_trained_with_fit_separates_an_easy_attack():
    genuine, adversarial, source, kind = _detection_data()
    split = detection_split(genuine, adversarial, source, kind=kind, kinds=("ce", "logit"), test_fraction=0.2)
    detector = small_detector((1, 8, 8), width=4, hidden=16)
    train_detector(detector, split, Recipe(epochs=20, lr=1e-2, optimizer="adam", batch_size=32))
    acc = detection_accuracy(detector, split.test, split.test_kind, split.kinds)
    assert acc["genuine"] > 0.8 and acc["adversarial"] > 0.8
    assert acc["overall"] == pytest.approx((acc["genuine"] + acc["adversarial"]) / 2)
    assert set(acc) == {"genuine", "adversarial", "overall", "adversarial/ce", "adversarial/logit"}
    with pytest.raises(ValueError, match="2 outputs"):
        train_detector(mlp(64, 3), split, Recipe(epochs=1, lr=0.1))


# ------------------------------------------------------------- evaluation runs in eval mode
@pytest.mark.parametrize("evaluate", [
    lambda m, x: soft_labels(m, x, 10.0),
    lambda m, x: detection_accuracy(m, ImageSet("d", x, torch.zeros(len(x), dtype=torch.long), torch.arange(len(x)),
                                                ("genuine", "adversarial"))),
    lambda m, x: JointDetector(m, [BitDepth(1)]).scores(x),
    lambda m, x: virtual_adversarial_perturbation(m, x, eps=0.1),
], ids=["soft_labels", "detection_accuracy", "JointDetector.scores", "virtual_adversarial_perturbation"])
def test_evaluation_runs_in_eval_mode_and_restores_each_modules_own_mode(evaluate):
    torch.manual_seed(0)
    recorder, frozen = _ModeRecorder(), nn.Dropout(0.5)
    model = Classifier(nn.Sequential(recorder, frozen, nn.Linear(4, 2)), input_shape=(4,), num_classes=2)
    model.train()
    frozen.eval()  # a layer the caller keeps in eval mode while the rest trains
    evaluate(model, torch.rand(6, 4, generator=torch.Generator().manual_seed(1)))
    assert recorder.modes and not any(recorder.modes)
    assert model.training and recorder.training and not frozen.training
