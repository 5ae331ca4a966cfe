"""Where reprolib reads and writes files.

Environment variables (all optional):

``REPROLIB_DATA_MIRROR``
    A local folder laid out as torchvision lays out datasets (``MNIST/raw/*.gz``,
    ``cifar-10-batches-py/``). Checked first; never written to.
``REPROLIB_DATA_DIR``
    Where downloaded dataset files are stored. Default: ``~/.cache/reprolib/datasets``.
``REPROLIB_MODELS_DIR``
    Where model checkpoints are read from and trained ones written to. Default: the
    checkout's ``data/models`` when reprolib runs from a source tree, else
    ``~/.cache/reprolib/models``.
``REPROLIB_CACHE_DIR``
    Where chapters cache expensive results. Default: the checkout's ``.cache`` or
    ``~/.cache/reprolib/results``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: The source checkout, when reprolib is imported from ``src/`` (an editable install).
REPO_ROOT: Path | None = Path(__file__).resolve().parents[2]
if not (REPO_ROOT / "pyproject.toml").is_file():
    REPO_ROOT = None


def _user_cache() -> Path:
    """``$XDG_CACHE_HOME/reprolib`` (default ``~/.cache/reprolib``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reprolib"


def data_mirror() -> Path | None:
    """The read-only dataset mirror named by ``REPROLIB_DATA_MIRROR``, or ``None`` when unset."""
    value = os.environ.get("REPROLIB_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Where downloaded dataset files are stored: ``REPROLIB_DATA_DIR``, else
    ``~/.cache/reprolib/datasets``. The folder may not exist yet."""
    value = os.environ.get("REPROLIB_DATA_DIR")
    return Path(value).expanduser() if value else _user_cache() / "datasets"


def models_dir() -> Path:
    """Where checkpoints are read and written: ``REPROLIB_MODELS_DIR``, else the checkout's
    ``data/models``, else ``~/.cache/reprolib/models``."""
    value = os.environ.get("REPROLIB_MODELS_DIR")
    if value:
        return Path(value).expanduser()
    if REPO_ROOT is not None:
        return REPO_ROOT / "data" / "models"
    return _user_cache() / "models"


def cache_dir() -> Path:
    """Where :mod:`reprolib.cache` keeps its entries: ``REPROLIB_CACHE_DIR``, else the checkout's
    ``.cache``, else ``~/.cache/reprolib/results``."""
    value = os.environ.get("REPROLIB_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    if REPO_ROOT is not None:
        return REPO_ROOT / ".cache"
    return _user_cache() / "results"
