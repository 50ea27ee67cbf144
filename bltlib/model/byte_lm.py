"""A plain causal byte-level transformer language model.

Two roles in the book: the small **entropy model** that decides patch
boundaries (``bltlib.entropy.EntropyModel``), and the **byte-level
baseline** the BLT is compared with at equal parameters. The
architecture is the reference ``BltPatcher``: token embedding, RoPE
transformer layers (optionally with a sliding window), final RMSNorm,
LM head. Logits at position j predict the id at position j + 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bltlib.bytes import VOCAB_SIZE
from bltlib.model.cache import StackCache
from bltlib.model.layers import (RMSNorm, TransformerConfig, init_weights,
                                 make_layers, run_layers)


@dataclass(frozen=True)
class ByteLMConfig:
    """A byte LM; ``max_seq_len`` bounds the context used for scoring."""

    transformer: TransformerConfig = field(default_factory=lambda: (
        TransformerConfig(dim=128, n_layers=2, n_heads=4, sliding_window=512)))
    vocab_size: int = VOCAB_SIZE
    max_seq_len: int = 1024


class ByteLM(nn.Module):
    """Causal byte LM: ids (B, T) -> logits (B, T, V)."""

    def __init__(self, cfg: ByteLMConfig | None = None, *,
                 seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg or ByteLMConfig()
        tcfg = self.cfg.transformer
        self.embed_tokens = nn.Embedding(self.cfg.vocab_size, tcfg.dim)
        self.layers = make_layers(tcfg)
        self.norm = RMSNorm(tcfg.dim, tcfg.norm_eps)
        self.lm_head = nn.Linear(tcfg.dim, self.cfg.vocab_size, bias=False)
        init_weights(self, seed)

    def forward(self, ids: torch.Tensor,
                cache: StackCache | None = None) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, V); with ``cache``, ids are the new
        positions only, and the cache grows by T."""
        h = run_layers(self.layers, self.cfg.transformer,
                       self.embed_tokens(ids), cache=cache)  # (B, T, D)
        return self.lm_head(self.norm(h))  # (B, T, V)

    def new_cache(self) -> StackCache:
        """An empty key/value cache for incremental scoring."""
        return StackCache(self.cfg.transformer.n_layers)

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean next-id cross-entropy in nats; ids (B, T) start with BOS."""
        logits = self(ids[:, :-1])  # (B, T-1, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               ids[:, 1:].reshape(-1))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def param_counts(self) -> dict[str, int]:
        """Parameters with the embedding table counted apart (head included)."""
        emb = self.embed_tokens.weight.numel()
        total = self.num_params()
        return {"embeddings": emb, "body": total - emb, "total": total}
