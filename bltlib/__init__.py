"""bltlib: the Byte Latent Transformer and its fast decoders, for learning.

The library is the single source of truth for the book in ``chapters/``.
Submodules load lazily, so ``python -m bltlib.data`` never imports torch.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"fast_mode": "bltlib.env", "get_device": "bltlib.env",
         "generate": "bltlib.inference.generate",
         "PatchedBLT": "bltlib.inference.bundle",
         "load_patched_blt": "bltlib.inference.bundle",
         "load": "bltlib.zoo"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bltlib' has no attribute {name!r}")
