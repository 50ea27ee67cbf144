"""Transformer building blocks shared by every BLT component.

They follow the reference BLT (``transformers.models.blt``) exactly:
pre-norm RMSNorm, rotary position embeddings applied to *interleaved*
pairs (dims 2i and 2i+1), a SiLU-gated MLP, and bias-free projections.
Attention is ``torch.nn.functional.scaled_dot_product_attention`` with an
explicit boolean mask (True = may attend).

Shape letters: B batch, T bytes (or positions), H heads, Dh head width,
D model width.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bltlib.model.cache import KVCache, StackCache


@dataclass(frozen=True)
class TransformerConfig:
    """A stack of identical pre-norm transformer layers."""

    dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: same as n_heads
    intermediate_size: int | None = None  # None: int(8 * dim / 3)
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    sliding_window: int | None = None  # None: full causal attention

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} not divisible by "
                             f"n_heads {self.n_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError("head width must be even for rotary embeddings")
        if self.kv_heads < 1 or self.n_heads % self.kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError("sliding_window must be >= 1 or None")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_dim(self) -> int:
        return self.intermediate_size or int(8 * self.dim / 3)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 like the reference."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)  # fused
        return self.weight * xf.to(x.dtype)


@functools.lru_cache(maxsize=64)
def _inv_freq(head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """theta^(-2i / Dh) for i < Dh / 2; cached (decoding asks every step)."""
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32,
                                        device=device) / head_dim)


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin for interleaved RoPE; positions (..., T) -> (..., T, Dh)."""
    inv = _inv_freq(head_dim, float(theta), positions.device)
    freqs = positions[..., None].float() * inv  # (..., T, Dh/2)
    emb = torch.repeat_interleave(freqs, 2, dim=-1)  # (..., T, Dh)
    return emb.cos().to(dtype), emb.sin().to(dtype)


@functools.lru_cache(maxsize=64)
def _pair_swap(head_dim: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
    """R (Dh, Dh) with (x @ R)[2i] = -x[2i+1] and (x @ R)[2i+1] = x[2i]."""
    r = torch.zeros(head_dim, head_dim, dtype=dtype, device=device)
    idx = torch.arange(0, head_dim, 2, device=device)
    r[idx + 1, idx] = -1
    r[idx, idx + 1] = 1
    return r


def apply_rope(x: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[2i], x[2i+1]); x (B, H, T, Dh), cos/sin (B|1, T, Dh).

    The rotated partner ``(-x[2i+1], x[2i])`` is one product with a 0/±1
    matrix, exact in floating point and cheaper than slicing and stacking
    when decoding one position at a time.
    """
    rot = x @ _pair_swap(x.shape[-1], x.dtype, x.device)
    return x * cos.unsqueeze(1) + rot * sin.unsqueeze(1)


def causal_mask(t_q: int, t_k: int | None = None, *,
                window: int | None = None,
                device: torch.device | None = None) -> torch.Tensor:
    """Boolean (t_q, t_k) mask, True = attend; queries are the last t_q keys.

    With ``window``, key j is visible to query i only if i - j < window.
    """
    t_k = t_q if t_k is None else t_k
    qi = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    kj = torch.arange(t_k, device=device)[None, :]
    mask = kj <= qi
    if window is not None:
        mask &= (qi - kj) < window
    return mask


def cached_causal_mask(t: int, start: int, window: int | None,
                       device: torch.device) -> torch.Tensor | None:
    """Mask of t new queries after ``start`` cached keys; None = see all.

    One new query within the window sees every key, so decoding steps
    skip building a mask.
    """
    if t == 1 and (window is None or start < window):
        return None
    return causal_mask(t, start + t, window=window, device=device)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE (q, k, v, o projections)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                rope: tuple[torch.Tensor, torch.Tensor],
                cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); with ``cache``, x holds only new positions.

        ``mask`` is (T, T_keys) or (B, T, T_keys), True = attend, where the
        keys are the cached positions followed by the new ones; ``None``
        lets every query see every key.
        """
        bsz, t, _ = x.shape  # (B, T, D)
        hd, cfg = self.cfg.head_dim, self.cfg
        q = self.q_proj(x).view(bsz, t, cfg.n_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(bsz, t, cfg.kv_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(bsz, t, cfg.kv_heads, hd).transpose(1, 2)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, H, T_keys, Dh)
        if mask is not None and mask.dim() == 3:  # (B, Tq, Tk) -> (B, 1, Tq, Tk)
            mask = mask[:, None]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            enable_gqa=cfg.kv_heads != cfg.n_heads)  # (B, H, T, Dh)
        return self.o_proj(out.transpose(1, 2).reshape(bsz, t, -1))


class MLP(nn.Module):
    """SiLU-gated feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TransformerLayer(nn.Module):
    """x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg.dim, cfg.ffn_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                rope: tuple[torch.Tensor, torch.Tensor],
                cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), mask, rope, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


_ROPE_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def rope_table(cfg: TransformerConfig, x: torch.Tensor,
               positions: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin for x (B, T, D) at ``positions`` (default 0..T-1).

    Rows come from a table over positions 0..N-1 (grown by doubling), so
    a decoding step indexes instead of recomputing; the values are the
    ones :func:`rope_angles` gives.
    """
    if positions is None:
        positions = torch.arange(x.shape[1], device=x.device)[None]  # (1, T)
    key = (cfg.head_dim, float(cfg.rope_theta), x.dtype, x.device)
    table = _ROPE_TABLES.get(key)
    need = int(positions.max()) + 1 if positions.numel() else 1
    if table is None or table[0].shape[0] < need:
        size = max(need, 2 * (table[0].shape[0] if table else 512))
        with torch.no_grad():
            table = rope_angles(torch.arange(size, device=x.device),
                                cfg.head_dim, cfg.rope_theta, x.dtype)
        _ROPE_TABLES[key] = table
    return table[0][positions], table[1][positions]


def make_layers(cfg: TransformerConfig) -> nn.ModuleList:
    """``cfg.n_layers`` fresh transformer layers."""
    return nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.n_layers))


def run_layers(layers: nn.ModuleList, cfg: TransformerConfig,
               x: torch.Tensor, mask: torch.Tensor | None = None,
               positions: torch.Tensor | None = None,
               cache: StackCache | None = None) -> torch.Tensor:
    """Run ``layers`` over x (B, T, D) with one shared rotary table.

    ``mask`` is (T, T_keys) or (B, T, T_keys), True = attend; the default
    is causal (with the config's sliding window). ``positions`` (B|1, T)
    default to 0..T-1, or, with a ``cache`` already holding L positions,
    to L..L+T-1: the new positions continue the cached ones.
    """
    t = x.shape[1]
    start = cache.length if cache is not None else 0
    if positions is None:
        positions = torch.arange(start, start + t, device=x.device)[None]
    if mask is None:
        mask = cached_causal_mask(t, start, cfg.sliding_window, x.device)
    rope = rope_table(cfg, x, positions)
    for i, layer in enumerate(layers):
        x = layer(x, mask, rope, cache.layers[i] if cache is not None else None)
    if cache is not None:
        cache.advance(t)
    return x


def init_weights(module: nn.Module, seed: int = 0, std: float = 0.02) -> None:
    """Normal(0, std) for linear and embedding weights; norms stay at 1.

    Draws from a private generator seeded with ``seed``, so building a
    model never touches (or depends on) torch's global random state.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
