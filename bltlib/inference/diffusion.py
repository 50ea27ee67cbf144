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
from collections.abc import Callable

import torch

from bltlib.bytes import MASK_ID, OFFSET
from bltlib.inference.generate import Output, register
from bltlib.inference.sampling import SamplingConfig, distribution, mask_specials
from bltlib.inference.session import BLTSession
from bltlib.inference.stats import GenerationStats
from bltlib.model.blt_d import BLTD, check_block_size


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
        self.forced.add(self.n_bytes + len(raw))
        t0 = self._ingest(raw)
        self.pending.extend(range(t0, len(self.tokens)))

    @torch.no_grad()
    def block_logits(self, block_in: list[int]) -> torch.Tensor:
        """One decoder step over the pending clean rows and a block: (B, V)."""
        out = self._decode(self.pending, block_rows(self, block_in))
        self.pending = []
        return out


def block_rows(session: BLTSession, block_in: list[int]) -> torch.Tensor:
    """Decoder inputs (1, B, D) of a block right after the session's bytes."""
    m, dev = session.model, session.device
    t = len(session.tokens)  # the block's first token; t - 1 is visible
    ids = torch.tensor([block_in], device=dev)  # (1, B)
    cell = torch.arange(ids.shape[1], device=dev)[None]  # (1, B)
    return m.block_input(ids, session.enc_h[t - 1][None, None],
                         torch.ones_like(ids), cell)


def denoise_block(step: Callable[[list[int]], torch.Tensor], cells: list[int],
                  sampling: SamplingConfig, generator: torch.Generator | None,
                  alpha: float | None, entropy_bound: float | None,
                  eb_plain_sum: bool = False
                  ) -> tuple[list[int], int, dict[int, torch.Tensor]]:
    """Fill the MASK cells of a block, a subset per decoder step.

    ``step(cells)`` returns the block's logits (B, V). Commits by EB when
    ``entropy_bound`` is given, else by confidence ``alpha``. Returns the
    filled cells, the number of steps and, per filled cell, the
    distribution it was drawn from (BLT-DV's draft q).
    """
    cells = list(cells)
    masked = torch.tensor([c == MASK_ID for c in cells])
    marginals: dict[int, torch.Tensor] = {}
    steps = 0
    while masked.any():
        logits = step(cells).float().cpu()  # (B, V)
        steps += 1
        probs = torch.softmax(mask_specials(logits), -1)
        if entropy_bound is not None:
            ent = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1)
            pick = commit_entropy_bounded(ent, masked, entropy_bound, eb_plain_sum)
        else:
            pick = commit_confidence(probs.max(-1).values, masked, alpha)
        chosen = torch.nonzero(pick).flatten().tolist()
        if sampling.greedy:  # one argmax over the block, one list
            for i, token in zip(chosen, probs[chosen].argmax(-1).tolist()):
                cells[i] = token
                marginals[i] = probs[i]
        else:
            for i in chosen:
                p = distribution(logits[i], sampling)
                cells[i] = int(torch.multinomial(p, 1, generator=generator))
                marginals[i] = p
        masked &= ~pick
    return cells, steps, marginals


def check_options(block_size: int, alpha: float | None, gamma: float | None) -> None:
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
    check_options(block_size, alpha, entropy_bound)
    if alpha is None and entropy_bound is None:
        alpha = 0.7  # the paper's main setting
    session = BlockSession(bundle)
    session.prefill(prompt, force_boundary=True)
    steps_per_block = []
    while True:
        cells, steps, _ = denoise_block(
            session.block_logits, [MASK_ID] * block_size, sampling, generator,
            alpha, entropy_bound, eb_plain_sum)
        steps_per_block.append(steps)
        done = False
        for i, token in enumerate(cells):
            if out.add_id(token):
                done = True
                break
        if done:
            break
        session.append_block(bytes(c - OFFSET for c in cells))
    session.report(stats)
    stats.extra.update(block_size=block_size, alpha=alpha,
                       entropy_bound=entropy_bound,
                       steps_per_block=sum(steps_per_block) / len(steps_per_block))
