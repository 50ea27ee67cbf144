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
when it completes a patch.
"""
from __future__ import annotations

import torch

from bltlib.bytes import BOS_ID, OFFSET
from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.entropy_stream import EntropyStream
from bltlib.model.cache import StackCache
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
        self.patch_tok: list[int] = []  # first token of every patch
        self.enc_h: list[torch.Tensor] = []  # (D,) final encoder state per token
        # per complete patch: the decoder's cross-attention keys/values of
        # its latent, one (k, v) pair (1, H, K, Dh) per cross-attention layer
        self.latent_kv: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.row_logits: list[torch.Tensor] = []  # (V,) per decoder row
        self.calls = {"encoder": 0, "global": 0, "decoder": 0}
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
            self.starts.append(self._next_start(i))
            if self.starts[-1]:
                self.patch_tok.append(i + 1)
        ids = torch.tensor([self.tokens], device=dev)  # (1, T)
        h = m.local_encoder.step(ids, ids.shape[1], self.enc_cache)  # (1, T, D)
        self.calls["encoder"] += 1
        self.enc_h = list(h[0])
        n_done = len(self.patch_tok) - 1  # the last patch is still open
        tok = torch.arange(ids.shape[1], device=dev)
        bounds = torch.tensor(self.patch_tok[1:], device=dev)
        enc_ids = torch.bucketize(tok, bounds, right=True)  # (T,) patch of token
        enc_ids = enc_ids.masked_fill(enc_ids >= n_done, -1)[None]
        slots = torch.arange(n_done, device=dev).repeat_interleave(self.k)
        cross = slots[None, :, None] == enc_ids[:, None, :]  # (1, P*K, T)
        layer = (m.cfg.encoder.n_layers - 1
                 if m.cfg.encoder_cross_all_layers and m.cfg.encoder.n_layers else 0)
        pe = m.local_encoder.pool(h, enc_ids, n_done, cross, layer)
        latents = m.global_transformer(pe.reshape(1, n_done, -1),
                                       cache=self.glob_cache)  # (1, P, G)
        self.calls["global"] += 1
        kv = m.local_decoder.cross_kv(latents)  # per layer (1, H, P*K, Dh)
        self._keep_latents(kv, n_done)
        counts = torch.cumsum(torch.tensor(self.starts, device=dev), 0)
        dec_ids = counts - 1  # (T,) row t reads patch count(starts[0..t]) - 1
        dec_cross = dec_ids[None, :, None] == slots[None, None, :]  # (1, T, P*K)
        out = m.local_decoder(h, None, None, dec_cross, cache=self.dec_cache,
                              cross_kv=kv)
        self.calls["decoder"] += 1
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
        self.calls["encoder"] += 1
        self.enc_h.append(h[0, 0])
        self.starts.append(self._next_start(n + 1))
        if self.starts[-1]:  # byte n closes its patch: run the global model
            first = self.patch_tok[-1]
            seg = torch.stack(self.enc_h[first:t + 1])[None]  # (1, n_p, D)
            pe = m.local_encoder.pool_one(seg)  # (1, K*D)
            lat = m.global_transformer(pe[:, None], cache=self.glob_cache)
            self.calls["global"] += 1
            self._keep_latents(m.local_decoder.cross_kv(lat), 1)
            self.patch_tok.append(t + 1)
        kv = self.latent_kv[len(self.patch_tok) - 2]  # the latent row t reads
        out = m.local_decoder(h, None, None, None, cache=self.dec_cache,
                              cross_kv=kv)
        self.calls["decoder"] += 1
        self.row_logits.append(m.lm_head(out)[0, 0])
        return self.logits

    def rollback(self, n_bytes: int) -> torch.Tensor:
        """Forget every byte from index ``n_bytes`` on; the next logits (V,)."""
        if not 1 <= n_bytes <= self.n_bytes:
            raise ValueError(f"cannot roll {self.n_bytes} bytes back to {n_bytes}")
        keep = n_bytes + 1  # tokens
        self.forced = {i for i in self.forced if i <= n_bytes}
        del self.tokens[keep:], self.starts[keep:], self.enc_h[keep:]
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
