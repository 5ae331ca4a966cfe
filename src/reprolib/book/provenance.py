"""Where a result came from: the reprolib commit, torch version, device, hardware, parameters and
wall time of a run, as a dict and as the Markdown block at the top of each executed chapter."""
from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import __version__, paths
from ..device import hardware_summary, resolve


def git_commit(repo: Path | None = None) -> str | None:
    """The checkout's commit (short hash, ``+dirty`` when tracked files changed), or ``None``
    outside a git checkout or without git."""
    repo = paths.REPO_ROOT if repo is None else repo
    if repo is None:
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def device_name(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device; ``None`` and ``"auto"`` mean :func:`reprolib.device.default_device`."""
    return resolve(None if device in (None, "auto") else device)


def collect(params: Mapping[str, Any] | None = None, *, device: str | torch.device | None = None,
            wall_seconds: float | None = None) -> dict[str, Any]:
    """The provenance of a run, as a JSON-serialisable dict."""
    params = dict(params or {})
    dev = device_name(device if device is not None else params.get("device"))
    commit = git_commit()
    return {
        "profile": params.get("profile"),
        "parameters": params,
        "reprolib_version": __version__,
        "reprolib_commit": commit if commit is not None else "unknown (not a git checkout)",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(dev),
        "hardware": hardware_summary(dev),
        "wall_seconds": None if wall_seconds is None else round(float(wall_seconds), 1),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def cache_summary(stats: Mapping[str, Any]) -> str:
    """One line on the steps a run computed and those it read from the cache
    (:func:`reprolib.cache.stats`): how many were reused, the compute time they took when first
    computed and the hardware they were computed on, so that a short wall time is not mistaken
    for the cost."""
    reused, untimed = int(stats.get("reused", 0)), int(stats.get("reused_untimed", 0))
    text = f"{reused} read from the cache"
    if reused > untimed:
        timed = f"{reused - untimed} of them " if untimed else ""
        text += f" ({timed}took {_duration(stats.get('reused_seconds'))} when first computed"
        hardware = dict(stats.get("reused_hardware") or {})
        if hardware:
            text += ", on " + "; ".join(f"{hw} ({n} step{'s' if n != 1 else ''})" for hw, n in hardware.items())
        text += ")"
    return text + f"; {int(stats.get('computed', 0))} computed in this run"


def markdown(info: Mapping[str, Any], *, rerun: str | None = None) -> str:
    """The provenance block shown at the top of an executed chapter."""
    params = dict(info.get("parameters") or {})
    params.pop("profile", None)
    overrides = set(info.get("overrides") or ())
    values = ", ".join(f"`{k}={v!r}`" + (" (set)" if k in overrides else "") for k, v in params.items()) or "none"
    lines = [
        "```{admonition} Provenance of this page",
        ":class: note",
        f"Executed with profile **`{info.get('profile')}`** in {_duration(info.get('wall_seconds'))} "
        f"on {info.get('finished', 'an unknown date')}.",
        "",
        "| | |",
        "|---|---|",
        f"| parameters | {values} |",
        f"| reprolib | {info.get('reprolib_version')}, commit `{info.get('reprolib_commit')}` |",
        f"| torch | {info.get('torch_version')} (Python {info.get('python_version')}) |",
        f"| device | `{info.get('device')}` |",
        f"| hardware | {info.get('hardware')} |",
        f"| wall time | {_duration(info.get('wall_seconds'))} |",
    ]
    if (info.get("cache") or {}).get("reused"):
        lines.append(f"| cached steps | {cache_summary(info['cache'])} |")
    if rerun:
        lines += ["", f"Re-run it: `{rerun}`"]
    lines.append("```")
    return "\n".join(lines)


def run_block(name: str, info: Mapping[str, Any], *, make_command: str, command: str) -> str:
    """The "Run this page" box of an executed chapter: the command that re-runs it, the time
    to expect on the hardware of this run (from an empty cache: the wall time plus the first
    measured compute time of the steps read from the cache; with the cache as it was: the wall
    time), and downloads of the chapter's source (``notebooks/NAME.py``) and executed notebook."""
    stats = dict(info.get("cache") or {})
    wall = info.get("wall_seconds")
    reused, untimed = int(stats.get("reused", 0)), int(stats.get("reused_untimed", 0))
    if wall is None:
        expected = "not measured"
    elif reused:
        cold = float(wall) + float(stats.get("reused_seconds") or 0.0)
        expected = (f"{'at least ' if untimed else ''}{_duration(cold)} from an empty cache, "
                    f"{_duration(wall)} with the {reused} cached steps this run read")
    else:
        expected = f"{_duration(wall)} (nothing was read from the cache)"
    return "\n".join([
        "```{admonition} Run this page",
        ":class: tip",
        f"In a checkout of the repository: `{make_command}` (or `{command}`) re-executes this page into "
        f"`book/chapters/{name}.ipynb`; `--profile smoke` is a quick check that writes to `build/smoke/` instead.",
        "",
        f"Expected time on {info.get('hardware', 'the hardware above')}: {expected}.",
        "",
        f"Downloads: the source {{download}}`{name}.py <../../notebooks/{name}.py>` (jupytext percent format) "
        f"and the executed notebook {{download}}`{name}.ipynb <{name}.ipynb>`.",
        "```",
    ])
