"""Environment: fast mode, device choice and a short report for chapters."""
from __future__ import annotations

import os
import platform
import sys

import torch

FAST_ENV = "BLT_FAST"
DEVICE_ENV = "BLT_DEVICE"


def fast_mode() -> bool:
    """True when ``BLT_FAST`` is set to 1/true/yes (CI sets it).

    Fast mode shrinks training and data so every chapter runs in seconds;
    full mode is what a student runs.
    """
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes"}


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present, else CPU; ``BLT_DEVICE`` or ``prefer`` overrides."""
    name = prefer or os.environ.get(DEVICE_ENV) or (
        "cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} requested but CUDA is not available; "
            f"unset {DEVICE_ENV} or use 'cpu'")
    return dev


def report() -> dict[str, str]:
    """Versions and hardware, for the top of every chapter."""
    from bltlib import __version__
    dev = get_device()
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "bltlib": __version__,
        "device": str(dev),
        "cpu threads": str(torch.get_num_threads()),
        "fast mode": str(fast_mode()),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def format_report() -> str:
    """The report as aligned ``key: value`` lines."""
    info = report()
    width = max(map(len, info))
    return "\n".join(f"{k:<{width}} : {v}" for k, v in info.items())
