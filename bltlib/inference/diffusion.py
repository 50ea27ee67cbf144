"""BLT-D decoding: fill blocks of B bytes in a few parallel decoder steps.

Fast BLT Algorithm 1 (``reference/fast-blt.md`` section 4). Per block:

1. the prefix is patched and encoded and the global model runs once
   (every block starts on a forced patch boundary, so the latent of the
   patch before the block exists, as in training);
2. B MASK rows are appended; they attend to the cached clean prefix and
   to each other, and read that last latent;
3. each decoder step predicts every masked cell and commits a subset:
   **confidence** (every cell whose top probability exceeds ``alpha``,
   at least the most confident one; ``alpha = 0`` fills the block in one
   step) or **entropy-bounded (EB)** (cells sorted by entropy, the longest
   prefix with ``sum(H) - max(H) <= gamma``, at least one; the plain
   ``sum(H) <= gamma`` form with ``eb_plain_sum=True``);
4. the block's bytes join the prefix: one entropy-model call, one encoder
   call and one global call over the patches they complete. Their clean
   decoder rows are computed in the next block's first step.

Costs: ``decoder_calls`` = prefill + steps; ``global_calls`` = one per
block. Registered as ``generate(..., method="diffusion", block_size=B,
alpha=..., entropy_bound=...)``.
"""
from __future__ import annotations

import math

import torch

from bltlib.bytes import MASK_ID, OFFSET
from bltlib.inference.generate import Output, register
from bltlib.inference.sampling import SamplingConfig, distribution, mask_specials
from bltlib.inference.session import BLTSession
from bltlib.inference.stats import GenerationStats
from bltlib.model.blt_d import BLTD, check_block_size
from bltlib.model.layers import causal_mask


def commit_confidence(confidence: torch.Tensor, masked: torch.Tensor,
                      alpha: float) -> torch.Tensor:
    """Cells to commit (B,) bool: masked cells with confidence > alpha,
    or else the single most confident masked cell."""
    pick = masked & (confidence > alpha)
    if not pick.any():
        best = confidence.masked_fill(~masked, -1.0).argmax()
        pick = torch.zeros_like(masked)
        pick[best] = True
    return pick


def commit_entropy_bounded(entropy: torch.Tensor, masked: torch.Tensor,
                           gamma: float, plain_sum: bool = False) -> torch.Tensor:
    """Cells to commit (B,) bool by the EB rule, always at least one.

    Masked cells sorted by entropy ascending; commit the longest prefix
    with ``sum(H) - max(H) <= gamma`` (or ``sum(H) <= gamma``).
    """
    idx = torch.nonzero(masked).flatten()
    h = entropy[idx]
    order = torch.argsort(h, stable=True)
    hs = h[order]
    total = torch.cumsum(hs, 0)
    err = total if plain_sum else total - torch.cummax(hs, 0).values
    k = max(int((err <= gamma).sum()), 1)  # err is nondecreasing: a prefix
    pick = torch.zeros_like(masked)
    pick[idx[order[:k]]] = True
    return pick


class BlockSession(BLTSession):
    """A :class:`BLTSession` that appends whole blocks (BLT-D decoding)."""

    def __init__(self, bundle) -> None:
        if not isinstance(bundle.model, BLTD):
            raise TypeError("diffusion decoding needs a BLT-D model (trained "
                            "with block diffusion, e.g. recipe blt-d8-code)")
        super().__init__(bundle)
        self.pending: list[int] = []  # tokens whose decoder rows are not run

    @torch.no_grad()
    def append_block(self, raw: bytes) -> None:
        """Add committed bytes; the next byte opens a patch (forced)."""
        m, dev = self.model, self.device
        n, t0 = self.n_bytes, len(self.tokens)
        self.forced.add(n + len(raw))
        self.tokens.extend(b + OFFSET for b in raw)
        if self.stream is not None:
            self.stream.extend(raw)
        ctx = m.local_encoder.context_bytes
        window = torch.tensor([self.tokens[max(0, t0 - ctx + 1):]], device=dev)
        h = m.local_encoder.step(window, len(raw), self.enc_cache)  # (1, B, D)
        self.calls["encoder"] += 1
        self.enc_h.extend(h[0])
        vectors = []
        for i in range(n + 1, n + len(raw) + 1):  # pending starts of new bytes
            self.starts.append(self._next_start(i))
            if self.starts[-1]:  # byte i - 1 closes a patch
                first = self.patch_tok[-1]
                seg = torch.stack(self.enc_h[first:i + 1])[None]
                vectors.append(m.local_encoder.pool_one(seg))  # (1, K*D)
                self.patch_tok.append(i + 1)
        lat = m.global_transformer(torch.stack(vectors, 1),
                                   cache=self.glob_cache)  # (1, p, G)
        self.calls["global"] += 1
        self._keep_latents(m.local_decoder.cross_kv(lat), lat.shape[1])
        self.pending.extend(range(t0, len(self.tokens)))

    @torch.no_grad()
    def block_logits(self, block_in: list[int]) -> torch.Tensor:
        """One decoder step over the pending clean rows and a block: (B, V)."""
        m, dev = self.model, self.device
        start = self.dec_cache.length  # clean rows already cached
        t = len(self.tokens)  # the block's first token
        rows = self.pending
        n_clean, n_block = len(rows), len(block_in)
        x = torch.cat([torch.stack([self.enc_h[r] for r in rows])[None]
                       if rows else self.enc_h[0].new_zeros(1, 0, m.cfg.decoder.dim),
                       m.block_embedding(torch.tensor([block_in], device=dev))], 1)
        pos = torch.tensor([rows + list(range(t, t + n_block))], device=dev)
        total = start + n_clean + n_block
        mask = torch.zeros(n_clean + n_block, total, dtype=torch.bool, device=dev)
        window = m.cfg.decoder.sliding_window
        mask[:n_clean, :start + n_clean] = causal_mask(
            n_clean, start + n_clean, window=window, device=dev)
        key_pos = torch.arange(start + n_clean, device=dev)
        q_pos = torch.arange(t, t + n_block, device=dev)[:, None]
        mask[n_clean:, :start + n_clean] = (
            True if window is None else (q_pos - key_pos[None]) < window)
        mask[n_clean:, start + n_clean:] = True
        counts = torch.cumsum(torch.tensor(self.starts, device=dev), 0)
        latent_ids = [int(counts[r] - 1) for r in rows] + [len(self.patch_tok) - 2] * n_block
        used = sorted(set(latent_ids))
        kv = [(torch.cat([self.latent_kv[p][i][0] for p in used], 2),
               torch.cat([self.latent_kv[p][i][1] for p in used], 2))
              for i in range(len(m.local_decoder.cross_attn_layers))]
        slot = torch.tensor([used.index(p) for p in latent_ids], device=dev)
        cross = (slot[:, None] == torch.arange(len(used), device=dev)
                 .repeat_interleave(self.k)[None])[None]  # (1, rows, U*K)
        out = m.lm_head(m.local_decoder(x, None, mask[None], cross, positions=pos,
                                        cache=self.dec_cache, cross_kv=kv))[0]
        self.calls["decoder"] += 1
        self.dec_cache.rollback(start + n_clean)  # keep the clean rows only
        self.row_logits.extend(out[:n_clean])
        self.pending = []
        return out[n_clean:]


def _check(block_size: int, alpha: float | None, gamma: float | None) -> None:
    check_block_size(block_size)
    if alpha is not None and gamma is not None:
        raise ValueError("give alpha (confidence) or entropy_bound (EB), not both")
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                              or not 0 <= alpha <= 1):  # NaN fails too
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float))
                              or not 0 <= gamma < math.inf):
        raise ValueError(f"entropy_bound (gamma) must be a finite number >= 0, "
                         f"got {gamma!r}")


@register("diffusion")
def _diffusion(bundle, prompt: bytes, sampling: SamplingConfig,
               generator: torch.Generator | None, out: Output,
               stats: GenerationStats, block_size: int | None = None,
               alpha: float | None = None, entropy_bound: float | None = None,
               eb_plain_sum: bool = False) -> None:
    block_size = block_size if block_size is not None else getattr(
        bundle.model, "block_size", 8)
    _check(block_size, alpha, entropy_bound)
    if alpha is None and entropy_bound is None:
        alpha = 0.7  # the paper's main setting
    session = BlockSession(bundle)
    session.prefill(prompt, force_boundary=True)
    steps_per_block = []
    while True:
        cells = [MASK_ID] * block_size
        masked = torch.ones(block_size, dtype=torch.bool)
        steps = 0
        while masked.any():
            logits = session.block_logits(cells).float().cpu()  # (B, V)
            steps += 1
            probs = torch.softmax(mask_specials(logits), -1)
            if entropy_bound is not None:
                ent = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
                pick = commit_entropy_bounded(ent, masked, entropy_bound, eb_plain_sum)
            else:
                pick = commit_confidence(probs.max(-1).values, masked, alpha)
            for i in torch.nonzero(pick).flatten().tolist():
                if sampling.greedy:
                    cells[i] = int(probs[i].argmax())
                else:
                    p = distribution(logits[i], sampling)
                    cells[i] = int(torch.multinomial(p, 1, generator=generator))
            masked &= ~pick
        steps_per_block.append(steps)
        done = False
        for i, token in enumerate(cells):
            if out.add_id(token):
                done = True
                break
        if done:
            break
        session.append_block(bytes(c - OFFSET for c in cells))
    for name, n in session.calls.items():
        setattr(stats, f"{name}_calls", n)
    stats.entropy_calls = session.entropy_calls
    stats.extra.update(block_size=block_size, alpha=alpha,
                       entropy_bound=entropy_bound,
                       steps_per_block=sum(steps_per_block) / len(steps_per_block))
