"""Shared fixtures. Tests never download: REPROLIB_OFFLINE is forced on."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ["REPROLIB_OFFLINE"] = "1"
torch.set_num_threads(1)  # tests are small; avoid oversubscribing CI cores


def _mirror() -> Path | None:
    value = os.environ.get("REPROLIB_DATA_MIRROR")
    return Path(value) if value and Path(value).is_dir() else None


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real dataset mirror (CI points REPROLIB_DATA_MIRROR at ../shared/data)."""
    path = _mirror()
    if path is None:
        reason = "REPROLIB_DATA_MIRROR is not set to a dataset mirror; real-data tests need it"
        if os.environ.get("REPROLIB_REQUIRE_DATA"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def cw_mnist(mirror):
    """The committed C&W MNIST CNN on the CPU. A missing or corrupt checkpoint is an error, not
    a skip: it is part of the repository."""
    from reprolib import models

    return models.load("cw_mnist", device="cpu", train_if_missing=False)


@pytest.fixture(scope="session")
def mnist_test(mirror):
    """The MNIST test set from the mirror."""
    from reprolib import data

    return data.load("mnist", "test", download=False)
