"""The KV-cached BLT: prefill a prompt, push bytes, roll back.

A :class:`BLTSession` holds every cache of one generation:

* the entropy model's (:class:`~bltlib.inference.entropy_stream.EntropyStream`),
  which says whether the *next* byte opens a patch;
* the local encoder's byte keys/values and final byte states;
* the global transformer's patch keys/values, and each finished patch
  latent projected for the decoder's cross-attention;
* the local decoder's byte keys/values, and the logits of every row.

Index conventions. Bytes are numbered from 0; token ``t`` is BOS for
``t = 0`` and byte ``t - 1`` otherwise. Decoder row ``t`` predicts byte
``t`` (token ``t + 1``) and reads the latent of the patch *before* the
one that byte opens or continues (BLT's rule, see ``bltlib.model.blt``).
Patch 0 is BOS alone. A patch is *complete* once the byte after it is
known to open a new patch, and only then does the global model see it:
the latent a row reads is always complete, so caching is exact.

Costs. Every forward of a component counts one call, whatever its
length: the prefill is one call of each; each pushed byte is one call
of the entropy model, the encoder and the decoder, and one global call
when it completes a patch. ``call_rows`` keeps the length (rows) of
every call, for a cost model that knows a 16-row call is not a 1-row
one (:func:`bltlib.inference.bench.row_predicted_seconds`).
"""
from __future__ import annotations

import torch

from bltlib.bytes import BOS_ID, OFFSET
from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.entropy_stream import EntropyStream
from bltlib.model.cache import StackCache
from bltlib.model.layers import causal_mask
from bltlib.patching import next_start


class BLTSession:
    """Incremental BLT forward passes for one sequence (batch 1)."""

    def __init__(self, bundle: PatchedBLT) -> None:
        self.bundle = bundle
        self.model = m = bundle.model
        self.device = bundle.device
        self.k = m.cfg.cross_attn_k
        self.stream = (EntropyStream(bundle.entropy_model)
                       if bundle.patcher.mode == "entropy" else None)
        self.enc_cache = StackCache(m.cfg.encoder.n_layers)
        self.glob_cache = StackCache(m.cfg.global_model.n_layers)
        self.dec_cache = StackCache(m.cfg.decoder.n_layers)
        self.tokens: list[int] = []  # BOS + byte ids
        self.starts: list[bool] = []  # starts[i]: byte i opens a patch (i <= n)
        # row_patch[t]: the latent decoder row t reads, sum(starts[:t+1]) - 1
        self.row_patch: list[int] = []
        self.patch_tok: list[int] = []  # first token of every patch
        self.enc_h: list[torch.Tensor] = []  # (D,) final encoder state per token
        # per complete patch: the decoder's cross-attention keys/values of
        # its latent, one (k, v) pair (1, H, K, Dh) per cross-attention layer
        self.latent_kv: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.row_logits: list[torch.Tensor] = []  # (V,) per decoder row
        self.calls = {"encoder": 0, "global": 0, "decoder": 0}
        self.call_rows: dict[str, list[int]] = {k: [] for k in self.calls}
        self.forced: set[int] = set()  # byte indices forced to open a patch

    # -- bookkeeping -----------------------------------------------------
    @property
    def n_bytes(self) -> int:
        return len(self.tokens) - 1

    @property
    def raw(self) -> bytes:
        return bytes(t - OFFSET for t in self.tokens[1:])

    @property
    def entropy_calls(self) -> int:
        return self.stream.calls if self.stream is not None else 0

    @property
    def logits(self) -> torch.Tensor:
        """Next-byte logits (V,) after the last byte."""
        return self.row_logits[-1]

    def _next_start(self, index: int) -> bool:
        if index in self.forced:
            return True
        e = self.stream.values if self.stream is not None else None
        return next_start(self.bundle.patcher, index, self.patch_tok[-1] - 1,
                          e[index] if e else None,
                          e[index - 1] if e and index else None)

    def _add_start(self, index: int) -> bool:
        """Decide whether byte ``index`` opens a patch, and record it."""
        start = self._next_start(index)
        self.starts.append(start)
        self.row_patch.append((self.row_patch[-1] if self.row_patch else -1)
                              + start)
        return start

    def _count(self, component: str, rows: int) -> None:
        self.calls[component] += 1
        self.call_rows[component].append(rows)

    def report(self, stats) -> None:
        """Copy the call counts (and rows per call) into ``stats``."""
        for name, n in self.calls.items():
            setattr(stats, f"{name}_calls", n)
        stats.entropy_calls = self.entropy_calls
        stats.call_rows = {**{k: list(v) for k, v in self.call_rows.items()},
                           "entropy": list(self.stream.call_rows)
                           if self.stream is not None else []}

    def _keep_latents(self, kv: list[tuple[torch.Tensor, torch.Tensor]],
                      n_new: int) -> None:
        """Store the decoder keys/values of ``n_new`` new latents, per patch."""
        k = self.k
        for p in range(n_new):
            self.latent_kv.append([(a[:, :, p * k:(p + 1) * k],
                                    b[:, :, p * k:(p + 1) * k]) for a, b in kv])

    # -- the three operations ------------------------------------------------
    @torch.no_grad()
    def prefill(self, raw: bytes, force_boundary: bool = False) -> torch.Tensor:
        """Read BOS + ``raw`` in one pass of each component; next logits (V,).

        ``force_boundary`` makes the next byte open a patch whatever its
        entropy, so the prompt's last patch is complete and its latent
        ready (the block decoders start every block on a boundary).
        """
        if self.tokens:
            raise RuntimeError("a session is prefilled once")
        if not raw:
            raise ValueError("the prompt is empty")
        if force_boundary:
            self.forced.add(len(raw))
        m, dev = self.model, self.device
        if self.stream is not None:
            self.stream.prefill(raw)
        self.tokens = [BOS_ID] + [b + OFFSET for b in raw]
        self.patch_tok = [0]
        for i in range(len(raw) + 1):  # byte len(raw) is the pending one
            if self._add_start(i):
                self.patch_tok.append(i + 1)
        ids = torch.tensor([self.tokens], device=dev)  # (1, T)
        h = m.local_encoder.step(ids, ids.shape[1], self.enc_cache)  # (1, T, D)
        self._count("encoder", ids.shape[1])
        self.enc_h = list(h[0])
        n_done = len(self.patch_tok) - 1  # the last patch is still open
        pt = self.patch_tok
        pe = m.local_encoder.pool_spans(  # (1, P, K*D); the open patch ignored
            h, [b - a for a, b in zip(pt, pt[1:])])
        latents = m.global_transformer(pe, cache=self.glob_cache)  # (1, P, G)
        self._count("global", n_done)
        kv = m.local_decoder.cross_kv(latents)  # per layer (1, H, P*K, Dh)
        self._keep_latents(kv, n_done)
        slots = torch.arange(n_done, device=dev).repeat_interleave(self.k)
        dec_ids = torch.tensor(self.row_patch, device=dev)  # (T,) patch per row
        dec_cross = dec_ids[None, :, None] == slots[None, None, :]  # (1, T, P*K)
        out = m.local_decoder(h, None, None, dec_cross, cache=self.dec_cache,
                              cross_kv=kv)
        self._count("decoder", ids.shape[1])
        self.row_logits = list(m.lm_head(out)[0])  # T x (V,)
        return self.logits

    @torch.no_grad()
    def push(self, byte: int) -> torch.Tensor:
        """Append one byte (0..255); return the next byte's logits (V,)."""
        if not self.tokens:
            raise RuntimeError("prefill the session first")
        m, dev = self.model, self.device
        n = self.n_bytes  # index of the new byte
        self.tokens.append(byte + OFFSET)
        t = n + 1  # its token
        if self.stream is not None:
            self.stream.push(byte)
        ctx = m.local_encoder.context_bytes
        window = torch.tensor([self.tokens[max(0, t - ctx + 1):]], device=dev)
        h = m.local_encoder.step(window, 1, self.enc_cache)  # (1, 1, D)
        self._count("encoder", 1)
        self.enc_h.append(h[0, 0])
        if self._add_start(n + 1):  # byte n closes its patch: run the global model
            first = self.patch_tok[-1]
            seg = torch.stack(self.enc_h[first:t + 1])[None]  # (1, n_p, D)
            pe = m.local_encoder.pool_one(seg)  # (1, K*D)
            lat = m.global_transformer(pe[:, None], cache=self.glob_cache)
            self._count("global", 1)
            self._keep_latents(m.local_decoder.cross_kv(lat), 1)
            self.patch_tok.append(t + 1)
        kv = self.latent_kv[len(self.patch_tok) - 2]  # the latent row t reads
        out = m.local_decoder(h, None, None, None, cache=self.dec_cache,
                              cross_kv=kv)
        self._count("decoder", 1)
        self.row_logits.append(m.lm_head(out)[0, 0])
        return self.logits

    # -- many bytes at once: blocks, verification, drafts ------------------
    def _ingest(self, raw: bytes) -> int:
        """Add bytes without decoder rows; returns their first token.

        One entropy-model call, one encoder call and, when the bytes
        complete patches, one global call over all of them.
        """
        m, dev = self.model, self.device
        n, t0 = self.n_bytes, len(self.tokens)
        self.tokens.extend(b + OFFSET for b in raw)
        if self.stream is not None:
            self.stream.extend(raw)
        ctx = m.local_encoder.context_bytes
        window = torch.tensor([self.tokens[max(0, t0 - ctx + 1):]], device=dev)
        h = m.local_encoder.step(window, len(raw), self.enc_cache)  # (1, n, D)
        self._count("encoder", len(raw))
        self.enc_h.extend(h[0])
        n_old = len(self.patch_tok)
        for i in range(n + 1, n + len(raw) + 1):  # pending starts of new bytes
            if self._add_start(i):  # byte i - 1 closes a patch
                self.patch_tok.append(i + 1)
        bounds = self.patch_tok[n_old - 1:]  # first tokens of closed patches + 1
        if len(bounds) > 1:  # pool every closed patch in one call
            p = len(bounds) - 1
            seg = torch.stack(self.enc_h[bounds[0]:bounds[-1]])[None]  # (1, L, D)
            pe = m.local_encoder.pool_spans(
                seg, [b - a for a, b in zip(bounds, bounds[1:])])  # (1, p, K*D)
            lat = m.global_transformer(pe, cache=self.glob_cache)  # (1, p, G)
            self._count("global", p)
            self._keep_latents(m.local_decoder.cross_kv(lat), p)
        return t0

    def _decode(self, rows: list[int], block: torch.Tensor | None = None
                ) -> torch.Tensor | None:
        """One decoder call over clean ``rows`` and, optionally, a block.

        ``rows`` are the next undecoded tokens, in order; their logits join
        ``row_logits`` and their keys/values stay cached. ``block`` (1, B, D)
        holds decoder inputs of B rows right after the last token that see
        every clean row and each other and read the newest complete
        latent (BLT-D); they are not cached. Returns the block's logits
        (B, V), or None.
        """
        m, dev = self.model, self.device
        start = self.dec_cache.length  # clean rows already cached
        t = len(self.tokens)  # a block's first token
        n_clean = len(rows)
        n_block = 0 if block is None else block.shape[1]
        parts = [torch.stack([self.enc_h[r] for r in rows])[None]] if rows else []
        x = torch.cat(parts + ([block] if block is not None else []), 1)
        pos = torch.tensor([rows + list(range(t, t + n_block))], device=dev)
        total = start + n_clean + n_block
        mask = torch.zeros(n_clean + n_block, total, dtype=torch.bool, device=dev)
        window = m.cfg.decoder.sliding_window
        mask[:n_clean, :start + n_clean] = causal_mask(
            n_clean, start + n_clean, window=window, device=dev)
        if n_block:
            key_pos = torch.arange(start + n_clean, device=dev)
            q_pos = torch.arange(t, t + n_block, device=dev)[:, None]
            mask[n_clean:, :start + n_clean] = (
                True if window is None else (q_pos - key_pos[None]) < window)
            mask[n_clean:, start + n_clean:] = True
        latent_ids = ([self.row_patch[r] for r in rows]
                      + [len(self.patch_tok) - 2] * n_block)
        used = sorted(set(latent_ids))
        kv = [(torch.cat([self.latent_kv[p][i][0] for p in used], 2),
               torch.cat([self.latent_kv[p][i][1] for p in used], 2))
              for i in range(len(m.local_decoder.cross_attn_layers))]
        slot = torch.tensor([used.index(p) for p in latent_ids], device=dev)
        cross = (slot[:, None] == torch.arange(len(used), device=dev)
                 .repeat_interleave(self.k)[None])[None]  # (1, rows, U*K)
        out = m.lm_head(m.local_decoder(x, None, mask[None], cross, positions=pos,
                                        cache=self.dec_cache, cross_kv=kv))[0]
        self._count("decoder", n_clean + n_block)
        self.dec_cache.rollback(start + n_clean)  # keep the clean rows only
        self.row_logits.extend(out[:n_clean])
        return out[n_clean:] if n_block else None

    @torch.no_grad()
    def extend(self, raw: bytes) -> torch.Tensor:
        """Append several bytes in one call of each component.

        The same caches and logits as pushing them one by one (natural
        patching); returns the logits (len(raw), V) of their rows: row j
        predicts the byte after ``raw[j]``. This is BLT-S / BLT-DV's
        verification pass.
        """
        if not self.tokens:
            raise RuntimeError("prefill the session first")
        if not raw:
            raise ValueError("extend needs at least one byte")
        t0 = self._ingest(raw)
        self._decode(list(range(t0, len(self.tokens))))
        return torch.stack(self.row_logits[t0:])

    @torch.no_grad()
    def draft_push(self, byte: int) -> torch.Tensor:
        """BLT-S drafting: append a byte under the newest complete latent.

        Runs the encoder and the decoder only (no entropy model, no global
        call): the row reads ``latent_kv[-1]`` even past a patch boundary.
        Returns its logits (V,). The patch bookkeeping is not updated, so
        a draft must be undone with :meth:`rollback` before anything else.
        """
        m, dev = self.model, self.device
        self.tokens.append(byte + OFFSET)
        t = len(self.tokens) - 1
        ctx = m.local_encoder.context_bytes
        window = torch.tensor([self.tokens[max(0, t - ctx + 1):]], device=dev)
        h = m.local_encoder.step(window, 1, self.enc_cache)  # (1, 1, D)
        self._count("encoder", 1)
        self.enc_h.append(h[0, 0])
        out = m.local_decoder(h, None, None, None, cache=self.dec_cache,
                              cross_kv=self.latent_kv[-1])
        self._count("decoder", 1)
        return m.lm_head(out)[0, 0]

    def rollback(self, n_bytes: int) -> torch.Tensor:
        """Forget every byte from index ``n_bytes`` on; the next logits (V,)."""
        if not 1 <= n_bytes <= self.n_bytes:
            raise ValueError(f"cannot roll {self.n_bytes} bytes back to {n_bytes}")
        keep = n_bytes + 1  # tokens
        self.forced = {i for i in self.forced if i <= n_bytes}
        del self.tokens[keep:], self.starts[keep:], self.enc_h[keep:]
        del self.row_patch[keep:]
        del self.row_logits[keep:]
        if self.stream is not None:
            self.stream.rollback(n_bytes)
        self.patch_tok = [p for p in self.patch_tok if p <= keep]
        n_done = len(self.patch_tok) - 1
        del self.latent_kv[n_done:]
        self.enc_cache.rollback(keep)
        self.dec_cache.rollback(keep)
        self.glob_cache.rollback(n_done)
        return self.logits
