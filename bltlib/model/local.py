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
from bltlib.model.cache import StackCache
from bltlib.model.layers import (RMSNorm, TransformerConfig,
                                 cached_causal_mask,
                                 make_layers, rope_table, run_layers)


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

    def project_kv(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, H, Tk, Dh) of kv (B, Tk, D); cacheable."""
        cfg, hd = self.cfg, self.cfg.head_dim
        bsz = kv.shape[0]
        kvn = self.k_norm(kv)
        k = self.k_proj(kvn).view(bsz, -1, cfg.kv_heads, hd).transpose(1, 2)
        v = self.v_proj(kvn).view(bsz, -1, cfg.kv_heads, hd).transpose(1, 2)
        return k, v

    def forward(self, x: torch.Tensor, kv: torch.Tensor | None,
                mask: torch.Tensor | None,
                kv_proj: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """x (B, Tq, D), kv (B, Tk, D), mask (B, Tq, Tk) -> (B, Tq, D).

        ``mask=None`` lets every query see every key; ``kv_proj`` gives
        :meth:`project_kv`'s result instead of ``kv``.
        """
        cfg, hd = self.cfg, self.cfg.head_dim
        bsz, tq, _ = x.shape
        q = self.q_proj(self.q_norm(x)).view(bsz, tq, cfg.n_heads, hd)
        k, v = kv_proj if kv_proj is not None else self.project_kv(kv)
        if mask is None:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k, v,
                enable_gqa=cfg.kv_heads != cfg.n_heads)  # (B, H, Tq, hd)
            return self.o_proj(out.transpose(1, 2).reshape(bsz, tq, -1)) + x
        seen = mask.any(-1, keepdim=True)  # (B, Tq, 1)
        safe = mask | ~seen  # empty rows: attend anywhere, zeroed below
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k, v, attn_mask=safe[:, None],
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

    # -- incremental use (bltlib.inference) --------------------------------
    @property
    def context_bytes(self) -> int:
        """How many trailing ids the hash n-grams of one byte read."""
        return max(self.hash_embedding.cfg.sizes, default=1)

    def step(self, ids: torch.Tensor, n_new: int,
             cache: StackCache) -> torch.Tensor:
        """Byte states of the last ``n_new`` of ``ids`` (B, T) -> (B, n_new, D).

        ``ids`` must hold the new bytes preceded by at least
        ``context_bytes - 1`` earlier ones (or start at BOS), for the hash
        n-grams; ``cache`` holds the earlier bytes' keys and values.
        Only the final states matter: pooling reads the last layer.
        """
        if n_new == 1 and ids.shape[0] == 1:  # a decoding step
            last = ids[0, -self.context_bytes:].tolist()
            rows = self.hash_embedding.last_table_ids(last)
            x = self.embed_tokens(ids[:, -1:])  # (1, 1, D)
            if rows:
                x = x + self.hash_embedding.embedding(
                    torch.tensor(rows, device=ids.device)).sum(0)
        else:
            x = self.embed(ids)[:, -n_new:]  # (B, n_new, D)
        return run_layers(self.layers, self.cfg, x, cache=cache)

    def pool_spans(self, h: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        """Vectors of consecutive complete patches: patch j is the next
        ``sizes[j]`` states of h (B, L, D); states after them are ignored.
        Returns (B, P, K*D)."""
        bsz, length, _ = h.shape
        p, dev = len(sizes), h.device
        ids = torch.repeat_interleave(torch.arange(p, device=dev),
                                      torch.tensor(sizes, device=dev))
        ids = F.pad(ids, (0, length - ids.numel()), value=-1)  # (L,)
        ids = ids[None].expand(bsz, -1)  # (B, L)
        slots = torch.arange(p, device=dev).repeat_interleave(self.k)
        cross = slots[None, :, None] == ids[:, None, :]  # (B, P*K, L)
        layer = len(self.layers) - 1 if self.cross_all_layers and len(
            self.layers) else 0
        return self.pool(h, ids, p, cross, layer).reshape(bsz, p, -1)

    def pool_one(self, h: torch.Tensor) -> torch.Tensor:
        """The vector of one complete patch: h (B, n, D) -> (B, K*D)."""
        return self.pool_spans(h, [h.shape[1]])[:, 0]


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

    def cross_kv(self, latents: torch.Tensor
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys/values of latents (B, P, G) for every cross-attention layer."""
        kv = self.latents_to_kv(latents)  # (B, P*K, D)
        return [layer.project_kv(kv) for layer in self.cross_attn_layers]

    def forward(self, h: torch.Tensor, latents: torch.Tensor | None,
                self_mask: torch.Tensor | None,
                cross_mask: torch.Tensor | None,
                positions: torch.Tensor | None = None,
                cache: StackCache | None = None,
                cross_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> torch.Tensor:
        """h (B, T, D) byte states -> (B, T, D) final states.

        With ``cache``, h holds only new rows: positions continue the
        cached ones and ``self_mask`` defaults to causal (windowed).
        ``cross_kv`` (from :meth:`cross_kv`) replaces ``latents`` when the
        caller keeps the latents' keys and values.
        """
        if cross_kv is None:
            cross_kv = self.cross_kv(latents)
        start = cache.length if cache is not None else 0
        t = h.shape[1]
        if positions is None:
            positions = torch.arange(start, start + t, device=h.device)[None]
        if self_mask is None:
            self_mask = cached_causal_mask(t, start, self.cfg.sliding_window,
                                           h.device)
        rope = rope_table(self.cfg, h, positions)
        for i, layer in enumerate(self.layers):
            if i == 0 or self.cross_all_layers:
                h = h + self.cross_attn_layers[i](h, None, cross_mask,
                                                  kv_proj=cross_kv[i])
            h = layer(h, self_mask, rope,
                      cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.advance(t)
        return self.norm(h)
