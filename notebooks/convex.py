# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Adversarial examples by convex programming (document 001)
#
# Balda, Behboodi and Mathar {cite:p}`balda2018convex` linearise a classifier's margin
# $L(x) = f_k(x) - \max_{l \neq k} f_l(x)$ around an input and ask two convex questions about the
# first-order model $L(x) + \eta^\top \nabla L(x)$ inside the ball $\lVert\eta\rVert_p \le \varepsilon$:
#
# - **GN** (feasibility): can the linearised margin become negative? Proposition 1: not if
#   $\varepsilon < L(x)/\lVert\nabla L(x)\rVert_q$ ($q$ is the dual exponent of $p$), which gives the
#   robustness measure $\hat\rho_2$.
# - **GNII** (norm-constrained): how low can it go? Proposition 2: the minimiser has a closed
#   form, $\eta^* = -\varepsilon \operatorname{sign}(\nabla L)$ for $p = \infty$ (eq. 7), and the optimum is
#   $L - \varepsilon \lVert\nabla L\rVert_q$.
#
# Algorithm 1 solves GNII for the exact margin of eq. 3 (all classes), Algorithm 1-n iterates it
# in $n$ steps of size $\varepsilon/n$, and Algorithm 2 replaces the margin by the logit of the predicted
# class. FastGrad (FGSM) and one DeepFool step are special cases. The document compares them by
# the **fooling ratio** on four networks (Fig. 2), and compares three robustness measures
# (Table I). This chapter reruns all of it with `reprolib`, puts the document's numbers beside
# ours, checks the two propositions on real images, adds the regression experiment that Section
# III states without running it, and ends with a verdict per claim.
#
# Where the text is silent, we follow the authors' released code:
# pre-softmax logits for $f$, Algorithm 1's class chosen by the margin *after* the step,
# DeepFool in ℓ∞ with a 2 % overshoot on every step, ε grids `linspace(0.001, ε_max, 10)`,
# only correctly classified test images, and no clipping of $x + \eta$ to the pixel range. The
# methods, settings and pitfalls this chapter follows are in {doc}`../notes/001-convex-programming`.

# %% [markdown] tags=["summary"]
# ## Summary
#
# **Verdicts.** {glue:md}`convex-tally`. Each row of the {ref}`verdict table <convex-verdicts>` at
# the end links to the figure or table it checks.
#
# ```{glue:figure} convex-fig2
# :name: fig-convex-headline
#
# The headline result, the document's Fig. 2 rerun: the share of images each method fools against
# the ℓ∞ budget ε on the four nets. Lines are ours, with 95 % Wilson bands; one hue per family of
# methods (Alg1 and its iterated versions share one, with distinct dashes). Markers are the
# document's: circles the v1 CSV the authors released, crosses readings of the v2 figure.
# ```
#
# **What differs from the document** (details in {ref}`convex-differs`): the `cpu` profile's NIN and
# DenseNet are CPU stand-ins, far less accurate than the document's nets, so the CIFAR-10 rows test
# orderings and shapes only; our MNIST nets read 28×28 pixels where the released ones read a
# zero-padded, attackable 32×32 input (the padding test measures what that changes); ε is in
# pixels of [0, 1]; the document's numbers come from its v1 CSV and from reading its v2 figure.

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper
n_mnist = None  # None means the profile's value, for this knob and every knob below
n_cifar = None
n_released = None
n_eps = None
eps_max = None
alg1n_stride = None
nin = None
densenet = None
n_test = None
n_shown = None
n_reg = None
n_reg_train = None
reg_eps_grid = None
batch_size = None
seed = None
device = None

# %% tags=["hide-input"]
from reprolib.book.params import Param, ParameterError, Spec, device_param, seed_param

SPEC = Spec(
    Param("n_mnist", int, smoke=16, cpu=1024, paper=1024, lo=1, hi=9000,
          doc="correctly classified MNIST test images per net (the document: 1024)"),
    Param("n_cifar", int, smoke=4, cpu=256, paper=1024, lo=1, hi=5000,
          doc="correctly classified CIFAR-10 test images per net (the document: 1024)"),
    Param("n_released", int, smoke=16, cpu=1024, paper=1024, lo=1, hi=9000,
          doc="correctly classified padded MNIST test images per released-architecture net (the padding test)"),
    Param("n_eps", int, smoke=3, cpu=10, paper=10, lo=2, hi=50,
          doc="points of each ε grid linspace(0.001, ε_max, n_eps) (the document: 10)"),
    Param("eps_max", "list[float]", smoke=[0.1, 0.2, 0.03, 0.01], cpu=[0.1, 0.2, 0.03, 0.01],
          paper=[0.1, 0.2, 0.03, 0.01], lo=0.002, hi=1.0,
          doc="ε_max of the FCNN, LeNet-5, NIN and DenseNet grids (l∞, pixels in [0, 1])"),
    Param("alg1n_stride", int, smoke=1, cpu=2, paper=1, lo=1, hi=10,
          doc="run Alg1-5 and Alg1-10 on the CIFAR nets at every k-th ε, counted down from ε_max"),
    Param("nin", str, smoke="nin_cifar_cpu", cpu="nin_cifar_cpu", paper="nin_cifar",
          choices=("nin_cifar_cpu", "nin_cifar"), doc="the Network-in-Network of the zoo"),
    Param("densenet", str, smoke="densenet22_cifar_cpu", cpu="densenet22_cifar_cpu", paper="densenet40_cifar",
          choices=("densenet22_cifar_cpu", "densenet40_cifar"), doc="the DenseNet of the zoo"),
    Param("n_test", int, smoke=1000, cpu=10000, paper=10000, lo=100, hi=10000,
          doc="test images on which the test error of Table I is measured"),
    Param("n_shown", int, smoke=3, cpu=5, paper=5, lo=1, hi=12, doc="examples per dataset in Fig. 1"),
    Param("n_reg", int, smoke=64, cpu=1000, paper=1000, lo=8, hi=10000,
          doc="test images of the regression experiment (Section III)"),
    Param("n_reg_train", int, smoke=10000, cpu=60000, paper=60000, lo=1000, hi=60000,
          doc="MNIST training images of the autoencoder of Section III"),
    Param("reg_eps_grid", "list[float]", smoke=[0.5, 2.0], cpu=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
          paper=[0.1, 0.25, 0.5, 1.0, 2.0, 4.0], lo=1e-4, hi=28.0,
          doc="l2 radii of the regression attacks (pixels in [0, 1])"),
    Param("batch_size", int, smoke=64, cpu=256, paper=1024, lo=1, hi=8192, doc="images per attack batch"),
    seed_param(0),
    device_param(),
)
params = SPEC.resolve(globals())
if len(eps_max) != 4:
    raise ParameterError(f"eps_max needs 4 values (FCNN, LeNet-5, NIN, DenseNet), got {eps_max}.")

# %% [markdown]
# ## The four networks
#
# The document trains an FCNN and LeNet-5 on MNIST, and Network-in-Network (NIN) and
# DenseNet-40 on CIFAR-10, and reports only their test errors. All four come from reprolib's model
# zoo, trained on this machine by the recipes printed below. The MNIST nets match the document.
# The full-width NIN and DenseNet-40 take hours per epoch on two CPU cores, so the `cpu` profile uses
# the zoo's CPU variants: NIN at half width and DenseNet-22. Both are trained for very few epochs
# and are far less accurate than the document's. The `paper` profile uses the full
# architectures and trains them on a GPU if their checkpoints are missing. Test errors are measured
# here on `n_test` test images:

# %% tags=["hide-input"]
import math

import numpy as np
import pandas as pd
import torch
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from reprolib import cache, data, models, train
from reprolib.attacks import alg1, alg2, deepfool, fgsm, random_sign
from reprolib.attacks.ops.linearized import gnii_step
from reprolib.attacks.ops.norms import dual_norm
from reprolib.book import plotting
from reprolib.book.params import torch_device
from reprolib.book.reproduction import paper_table, verdict_row
from reprolib.book.tables import present, tally_text, verdict_table
from IPython.display import Markdown
from myst_nb import glue
from reprolib.evaluation import exact, metrics
from reprolib.evaluation.run import run_attack
from reprolib.models import registry

DOC = "001-convex-programming"
dev = torch_device(device)
NETS = {"fcnn": "fcnn_mnist", "lenet": "lenet5_mnist", "nin": nin, "densenet": densenet}
DATASET = {"fcnn": "mnist", "lenet": "mnist", "nin": "cifar10", "densenet": "cifar10"}
TITLE = {"fcnn": "FCNN (MNIST)", "lenet": "LeNet-5 (MNIST)", "nin": "NIN (CIFAR-10)",
         "densenet": "DenseNet (CIFAR-10)"}
SHORT = {"fcnn": "FCNN", "lenet": "LeNet-5", "nin": "NIN", "densenet": "DenseNet"}
N_IMAGES = {"fcnn": n_mnist, "lenet": n_mnist, "nin": n_cifar, "densenet": n_cifar}
EPS = {key: np.linspace(0.001, top, n_eps) for key, top in zip(NETS, eps_max)}

paper_t1 = paper_table(DOC, "table1").set_index("net")
paper_v1 = paper_table(DOC, "fig2_v1_csv")
paper_v2 = paper_table(DOC, "fig2_v2_figure")

test_sets = {name: data.load(name, "test") for name in ("mnist", "cifar10")}
nets, test_error, model_rows = {}, {}, []
for key, name in NETS.items():
    net = models.load(name, device=dev, train_if_missing=(profile == "paper"))
    nets[key] = net
    subset = data.first_n(test_sets[DATASET[key]], n_test)
    acc = cache.cached(f"convex/accuracy/{name}", {"model": net, "x": subset.x, "y": subset.y},
                       lambda: train.accuracy(net, subset))
    test_error[key] = 1 - acc
    spec, meta = registry.SPECS[name], registry.metadata(name)
    model_rows.append({"net": TITLE[key], "zoo model": name, "architecture": spec.description,
                       "recipe": f"{meta['recipe']['optimizer']}, lr {meta['recipe']['lr']:g}, "
                                 f"{meta['recipe']['epochs']} epochs",
                       f"test error, ours ({n_test} images)": f"{100 * test_error[key]:.2f} %",
                       "test error, document": f"{paper_t1.loc[key, 'test_error_percent']:.1f} %"})
present(pd.DataFrame(model_rows).set_index("net"), max_columns=3, name="tbl-convex-nets")

# %% [markdown]
# As in the authors' code, each net is attacked on its own images: the test set in a seeded random
# order, keeping the first `n` images that the net classifies correctly. The label `k` that an
# attack must change is the net's prediction, which on these images is the true label.

# %% tags=["hide-input"]
images = {}
for key, net in nets.items():
    test = test_sets[DATASET[key]]
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
    images[key] = data.first_correct(net, test.subset(order), N_IMAGES[key])
present(pd.DataFrame([{"net": TITLE[k], "images": len(s), "ε grid": ", ".join(f"{e:.4g}" for e in EPS[k])}
                      for k, s in images.items()]).set_index("net"))

# %% [markdown]
# ## Fig. 1: adversarial examples from Algorithm 1
#
# The document shows correctly classified images that Algorithm 1's noise makes misclassified,
# without saying ε. The authors' script uses ε = 0.05 of the dynamic range, and, for display only,
# compresses each image affinely into [ε, 1 − ε] so that the unclipped noise stays visible. We do
# the same, with ε = 0.05 on MNIST (the FCNN) and ε = ε_max on CIFAR-10 (DenseNet). The labels
# above the bottom row are the net's predictions on $x + \eta$; the middle row shows $\eta$ on a
# symmetric scale.

# %% tags=["hide-input"]
FIG1 = {"fcnn": 0.05, "densenet": EPS["densenet"][-1]}
for key, eps in FIG1.items():
    s = images[key]
    shown = data.first_n(s, min(len(s), 64))
    res = alg1(nets[key], shown.x, shown.y, eps=eps, check_raw=True)
    pick = torch.nonzero(res.success_raw).flatten()[:n_shown].cpu()
    if len(pick) == 0:
        glue(f"convex-fig1-{key}", f"Algorithm 1 at ε = {eps:.3g} fooled none of the {len(res)} images of {TITLE[key]}.",
             display=False)
        continue
    x_show = eps + (1 - 2 * eps) * res.x[pick].cpu()  # the display compression of the authors' script
    eta = (res.x_raw - res.x)[pick].cpu()
    with torch.no_grad():
        pred = nets[key](res.x_raw[pick.to(res.x_raw.device)]).argmax(1).cpu()
    fig = plotting.image_grid(x_show, x_show + eta, labels=shown.y[pick], adv_labels=pred,
                              class_names=s.classes, n=None,
                              title=f"Algorithm 1, ε = {eps:.3g}, {TITLE[key]}: "
                                    f"{int(res.success_raw.sum())} of {len(res)} images fooled")
    glue(f"convex-fig1-{key}", fig, display=False)
    plt.close(fig)

# %% [markdown]
# ```{glue:figure} convex-fig1-fcnn
# :name: fig-convex-fig1-fcnn
#
# The document's Fig. 1 on MNIST: Algorithm 1 at ε = 0.05 on the FCNN. Top: the images; middle:
# the noise η; bottom: $x + \eta$, labelled with the net's prediction.
# ```
#
# ```{glue:figure} convex-fig1-densenet
# :name: fig-convex-fig1-densenet
#
# The document's Fig. 1 on CIFAR-10: Algorithm 1 at ε = ε_max on the DenseNet, as above.
# ```

# %% [markdown]
# ## Fig. 2: fooling ratio against ε
#
# Seven methods, all in ℓ∞, each run on the same images at every ε of the grid:
#
# | method | perturbation | reprolib call | passes per image |
# |---|---|---|---|
# | Alg1 | $-\varepsilon \operatorname{sign}(\nabla f_k - \nabla f_l)$, $l$ minimising the linearised margin after the step | `alg1(net, x, y, eps=ε)` | 1 forward, K − 1 backward |
# | Alg1-n | $n$ steps of Alg1 with size $\varepsilon/n$, Jacobian re-evaluated, $k$ fixed | `alg1(net, x, y, eps=ε, steps=n)` | $n$ times Alg1 |
# | Alg2 | $-\varepsilon \operatorname{sign}(\nabla f_k)$ | `alg2(net, x, y, eps=ε)` | 1 forward, 1 backward |
# | FastGrad | $+\varepsilon \operatorname{sign}(\nabla_x \mathrm{CE}(x, k))$ | `fgsm(net, x, y, eps=ε)` | 1 forward, 1 backward |
# | DeepFool | ℓ∞ DeepFool, overshoot 0.02 per step, ≤ 50 iterations, one unconstrained run: fooled at ε if $\lVert r\rVert_\infty < \varepsilon$ | `deepfool(net, x, y, norm="linf", steps=50, overshoot=0.02, clip=False)` | K − 1 backward per iteration |
# | random | independent $\pm\varepsilon$ entries, drawn for all of a net's images in one call | `random_sign(net, x, y, eps=ε)` | none |
#
# The fooling ratio is the share of the images whose prediction changes, with $x + \eta$ **not**
# clipped to [0, 1], as in the document. Each attack result below is re-checked by a fresh forward
# pass and cached, so an interrupted run resumes where it stopped.

# %% tags=["hide-input"]
def attack_call(method: str, eps: float | None) -> tuple:
    """The attack behind one curve of Fig. 2 and its settings."""
    if method.startswith("Alg1"):
        return alg1, {"eps": eps, "steps": int(method.split("-")[1]) if "-" in method else 1}
    if method == "Alg2":
        return alg2, {"eps": eps}
    if method == "FastGrad":
        return fgsm, {"eps": eps}
    if method == "random":
        return random_sign, {"eps": eps, "seed": seed}
    if method == "DeepFool":
        return deepfool, {"norm": "linf", "steps": 50, "overshoot": 0.02, "overshoot_mode": "per_step",
                          "candidates": None, "clip": False}
    raise ValueError(method)


def fig2_summary(net):
    """What Fig. 2 and Table I keep of each attack on ``net``, per image."""
    def summary(r) -> dict:
        return {"fooled_raw": r.success_raw, "fooled_clipped": r.success, "linf_raw": r.norms_raw["linf"],
                "linf_pre_raw": ((r.x_raw - r.x) / net.std).flatten(1).abs().amax(1),
                "forwards": r.forwards, "backwards": r.backwards}
    return summary


def attack_images(key: str, method: str, eps: float | None = None, *, zoo: tuple | None = None) -> dict:
    """One method on one net's images, in cached batches (an interrupted run resumes).

    ``zoo`` is ``(names, nets, images)`` of another family of nets (default: the chapter's four).
    The random noise is drawn for all images in one call, so that every image gets its own."""
    names, family, inputs = zoo or (NETS, nets, images)
    attack, settings = attack_call(method, eps)
    return run_attack(attack, family[key], inputs[key], batch_size=len(inputs[key]) if method == "random" else batch_size,
                      summary=fig2_summary(family[key]), check_raw=True,
                      cache_name=f"convex/{names[key]}/{method}", progress=False, **settings)


def alg1n_grid(key: str) -> np.ndarray:
    """The ε values at which Alg1-5 and Alg1-10 run: all on MNIST, every k-th on CIFAR."""
    grid = EPS[key]
    return grid if DATASET[key] == "mnist" else grid[::-1][::alg1n_stride][::-1]


SINGLE = ["Alg1", "Alg2", "FastGrad", "random"]
rows, deepfool_runs = [], {}
for key in NETS:
    df_run = attack_images(key, "DeepFool")
    deepfool_runs[key] = df_run
    curve = metrics.deepfool_fooling_curve(df_run["linf_raw"], df_run["fooled_raw"], torch.tensor(EPS[key]))
    for eps, rate in zip(EPS[key], curve.tolist()):
        rows.append({"net": key, "method": "DeepFool", "eps": eps, "fooled": round(rate * len(images[key])),
                     "fooled_clipped": math.nan, "n": len(images[key]), "linf_max": math.nan,
                     "backwards": float(df_run["backwards"].float().mean()),
                     "seconds": float(df_run["seconds"].sum()) if eps == EPS[key][0] else 0.0})
    jobs = [(m, e) for m in SINGLE for e in EPS[key]] + [(m, e) for m in ("Alg1-5", "Alg1-10") for e in alg1n_grid(key)]
    for method, eps in tqdm(jobs, desc=f"Fig. 2, {key}"):
        r = attack_images(key, method, float(eps))
        rows.append({"net": key, "method": method, "eps": eps, "fooled": int(r["fooled_raw"].sum()),
                     "fooled_clipped": int(r["fooled_clipped"].sum()), "n": len(r["fooled_raw"]),
                     "linf_max": float(r["linf_raw"].max()), "backwards": float(r["backwards"].float().mean()),
                     "seconds": float(r["seconds"].sum())})
sweep = pd.DataFrame(rows)
sweep["ratio"] = 100 * sweep["fooled"] / sweep["n"]
fixed = sweep.dropna(subset=["linf_max"])
budget_ok = bool((fixed.linf_max <= fixed.eps + 1e-6).all())
print(f"sweep: {len(sweep)} points; the attacks took {sweep.seconds.sum() / 60:.1f} min of compute when their "
      f"batches were computed (cached batches keep that time); every fixed-ε perturbation within its budget: {budget_ok}")

# %% [markdown]
# The curves are {numref}`fig-convex-headline`, at the top of the page. Lines are ours, with 95 %
# Wilson bands over the images. Markers are the document's: circles for the numbers the authors
# released for the v1 run of the paper (no Alg1-n), crosses for readings of the v2 figure, which is
# the one in the document (read by eye, about ±2 points).

# %% tags=["hide-input"]
METHODS = ["DeepFool", "Alg1-10", "Alg1-5", "Alg1", "Alg2", "FastGrad", "random"]
STYLES = plotting.family_styles({"Alg1": ["Alg1", "Alg1-5", "Alg1-10"], "DeepFool": ["DeepFool"], "Alg2": ["Alg2"],
                                 "FastGrad": ["FastGrad"], "random": ["random"]})
COLOURS = {m: style["color"] for m, style in STYLES.items()}
fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
for ax, key in zip(axes.flat, NETS):
    ours = sweep[sweep.net == key]
    for method in METHODS:
        m = ours[ours.method == method].sort_values("eps")
        plotting.rate_curve(ax, m.eps, m.fooled, m.n, label=method, marker=None, **STYLES[method])
        for table, marker in ((paper_v1, "o"), (paper_v2, "x")):
            p = table[(table.net == key) & (table.method == method)]
            ax.plot(p.eps, p.fooling_ratio_percent, linestyle="none", marker=marker, markersize=6,
                    color=COLOURS[method], markerfacecolor="none" if marker == "o" else None)
    ax.set(title=f"{TITLE[key]}, {len(images[key])} images", xlabel="ε (l∞, pixels in [0, 1])",
           ylabel="fooling ratio (%)")
handles, labels = axes.flat[0].get_legend_handles_labels()
ours_legend = fig.legend(handles, labels, title="ours (lines)", loc="lower left", bbox_to_anchor=(0.06, 0.0),
                         ncol=4, frameon=False)
fig.legend([plt.Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="none"),
            plt.Line2D([], [], color="black", marker="x", linestyle="none")],
           ["v1 CSV (released numbers)", "v2 figure (read by eye)"], title="the document's (markers, in the method's hue)",
           loc="lower right", bbox_to_anchor=(0.98, 0.0), ncol=1, frameon=False)
fig.tight_layout(rect=(0, 0.11, 1, 1))
glue("convex-fig2", fig, display=False)
plt.close(fig)

# %% [markdown]
# The same numbers as a table: ours, then the document's in brackets (the v2 figure where it was
# read, else the v1 CSV marked ¹).

# %% tags=["hide-input"]
def paper_value(key: str, method: str, eps: float) -> str:
    for table, mark in ((paper_v2, ""), (paper_v1, "¹")):
        p = table[(table.net == key) & (table.method == method) & np.isclose(table.eps, eps, rtol=0.02, atol=1e-4)]
        if len(p):
            return f" ({p.fooling_ratio_percent.iloc[0]:g}{mark})"
    return ""


cells = sweep.assign(cell=[f"{r.ratio:.1f}{paper_value(r.net, r.method, r.eps)}" for r in sweep.itertuples()],
                     ε=sweep.eps.map(lambda e: f"{e:.4g}"), net=sweep.net.map(TITLE))
present(cells.pivot_table(index=["net", "ε"], columns="method", values="cell", aggfunc="first", sort=False)[METHODS],
        max_columns=4, name="tbl-convex-fig2")

# %% [markdown]
# ### With clipping to the pixel range
#
# The document never clips $x + \eta$ to [0, 1], although its Section I discusses the box. Every
# reprolib attack also returns the clipped input and re-checks it, so the cost of the box is
# free to see. This is the fooling ratio at ε_max of each net with and without clipping (DeepFool
# is left out: its curve comes from norms of unclipped runs).

# %% tags=["hide-input"]
top = sweep[(sweep.method != "DeepFool") & sweep.groupby("net").eps.transform(lambda e: np.isclose(e, e.max()))]
present(top.assign(net=top.net.map(TITLE), unclipped=top.ratio, clipped=100 * top.fooled_clipped / top.n)
        .pivot_table(index="method", columns="net", values=["unclipped", "clipped"], sort=False)
        .reindex(METHODS[1:]), max_columns=4, name="tbl-convex-clipping")

# %% [markdown]
# ### Do the released architectures on padded input close the MNIST gap?
#
# Our MNIST curves fall well below the document's, although the test errors agree (first
# table). One difference is the input. The authors' released FCNN (1024-500-150-10) and LeNet-5
# read MNIST zero-padded to 32×32 raw pixels, and their attacks perturb the padding too: 240
# more pixels for an ℓ∞ attacker. In the FCNN, those pixels are zero on every training image, so
# their first-layer weights never train and keep their random initial values (truncated normal,
# std 0.07), which an attacker can use. Ours read 28×28 pixels (our LeNet-5 pads inside the
# model, where no attack reaches). To test this, the zoo has the released architectures, trained
# here on padded raw pixels with the released initialisation (recipes below), and we attack the
# 32×32 input with the methods of the authors' released CSV (the v1 run: no Alg1-n) on the same
# ε grids. To separate the border's leverage from everything else that differs (architecture,
# raw unnormalised input, initialisation, training), we also attack the same trained nets with the
# border out of reach: the net pads the 28×28 image itself, as our LeNet-5 does.

# %% tags=["hide-input"]
RELEASED = {"fcnn": "fcnn_released_mnist32", "lenet": "lenet5_released_mnist32"}
RELEASED_METHODS = ["DeepFool", "Alg1", "Alg2", "FastGrad", "random"]  # the columns of the v1 CSV
mnist32 = data.load("mnist32", "test")
released, released_images, released_rows = {}, {}, []
for key, name in RELEASED.items():
    net = models.load(name, device=dev, train_if_missing=(profile == "paper"))
    released[key] = net
    subset = data.first_n(mnist32, n_test)
    acc = cache.cached(f"convex/accuracy/{name}", {"model": net, "x": subset.x, "y": subset.y},
                       lambda: train.accuracy(net, subset))
    order = torch.randperm(len(mnist32), generator=torch.Generator().manual_seed(seed))
    released_images[key] = data.first_correct(net, mnist32.subset(order), n_released)
    meta = registry.metadata(name)
    released_rows.append({"net": TITLE[key], "zoo model": name, "architecture": registry.SPECS[name].description,
                          "recipe": f"{meta['recipe']['optimizer']}, lr {meta['recipe']['lr']:g}, "
                                    f"{meta['recipe']['epochs']} epochs",
                          f"test error ({n_test} images)": f"{100 * (1 - acc):.2f} %",
                          "test error, ours 28×28": f"{100 * test_error[key]:.2f} %",
                          "test error, document": f"{paper_t1.loc[key, 'test_error_percent']:.1f} %"})
present(pd.DataFrame(released_rows).set_index("net"), max_columns=3)

# %% tags=["hide-input"]
released_zoo = (RELEASED, released, released_images)
# the same trained nets, padding the 28×28 image themselves: the attacks cannot reach the border
centre_zoo = ({k: f"{name}_centre" for k, name in RELEASED.items()},
              {k: models.Classifier(torch.nn.Sequential(torch.nn.ZeroPad2d(2), net.net), input_shape=(1, 28, 28),
                                    num_classes=10).to(dev).eval() for k, net in released.items()},
              {k: data.ImageSet(s.name, s.x[..., 2:-2, 2:-2].contiguous(), s.y, s.indices, s.classes)
               for k, s in released_images.items()})


def released_curves(zoo: tuple) -> tuple[pd.DataFrame, dict]:
    """The fooling ratios of the v1 CSV's methods on a family of nets, and their DeepFool runs."""
    rows, runs = [], {}
    for key in RELEASED:
        runs[key] = attack_images(key, "DeepFool", zoo=zoo)
        rates = metrics.deepfool_fooling_curve(runs[key]["linf_raw"], runs[key]["fooled_raw"], torch.tensor(EPS[key]))
        rows += [{"net": key, "method": "DeepFool", "eps": e, "ratio": 100 * r} for e, r in zip(EPS[key], rates.tolist())]
        for method in RELEASED_METHODS[1:]:
            for eps in EPS[key]:
                r = attack_images(key, method, float(eps), zoo=zoo)
                rows.append({"net": key, "method": method, "eps": eps,
                             "ratio": 100 * float(r["fooled_raw"].float().mean())})
    return pd.DataFrame(rows), runs


released_sweep, released_deepfool = released_curves(released_zoo)
centre_sweep, _ = released_curves(centre_zoo)


def off_document(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Our fooling ratios beside the v1 CSV's at the same ε, for the CSV's methods but random."""
    doc = paper_v1[(paper_v1.net == key) & (paper_v1.method != "random")]
    ours = table[(table.net == key) & table.method.isin(doc.method.unique())]
    merged = [{"method": d.method, "eps": d.eps, "document": d.fooling_ratio_percent,
               "ours": float(m.ratio.iloc[0])}
              for d in doc.itertuples()
              for m in [ours[(ours.method == d.method) & np.isclose(ours.eps, d.eps, rtol=0.02, atol=1e-4)]] if len(m)]
    out = pd.DataFrame(merged, columns=["method", "eps", "document", "ours"])
    return out.assign(diff=out.ours - out.document)


def border_share(net, s) -> float:
    """Mean share of ‖∇_x (f_k − f_j)‖₁ (j the runner-up class) on the 2-pixel zero border."""
    x = s.x[:batch_size].to(dev).requires_grad_(True)
    logits = net(x)
    top2 = logits.topk(2, dim=1).indices
    margin = logits.gather(1, top2[:, :1]) - logits.gather(1, top2[:, 1:])
    g = torch.autograd.grad(margin.sum(), x)[0].abs()
    inner = g[..., 2:-2, 2:-2].flatten(1).sum(1)
    return float((1 - inner / g.flatten(1).sum(1)).mean())


padding_rows = []
for key in RELEASED:
    for label, table, net, s in (("ours, 28×28", sweep, nets[key], images[key]),
                                 ("released, border not attacked", centre_sweep, centre_zoo[1][key], centre_zoo[2][key]),
                                 ("released, padded 32×32", released_sweep, released[key], released_images[key])):
        d = off_document(table, key)
        padding_rows.append({"net": TITLE[key], "version": label, "images": len(s),
                             "points within 10 pp of the v1 CSV": f"{int((d['diff'].abs() <= 10).sum())} of {len(d)}",
                             "mean difference (pp)": round(float(d["diff"].mean()), 1),
                             "largest shortfall (pp)": round(float(d["diff"].min()), 1),
                             "gradient ℓ1 on the border": "none (28×28)" if s.x.shape[-1] == 28 else
                                                          f"{100 * border_share(net, s):.0f} %"})
padding = pd.DataFrame(padding_rows).set_index(["net", "version"])
present(padding, max_columns=3, name="tbl-convex-padding")

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-convex-padding", "caption": "The padding test: fooling ratios of ours (28\u00d728), of the released architectures with the border out of reach, and of the released architectures on padded 32\u00d732 input with the border attackable; circles are the document's v1 CSV."}}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for ax, key in zip(axes, RELEASED):
    for method in ("DeepFool", "Alg1", "FastGrad"):
        for table, style in ((sweep, "--"), (centre_sweep, ":"), (released_sweep, "-")):
            m = table[(table.net == key) & (table.method == method)].sort_values("eps")
            ax.plot(m.eps, m.ratio, style, color=COLOURS[method])
        p = paper_v1[(paper_v1.net == key) & (paper_v1.method == method)]
        ax.plot(p.eps, p.fooling_ratio_percent, "o", markerfacecolor="none", color=COLOURS[method], label=method)
    ax.set(title=TITLE[key], xlabel="ε (l∞, pixels in [0, 1])", ylabel="fooling ratio (%)")
fig.legend(handles=axes[0].get_legend_handles_labels()[0] +
           [plt.Line2D([], [], color="grey", linestyle=ls) for ls in ("--", ":", "-")],
           labels=["DeepFool", "Alg1", "FastGrad", "ours, 28×28", "released, border not attacked",
                   "released, padded 32×32"], fontsize="small", loc="lower center", ncol=6, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1));

# %% [markdown]
# ### Where FastGrad's step is zero
#
# FastGrad's step is $\varepsilon \operatorname{sign}(\nabla_x \mathrm{CE})$, and the cross-entropy's
# gradient with respect to the logits is $\operatorname{softmax} - \operatorname{onehot}(k)$. When every other class's probability underflows to 0 in float32 (a
# logit gap above about 100), that gradient is exactly zero and so is the step: FastGrad cannot
# fool such an image at any ε, which caps its curve. We count these images from FastGrad's own
# steps at ε_max (an ℓ∞ norm of 0), beside the images whose true-class probability merely rounds
# to 1 (their gradient is tiny but not zero, and its sign still takes a full step). Alg1 and Alg2
# work on logits and are not affected.

# %% tags=["hide-input"]
@torch.no_grad()
def softmax_one(net, s) -> int:
    """The images whose softmax probability of the label rounds to 1 in float32."""
    return sum(int((net(s.x[i:i + batch_size].to(dev)).softmax(1).gather(1, s.y[i:i + batch_size, None].to(dev)) == 1).sum())
               for i in range(0, len(s), batch_size))


saturation_rows, zero_step, fastgrad_missed = [], {}, {}
for label, names, family, inputs in (("", NETS, nets, images), (", released padded", RELEASED, released, released_images)):
    for key, net in family.items():
        r = attack_images(key, "FastGrad", float(EPS[key][-1]), zoo=(names, family, inputs))
        zero = int((r["linf_raw"] == 0).sum())
        missed = 1 - float(r["fooled_raw"].float().mean())
        if family is nets:
            zero_step[key], fastgrad_missed[key] = zero / len(inputs[key]), missed
        saturation_rows.append({"net": TITLE[key] + label, "images": len(inputs[key]),
                                "FastGrad step zero": zero, "share": f"{100 * zero / len(inputs[key]):.1f} %",
                                "softmax(k) = 1 in float32": softmax_one(net, inputs[key]),
                                "not fooled by FastGrad at ε_max": f"{100 * missed:.1f} %"})
present(pd.DataFrame(saturation_rows).set_index("net"), max_columns=3, name="tbl-convex-fastgrad")

# %% [markdown]
# ## Table I: three robustness measures
#
# - ρ̂₁ (DeepFool's measure): the mean over the images DeepFool fooled of $\lVert r\rVert_\infty/\lVert x\rVert_\infty$. The
#   authors take `x` after pre-processing (standardised for NIN, mean-subtracted for DenseNet),
#   so for CIFAR-10 we give it both in pixels and after our nets' own normalisation.
# - ρ̂₂ (the document's): the mean over all images of the linearised distance to the boundary,
#   $\min_j (f_k - f_j)/\lVert\nabla f_k - \nabla f_j\rVert_1$ in the authors' code; the literal formula of the
#   text, $L/\lVert\nabla L\rVert_1$ with $L$'s runner-up class, is shown beside it.
# - ε₉₉: the smallest ε at which DeepFool fools more than 99 % of the images.
#
# Our inputs are pixels in [0, 1], so ρ̂₂ and ε₉₉ are in pixel units; the document divides by
# the data's dynamic range, which equals pixel units within about 5 %. The document's MNIST nets
# read raw pixels and its CIFAR nets pre-processed input, so ρ̂₁ (ours) is in pixels for MNIST and
# in our nets' normalised input $(x - \text{mean})/\text{std}$ for CIFAR-10. The authors' NIN reads the
# same $(x - \text{mean})/\text{std}$; their DenseNet reads $255\,(x - \text{mean})$, where ρ̂₁ differs from ours
# by the per-channel std only. Table I is below, ours and the document's per net, then the
# measures that are ours only.

# %% tags=["hide-input"]
from IPython.display import display

table1, t1 = [], {}
for key, net in nets.items():
    s, r = images[key], deepfool_runs[key]
    x_pre = (s.x.to(dev) - net.mean) / net.std
    rho2 = {d: cache.cached(f"convex/rho2/{NETS[key]}/{d}", {"model": net, "x": s.x, "y": s.y},
                            lambda: metrics.rho_2_per_input(net, s.x, s.y, definition=d,
                                                            batch_size=batch_size).cpu(), code=[metrics])
            for d in ("code", "paper")}
    t1[key] = {"rho1": metrics.rho_1(r["linf_raw"], s.x, r["fooled_raw"]),
               "rho1_pre": metrics.rho_1(r["linf_pre_raw"], x_pre.cpu(), r["fooled_raw"]),
               "rho2": float(rho2["code"].mean()), "rho2_paper": float(rho2["paper"].mean()),
               "eps99": metrics.eps_99(r["linf_raw"], r["fooled_raw"]),
               "deepfool_fooled": float(r["fooled_raw"].float().mean())}
    # the document's units: its MNIST nets read raw pixels, its CIFAR nets pre-processed input
    t1[key]["rho1_doc"] = t1[key]["rho1" if DATASET[key] == "mnist" else "rho1_pre"]
    p = paper_t1.loc[key]
    table1 += [{"net": TITLE[key], "source": "ours", "test error (%)": 100 * test_error[key],
                "ρ̂₁": t1[key]["rho1_doc"], "ρ̂₂": t1[key]["rho2"], "ε₉₉": t1[key]["eps99"]},
               {"net": TITLE[key], "source": "document", "test error (%)": p.test_error_percent,
                "ρ̂₁": p.rho_1, "ρ̂₂": p.rho_2, "ε₉₉": p.eps_99}]
display(present(pd.DataFrame(table1).set_index(["net", "source"]), name="tbl-convex-table1",
                caption="Table I: ours and the document's, per net"))
present(pd.DataFrame([{"net": TITLE[k], "ρ̂₁, pixels": t1[k]["rho1"],
                       "ρ̂₁, our normalised input": t1[k]["rho1_pre"], "ρ̂₂, text's formula": t1[k]["rho2_paper"],
                       "DeepFool fooled (%)": 100 * t1[k]["deepfool_fooled"]} for k in NETS]).set_index("net"),
        caption="Ours only: ρ̂₁ in both units, ρ̂₂ by the text's formula, and DeepFool's fooling ratio")

# %% [markdown]
# The same three measures on the released architectures of the padding test (padded input, border
# attackable), beside ours and the document's:

# %% tags=["hide-input"]
released_t1, t1_rows = {}, []
for key, net in released.items():
    s, r = released_images[key], released_deepfool[key]
    rho2 = cache.cached(f"convex/rho2/{RELEASED[key]}/code", {"model": net, "x": s.x, "y": s.y},
                        lambda: metrics.rho_2_per_input(net, s.x, s.y, definition="code",
                                                        batch_size=batch_size).cpu(), code=[metrics])
    released_t1[key] = {"rho1": metrics.rho_1(r["linf_raw"], s.x, r["fooled_raw"]), "rho2": float(rho2.mean()),
                        "eps99": metrics.eps_99(r["linf_raw"], r["fooled_raw"])}
    p = paper_t1.loc[key]
    for label, v in (("ours, 28×28", t1[key]), ("released, padded 32×32", released_t1[key]),
                     ("document", {"rho1": p.rho_1, "rho2": p.rho_2, "eps99": p.eps_99})):
        t1_rows.append({"net": TITLE[key], "version": label, "ρ̂₁": v["rho1"], "ρ̂₂": v["rho2"], "ε₉₉": v["eps99"]})
present(pd.DataFrame(t1_rows).set_index(["net", "version"]), name="tbl-convex-table1-released")

# %% [markdown]
# The three measures should rank the nets the same way, and in the document that ranking is
# LeNet-5 > FCNN > NIN > DenseNet (most robust first):

# %% tags=["hide-input"]
MEASURES = {"ρ̂₁": "rho1_doc", "ρ̂₂": "rho2", "ε₉₉": "eps99"}
undefined = {name: [k for k in NETS if math.isnan(t1[k][field])] for name, field in MEASURES.items()}
rankings = {name: sorted([k for k in NETS if k not in undefined[name]], key=lambda k: -t1[k][field])
            for name, field in MEASURES.items()}  # the nets where the measure is defined, most robust first
paper_ranking = sorted(NETS, key=lambda k: -paper_t1.loc[k, "rho_2"])
for name, nets_nan in undefined.items():
    for k in nets_nan:
        print(f"{name} is undefined for {TITLE[k]}: DeepFool fooled {100 * t1[k]['deepfool_fooled']:.1f} % of its "
              f"images, so its fooling ratio never exceeds 99 %; this measure ranks the other nets only.")
present(pd.DataFrame({**{m: [TITLE[k] for k in r] + ["undefined"] * (len(NETS) - len(r)) for m, r in rankings.items()},
                      "document (all three)": [TITLE[k] for k in paper_ranking]},
                     index=pd.Index(range(1, 5), name="rank")), name="tbl-convex-ranking")

# %% [markdown]
# ## The two propositions on real images
#
# **Proposition 1.** No perturbation with
#
# $$\lVert\eta\rVert_\infty < \rho(x) = \min_j \frac{f_k(x) - f_j(x)}{\lVert\nabla f_k(x) - \nabla f_j(x)\rVert_1}$$
#
# makes the linearised margin negative. The worst perturbation of a given size is GNII's, so we scale
# Algorithm 1's step to $s\,\rho(x)$ and evaluate the linearised margin there, for $s$ just below and
# just above 1, together with 1000 random sign vectors of the same size
# (`gnii_step(∇L, s·ρ, math.inf)` from `reprolib.attacks.ops.linearized`). The last column asks the
# network itself: does the step at $s\,\rho(x)$ change its prediction? The bound is about the
# first-order model only, and the network need not agree.

# %% tags=["hide-input"]
def linear_margins(key: str, n: int):
    """The clean logit differences f_k − f_j and their gradients for the first n images."""
    x, y = images[key].x[:n].to(dev), images[key].y[:n].to(dev)
    return (x, y, *metrics.margin_gradients(nets[key], x, y))


prop1 = []
gen = torch.Generator().manual_seed(seed)
for key in ("fcnn", "lenet"):
    x, y, df, dg = linear_margins(key, min(64, len(images[key])))
    gq = dual_norm(dg, math.inf, start_dim=2)  # ‖∇f_k − ∇f_j‖₁ per class j
    rho = (df / gq).min(1).values
    signs = torch.randint(0, 2, (1000,) + x.shape[1:], generator=gen).to(x) * 2 - 1
    for s_ in (0.9, 0.99, 0.999, 1.001, 1.01):
        radius = s_ * rho
        pick = (df - radius[:, None] * gq).argmin(1)  # GNII's class: the worst case (Alg1's rule)
        eta = gnii_step(dg[torch.arange(len(x)), pick], radius, math.inf)
        at_eta = (df + (dg * eta[:, None]).flatten(2).sum(2)).min(1).values  # linearised margin at η*
        random_lin = (df[:, None, :] + torch.einsum("rchw,njchw->nrj", signs, dg) * radius[:, None, None]).amin((1, 2))
        with torch.no_grad():
            flipped = nets[key](x + eta).argmax(1) != y
        prop1.append({"net": TITLE[key], "s": s_, "images": len(x),
                      "worst-case margin > 0 (share)": float((at_eta > 0).float().mean()),
                      "smallest worst-case margin": float(at_eta.min()),
                      "random signs: some margin < 0 (share)": float((random_lin < 0).float().mean()),
                      "network fooled by the step (share)": float(flipped.float().mean())})
present(pd.DataFrame(prop1).set_index(["net", "s"]), max_columns=3, name="tbl-convex-prop1")

# %% [markdown]
# **Proposition 2.** The GNII optimum
#
# $$\min_{\lVert\eta\rVert_p \le \varepsilon} L(x) + \eta^\top \nabla L(x) = L(x) - \varepsilon \lVert\nabla L(x)\rVert_q .$$
#
# For each class $j$ the problem is a linear program for $p = \infty$ (a box) and for $p = 1$ (split
# $\eta$ into positive and negative parts), which `reprolib.evaluation.exact.linearized_margin_lp` hands to HiGHS; we compare
# with reprolib's closed form, for each of the K − 1 classes of a few images at the middle ε of the
# grid:

# %% tags=["hide-input"]
prop2 = []
for key in ("fcnn", "lenet"):
    x, y, df, dg = linear_margins(key, 4)
    eps = float(EPS[key][len(EPS[key]) // 2])
    for p_norm in (math.inf, 1.0):
        closed = (df.double() - eps * dual_norm(dg.double(), p_norm, start_dim=2)).cpu().numpy()
        attained = (df.double() + (gnii_step(dg.double().flatten(0, 1), eps, p_norm)
                                   .view_as(dg) * dg.double()).flatten(2).sum(2)).cpu().numpy()
        lp = np.array([[exact.linearized_margin_lp(df[i, j].item(), dg[i, j], eps, p_norm)
                        for j in range(dg.shape[1])] for i in range(dg.shape[0])])
        prop2.append({"net": TITLE[key], "p": "∞" if math.isinf(p_norm) else "1", "ε": eps,
                      "programs": lp.size, "max |closed form − LP|": np.abs(closed - lp).max(),
                      "max |value at η* − LP|": np.abs(attained - lp).max(),
                      "largest |LP value|": np.abs(lp).max()})
present(pd.DataFrame(prop2).set_index(["net", "p"]), max_columns=3, name="tbl-convex-prop2")

# %% [markdown]
# ## Section III: attacking a regression network
#
# For a regressor the document maximises the first-order output change (eq. 9)
#
# $$\max_{\lVert\eta\rVert_p \le \varepsilon} \lVert J_f(x)\,\eta\rVert_2 .$$
#
# For $p = 2$ the optimum is $\varepsilon\,\sigma_{\max}(J_f)$, reached by the top right-singular vector
# of the Jacobian, which power iteration finds with one Jacobian-vector and one vector-Jacobian
# product per step (`regression.l2_attack(net, x, eps)`). For $p = 1$ it is a single-pixel attack on
# the pixel whose Jacobian column is largest (`regression.l1_attack(net, x, eps)`). The document runs no experiment, so here is a small one.
#
# The regressor needs many outputs, or the comparison says little: with m outputs the Jacobian
# has rank at most m, and the gradient of a random projection of the output already lies in that
# m-dimensional row space, so for small m it is nearly optimal. We use an MNIST autoencoder, an
# MLP 784-256-32-256-784 that reconstructs the digit (784 outputs, a rank-32 bottleneck), trained
# here with reprolib's training loop under a squared loss. We compare at each ℓ2 radius ε the
# actual output change $\lVert f(x + \eta) - f(x)\rVert_2$ (in pixels) of three perturbations of equal norm: the
# top singular direction, a random direction, and the gradient of a random projection of the
# output (the strong baseline). The first-order prediction `ε σ_max` is shown beside the power
# iteration.

# %% tags=["hide-input"]
from reprolib.attacks import regression
from reprolib.models import mnist_nets

AE_SIZES = [784, 256, 32, 256, 784]
AE_RECIPE = train.Recipe(epochs=3, lr=1e-3, optimizer="adam", seed=seed)
mnist_train = data.first_n(data.load("mnist", "train"), n_reg_train)


def train_autoencoder():
    torch.manual_seed(seed)
    net = mnist_nets.mlp(AE_SIZES)
    train.fit(net, AE_RECIPE, mnist_train, targets=mnist_train.x.flatten(1),
              loss=torch.nn.functional.mse_loss, desc="autoencoder")
    return net.state_dict()


regressor = mnist_nets.mlp(AE_SIZES)
regressor.load_state_dict(cache.cached("convex/autoencoder", {"sizes": AE_SIZES, "recipe": AE_RECIPE.as_dict(),
                                                             "x": mnist_train.x},
                                       train_autoencoder, code=[train, mnist_nets]))
regressor = regressor.eval().to(dev)
reg_x = data.first_n(test_sets["mnist"], n_reg).x.to(dev)
with torch.no_grad():
    truth = reg_x.flatten(1).cpu()
    pred = regressor(reg_x).cpu()
r2 = 1 - float(((pred - truth) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum())
print(f"autoencoder R² on the {len(reg_x)} test images (all pixels): {r2:.3f}")

# %% tags=["hide-input"]
def output_change(eta: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (regressor(reg_x + eta) - regressor(reg_x)).norm(dim=1).cpu()


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)


gen = torch.Generator().manual_seed(seed)
random_dir = unit(torch.randn(reg_x.shape, generator=gen)).to(dev)
proj = torch.randn(len(reg_x), AE_SIZES[-1], generator=gen).to(dev)
xr = reg_x.clone().requires_grad_(True)
projection_grad = unit(torch.autograd.grad((regressor(xr) * proj).sum(), xr)[0])
# the largest Jacobian column does not depend on ε: find it once (784 backward passes per image)
best_pixel = regression.l1_attack(regressor, reg_x, reg_eps_grid[0], bounds=None).info["pixel"]
random_pixel = torch.randint(0, 784, (len(reg_x),), generator=gen).to(dev)


def one_pixel(pixel: torch.Tensor, eps: float) -> torch.Tensor:
    eta = torch.zeros_like(reg_x).flatten(1)
    eta[torch.arange(len(reg_x)), pixel] = eps
    return eta.view_as(reg_x)


reg_rows = []
for eps in reg_eps_grid:
    top_sv = regression.l2_attack(regressor, reg_x, eps, steps=20, bounds=None, seed=seed)
    reg_rows.append({"ε (l2 = l1 radius)": eps,
                     "top singular direction": float(top_sv.gain_raw.mean()),
                     "first order ε σ_max": float(top_sv.gain_first_order.mean()),
                     "random direction": float(output_change(eps * random_dir).mean()),
                     "gradient of a random projection": float(output_change(eps * projection_grad).mean()),
                     "single pixel, largest Jacobian column": float(output_change(one_pixel(best_pixel, eps)).mean()),
                     "single random pixel": float(output_change(one_pixel(random_pixel, eps)).mean())})
regression_table = pd.DataFrame(reg_rows).set_index("ε (l2 = l1 radius)")
print(f"mean output change ‖f(x + η) − f(x)‖₂ over {len(reg_x)} test images, no clipping "
      f"(power iteration: {top_sv.info['iterations']} steps, {int(top_sv.backwards[0])} backward passes per image)")
present(regression_table, max_columns=3, name="tbl-convex-regression")

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-convex-regression", "caption": "Section III: mean output change of the MNIST autoencoder against the norm of the perturbation, for the optimal directions and the baselines."}}
fig, ax = plt.subplots(figsize=(6.5, 4))
for column, style in zip(regression_table.columns, ["-o", "--", "-s", "-^", "-D", "-v"]):
    ax.plot(regression_table.index, regression_table[column], style, label=column, markersize=4)
ax.set(xscale="log", yscale="log", xlabel="ε (norm of η)", ylabel="mean ‖f(x + η) − f(x)‖₂",
       title="Section III: output change of the MNIST autoencoder")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False);

# %% [markdown]
# (convex-verdicts)=
# ## Verdicts
#
# Each row is a headline claim of the document, checked by a rule fixed before the run. A
# "check" is one net, one ε, or one measure, as the rule says; the verdict is **holds** when every
# check passes, **partly** when some do. A claim checked once per net has one row for the MNIST
# nets and one for the CIFAR-10 nets, so that the CPU stand-ins for NIN and DenseNet (see the first
# table) neither pad nor sink the MNIST tally. A tolerance of 2 points absorbs the sampling noise of
# a paired comparison on the same images. The "document" column is read from the transcribed
# tables in `data/paper/`; "why" gives, for a row that does not hold, the cause found or the
# hypothesis tested. The table comes in two halves that fit the page: the verdicts, with the
# figure or table each row checks, then the numbers behind them.

# %% tags=["hide-input"]
TOL = 2.0  # percentage points
APART = {"mnist": "MNIST", "cifar10": "CIFAR-10 (CPU stand-ins)"}


def curve(key: str, method: str) -> pd.Series:
    m = sweep[(sweep.net == key) & (sweep.method == method)]
    return pd.Series(m.ratio.values, index=np.round(m.eps.values, 8))


def gap(key: str, better: str, worse: str) -> pd.Series:
    """ratio(better) − ratio(worse) at the ε values where both ran."""
    a, b = curve(key, better), curve(key, worse)
    common = a.index.intersection(b.index)
    return a[common] - b[common]


def at(key: str, method: str, eps: float) -> float:
    c = curve(key, method)
    return float(c.iloc[np.argmin(np.abs(c.index - eps))])


def doc(table: pd.DataFrame, key: str, method: str, eps: float) -> float:
    """The document's fooling ratio (%) in ``table`` (v1 CSV or v2 figure) at the ε nearest ``eps``."""
    p = table[(table.net == key) & (table.method == method)]
    return float(p.fooling_ratio_percent.iloc[np.argmin(np.abs(p.eps.values - eps))])


def nearest(key: str, eps: float) -> float:
    return float(EPS[key][np.argmin(np.abs(EPS[key] - eps))])


verdicts = []


def per_net(claim: str, document: dict, ours: dict, rule: str, ok: dict, why) -> None:
    """The verdict rows of a claim checked once per net, MNIST and CIFAR-10 apart. ``document``
    maps a dataset to text, ``ours`` and ``ok`` map a net to text and to pass/fail, ``why`` maps the
    dataset and its failing nets to the reason."""
    for ds, label in APART.items():
        keys = [k for k in NETS if DATASET[k] == ds]
        bad = [k for k in keys if not ok[k]]
        verdicts.append(verdict_row(f"{claim}: {label}", document[ds], "; ".join(f"{SHORT[k]} {ours[k]}" for k in keys),
                                    rule, len(keys) - len(bad), len(keys), why(ds, bad) if bad else ""))


def weaker(bad: list) -> str:
    """Evidence that a stand-in is a weaker, less robust net than the document's."""
    return "; ".join(f"{SHORT[k]} has test error {100 * test_error[k]:.1f} % (document {paper_t1.loc[k, 'test_error_percent']:g} %) "
                     f"and ρ̂₂ {t1[k]['rho2']:.4f} (document {paper_t1.loc[k, 'rho_2']:.4f})" for k in bad)


# 0. The MNIST curves within 10 pp of the document's, where test errors agree
agree = [k for k in ("fcnn", "lenet") if abs(100 * test_error[k] - paper_t1.loc[k, "test_error_percent"]) <= 0.5]
if agree:
    mine = {k: off_document(sweep, k) for k in agree}
    theirs = {k: off_document(released_sweep, k) for k in agree}
    centre = {k: off_document(centre_sweep, k) for k in agree}
    inside = {k: int((d["diff"].abs() <= 10).sum()) for k, d in mine.items()}
    inside_rel = {k: int((d["diff"].abs() <= 10).sum()) for k, d in theirs.items()}
    total = sum(len(d) for d in mine.values())
    shift = {k: float(theirs[k]["diff"].mean() - mine[k]["diff"].mean()) for k in agree}
    closes = sum(inside_rel.values()) >= 0.9 * total
    verdicts.append(verdict_row(
        "our MNIST curves match the document's within 10 pp where the test errors agree (Fig. 2 a, b)",
        "v1 CSV: " + "; ".join(f"{SHORT[k]} at ε = {nearest(k, e):.3g}: DeepFool {doc(paper_v1, k, 'DeepFool', e):g} %, "
                               f"Alg1 {doc(paper_v1, k, 'Alg1', e):g} %, FastGrad {doc(paper_v1, k, 'FastGrad', e):g} %"
                               for k, e in (("fcnn", 0.045), ("lenet", 0.134)) if k in agree),
        "; ".join(f"{SHORT[k]} at ε = {nearest(k, e):.3g}: DeepFool {at(k, 'DeepFool', e):.1f} %, Alg1 {at(k, 'Alg1', e):.1f} %, "
                  f"FastGrad {at(k, 'FastGrad', e):.1f} %; {inside[k]} of {len(mine[k])} points within 10 pp"
                  for k, e in (("fcnn", 0.045), ("lenet", 0.134)) if k in agree),
        "per MNIST net whose test error is within 0.5 pp of the document's: each point of the v1 CSV (DeepFool, Alg1, "
        "Alg2, FastGrad at every ε) within 10 pp", sum(inside.values()), total,
        "" if sum(inside.values()) == total else
        "hypothesis tested, the zero padding: the released architectures on padded input with the border attackable "
        f"come within 10 pp at {sum(inside_rel.values())} of {total} points (" +
        ", ".join(f"{SHORT[k]} {inside_rel[k]}, mean shift {shift[k]:+.1f} pp" for k in agree) + "), so the released "
        "nets " + ("close the gap" if closes else "narrow the gap but do not close it"
                   if sum(inside_rel.values()) > sum(inside.values()) else "do not explain the gap") +
        ". With the border out of the attacks' reach the same nets shift the mean by " +
        ", ".join(f"{SHORT[k]} {float(centre[k]['diff'].mean() - mine[k]['diff'].mean()):+.1f} pp" for k in agree) +
        ": that part comes from the nets themselves (architecture, raw input, initialisation), the rest from the "
        "attackable border; see the padding test"))
else:
    print("No MNIST net has a test error within 0.5 pp of the document's, so no fooling ratio is compared in numbers.")

# 1. Alg1-n ≥ DeepFool at equal ε
worst = {k: float(np.minimum(gap(k, "Alg1-10", "DeepFool"), gap(k, "Alg1-5", "DeepFool")).min()) for k in NETS}
e_l = nearest("lenet", 0.089)
per_net("Alg1-5 and Alg1-10 fool at least as many images as DeepFool at equal ε (Fig. 2)",
        {"mnist": f"LeNet-5, ε = {e_l:.3g}: Alg1-10 {doc(paper_v2, 'lenet', 'Alg1-10', e_l):g} %, "
                  f"Alg1-5 {doc(paper_v2, 'lenet', 'Alg1-5', e_l):g} %, DeepFool {doc(paper_v2, 'lenet', 'DeepFool', e_l):g} % (v2 figure)",
         "cifar10": f"DenseNet, ε = {nearest('densenet', 0.004):.3g}: Alg1-10 {doc(paper_v2, 'densenet', 'Alg1-10', 0.004):g} %, "
                    f"DeepFool {doc(paper_v2, 'densenet', 'DeepFool', 0.004):g} % (v2 figure)"},
        {k: f"worst gap {v:+.1f} pp" for k, v in worst.items()},
        f"per net: min over ε of Alg1-n − DeepFool ≥ −{TOL:g} pp", {k: v >= -TOL for k, v in worst.items()},
        lambda ds, bad: "not investigated; DeepFool takes up to 50 steps and stops at the label change, Alg1-n takes n "
                        "fixed steps, so nets that need more than n steps at that ε favour DeepFool: "
                        + weaker(bad))

# 2. Alg1 ≥ FastGrad at every ε
worst = {k: float(gap(k, "Alg1", "FastGrad").min()) for k in NETS}
per_net("single-step Alg1 fools at least as many images as FastGrad at every ε (Fig. 2)",
        {ds: ", ".join(f"{SHORT[k]} ε = {EPS[k][-1]:.3g}: {doc(paper_v1, k, 'Alg1', EPS[k][-1]):g} % vs "
                       f"{doc(paper_v1, k, 'FastGrad', EPS[k][-1]):g} %" for k in NETS if DATASET[k] == ds) + " (v1 CSV)"
         for ds in APART},
        {k: f"ε = {EPS[k][-1]:.3g}: {at(k, 'Alg1', EPS[k][-1]):.1f} % vs {at(k, 'FastGrad', EPS[k][-1]):.1f} %, worst gap {v:+.1f} pp"
         for k, v in worst.items()},
        f"per net: min over ε of Alg1 − FastGrad ≥ −{TOL:g} pp", {k: v >= -TOL for k, v in worst.items()},
        lambda ds, bad: "not investigated; Alg1 uses the logit margin's gradient and FastGrad the cross-entropy's, "
                        "which weighs all classes; " + weaker(bad))

# 3. Random noise stays low
worst = {k: float(curve(k, "random").max()) for k in NETS}
doc_random = paper_v1[paper_v1.method == "random"]
per_net("random ±ε noise barely fools (Fig. 2)",
        {ds: "at most " + ", ".join(f"{SHORT[k]} {doc_random[doc_random.net == k].fooling_ratio_percent.max():g} %"
                                    for k in NETS if DATASET[k] == ds) + " (v1 CSV)" for ds in APART},
        {k: f"at most {v:.1f} %" for k, v in worst.items()}, "per net: random ≤ 7 % at every ε",
        {k: v <= 7 for k, v in worst.items()},
        lambda ds, bad: "hypothesis, not tested: the stand-in is much less accurate, so more of the images it "
                        "classifies correctly lie near a boundary that ±ε noise can cross: " + "; ".join(
            f"{SHORT[k]} has test error {100 * test_error[k]:.1f} % (document "
            f"{paper_t1.loc[k, 'test_error_percent']:g} %)" for k in bad))

# 4. Alg2 competitive with FastGrad, one-sided
worst = {k: float(gap(k, "Alg2", "FastGrad").min()) for k in NETS}
per_net("Alg2, with one gradient, is competitive with FastGrad (Fig. 2)",
        {ds: ", ".join(f"{SHORT[k]} ε = {EPS[k][-1]:.3g}: {doc(paper_v1, k, 'Alg2', EPS[k][-1]):g} % vs "
                       f"{doc(paper_v1, k, 'FastGrad', EPS[k][-1]):g} %" for k in NETS if DATASET[k] == ds) + " (v1 CSV)"
         for ds in APART},
        {k: f"ε = {EPS[k][-1]:.3g}: {at(k, 'Alg2', EPS[k][-1]):.1f} % vs {at(k, 'FastGrad', EPS[k][-1]):.1f} %, worst gap {v:+.1f} pp"
         for k, v in worst.items()},
        "per net: Alg2 ≥ FastGrad − 15 pp at every ε (our tolerance)", {k: v >= -15 for k, v in worst.items()},
        lambda ds, bad: "not investigated; Alg2 ignores the competing classes, so it falls short where the runner-up "
                        "class's gradient matters: " + weaker(bad))

# 5. Iterative beats non-iterative: Alg1-10 and DeepFool against the best single-step method
single = {k: pd.concat([curve(k, m) for m in ("Alg1", "Alg2", "FastGrad")], axis=1).max(axis=1) for k in NETS}


def iterative_gap(key: str, method: str) -> pd.Series:
    c = curve(key, method)
    common = c.index.intersection(single[key].index)
    return c[common] - single[key][common]


def single_best(key: str) -> str:
    """Which single-step method leads an iterative one by the most, and where."""
    worst_m = min(("Alg1-10", "DeepFool"), key=lambda m: iterative_gap(key, m).min())
    e = float(iterative_gap(key, worst_m).idxmin())
    best = max(("Alg1", "Alg2", "FastGrad"), key=lambda m: at(key, m, e))
    return f"{best} {at(key, best, e):.1f} % against {worst_m} {at(key, worst_m, e):.1f} % at ε = {e:.3g}"


lead = {k: {m: float(iterative_gap(k, m).max()) for m in ("Alg1-10", "DeepFool")} for k in NETS}
behind = {k: {m: float(iterative_gap(k, m).min()) for m in ("Alg1-10", "DeepFool")} for k in NETS}
per_net("iterative methods (Alg1-10, DeepFool) beat the non-iterative ones, sometimes narrowly (Fig. 2)",
        {"mnist": f"LeNet-5 ε = {e_l:.3g}: Alg1-10 {doc(paper_v2, 'lenet', 'Alg1-10', e_l):g} %, "
                  f"DeepFool {doc(paper_v2, 'lenet', 'DeepFool', e_l):g} % vs Alg1 {doc(paper_v2, 'lenet', 'Alg1', e_l):g} % (v2 figure)",
         "cifar10": f"NIN ε = {nearest('nin', 0.0107):.3g}: Alg1-10 {doc(paper_v2, 'nin', 'Alg1-10', 0.0107):g} %, "
                    f"DeepFool {doc(paper_v2, 'nin', 'DeepFool', 0.0107):g} % vs Alg1 {doc(paper_v2, 'nin', 'Alg1', 0.0107):g} % (v2 figure)"},
        {k: ", ".join(f"{m} lead {lead[k][m]:+.1f}, worst {behind[k][m]:+.1f} pp" for m in lead[k]) for k in NETS},
        f"per net: Alg1-10 and DeepFool each ≥ the best of Alg1, Alg2, FastGrad − {TOL:g} pp everywhere and > it "
        f"+ {TOL:g} pp somewhere", {k: all(lead[k][m] > TOL and behind[k][m] >= -TOL for m in lead[k]) for k in NETS},
        lambda ds, bad: "not investigated; the document itself calls the gap not always significant on FCNN and NIN. "
                        "The best single-step method at the worst ε: " + "; ".join(
            f"{SHORT[k]} {single_best(k)}" for k in bad))


# 6. The measures rank the nets the same way, and in the document's order
def ranking_text() -> str:
    return "; ".join(f"{m}: {' > '.join(SHORT[k] for k in r)}"
                     + (f" (undefined for {', '.join(SHORT[k] for k in undefined[m])})" if undefined[m] else "")
                     for m, r in rankings.items())


def same_order(ranking: list, reference: list) -> bool:
    """Whether ``ranking`` orders its nets as ``reference`` does (the nets where both are defined)."""
    return ranking == [k for k in reference if k in ranking]


coherent = {m: same_order(rankings[m], rankings["ρ̂₂"]) for m in ("ρ̂₁", "ε₉₉")}
verdicts.append(verdict_row(
    "ρ̂₁, ρ̂₂ and ε₉₉ are coherent: they rank the nets the same way (Table I)",
    "all three: " + " > ".join(SHORT[k] for k in paper_ranking), ranking_text(),
    "ρ̂₁ and ε₉₉ each rank the nets as ρ̂₂ does (ε₉₉ over the nets where it is defined)",
    sum(coherent.values()), len(coherent),
    "" if all(coherent.values()) else
    "not investigated; ρ̂₁ averages over the images DeepFool fooled and, for CIFAR-10, in normalised input, ρ̂₂ "
    "over all images in pixels, so nets with close values can swap: ρ̂₂ of "
    + ", ".join(f"{SHORT[k]} {t1[k]['rho2']:.4f}" for k in rankings["ρ̂₂"])))
matches = {m: same_order(r, paper_ranking) for m, r in rankings.items()}
verdicts.append(verdict_row(
    "the ranking is " + " > ".join(SHORT[k] for k in paper_ranking) + " (Table I)",
    " > ".join(SHORT[k] for k in paper_ranking), ranking_text(),
    "each measure's ranking equals the document's (over the nets where it is defined)",
    sum(matches.values()), len(matches),
    "" if all(matches.values()) else
    "hypothesis: the CPU stand-ins are not the document's nets: " + weaker(["nin", "densenet"])))


# 7. MNIST values of Table I within ×1.5
def times(ratio: float) -> str:
    """A ratio as ``×0.95``; "undefined" where a measure is (ε₉₉ when DeepFool fools too few images)."""
    return "undefined" if math.isnan(ratio) else f"×{ratio:.2f}"


ratios = {(k, m): t1[k][f] / paper_t1.loc[k, c] for k in ("fcnn", "lenet")
          for m, f, c in (("ρ̂₁", "rho1", "rho_1"), ("ρ̂₂", "rho2", "rho_2"), ("ε₉₉", "eps99", "eps_99"))}
ratios_rel = {(k, m): released_t1[k][f] / paper_t1.loc[k, c] for (k, m), f, c in
              zip(ratios, ["rho1", "rho2", "eps99"] * 2, ["rho_1", "rho_2", "eps_99"] * 2)}
bad = [km for km, v in ratios.items() if not 1 / 1.5 <= v <= 1.5]
verdicts.append(verdict_row(
    "Table I's MNIST values",
    "; ".join(f"{SHORT[k]} {paper_t1.loc[k, 'rho_1']:.3f} / {paper_t1.loc[k, 'rho_2']:.3f} / {paper_t1.loc[k, 'eps_99']:.3f}"
              for k in ("fcnn", "lenet")) + " (ρ̂₁ / ρ̂₂ / ε₉₉)",
    "ours / document: " + ", ".join(f"{SHORT[k]} {m} {times(v)}" for (k, m), v in ratios.items()),
    "each within a factor 1.5 of the document's (our tolerance)", len(ratios) - len(bad), len(ratios),
    "" if not bad else
    "hypothesis tested, the zero padding: on the released architectures with padded input, " +
    ", ".join(f"{SHORT[k]} {m} {times(ratios_rel[(k, m)])}" for k, m in bad) + " of the document's"))

# 8. ρ̂₂ ≤ ρ̂₁ and ε₉₉ ≈ 2.1 ρ̂₁ on MNIST
per_net("the first-order bound ρ̂₂ lies below DeepFool's ρ̂₁ (Table I)",
        {ds: ", ".join(f"{SHORT[k]} {paper_t1.loc[k, 'rho_2'] / paper_t1.loc[k, 'rho_1']:.2f}" for k in NETS
                       if DATASET[k] == ds) + " (ρ̂₂/ρ̂₁)" for ds in APART},
        {k: f"{t1[k]['rho2'] / t1[k]['rho1']:.2f} (ρ̂₂/ρ̂₁, both in pixels)" for k in NETS},
        "per net: ρ̂₂ ≤ ρ̂₁, both in pixels", {k: t1[k]["rho2"] <= t1[k]["rho1"] for k in NETS},
        lambda ds, bad: "not investigated; ρ̂₂ averages over all images and ρ̂₁ over those DeepFool fooled, so a net "
                        "that DeepFool fools only near the boundary can have ρ̂₁ < ρ̂₂")
r99 = {k: t1[k]["eps99"] / t1[k]["rho1"] for k in ("fcnn", "lenet")}
bad = [k for k, v in r99.items() if not 1.5 <= v <= 2.7]
verdicts.append(verdict_row(
    "ε₉₉ ≈ 2.1 ρ̂₁ on MNIST (Table I)",
    "; ".join(f"{SHORT[k]} {paper_t1.loc[k, 'eps_99']:.3f}/{paper_t1.loc[k, 'rho_1']:.3f} = "
              f"{paper_t1.loc[k, 'eps_99'] / paper_t1.loc[k, 'rho_1']:.1f}" for k in ("fcnn", "lenet")),
    ", ".join(f"{SHORT[k]} {times(v)}" for k, v in r99.items()), "per MNIST net: ε₉₉/ρ̂₁ within 2.1 ± 0.6",
    len(r99) - len(bad), len(r99), "" if not bad else
    "hypothesis tested, the zero padding: on the released architectures " +
    ", ".join(f"{SHORT[k]} {times(released_t1[k]['eps99'] / released_t1[k]['rho1'])}" for k in bad)))

# 9. CIFAR nets are fooled at much smaller ε (each check pairs an MNIST net with a CIFAR-10 net)
pairs = {(m, c): t1[m]["eps99"] / t1[c]["eps99"] for m in ("fcnn", "lenet") for c in ("nin", "densenet")}
ok = sum(v >= 4 for v in pairs.values())
short = [f"{SHORT[m]}/{SHORT[c]}" for (m, c), v in pairs.items() if not v >= 4]
verdicts.append(verdict_row(
    "CIFAR-10 nets are fooled at 4–16× smaller ε than MNIST nets (Table I)",
    "ε₉₉ " + ", ".join(f"{SHORT[k]} {paper_t1.loc[k, 'eps_99']:.3f}" for k in NETS),
    ", ".join(f"{SHORT[m]}/{SHORT[c]} " + ("undefined" if math.isnan(v) else f"×{v:.1f}") for (m, c), v in pairs.items()),
    "each MNIST/CIFAR ε₉₉ ratio ≥ 4",
    ok, len(pairs), "" if ok == len(pairs) else
    "; ".join([f"ε₉₉ of {SHORT[k]} is undefined: DeepFool fooled {100 * t1[k]['deepfool_fooled']:.1f} % of its "
               f"{len(images[k])} images, and the rule needs more than 99 % strictly below the grid's top ε"
               for k in ("nin", "densenet") if math.isnan(t1[k]["eps99"])]
              + ["hypothesis: the stand-ins are not the document's nets: " + weaker(["nin", "densenet"])])))

# 10. FastGrad saturates on CIFAR (reported by the document; not a headline claim)
sat = {k: (at(k, "Alg1", EPS[k][-1]), at(k, "FastGrad", EPS[k][-1])) for k in ("nin", "densenet")}
ok = sum(a - f >= 10 for a, f in sat.values())
verdicts.append(verdict_row(
    "FastGrad saturates well below Alg1 on CIFAR-10 (Fig. 2 c, d)",
    "at ε_max: " + ", ".join(f"{SHORT[k]} FastGrad {doc(paper_v1, k, 'FastGrad', EPS[k][-1]):g} vs Alg1 "
                             f"{doc(paper_v1, k, 'Alg1', EPS[k][-1]):g} %" for k in sat) + " (v1 CSV)",
    ", ".join(f"{SHORT[k]}: FastGrad {f:.1f} vs Alg1 {a:.1f} %" for k, (a, f) in sat.items())
    + "; FastGrad's step is zero on " + ", ".join(f"{SHORT[k]} {100 * v:.1f} %" for k, v in zero_step.items())
    + " of the images",
    "per CIFAR net: FastGrad ≥ 10 pp below Alg1 at ε_max", ok, len(sat),
    "" if ok == len(sat) else
    "hypothesis tested, float32 saturation: FastGrad's step is zero on "
    + ", ".join(f"{SHORT[k]} {100 * zero_step[k]:.1f} % (of {100 * fastgrad_missed[k]:.1f} % it leaves unfooled at ε_max)"
                for k in NETS)
    + "; " + ("the zero steps account for most of FastGrad's misses on "
              + ", ".join(SHORT[k] for k in NETS if zero_step[k] >= 0.5 * fastgrad_missed[k] > 0)
              if any(zero_step[k] >= 0.5 * fastgrad_missed[k] > 0 for k in NETS)
              else "too few to explain the cap: FastGrad's misses are images where its full sign step stays on "
                   "the correct side")))

# 11. Propositions
p1 = pd.DataFrame(prop1)
below = p1[p1.s < 1]
ok1 = int((below["worst-case margin > 0 (share)"] == 1).sum() + (below["random signs: some margin < 0 (share)"] == 0).sum())
verdicts.append(verdict_row(
    "Proposition 1: no η with ‖η‖_∞ < L/‖∇L‖₁ makes the linearised margin negative", "proved",
    f"worst case (GNII) and 1000 random sign vectors at s·ρ(x), s < 1: {len(below)} (net, s) settings of "
    f"{int(below.images.iloc[0])} images; above the bound (s > 1) the worst case is negative on "
    f"{p1[p1.s > 1]['worst-case margin > 0 (share)'].rsub(1).min():.0%} or more of the images",
    "below the bound, the worst-case and every random linearised margin stay > 0", ok1, 2 * len(below),
    "" if ok1 == 2 * len(below) else "a violation of a proved statement: a bug in the check or in reprolib"))
worst_diff = max(r["max |closed form − LP|"] / r["largest |LP value|"] for r in prop2)
verdicts.append(verdict_row(
    "Proposition 2: the GNII optimum is L − ε‖∇L‖_q", "proved",
    f"largest gap to HiGHS over {sum(r['programs'] for r in prop2)} linear programs (p = ∞ and 1), "
    f"relative to the largest value: {worst_diff:.1e}",
    "relative gap ≤ 1e-6", int(worst_diff <= 1e-6), 1,
    "" if worst_diff <= 1e-6 else "the closed form and the LP disagree: a bug in the check or in reprolib"))

# 12. Regression (no claim in numbers: Section III's argument)
t = regression_table
ok = int(((t["top singular direction"] > t["random direction"]) &
          (t["top singular direction"] > t["gradient of a random projection"]) &
          (t["single pixel, largest Jacobian column"] > t["single random pixel"])).sum())
small = t.iloc[0]
first_order_ok = abs(small["top singular direction"] / small["first order ε σ_max"] - 1) <= 0.1
strong = t["top singular direction"] / t["gradient of a random projection"]
verdicts.append(verdict_row(
    "Section III: the top singular direction (p = 2) and the largest Jacobian column (p = 1) "
    "maximise the output change", "argued, no experiment",
    f"autoencoder, 784 outputs: top direction / gradient of a random projection ×{strong.min():.2f} to ×{strong.max():.2f} "
    f"over ε (over a random direction ×{(t['top singular direction'] / t['random direction']).min():.1f} or more); "
    f"largest column / random pixel ×{(t['single pixel, largest Jacobian column'] / t['single random pixel']).min():.1f} "
    f"or more; actual / first order at ε = {t.index[0]:g}: {small['top singular direction'] / small['first order ε σ_max']:.3f}",
    "at every ε beats both baselines; the first-order gain is within 10 % of the actual at the smallest ε",
    ok + int(first_order_ok), len(t) + 1,
    "" if ok == len(t) and first_order_ok else
    "at large ε the network leaves its linear regime, where the first-order optimum need not be the actual one"))



def checked_in(claim: str) -> tuple[str, str] | None:
    """The figure or table of this page that a claim's row checks, from the source the claim cites."""
    for cue, target in (("(Fig. 2", ("Fig. 2", "fig-convex-headline")), ("(Table I)", ("Table I", "tbl-convex-table1")),
                        ("Table I's", ("Table I", "tbl-convex-table1")),
                        ("Proposition 1", ("Proposition 1 table", "tbl-convex-prop1")),
                        ("Proposition 2", ("Proposition 2 table", "tbl-convex-prop2")),
                        ("Section III", ("regression table", "tbl-convex-regression"))):
        if cue in claim:
            return target
    return None


verdict_rows = [{**row, "evidence": checked_in(row["claim"])} for row in verdicts]
glue("convex-tally", Markdown(tally_text(verdict_rows)), display=False)
verdict_table(verdict_rows, chapter="convex", document="001 · Balda, Behboodi & Mathar", name="tbl-convex-verdicts")

# %% [markdown]
# (convex-differs)=
# ## What differs from the document, and why
#
# - **Networks.** The FCNN follows the text (784-150-100-10); the released checkpoint is
#   1024-500-150-10 on zero-padded input, which the padding test trains and attacks. LeNet-5
#   follows the released graph, but pads inside the model, where attacks do not reach. Under
#   the `cpu` profile, NIN is at half width and DenseNet has 22 layers instead of 40, both trained
#   for a few epochs on two CPU cores; their test errors are far above the document's, so the CIFAR
#   rows test orderings and shapes only. The `paper` profile runs the full architectures.
# - **MNIST fooling ratios.** Although our MNIST test errors agree with the document's, our
#   curves fall below its released numbers at mid-range ε (first verdict row). The padding test
#   above measures how much of that gap the zero-padded, attackable 32×32 input of the released
#   nets accounts for; its table and the first verdict row give the answer in numbers.
# - **FastGrad saturation.** The document sees FastGrad level off on CIFAR-10; with our nets it
#   levels off on MNIST instead. The FastGrad section counts the images whose float32 gradient
#   is all zero, to test whether saturation of the softmax explains it.
# - **Images.** The `cpu` profile attacks 1024 images per MNIST net, as the document, but only
#   `n_cifar` per CIFAR net, and runs Alg1-5 and Alg1-10 on the CIFAR nets at every
#   `alg1n_stride`-th ε. The Wilson bands show what this costs in precision.
# - **ε units.** ε is in pixels of [0, 1]; the document's ε is a fraction of the pre-processed
#   data's dynamic range, the same up to about 5 % for its nets.
# - **ρ̂₁** in pixels and after our nets' normalisation $(x - \text{mean})/\text{std}$; the document's CIFAR
#   values are in its own pre-processing (standardised for NIN, $255\,(x - \text{mean})$ for DenseNet), so
#   only the ranking compares.
# - **Section III** has no experiment in the document; ours attacks an MNIST autoencoder, where
#   the Jacobian has rank up to 32 and a random output projection is a weak direction.
# - **The document's numbers** come from two sources that do not match exactly: the CSV files the
#   authors released are from the paper's v1 run (no Alg1-n), and the v2 figure was read by eye.
