"""The local models: byte encoder with patch pooling, and byte decoder.

Both follow the reference BLT (``transformers.models.blt``), including
two of its quirks, kept so that converted weights give the same logits:

* the cross-attention block returns ``o_proj(attn) + query`` and its
  caller adds the query again, so the residual enters twice;
* the decoder's input is the encoder's final byte states (there is no
  second byte embedding).

Shape letters: B batch, T bytes, P patches, K query slots per patch
(``cross_attn_k``), D local width, G global width.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bltlib.model.hashing import HashConfig, HashNgramEmbedding
from bltlib.model.layers import (RMSNorm, TransformerConfig, make_layers,
                                 rope_table)


class CrossAttention(nn.Module):
    """Queries attend to keys under a boolean mask; no rotary embedding.

    A query row with no visible key outputs zero attention (instead of a
    uniform average or NaN), on every backend.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.k_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, kv: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """x (B, Tq, D), kv (B, Tk, D), mask (B, Tq, Tk) -> (B, Tq, D)."""
        cfg, hd = self.cfg, self.cfg.head_dim
        bsz, tq, _ = x.shape
        q = self.q_proj(self.q_norm(x)).view(bsz, tq, cfg.n_heads, hd)
        kvn = self.k_norm(kv)
        k = self.k_proj(kvn).view(bsz, -1, cfg.kv_heads, hd)
        v = self.v_proj(kvn).view(bsz, -1, cfg.kv_heads, hd)
        seen = mask.any(-1, keepdim=True)  # (B, Tq, 1)
        safe = mask | ~seen  # empty rows: attend anywhere, zeroed below
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            attn_mask=safe[:, None],
            enable_gqa=cfg.kv_heads != cfg.n_heads)  # (B, H, Tq, hd)
        out = out.transpose(1, 2).reshape(bsz, tq, -1) * seen
        return self.o_proj(out) + x


def patch_reduce(h: torch.Tensor, patch_ids: torch.Tensor,
                 n_patches: int) -> torch.Tensor:
    """Max-pool byte states into patches: (B, T, D) -> (B, P, D).

    Bytes with patch id -1 (padding) are ignored; an empty patch is zero.
    """
    bsz, _, dim = h.shape
    idx = torch.where(patch_ids < 0, n_patches, patch_ids)  # dummy slot P
    out = h.new_zeros(bsz, n_patches + 1, dim)
    out = out.scatter_reduce(1, idx[..., None].expand(-1, -1, dim), h,
                             reduce="amax", include_self=False)
    return out[:, :n_patches]


class LocalEncoder(nn.Module):
    """Bytes -> byte states (B, T, D) and patch vectors (B, P, K*D)."""

    def __init__(self, cfg: TransformerConfig, hashing: HashConfig,
                 vocab_size: int, cross_attn_k: int,
                 cross_all_layers: bool = False) -> None:
        super().__init__()
        self.cfg, self.k = cfg, cross_attn_k
        self.cross_all_layers = cross_all_layers
        self.embed_tokens = nn.Embedding(vocab_size, cfg.dim)
        self.hash_embedding = HashNgramEmbedding(hashing, cfg.dim)
        self.layers = make_layers(cfg)
        self.patch_embedding_projection = nn.Linear(
            cfg.dim, cfg.dim * cross_attn_k, bias=False)
        n_cross = cfg.n_layers if cross_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(
            CrossAttention(cfg) for _ in range(n_cross))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Byte embedding plus hash n-gram embeddings: (B, T) -> (B, T, D)."""
        return self.embed_tokens(ids) + self.hash_embedding(ids)

    def pool(self, h: torch.Tensor, patch_ids: torch.Tensor, n_patches: int,
             cross_mask: torch.Tensor, layer: int) -> torch.Tensor:
        """Patch queries from pooled bytes, refined by cross-attention.

        h (B, T, D) -> (B, P*K, D): K query slots per patch, each seeing
        only its own patch's bytes (``cross_mask`` (B, P*K, T)).
        """
        bsz = h.shape[0]
        pe = self.patch_embedding_projection(
            patch_reduce(h, patch_ids, n_patches))  # (B, P, K*D)
        pe = pe.reshape(bsz, n_patches * self.k, self.cfg.dim)
        return pe + self.cross_attn_layers[layer](pe, h, cross_mask)

    def forward(self, ids: torch.Tensor, patch_ids: torch.Tensor,
                n_patches: int, self_mask: torch.Tensor,
                cross_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        bsz = ids.shape[0]
        h = self.embed(ids)  # (B, T, D)
        rope = rope_table(self.cfg, h)
        pe = None
        for i, layer in enumerate(self.layers):
            h = layer(h, self_mask, rope)
            if self.cross_all_layers or i == len(self.layers) - 1:
                pe = self.pool(h, patch_ids, n_patches, cross_mask,
                               i if self.cross_all_layers else 0)
        if pe is None:  # no encoder layers: pool the embeddings
            pe = self.pool(h, patch_ids, n_patches, cross_mask, 0)
        return h, pe.reshape(bsz, n_patches, -1)  # (B, T, D), (B, P, K*D)


class LocalDecoder(nn.Module):
    """Byte states + patch latents -> final byte states (B, T, D)."""

    def __init__(self, cfg: TransformerConfig, global_dim: int,
                 cross_attn_k: int, cross_all_layers: bool = True) -> None:
        super().__init__()
        self.cfg, self.k = cfg, cross_attn_k
        self.cross_all_layers = cross_all_layers
        self.patch_embedding_projection = nn.Linear(
            global_dim, cfg.dim * cross_attn_k, bias=False)
        n_cross = cfg.n_layers if cross_all_layers else 1
        self.cross_attn_layers = nn.ModuleList(
            CrossAttention(cfg) for _ in range(n_cross))
        self.layers = make_layers(cfg)
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def latents_to_kv(self, latents: torch.Tensor) -> torch.Tensor:
        """Global latents (B, P, G) -> cross-attention keys (B, P*K, D)."""
        bsz, n_patches, _ = latents.shape
        return self.patch_embedding_projection(latents).reshape(
            bsz, n_patches * self.k, self.cfg.dim)

    def forward(self, h: torch.Tensor, latents: torch.Tensor,
                self_mask: torch.Tensor, cross_mask: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        kv = self.latents_to_kv(latents)  # (B, P*K, D)
        rope = rope_table(self.cfg, h, positions)
        for i, layer in enumerate(self.layers):
            if i == 0 or self.cross_all_layers:
                h = h + self.cross_attn_layers[i](h, kv, cross_mask)
            h = layer(h, self_mask, rope)
        return self.norm(h)
