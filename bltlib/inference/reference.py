"""The no-cache generation loop of the official BLT code, as a baseline.

For every new byte the official loop (``bytelatent/generate.py``, and
the ``transformers`` port with ``use_cache=False``) re-scores the whole
prefix with the entropy model, re-patches it, and runs the full BLT
over it to read the last position's logits. Nothing is cached, so the
cost of byte n grows with n. We keep it for two reasons: the cached
generator must match it byte for byte, and it is the honest "before"
of every speed-up.

Registered as ``generate(..., method="reference")``.
"""
from __future__ import annotations

import time

import torch

from bltlib.bytes import BOS_ID, OFFSET
from bltlib.entropy import entropies
from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.generate import Output, register
from bltlib.inference.sampling import SamplingConfig, choose
from bltlib.inference.stats import GenerationStats
from bltlib.patching import entropy_starts, fixed_starts, starts_to_lengths


def patch_lengths_with_next(bundle: PatchedBLT, raw: bytes) -> torch.Tensor:
    """BLT patch lengths (P,) for BOS + ``raw`` plus the pending next byte.

    BOS is patch 0; the lengths sum to ``len(raw) + 2``, the last one
    covering the byte not generated yet (the "include next" trick), so
    the last real byte reads the right latent.
    """
    cfg = bundle.patcher
    if cfg.mode == "entropy":
        ent = entropies(bundle.entropy_model, raw, include_next=True)  # (n+1,)
        starts = entropy_starts(ent, threshold=cfg.threshold,
                                relative_threshold=cfg.relative_threshold,
                                max_patch_length=cfg.max_patch_length)
    else:
        starts = fixed_starts(len(raw) + 1, cfg.stride)
    return torch.cat([torch.ones(1, dtype=torch.long), starts_to_lengths(starts)])


@torch.no_grad()
def next_logits(bundle: PatchedBLT, raw: bytes) -> torch.Tensor:
    """Logits (V,) of the byte after ``raw``, from one full forward."""
    dev = bundle.device
    ids = torch.tensor([[BOS_ID] + [b + OFFSET for b in raw]], device=dev)
    lengths = patch_lengths_with_next(bundle, raw).to(dev)[None]
    return bundle.model(ids, lengths)[0, -1]


@register("reference")
def _reference(bundle: PatchedBLT, prompt: bytes, sampling: SamplingConfig,
               generator: torch.Generator | None, out: Output,
               stats: GenerationStats) -> None:
    raw = bytearray(prompt)
    while True:
        t0 = time.perf_counter()
        logits = next_logits(bundle, bytes(raw))
        if not out.data:
            stats.prefill_seconds = time.perf_counter() - t0
        stats.entropy_calls += bundle.patcher.mode == "entropy"
        stats.encoder_calls += 1
        stats.global_calls += 1
        stats.decoder_calls += 1
        if out.add_id(choose(logits, sampling, generator)):
            return
        raw.append(out.data[-1])
