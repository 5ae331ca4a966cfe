"""Device selection: CUDA when present, else CPU; ``REPROLIB_DEVICE`` overrides."""
from __future__ import annotations

import os
import platform

import torch


def default_device() -> torch.device:
    """The device reprolib puts models and tensors on unless told otherwise."""
    requested = os.environ.get("REPROLIB_DEVICE")
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"REPROLIB_DEVICE={requested!r} asks for CUDA, but torch {torch.__version__} "
                "sees no CUDA device. Unset REPROLIB_DEVICE or set it to 'cpu'."
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` (``None``: :func:`default_device`).

    Raises:
        RuntimeError: a CUDA or MPS device this machine does not have, naming what it has.
    """
    if device is None:
        return default_device()
    device = torch.device(device)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise RuntimeError(f"device {str(device)!r} is not available: torch {torch.__version__} sees "
                           f"{torch.cuda.device_count()} CUDA device(s). Use 'auto' or 'cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device 'mps' is not available on this machine. Use 'auto' or 'cpu'.")
    return device


def hardware_summary(device: str | torch.device | None = None) -> str:
    """One line naming the processor (and GPU) results were produced on."""
    device = resolve(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
