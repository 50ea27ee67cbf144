"""bltlib: the Byte Latent Transformer and its fast decoders, for learning.

The library is the single source of truth for the book in ``chapters/``.
"""
from bltlib.env import fast_mode, get_device

__version__ = "0.1.0"

__all__ = ["__version__", "fast_mode", "get_device"]
