"""The entropy model, fed one byte at a time with a KV cache.

It reproduces :func:`bltlib.entropy.entropies` exactly, chunking
included: bytes are scored in chunks of ``chunk_len`` (the model's
``max_seq_len - 1``), each read after its own BOS. After ``n`` bytes the
stream knows ``H(x_i | x_<i)`` for every ``i <= n``; the last value is
the entropy of the *next*, not yet generated, byte, which decides
whether that byte opens a patch.

Index convention: ``values[i]`` is the entropy of byte ``i`` (bytes, not
tokens; BOS is not a byte).
"""
from __future__ import annotations

import torch

from bltlib.bytes import BOS_ID, OFFSET
from bltlib.entropy import EntropyModel, entropies, entropy_of_logits


class EntropyStream:
    """Incremental next-byte entropies with rollback; counts model calls.

    The cache holds BOS followed by ``raw[cache_start:]``, the bytes of
    the open chunk; BOS is at position 0 of every chunk, so rolling the
    cache back to length 1 starts a fresh chunk.
    """

    def __init__(self, model: EntropyModel, chunk_len: int | None = None) -> None:
        self.model = model
        self.chunk = chunk_len or model.cfg.max_seq_len - 1
        if self.chunk < 1:
            raise ValueError(f"chunk_len must be >= 1, got {self.chunk}")
        self.device = next(model.parameters()).device
        self.cache = model.new_cache()
        self.cache_start = 0
        self.raw: list[int] = []
        self.values: list[float] = []  # values[i] = H(byte i | bytes < i)
        self.calls = 0
        self.call_rows: list[int] = []  # the length of every call
        self.first = 0.0  # entropy of a chunk's first byte (set by prefill)

    def _read(self, raw: list[int], bos: bool = False) -> torch.Tensor:
        """Run new bytes (after BOS if ``bos``) through the cache; the
        entropies that follow each position (t,)."""
        ids = torch.tensor([([BOS_ID] if bos else [])
                            + [b + OFFSET for b in raw]], device=self.device)
        logits = self.model(ids, cache=self.cache)  # (1, t, V)
        self.calls += 1
        self.call_rows.append(ids.shape[1])
        return entropy_of_logits(logits[0])

    @torch.no_grad()
    def prefill(self, raw: bytes) -> torch.Tensor:
        """Score ``raw``; returns entropies (len(raw) + 1,), the next included."""
        if self.raw:
            raise RuntimeError("prefill once, on a fresh stream")
        if not raw:
            raise ValueError("cannot prefill an empty byte string")
        n = len(raw)
        self.raw = list(raw)
        start = (n // self.chunk) * self.chunk  # the open chunk
        self.values = entropies(self.model, raw[:start]).tolist() if start else []
        if start:
            self.calls += 1
            self.call_rows.append(start)
        self.cache_start = start
        tail = self._read(self.raw[start:], bos=True)  # BOS + the open chunk
        self.first = float(tail[0])  # after BOS alone: a chunk's first byte
        self.values.extend(tail.tolist())
        return torch.tensor(self.values)

    @torch.no_grad()
    def push(self, byte: int) -> float:
        """Append one byte; return the entropy of the byte after it."""
        n = len(self.raw)  # index of the new byte
        if n % self.chunk == 0:  # it opens a chunk
            self.cache.rollback(1)
            self.cache_start = n
        self.raw.append(byte)
        ent = float(self._read([byte])[-1])
        nxt = self.first if (n + 1) % self.chunk == 0 else ent
        self.values.append(nxt)
        return nxt

    @torch.no_grad()
    def extend(self, raw: bytes) -> list[float]:
        """Append several bytes in as few calls as the chunks allow (one,
        unless a chunk boundary falls inside); the entropies that follow
        each new byte."""
        out: list[float] = []
        i = 0
        while i < len(raw):
            n = len(self.raw)
            if n % self.chunk == 0:  # the next byte opens a chunk
                self.cache.rollback(1)
                self.cache_start = n
            take = min(len(raw) - i, self.chunk - n % self.chunk)
            part = list(raw[i:i + take])
            self.raw.extend(part)
            ent = self._read(part).tolist()
            if (n + take) % self.chunk == 0:  # the last one opens a chunk
                ent[-1] = self.first
            self.values.extend(ent)
            out.extend(ent)
            i += take
        return out

    @torch.no_grad()
    def rollback(self, n_bytes: int) -> None:
        """Forget every byte from index ``n_bytes`` on."""
        if not 1 <= n_bytes <= len(self.raw):
            raise ValueError(f"cannot roll {len(self.raw)} bytes back to {n_bytes}")
        del self.raw[n_bytes:]
        del self.values[n_bytes + 1:]
        if n_bytes % self.chunk == 0:  # the next byte opens a chunk anyway
            self.cache.rollback(1)
            self.cache_start = n_bytes
            return
        start = (n_bytes // self.chunk) * self.chunk
        if start == self.cache_start and self.cache.length - 1 >= n_bytes - start:
            self.cache.rollback(1 + n_bytes - start)
            return
        self.cache.rollback(1)  # a different chunk is open again: re-read it
        self.cache_start = start
        self._read(self.raw[start:])
