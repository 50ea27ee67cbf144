"""BLT-D: a BLT whose local decoder also learns block-wise masked diffusion.

Fast BLT section 3.2, as reconstructed from the paper's equations (see
``reference/fast-blt.md`` section 3). Training adds, after the clean
bytes, one corrupted **block** per patch after the first:

* the block of patch p holds the B bytes from the patch's start s_p on
  (``x[s_p : s_p + B]``), crossing later patch boundaries and PAD-padded
  past the end; its rows keep their original positions for RoPE;
* one ``t ~ U(t_min, 1)`` per example; each valid block cell becomes MASK
  with probability t;
* block rows are embedded by a fresh ``block_embedding`` (the paper's
  ``Embed``; clean rows keep the reference BLT's encoder states);
* self-attention: clean rows are causal; block rows see the clean bytes
  *before* s_p and every valid cell of their own block (never the clean
  bytes they predict, never another block);
* cross-attention: clean rows keep BLT's rule; block rows read the latent
  of patch p - 1, the last one that holds none of their bytes.

Loss (Eq. 7): ``L_clean + mask_weight * L_mask`` where ``L_clean`` is the
mean next-byte cross-entropy and ``L_mask`` sums ``CE / t`` over masked
cells divided by the number of *valid block cells*: both terms are then
per-byte averages (``E[L_mask]`` is the masked-diffusion ELBO per cell),
so neither dominates as B grows. Because ``L_clean`` stays, the same
weights decode as an ordinary autoregressive BLT.

Row layout of the decoder input: ``[clean (T) ; block 1 (B) ; block 2 (B) ; ...]``.
Shape letters: N batch, T clean bytes, P patches, R = (P - 1) * B block rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bltlib.bytes import MASK_ID, PAD_ID
from bltlib.model.blt import BLT, BLTConfig, valid_lengths
from bltlib.model.layers import causal_mask

BLOCK_SIZES = (4, 8, 16)  # the paper's; any size in [2, 64] is accepted
MAX_BLOCK = 64


@dataclass(frozen=True)
class BLTDConfig:
    """A BLT plus the diffusion settings of its decoder."""

    blt: BLTConfig = field(default_factory=BLTConfig)
    block_size: int = 8
    t_min: float = 0.1  # caps the 1/t weight at 10
    mask_weight: float = 1.0  # lambda on L_mask (the paper's Eq. 7 uses 1)
    # add the encoder state of the byte before the block (token s_p - 1,
    # which the block may see) to every block row's input; see the module doc
    block_context: bool = True
    # add a learned embedding of each row's index inside its block: with
    # every cell MASK the rows are otherwise identical but for RoPE
    block_index: bool = True
    # block sizes drawn per training batch (mixed B); () trains block_size only
    train_block_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_block_size(self.block_size)
        for b in self.train_block_sizes:
            check_block_size(b)
        if not 0 < self.t_min <= 1:
            raise ValueError(f"t_min must be in (0, 1], got {self.t_min}")
        if not self.mask_weight >= 0:
            raise ValueError("mask_weight must be >= 0")


def check_block_size(block_size: int) -> None:
    if isinstance(block_size, bool) or not isinstance(block_size, int) \
            or not 2 <= block_size <= MAX_BLOCK:
        raise ValueError(f"block_size must be an integer in [2, 64] (the "
                         f"paper uses {BLOCK_SIZES}), got {block_size!r}")


def block_layout(lengths: torch.Tensor, seq_len: int, block_size: int,
                 blocks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Where every block cell comes from: positions, validity, latent.

    ``lengths`` (N, P) are BLT patch lengths (patch 0 is BOS). Block j
    belongs to patch j + 1, starts at that patch's first token and reads
    latent j. ``blocks`` (N, M) picks which blocks each row carries
    (default: all P - 1). Returns (N, R = M * B) tensors ``pos`` (source
    token), ``valid`` (inside the sequence and a real patch), ``latent``,
    ``block`` (the row's block slot, 0..M-1) and ``start`` (the block's
    first token).
    """
    n, n_patches = lengths.shape
    dev = lengths.device
    starts = torch.cumsum(lengths, -1)[:, :-1]  # (N, P-1) token of patch j+1
    real = lengths[:, 1:] > 0  # (N, P-1)
    if blocks is None:
        blocks = torch.arange(n_patches - 1, device=dev).expand(n, -1)
    starts, real = starts.gather(1, blocks), real.gather(1, blocks)  # (N, M)
    k = torch.arange(block_size, device=dev)
    pos = (starts[:, :, None] + k).reshape(n, -1)  # (N, R)
    valid = (pos < valid_lengths(lengths, seq_len)[:, None]) & real.repeat_interleave(
        block_size, 1)
    slot = torch.arange(blocks.shape[1], device=dev).repeat_interleave(block_size)
    return {"pos": pos, "valid": valid, "block": slot.expand(n, -1),
            "latent": blocks.repeat_interleave(block_size, 1),
            "start": starts.repeat_interleave(block_size, 1)}


def sample_blocks(lengths: torch.Tensor, n_blocks: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``n_blocks`` random distinct blocks per row (N, M), ascending.

    Real patches are preferred; a row with fewer real patches than
    ``M = min(n_blocks, P - 1)`` is filled with padding blocks, which
    :func:`block_layout` marks invalid.
    """
    n, n_patches = lengths.shape
    m = min(n_blocks, n_patches - 1)
    score = torch.rand(n, n_patches - 1, generator=generator).to(lengths.device)
    score = score + (lengths[:, 1:] <= 0)  # padding sorts last
    return score.argsort(1)[:, :m].sort(1).values


def diffusion_masks(blt: BLT, lengths: torch.Tensor, seq_len: int,
                    layout: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Decoder masks over ``[clean ; blocks]`` rows (True = may attend).

    ``self`` (N, T+R, T+R) and ``cross`` (N, T+R, P*K).
    """
    cfg = blt.cfg
    window = cfg.decoder.sliding_window
    n, dev = lengths.shape[0], lengths.device
    t, r = seq_len, layout["pos"].shape[1]
    base = blt.masks(lengths, seq_len)
    clean = causal_mask(t, window=window, device=dev).expand(n, t, t)
    qpos = layout["pos"]  # (N, R)
    start = layout["start"]  # (N, R)
    key = torch.arange(t, device=dev)
    block_clean = key[None, None, :] < start[:, :, None]  # (N, R, T)
    if window is not None:
        block_clean &= (qpos[:, :, None] - key[None, None, :]) < window
    same = layout["block"][:, :, None] == layout["block"][:, None, :]
    block_block = same & layout["valid"][:, None, :]
    block_block |= torch.eye(r, dtype=torch.bool, device=dev)  # never empty
    top = torch.cat([clean, clean.new_zeros(n, t, r)], 2)
    bottom = torch.cat([block_clean, block_block], 2)
    k = cfg.cross_attn_k
    slots = torch.arange(lengths.shape[1], device=dev).repeat_interleave(k)
    block_cross = layout["latent"][:, :, None] == slots[None, None, :]
    return {"self": torch.cat([top, bottom], 1),
            "cross": torch.cat([base["dec_cross"], block_cross], 1),
            "base": base}


class BLTD(BLT):
    """A BLT with a diffusion-trained decoder; still an ordinary BLT for AR."""

    def __init__(self, cfg: BLTDConfig | None = None, *, seed: int = 0) -> None:
        cfg = cfg or BLTDConfig()
        super().__init__(cfg.blt, seed=seed)
        self.dcfg = cfg
        self.block_embedding = nn.Embedding(cfg.blt.vocab_size, cfg.blt.decoder.dim)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            self.block_embedding.weight.copy_(
                torch.randn(self.block_embedding.weight.shape, generator=gen) * 0.02)
        self.index_embedding = None
        if cfg.block_index:
            self.index_embedding = nn.Embedding(MAX_BLOCK, cfg.blt.decoder.dim)
            with torch.no_grad():
                self.index_embedding.weight.copy_(
                    torch.randn(self.index_embedding.weight.shape, generator=gen) * 0.1)

    @property
    def block_size(self) -> int:
        return self.dcfg.block_size

    def block_input(self, block_in: torch.Tensor, h: torch.Tensor,
                    start: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Decoder input of block rows (N, R, D).

        ``block_in`` (N, R) block tokens, ``h`` (N, T, D) encoder states,
        ``start`` (N, R) the first token of each row's block (>= 1),
        ``cell`` (N, R) each row's index inside its block.
        """
        x = self.block_embedding(block_in)  # (N, R, D)
        if self.index_embedding is not None:
            x = x + self.index_embedding(cell)
        if self.dcfg.block_context:
            idx = (start - 1).clamp(min=0)[:, :, None].expand(-1, -1, h.shape[-1])
            x = x + torch.gather(h, 1, idx)
        return x

    @property
    def train_block_sizes(self) -> tuple[int, ...]:
        return self.dcfg.train_block_sizes or (self.dcfg.block_size,)

    def init_from_blt(self, state: dict[str, torch.Tensor]) -> None:
        """Start from a trained BLT's weights (warm start).

        Every BLT tensor is copied; ``block_embedding`` starts as the
        encoder's byte embedding rescaled to unit RMS x 0.25, a trained
        byte-aware table of a size comparable to the encoder states.
        """
        missing, unexpected = self.load_state_dict(state, strict=False)
        new = {"block_embedding.weight", "index_embedding.weight"}
        if unexpected or not set(missing) <= new:
            raise ValueError(f"not a matching BLT state: missing {missing}, "
                             f"unexpected {unexpected}")
        with torch.no_grad():
            e = self.local_encoder.embed_tokens.weight  # (V, D)
            self.block_embedding.weight.copy_(e / e.pow(2).mean().sqrt() * 0.25)

    def corrupt(self, ids: torch.Tensor, lengths: torch.Tensor,
                t: torch.Tensor, u: torch.Tensor, block_size: int | None = None,
                blocks: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Block inputs (N, R) with MASKs, the masked cells, and the layout.

        ``t`` (N,) is the mask rate of each example; ``u`` (N, R) uniform
        noise: a valid cell is masked when ``u < t``. ``block_size``
        defaults to the model's; ``blocks`` (N, M) picks the blocks
        (default all, see :func:`block_layout`).
        """
        seq_len = ids.shape[1]
        block_size = block_size or self.block_size
        check_block_size(block_size)
        layout = block_layout(lengths, seq_len, block_size, blocks)
        clean = torch.gather(ids, 1, layout["pos"].clamp(max=seq_len - 1))
        clean = clean.masked_fill(~layout["valid"], PAD_ID)  # (N, R) targets
        masked = layout["valid"] & (u < t[:, None])
        return clean.masked_fill(masked, MASK_ID), masked, {**layout, "target": clean}

    def diffusion_logits(self, ids: torch.Tensor, lengths: torch.Tensor,
                         block_in: torch.Tensor, layout: dict[str, torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean logits (N, T, V) and block logits (N, R, V) in one pass."""
        seq_len, n_patches = ids.shape[1], lengths.shape[1]
        m = diffusion_masks(self, lengths, seq_len, layout)
        base = m["base"]
        h, patches = self.local_encoder(ids, base["enc_ids"], n_patches,
                                        base["byte_self"], base["enc_cross"])
        latents = self.global_transformer(patches)  # (N, P, G)
        x = torch.cat([h, self.block_input(block_in, h, layout["start"],
                                           layout["pos"] - layout["start"])], 1)  # (N, T+R, D)
        clean_pos = torch.arange(seq_len, device=ids.device).expand(ids.shape[0], -1)
        pos = torch.cat([clean_pos, layout["pos"]], 1)  # (N, T+R)
        out = self.lm_head(self.local_decoder(x, latents, m["self"], m["cross"],
                                              positions=pos))
        return out[:, :seq_len], out[:, seq_len:]

    def loss(self, ids: torch.Tensor, patch_lengths: torch.Tensor,
             t: torch.Tensor | None = None,
             u: torch.Tensor | None = None,
             block_size: int | None = None,
             blocks: torch.Tensor | None = None) -> torch.Tensor:
        """``L_clean + mask_weight * L_mask``; without ``t``, ``L_clean`` only."""
        if t is None:
            return super().loss(ids, patch_lengths)
        t = t.clamp(min=self.dcfg.t_min)
        block_in, masked, layout = self.corrupt(ids, patch_lengths, t, u,
                                                block_size, blocks)
        clean_logits, block_logits = self.diffusion_logits(
            ids, patch_lengths, block_in, layout)
        lc = clean_logits[:, :-1]
        l_clean = F.cross_entropy(lc.reshape(-1, lc.shape[-1]),
                                  ids[:, 1:].reshape(-1), ignore_index=PAD_ID)
        ce = F.cross_entropy(block_logits.transpose(1, 2), layout["target"],
                             reduction="none")  # (N, R)
        weighted = (ce * masked / t[:, None]).sum()
        l_mask = weighted / layout["valid"].sum().clamp(min=1)
        return l_clean + self.dcfg.mask_weight * l_mask

    def param_counts(self) -> dict[str, int]:
        counts = super().param_counts()
        emb = self.block_embedding.weight.numel()
        if self.index_embedding is not None:
            emb += self.index_embedding.weight.numel()
        counts["embeddings"] += emb  # lookup tables, excluded from Eq. 8
        return counts
