"""Hash n-gram embeddings (BLT section 3.2.1), exactly as the reference.

For each n in ``sizes`` (default 3..8) the n-gram of ids *ending* at
byte t, ``ids[t-n+1 .. t]`` (left-padded with id 0), is hashed with a
rolling polynomial, ``sum_j ids[t-n+1+j] * prime**j``, in wrapping int64
arithmetic, then reduced modulo ``vocab`` buckets. Each (function, n)
pair owns a slice of one shared embedding table; the looked-up rows are
added to the byte embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The reference's primes, one per hash function (cycled if more are asked).
PRIMES = (1000000007, 5915587277, 1500450271, 3267000013, 5754853343,
          4093082899, 9576890767, 3628273133, 2860486313, 5463458053,
          3367900313)


@dataclass(frozen=True)
class HashConfig:
    """n-gram sizes, buckets per (function, size), number of functions."""

    sizes: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    vocab: int = 4096
    n_functions: int = 1

    def __post_init__(self) -> None:
        if self.vocab < 1 or self.n_functions < 0:
            raise ValueError("hash vocab must be >= 1, n_functions >= 0")
        if any(n < 1 for n in self.sizes):
            raise ValueError(f"n-gram sizes must be >= 1, got {self.sizes}")

    @property
    def n_tables(self) -> int:
        return self.n_functions * len(self.sizes)


def rolling_hash(windows: torch.Tensor, prime: int) -> torch.Tensor:
    """windows (..., n) int64 -> (...,) sum_j windows[..., j] * prime**j.

    Overflow wraps around in int64, as in the reference, so the buckets
    are bit-identical to the released models'.
    """
    powers = torch.tensor(prime, dtype=torch.int64,
                          device=windows.device) ** torch.arange(
        windows.shape[-1], device=windows.device)
    return (windows * powers).sum(-1)


def ngram_hash_ids(ids: torch.Tensor, n: int, prime: int,
                   vocab: int) -> torch.Tensor:
    """Bucket of the n-gram ending at each position: (B, T) -> (B, T)."""
    pad = torch.zeros(ids.shape[0], n - 1, dtype=torch.int64,
                      device=ids.device)
    windows = torch.cat([pad, ids.long()], 1).unfold(1, n, 1)  # (B, T, n)
    return rolling_hash(windows, prime) % vocab


class HashNgramEmbedding(nn.Module):
    """Sum of the hashed n-gram embeddings at every position."""

    def __init__(self, cfg: HashConfig, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(max(cfg.n_tables, 1) * cfg.vocab, dim)

    def table_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Row of every (function, size) table: (B, T) -> (n_tables, B, T)."""
        rows = []
        for f in range(self.cfg.n_functions):
            prime = PRIMES[f % len(PRIMES)]
            for n in self.cfg.sizes:
                offset = len(rows) * self.cfg.vocab
                rows.append(ngram_hash_ids(ids, n, prime, self.cfg.vocab)
                            + offset)
        return torch.stack(rows) if rows else ids.new_zeros((0, *ids.shape))

    def last_table_ids(self, ids: list[int]) -> list[int]:
        """Rows of the n-grams ending at the last of ``ids``, in plain Python.

        The same buckets as :meth:`table_ids` (int64 wrap-around included)
        for one position, without a dozen tensor ops: a decoding step
        needs only the newest byte's n-grams.
        """
        rows = []
        for f in range(self.cfg.n_functions):
            prime = PRIMES[f % len(PRIMES)]
            for n in self.cfg.sizes:
                window = ([0] * n + ids)[-n:]
                h = sum(x * prime ** j for j, x in enumerate(window))
                h = (h + 2 ** 63) % 2 ** 64 - 2 ** 63  # wrap like int64
                rows.append(h % self.cfg.vocab + len(rows) * self.cfg.vocab)
        return rows

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.table_ids(ids)  # (n_tables, B, T)
        if rows.shape[0] == 0:
            return torch.zeros(*ids.shape, self.embedding.embedding_dim,
                               device=ids.device)
        return self.embedding(rows).sum(0)  # (B, T, D)
