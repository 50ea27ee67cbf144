"""Choosing the next byte: greedy, or sampling with temperature, top-k, top-p.

Greedy is ``temperature=0``. Sampling draws from an explicit
``torch.Generator`` (no global random state), so a seed reproduces a
generation exactly. Only real bytes and EOS can be generated: PAD, BOS
and MASK are never chosen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bltlib.bytes import BOS_ID, MASK_ID, PAD_ID


@dataclass(frozen=True)
class SamplingConfig:
    """``temperature`` 0 is greedy; ``top_k``/``top_p`` None mean no cut."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) \
                or not math.isfinite(t) or t < 0:
            raise ValueError(f"temperature must be a finite number >= 0, got {t!r}")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(f"top_k must be an integer >= 1 or None, got {k!r}")
        p = self.top_p
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float))
                              or not 0 < p <= 1):  # NaN fails this too
            raise ValueError(f"top_p must be in (0, 1] or None, got {p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def mask_specials(logits: torch.Tensor) -> torch.Tensor:
    """Logits with PAD, BOS and MASK set to -inf; (..., V)."""
    out = logits.float().clone()
    out[..., [PAD_ID, BOS_ID, MASK_ID]] = -math.inf
    return out


def greedy_id(logits: torch.Tensor) -> int:
    """The greedy choice from logits (V,): the argmax over the bytes and
    EOS (PAD, BOS and MASK are never chosen)."""
    return int(mask_specials(logits).argmax())


def distribution(logits: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    """The distribution a byte is drawn from: probabilities (..., V).

    Greedy gives a one-hot on the argmax. Otherwise softmax(logits / T),
    cut to the ``top_k`` most likely and to the smallest set whose mass
    reaches ``top_p`` (the most likely id always stays), renormalised.
    """
    z = mask_specials(logits)
    if cfg.greedy:
        return torch.nn.functional.one_hot(
            z.argmax(-1), z.shape[-1]).to(z.dtype)
    z = z / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < z.shape[-1]:
        kth = torch.topk(z, cfg.top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, -math.inf)
    probs = torch.softmax(z, -1)
    if cfg.top_p is not None and cfg.top_p < 1:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_p, -1) - sorted_p  # mass above each id
        drop = torch.zeros_like(probs).scatter(
            -1, order, (before >= cfg.top_p).to(probs.dtype)).bool()
        probs = probs.masked_fill(drop, 0)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def choose(logits: torch.Tensor, cfg: SamplingConfig,
           generator: torch.Generator | None) -> int:
    """One id from logits (V,): the argmax, or a draw with ``generator``."""
    if cfg.greedy:
        return greedy_id(logits)
    if generator is None:
        raise ValueError("sampling needs a torch.Generator; pass "
                         "generator=torch.Generator().manual_seed(SEED)")
    probs = distribution(logits, cfg).to(generator.device)
    return int(torch.multinomial(probs, 1, generator=generator))
