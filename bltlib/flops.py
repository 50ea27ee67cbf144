"""Training-FLOP estimates per byte, for comparing a BLT with a byte LM.

The usual rule: a training step costs about 6 FLOPs per parameter per
position (2 forward, 4 backward) plus attention, about 6 * layers * width
* context per position for causal attention (the average query sees half
of the context; QK and AV are two matmuls). The BLT's global model runs
once per patch, so its share per byte is divided by the mean patch size.
Embedding lookups cost nothing here. These are estimates, not counts.
"""
from __future__ import annotations

from bltlib.model.blt import BLT
from bltlib.model.byte_lm import ByteLM
from bltlib.model.layers import TransformerConfig


def _attention(cfg: TransformerConfig, context: float) -> float:
    window = cfg.sliding_window or context
    return 6.0 * cfg.n_layers * cfg.dim * min(context, window)


def byte_lm_flops_per_byte(model: ByteLM, seq_len: int) -> float:
    """Training FLOPs per byte of a plain byte LM at ``seq_len``."""
    body = model.param_counts()["body"]
    return 6.0 * body + _attention(model.cfg.transformer, seq_len)


def blt_flops_per_byte(model: BLT, seq_len: int, mean_patch_size: float) -> float:
    """Training FLOPs per byte of a BLT at ``seq_len`` bytes per sequence."""
    counts = model.param_counts()
    cfg = model.cfg
    patches = seq_len / mean_patch_size
    local = 6.0 * (counts["encoder"] + counts["decoder"])
    local += _attention(cfg.encoder, seq_len) + _attention(cfg.decoder, seq_len)
    # cross-attention: each byte row sees K slots; each patch query its bytes
    local += 6.0 * 2 * cfg.decoder.dim * cfg.cross_attn_k
    glob = (6.0 * counts["global"] + _attention(cfg.global_model, patches))
    return local + glob / mean_patch_size
