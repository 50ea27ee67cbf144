"""BLT-S and BLT-DV: draft cheaply, then verify with one full pass.

Fast BLT Algorithm 2 (``reference/fast-blt.md`` sections 5-7). Every
round starts from an exact next byte ``c`` (the full model's choice after
the verified prefix) and:

1. **drafts** bytes after ``c``:

   * BLT-S (``method="speculative"``, plain BLT weights): the local
     decoder continues autoregressively for ``draft_len`` = k bytes under
     the newest complete latent, past any patch boundary (encoder and
     decoder calls only; no entropy model, no global call);
   * BLT-DV (``method="diffusion-verify"``, BLT-D weights): a block of B
     cells ``[c, MASK, ..., MASK]`` right after the prefix is filled by
     block diffusion (one step by default, or by ``alpha`` / EB ``gamma``);

2. **verifies** ``c`` + draft with one pass of every component over those
   bytes (:meth:`BLTSession.extend`: natural re-patching, encoder, one
   global call over the patches they complete, decoder rows);
3. keeps the longest draft prefix the verifier agrees with, rolls every
   cache back to it, and takes the verifier's own byte after it as the
   next ``c`` (on a full match that is the bonus byte).

Greedy (``temperature = 0``) agreement is argmax equality, so the output
is byte-for-byte the AR output of the same weights. With sampling the
rule is Leviathan et al. / Chen et al.'s: accept a drafted byte x with
probability ``min(1, p(x) / q(x))``; on rejection draw from
``norm(max(0, p - q))``. ``q`` is the draft's distribution (the decoder's
under the stale latent for BLT-S; the marginal a cell was committed from
for BLT-DV), ``p`` the full model's. The output then follows the AR
model's sampling distribution exactly.

Choices (the paper is silent): k counts the bytes drafted per
verification, after ``c``; a verification pass counts one call of each
component (the global one only when a patch completes). Drafting costs
encoder calls too, because the reference decoder reads encoder byte
states. Stats add ``drafted_bytes``, ``accepted_bytes`` and ``verify_calls``.
"""
from __future__ import annotations

import torch

from bltlib.bytes import EOS_ID, MASK_ID, OFFSET
from bltlib.inference import diffusion  # attributes read at call time (import cycle)
from bltlib.inference.generate import Output, register
from bltlib.inference.sampling import SamplingConfig, choose, distribution
from bltlib.inference.session import BLTSession
from bltlib.inference.stats import GenerationStats
from bltlib.model.blt_d import BLTD

MAX_DRAFT = 64


def check_draft_len(draft_len: int) -> None:
    if isinstance(draft_len, bool) or not isinstance(draft_len, int) \
            or not 1 <= draft_len <= MAX_DRAFT:
        raise ValueError(f"draft_len (k) must be an integer in [1, {MAX_DRAFT}] "
                         f"(the paper uses 4, 8, 16), got {draft_len!r}")


def accept(drafts: list[int], q: list[torch.Tensor | None], rows: torch.Tensor,
           sampling: SamplingConfig, generator: torch.Generator | None
           ) -> tuple[int, int]:
    """Verify draft ids against the full model: (accepted count, next id).

    ``rows`` (n, V): row j is the full model's logits for the id after
    draft j - 1 (row 0 follows ``c``). Greedy: accept while the argmax equals the draft; the next id is the
    verifier's argmax. Sampling: the speculative rule with draft
    distributions ``q``.
    """
    for j, d in enumerate(drafts):
        if sampling.greedy:
            v = choose(rows[j], sampling, None)
            if v != d:
                return j, v
            continue
        p = distribution(rows[j], sampling)
        qj = q[j]
        ratio = p[d] / qj[d] if qj[d] > 0 else torch.tensor(1.0)
        u = torch.rand((), generator=generator)
        if u < ratio:
            continue
        residual = (p - qj).clamp(min=0)
        if residual.sum() <= 0:
            residual = p
        nxt = int(torch.multinomial(residual / residual.sum(), 1, generator=generator))
        return j, nxt
    return len(drafts), choose(rows[len(drafts)], sampling, generator)


def _verify_round(session: BLTSession, c: int, drafts: list[int],
                  q: list[torch.Tensor | None], sampling: SamplingConfig,
                  generator: torch.Generator | None, stats: GenerationStats
                  ) -> tuple[int, int]:
    """Verify ``c`` + drafts (ids); roll back to the accepted prefix."""
    n0 = session.n_bytes
    rows = session.extend(bytes(t - OFFSET for t in [c] + drafts))  # (1+n, V)
    m, nxt = accept(drafts, q, rows.float().cpu(), sampling, generator)
    if m < len(drafts):
        session.rollback(n0 + 1 + m)
    stats.drafted_bytes += len(drafts)
    stats.accepted_bytes += m
    stats.verify_calls += 1
    return m, nxt


def _run(session: BLTSession, prompt: bytes, draft_fn, sampling: SamplingConfig,
         generator: torch.Generator | None, out: Output,
         stats: GenerationStats) -> None:
    """The shared loop: ``draft_fn(c, n) -> (draft ids, q)`` then verify."""
    c = choose(session.prefill(prompt), sampling, generator)
    while not out.add_id(c):
        room = out.limit - len(out.data)  # bytes still allowed after c
        drafts, q = draft_fn(c, room) if room > 0 else ([], [])
        m, nxt = _verify_round(session, c, drafts, q, sampling, generator, stats)
        if any(out.add_id(d) for d in drafts[:m]):
            break
        c = nxt
    session.report(stats)


@register("speculative")
def _speculative(bundle, prompt: bytes, sampling: SamplingConfig,
                 generator: torch.Generator | None, out: Output,
                 stats: GenerationStats, draft_len: int = 8) -> None:
    check_draft_len(draft_len)
    session = BLTSession(bundle)

    def draft(c: int, room: int) -> tuple[list[int], list[torch.Tensor | None]]:
        n0 = session.n_bytes
        ids: list[int] = []
        q: list[torch.Tensor | None] = []
        logits = session.draft_push(c - OFFSET)
        while len(ids) < min(draft_len, room):
            d = choose(logits, sampling, generator)
            if d == EOS_ID:  # a draft never crosses an end of text
                break
            ids.append(d)
            q.append(None if sampling.greedy else distribution(logits.float().cpu(),
                                                               sampling))
            if len(ids) < min(draft_len, room):
                logits = session.draft_push(d - OFFSET)
        session.rollback(n0)  # forget the draft rows; verify recomputes them
        return ids, q

    _run(session, prompt, draft, sampling, generator, out, stats)
    stats.extra.update(draft_len=draft_len)


@register("diffusion-verify")
def _diffusion_verify(bundle, prompt: bytes, sampling: SamplingConfig,
                      generator: torch.Generator | None, out: Output,
                      stats: GenerationStats, block_size: int | None = None,
                      alpha: float | None = None,
                      entropy_bound: float | None = None,
                      eb_plain_sum: bool = False) -> None:
    if not isinstance(bundle.model, BLTD):
        raise TypeError("diffusion-verify needs a BLT-D model (trained with "
                        "block diffusion, e.g. recipe blt-d-code)")
    block_size = block_size if block_size is not None else bundle.model.block_size
    diffusion.check_options(block_size, alpha, entropy_bound)
    if alpha is None and entropy_bound is None:
        alpha = 0.0  # one denoising step per draft
    session = BLTSession(bundle)
    steps: list[int] = []

    def draft(c: int, room: int) -> tuple[list[int], list[torch.Tensor | None]]:
        def step(cells: list[int]) -> torch.Tensor:
            return session._decode([], diffusion.block_rows(session, cells))

        cells, n, marg = diffusion.denoise_block(step, [c] + [MASK_ID] * (block_size - 1),
                                       sampling, generator, alpha,
                                       entropy_bound, eb_plain_sum)
        steps.append(n)
        ids = cells[1:min(block_size, room + 1)]
        if EOS_ID in ids:  # a draft never crosses an end of text
            ids = ids[:ids.index(EOS_ID)]
        return ids, [marg.get(i + 1) for i in range(len(ids))]

    _run(session, prompt, draft, sampling, generator, out, stats)
    stats.extra.update(block_size=block_size, alpha=alpha,
                       entropy_bound=entropy_bound,
                       steps_per_block=sum(steps) / len(steps) if steps else 0.0)
