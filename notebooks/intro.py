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
# # Reproducing five papers on adversarial examples
#
# This book re-runs the experiments of five documents on adversarial examples and says, claim by
# claim, what reproduces. Each part of the book is one document:
#
# | part | document | what it is about |
# |---|---|---|
# | 000 | Tabacof & Valle {cite:p}`tabacof2016exploring` | L-BFGS-B with a bisection on the penalty constant; probing the pixel space around adversarial images |
# | 001 | Balda, Behboodi & Mathar {cite:p}`balda2018convex` | adversarial examples from convex programs on the linearised classifier |
# | 002 | Sharma {cite:p}`sharma2018thesis` | ZOO {cite:p}`chen2017zoo` and EAD {cite:p}`chen2018ead`: black-box and elastic-net attacks |
# | 003 | Ozbulak et al. {cite:p}`ozbulak2020perturbation` | cross-entropy versus logit losses in gradient attacks |
# | 004 | Matyasko {cite:p}`matyasko2020thesis` | margin maximisation, the adversary critic, and the PDPGD attack |
#
# Every chapter is a notebook that imports the library `reprolib` and holds no copy of its code.
# The pages you read were executed with the `cpu` profile on two CPU cores; the provenance box
# under each page's summary records exactly how (parameters, commit, hardware, time), and the box
# under it says how to run the page yourself. This introduction is executed too: the numbers and
# figures below come from the run recorded under the scoreboard.

# %% [markdown] tags=["summary"]
# ## The scoreboard
#
# Every verdict of every chapter, counted per document: ✓ holds (every check of the claim's
# rule passes), ◐ partly (some do), ✗ does not (none does). The board is built from the executed
# chapters when the book is built; each chapter ends with its verdict table, where every claim
# links to the figure or table it checks.
#
# ```{include} ../_scoreboard.md
# ```

# %% [markdown]
# ## How a chapter starts
#
# Every chapter starts with two cells, hidden on these pages (click to show them): the knobs a
# reader may turn, and their declaration.

# %% tags=["parameters", "hide-input"]
profile = "cpu"  # smoke | cpu | paper
model = None  # None means the profile's value, for this knob and every knob below
n_images = None
eps_grid = None
n_shown = None
seed = None
device = None

# %% tags=["hide-input"]
from reprolib.book.params import Param, Spec, device_param, seed_param

SPEC = Spec(
    Param("model", str, smoke="cw_mnist", cpu="cw_mnist", paper="cw_mnist",
          choices=("cw_mnist", "lenet5_mnist", "fcnn_mnist", "logreg_mnist", "mlp3x1000_mnist"),
          doc="the MNIST classifier of the zoo to attack"),
    Param("n_images", int, smoke=32, cpu=1000, paper=5000, lo=1, hi=9000,
          doc="correctly classified test images attacked"),
    Param("eps_grid", "list[float]", smoke=[0.0, 0.1, 0.2, 0.3],
          cpu=[0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3],
          paper=[0.0, 0.0125, 0.025, 0.0375, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3],
          lo=0.0, hi=1.0, doc="l∞ radii of the FGSM sweep (pixels in [0, 1])"),
    Param("n_shown", int, smoke=6, cpu=8, paper=8, lo=1, hi=16, doc="examples in the image grid"),
    seed_param(0),
    device_param(),
)
params = SPEC.resolve(globals())

# %% [markdown]
# The first holds the knobs; `None` means "the profile's value". The second declares each knob's
# type, range and value per profile, then resolves them: after it, `n_images` and the others hold
# numbers. This chapter's knobs, in two halves that fit the page (each chapter's are listed by
# `python -m reprolib.book.runner params NAME`):

# %% tags=["hide-input"]
import pandas as pd

from reprolib.book.tables import present

present(pd.DataFrame(
    [{"parameter": p.name, "meaning": p.doc, "valid values": p.describe(), "this run": params[p.name],
      "smoke": p.smoke, "cpu": p.cpu, "paper": p.paper} for p in SPEC.params.values()]
).set_index("parameter"), max_columns=3, name="tbl-intro-knobs", caption="The knobs of this page, per profile")

# %% [markdown]
# ## How to read a verdict table
#
# Each chapter ends with a verdict table. One row is one claim of the document, checked against
# our run:
#
# | column | meaning |
# |---|---|
# | **claim** | what the document states, in a sentence, with the table or figure it comes from |
# | **document** | the number the document reports |
# | **ours** | the number we measure, with its 95 % confidence interval where one applies (Wilson for rates) |
# | **rule** | the test decided *before* the run, e.g. "within 2 points at every ε", "same ordering", "lower CI bound above 50 %" |
# | **checks passed** | how many of the rule's checks pass: one per network, per ε or per measure, as the rule says |
# | **verdict** | ✓ holds (every check passes) · ◐ partly (some do) · ✗ does not (none does) |
# | **checked in** | a link to the figure or table of the chapter that the row checks |
# | **why** | for anything short of "holds", the reason for the deviation |
#
# Read the **rule** before the verdict: a "holds" is only as strong as its rule. Differences of scale
# (fewer images, fewer iterations, a smaller network trained on a CPU) are stated in the chapter,
# and the `paper` profile is the way to settle a verdict that could depend on them. The table at
# the end of this page is a small example made from the run below; `reprolib.book.reproduction` builds
# the rows and `reprolib.book.tables` shows them. The table comes in two halves so that it fits the
# page: the verdicts, then the numbers behind them.
#
# ## Re-running a chapter
#
# Every chapter is a [jupytext](https://jupytext.readthedocs.io) file `notebooks/NAME.py` in the
# repository (each page's "Run this page" box offers it for download, beside the executed `.ipynb`). One command converts it to a notebook, executes it with
# [papermill](https://papermill.readthedocs.io) and writes the result where the book is built
# from, with the provenance box at the top:
#
# ```bash
# make chapter NAME=intro PROFILE=smoke             # a fast check (seconds to a few minutes)
# make chapter NAME=intro PROFILE=cpu               # what this book shows
# python -m reprolib.book.runner run intro --profile cpu -p n_images 200 -p model lenet5_mnist
# reprolib-chapter run intro --profile paper -p device cuda -p "eps_grid" "[0.05, 0.1, 0.2]"
# ```
#
# `-p KEY VALUE` sets a knob; everything not set keeps the profile's value. Values are read as
# Python literals (`512`, `0.5`, `"[0.1, 0.3]"`, `True`); anything else is a string. Other options:
# `--no-cache` recomputes everything, and `--out DIR` writes the executed notebook elsewhere.
# Smoke runs go to `build/smoke/chapters/` by default, so they never replace the book's pages.
# `python -m reprolib.book.runner params NAME` prints a chapter's knobs. `make book` rebuilds the
# HTML; it stops and names the command to run when a chapter's source changed after its page
# was executed.
#
# Expensive steps (training a model, one attack on one set of images) are cached on disk under a
# key made of their inputs and the code's version. So a run that was killed resumes where it
# stopped and gives the same numbers, and a re-run with one knob changed recomputes only what
# depends on it.
#
# A misspelt or out-of-range parameter stops the run before anything executes or is written. The
# error lists the valid parameters. This is what it looks like (the check runs in-process, with no
# kernel):

# %% tags=["hide-input"]
from reprolib.book import runner
from reprolib.book.params import ParameterError

for bad in ({"n_imgs": 100}, {"n_images": -3}, {"eps_grid": "0.1"}):
    try:
        runner.validate("intro", "smoke", bad)
    except ParameterError as err:
        lines = str(err).splitlines()
        print(f"-p {' '.join(map(str, next(iter(bad.items()))))}\n    {lines[0]}\n"
              f"    ... and then the {len(SPEC.params)} valid parameters, as in the knob table above")

# %% [markdown]
# Papermill alone works too. It cannot read `.py` files, so convert first. papermill does not
# reject unknown names itself; the chapter's second cell does, at the start of the run:
#
# ```bash
# jupytext --to ipynb --set-kernel python3 -o /tmp/intro.ipynb notebooks/intro.py
# papermill /tmp/intro.ipynb /tmp/intro.out.ipynb -p profile smoke -p n_images 64
# ```
#
# ## Using reprolib in ten lines
#
# Every model of the book is in a zoo of checked checkpoints. Every attack takes a
# `reprolib.models.Classifier` (pixels in [0, 1]; normalisation lives inside the model) and returns an
# `AttackResult` (adversarial inputs, success re-checked by a fresh forward pass, norms, and
# counts of forward and backward passes). Here is the fast gradient sign method
# {cite:p}`goodfellow2015explaining`, one step $x_\text{adv} = x + \varepsilon\,\operatorname{sign}\nabla_x
# \mathrm{CE}(x, y)$, against the C&W MNIST network {cite:p}`carlini2017towards`
# ({numref}`fig-intro-fgsm`):

# %% mystnb={"figure": {"name": "fig-intro-fgsm", "caption": "FGSM at \u03b5 = 0.2 on the first correctly classified MNIST test images: originals, perturbations and adversarial examples, with the model's predictions."}}
import time

from reprolib import data, models
from reprolib.attacks import fgsm
from reprolib.book import plotting
from reprolib.book.params import torch_device
import torch

started = time.perf_counter()
net = models.load(model, device=torch_device(device), train_if_missing=False)  # sha256-checked
images = data.first_correct(net, data.load("mnist", "test"), n_images)  # correctly classified
result = fgsm(net, images.x, images.y, eps=0.2)  # one l∞ step of size 0.2
print(f"{model}: FGSM at ε = 0.2 fools {result.success_rate:.1%} of {len(result)} images, "
      f"mean l2 norm {result.norms['l2'].mean():.2f}, {int(result.backwards.sum())} backward passes "
      f"({time.perf_counter() - started:.1f} s, data loading included)")
pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_shown]
plotting.image_grid(result.x[pick], result.x_adv[pick], labels=result.labels[pick],
                    adv_labels=net(result.x_adv[pick]).argmax(1), title=f"FGSM, ε = 0.2, {model}");

# %% [markdown]
# Labels above the adversarial row are the model's predictions, in red where the attack changed
# them. The perturbation row shows $x_\text{adv} - x$ on a symmetric colour scale.
#
# ## A sweep, cached
#
# A chapter runs many such attacks. `reprolib.evaluation.run.run_attack` runs one over a set of
# images in batches and caches each batch through `reprolib.cache`, under a key made of the model's
# weights, the images, the attack's settings and the source code of the attack and of everything it
# imports, so an interrupted sweep resumes and a change to the attack recomputes it
# ({numref}`fig-intro-sweep`):

# %% mystnb={"figure": {"name": "fig-intro-sweep", "caption": "The share of images FGSM fools against \u03b5, with 95 % Wilson bands over the images."}}
import numpy as np
import torch
import matplotlib.pyplot as plt

from reprolib.evaluation.run import run_attack


def fgsm_success(r):
    """What the sweep keeps of each attack: success per image."""
    return {"success": r.success}


def fgsm_step(eps):
    return run_attack(fgsm, net, images, batch_size=len(images), summary=fgsm_success,
                      cache_name="intro/fgsm", progress=False, eps=eps)["success"]


fooled = torch.stack([fgsm_step(eps) for eps in eps_grid])  # (len(eps_grid), n_images)
fig, ax = plt.subplots(figsize=(6, 3.6))
plotting.rate_curve(ax, eps_grid, fooled.sum(1), len(images), label=f"FGSM on {model}")
ax.set(xlabel="ε (l∞, pixels in [0, 1])", ylabel="images fooled (%)",
       title=f"{len(images)} correctly classified MNIST test images, 95 % Wilson bands")
ax.legend(loc="lower right");

# %% [markdown]
# ## An example verdict table
#
# The table is built from the sweep above. The claim comes from Goodfellow et al.
# {cite:p}`goodfellow2015explaining`, who report that FGSM at ε = 0.25 gives a shallow softmax
# classifier an error rate of 99.9 % on the MNIST test set, and a maxout network 89.4 %. Our
# network is a different architecture and we attack only images it classifies correctly, so the
# first row asks only whether most images are fooled, and the second asks for the trend:

# %% tags=["hide-input"]
from reprolib.book.plotting import wilson_interval
from reprolib.book.reproduction import verdict_row
from reprolib.book.tables import verdict_table

eps_arr = np.asarray(eps_grid)
rate = fooled.float().mean(1).numpy()
near = int(np.argmin(np.abs(eps_arr - 0.25)))
lo, hi = wilson_interval(fooled[near].sum().item(), len(images))
drops = int(np.sum(np.diff(rate) < -0.02))
rows = [
    verdict_row("FGSM at ε ≈ 0.25 fools most undefended MNIST classifiers (Goodfellow et al., §4)",
                "89.4 % (maxout), 99.9 % (softmax)",
                f"{rate[near]:.1%} [{lo:.1%}, {hi:.1%}] at ε = {eps_arr[near]:g}",
                "lower CI bound > 50 %", int(lo > 0.5), 1,
                "" if lo > 0.5 else f"{model} resists one FGSM step better than the 2015 models",
                evidence=("the fooling-rate figure", "fig-intro-sweep")),
    verdict_row("the fooling rate grows with ε", "qualitative", ", ".join(f"{r:.0%}" for r in rate),
                "no decrease larger than 2 points between neighbours on the grid",
                len(rate) - 1 - drops, len(rate) - 1, f"{drops} decreases" if drops else "",
                evidence=("the fooling-rate figure", "fig-intro-sweep")),
]
verdict_table(rows, chapter="intro", document="an example (Goodfellow et al.)", name="tbl-intro-verdicts")

# %% [markdown]
# Either verdict is a finding about this network, not about the pipeline. A "does not" in the first row
# says that the C&W network resists a single FGSM step better than the 2015 models did; a chapter
# would then have to explain why, for example with the iterative attacks of the later parts.
#
# ## Where to go next
#
# - The parts that follow reproduce the five documents, one chapter each.
# - {doc}`../api` documents every public function of `reprolib`, from its docstrings.
# - {doc}`../bibliography` lists the five documents and the works they compare with.
#
# In a checkout, `make setup` installs everything into `.venv` (the CPU build of torch first, then
# the library with its book, test and defence extras); `make chapters` runs every chapter with the
# `cpu` profile, and `make book` builds this site. Each part also has a page of reproduction notes:
# the methods, settings and pitfalls its chapter follows.
