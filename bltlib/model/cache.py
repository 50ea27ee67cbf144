"""Key/value caches for incremental decoding, with rollback.

One :class:`KVCache` holds the rotated keys and the values of one
attention layer; a :class:`StackCache` holds one per layer of a stack.
Storage is preallocated and doubles when full, so appending a position
costs a copy of that position only. ``rollback(n)`` keeps the first
``n`` positions: the speculative decoders use it to drop rejected
drafts, and it is exact because every later key is simply forgotten.

Shape letters: B batch, H key/value heads, T positions, Dh head width.
"""
from __future__ import annotations

import torch


class KVCache:
    """Keys and values (B, H, T, Dh) of one attention layer."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = max(int(capacity), 1)
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.length = 0

    def _grow(self, like: torch.Tensor, needed: int) -> None:
        cap = self.capacity
        while cap < needed:
            cap *= 2
        bsz, heads, _, dim = like.shape
        k = like.new_empty(bsz, heads, cap, dim)
        v = like.new_empty(bsz, heads, cap, dim)
        if self.k is not None and self.length:
            k[:, :, :self.length] = self.k[:, :, :self.length]
            v[:, :, :self.length] = self.v[:, :, :self.length]
        self.k, self.v, self.capacity = k, v, cap

    def append(self, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add (B, H, t, Dh) new keys/values; return all (B, H, T + t, Dh)."""
        end = self.length + k.shape[2]
        if self.k is None or end > self.k.shape[2]:
            self._grow(k, end)
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def rollback(self, length: int) -> None:
        """Keep only the first ``length`` positions."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot roll a cache of {self.length} "
                             f"positions back to {length}")
        self.length = length


class StackCache:
    """One :class:`KVCache` per layer; all layers share one length."""

    def __init__(self, n_layers: int, capacity: int = 64) -> None:
        self.layers = [KVCache(capacity) for _ in range(n_layers)]
        self._length = 0

    @property
    def length(self) -> int:
        return self._length

    def advance(self, t: int) -> None:
        """Called once per forward, after every layer appended t positions."""
        self._length += t

    def rollback(self, length: int) -> None:
        if not 0 <= length <= self._length:
            raise ValueError(f"cannot roll a cache of {self._length} "
                             f"positions back to {length}")
        for layer in self.layers:
            layer.rollback(length)
        self._length = length
