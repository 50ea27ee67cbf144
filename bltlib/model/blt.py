"""The Byte Latent Transformer: local encoder -> global model -> local decoder.

Index convention (the classic off-by-one): ``BLT.forward(ids, lengths)``
returns logits (B, T, V) where ``logits[:, i]`` is the distribution of
``ids[:, i + 1]``. The loss compares ``logits[:, :-1]`` with ``ids[:, 1:]``.

Patches. ``patch_lengths`` (B, P) cut each row into patches (right-padded
with zeros). The first patch is the BOS byte alone, as in the reference
patcher. The lengths may also cover one byte *past* the end (sum T + 1):
that is how a generator says "the next byte opens a new patch".

The decoder's cross-attention rule (BLT section 3.3): byte i reads the
latent of the patch *before* the one holding byte i + 1, the byte it
predicts. So a byte inside a patch reads the previous patch's latent,
and the last byte of a patch reads its own. The reference computes this
as the patch ids of ``patch_lengths[:, 1:]``; :func:`decoder_patch_ids`
does the same.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bltlib.bytes import PAD_ID, VOCAB_SIZE
from bltlib.model.cache import StackCache
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import (TransformerConfig, causal_mask, init_weights,
                                 make_layers, run_layers)
from bltlib.model.local import LocalDecoder, LocalEncoder


@dataclass(frozen=True)
class BLTConfig:
    """Encoder and decoder share a width; the global model is wider."""

    encoder: TransformerConfig = field(default_factory=lambda: (
        TransformerConfig(dim=128, n_layers=1, n_heads=4,
                          rope_theta=500000.0, sliding_window=512)))
    global_model: TransformerConfig = field(default_factory=lambda: (
        TransformerConfig(dim=384, n_layers=4, n_heads=6,
                          rope_theta=500000.0)))
    decoder: TransformerConfig = field(default_factory=lambda: (
        TransformerConfig(dim=128, n_layers=2, n_heads=4,
                          rope_theta=500000.0, sliding_window=512)))
    hashing: HashConfig = field(default_factory=HashConfig)
    cross_attn_k: int = 2
    encoder_cross_all_layers: bool = False
    decoder_cross_all_layers: bool = True
    vocab_size: int = VOCAB_SIZE
    max_seq_len: int = 4096  # longest BOS + bytes a generator accepts

    def __post_init__(self) -> None:
        if self.max_seq_len < 2:
            raise ValueError("max_seq_len must be >= 2 (BOS and one byte)")
        if self.encoder.dim != self.decoder.dim:
            raise ValueError("encoder and decoder must share a width: the "
                             "decoder reads the encoder's byte states")
        if self.encoder.sliding_window != self.decoder.sliding_window:
            raise ValueError("encoder and decoder share one byte mask, so "
                             "their sliding windows must match")
        if self.cross_attn_k < 1:
            raise ValueError("cross_attn_k must be >= 1")


def patch_ids_from_lengths(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Patch index of every byte: (B, P) lengths -> (B, T) ids.

    Byte t belongs to the last patch starting at or before t (the
    reference rule, so bytes past the total join the last patch). Zero
    lengths are right padding and never claim a byte. With no patches at
    all every byte gets id 0, as in the reference.
    """
    zero = lengths.new_zeros(lengths.shape[0], 1)
    starts = torch.cat([zero, torch.cumsum(lengths, -1)[:, :-1]], -1)  # (B, P|1)
    real = lengths > 0 if lengths.shape[1] else torch.ones_like(starts, dtype=torch.bool)
    pos = torch.arange(seq_len, device=lengths.device)
    before = (starts[:, None, :] <= pos[None, :, None]) & real[:, None, :]
    return before.sum(-1) - 1  # (B, T)


def decoder_patch_ids(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Latent read by each byte's decoder row: (B, P) -> (B, T)."""
    return patch_ids_from_lengths(lengths[:, 1:], seq_len)


def valid_lengths(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Real bytes per row: the lengths' total, capped at T. (B,)"""
    return lengths.sum(-1).clamp(max=seq_len)


class GlobalTransformer(nn.Module):
    """Causal transformer over patch vectors; no vocabulary, no final norm."""

    def __init__(self, cfg: TransformerConfig, in_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding_projection = (
            nn.Linear(in_dim, cfg.dim, bias=False) if in_dim != cfg.dim
            else nn.Identity())
        self.layers = make_layers(cfg)

    def forward(self, patches: torch.Tensor,
                cache: StackCache | None = None) -> torch.Tensor:
        """(B, P, K*D) -> latents (B, P, G); with ``cache``, new patches only."""
        return run_layers(self.layers, self.cfg,
                          self.token_embedding_projection(patches), cache=cache)


class BLT(nn.Module):
    """The full model: ``forward(ids (B, T), patch_lengths (B, P))``."""

    def __init__(self, cfg: BLTConfig | None = None, *, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg = cfg or BLTConfig()
        k = cfg.cross_attn_k
        self.local_encoder = LocalEncoder(
            cfg.encoder, cfg.hashing, cfg.vocab_size, k,
            cfg.encoder_cross_all_layers)
        self.global_transformer = GlobalTransformer(
            cfg.global_model, cfg.encoder.dim * k)
        self.local_decoder = LocalDecoder(
            cfg.decoder, cfg.global_model.dim, k, cfg.decoder_cross_all_layers)
        self.lm_head = nn.Linear(cfg.decoder.dim, cfg.vocab_size, bias=False)
        init_weights(self, seed)

    def masks(self, lengths: torch.Tensor, seq_len: int
              ) -> dict[str, torch.Tensor]:
        """Every mask of one forward pass (True = may attend)."""
        k, dev = self.cfg.cross_attn_k, lengths.device
        n_patches = lengths.shape[1]
        valid = torch.arange(seq_len, device=dev)[None] < valid_lengths(
            lengths, seq_len)[:, None]  # (B, T)
        enc_ids = patch_ids_from_lengths(lengths, seq_len).masked_fill(~valid, -1)
        dec_ids = decoder_patch_ids(lengths, seq_len).masked_fill(~valid, -1)
        slots = torch.arange(n_patches, device=dev).repeat_interleave(k)
        return {
            "enc_ids": enc_ids,  # (B, T)
            "byte_self": causal_mask(seq_len, window=self.cfg.encoder.sliding_window,
                                     device=dev),  # (T, T)
            "enc_cross": slots[None, :, None] == enc_ids[:, None, :],  # (B, P*K, T)
            "dec_cross": dec_ids[:, :, None] == slots[None, None, :],  # (B, T, P*K)
        }

    def forward(self, ids: torch.Tensor, patch_lengths: torch.Tensor) -> torch.Tensor:
        """ids (B, T), patch_lengths (B, P) -> logits (B, T, V).

        ``logits[:, i]`` predicts ``ids[:, i + 1]``.
        """
        if ids.dim() != 2 or patch_lengths.dim() != 2:
            raise ValueError("ids and patch_lengths must be 2-D (batch first)")
        if ids.shape[0] != patch_lengths.shape[0]:
            raise ValueError("ids and patch_lengths disagree on batch size")
        seq_len, n_patches = ids.shape[1], patch_lengths.shape[1]
        m = self.masks(patch_lengths, seq_len)
        h, patches = self.local_encoder(ids, m["enc_ids"], n_patches,
                                        m["byte_self"], m["enc_cross"])
        latents = self.global_transformer(patches)  # (B, P, G)
        out = self.local_decoder(h, latents, m["byte_self"], m["dec_cross"])
        return self.lm_head(out)  # (B, T, V)

    def loss(self, ids: torch.Tensor, patch_lengths: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy in nats; PAD targets are ignored."""
        logits = self(ids, patch_lengths)[:, :-1]  # (B, T-1, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               ids[:, 1:].reshape(-1), ignore_index=PAD_ID)

    def param_counts(self) -> dict[str, int]:
        """Parameters per component; embedding tables counted apart.

        The paper's bandwidth estimate (Eq. 8) excludes embeddings, so
        ``encoder``, ``global`` and ``decoder`` exclude the byte and hash
        tables; the output head is counted in ``decoder``.
        """
        def count(mod: nn.Module) -> int:
            return sum(p.numel() for p in mod.parameters())
        enc = self.local_encoder
        emb = count(enc.embed_tokens) + count(enc.hash_embedding)
        return {
            "embeddings": emb,
            "encoder": count(enc) - emb,
            "global": count(self.global_transformer),
            "decoder": count(self.local_decoder) + count(self.lm_head),
            "total": count(self),
        }
