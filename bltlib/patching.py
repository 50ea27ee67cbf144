"""Patchers: where each patch starts (BLT section 2.3).

Every patcher returns a boolean vector ``starts`` with ``starts[i]`` True
when byte ``i`` opens a patch (``starts[0]`` is always True), or patch
lengths via :func:`starts_to_lengths`. All of them are *prefix-stable*:
patching a prefix gives the prefix of the patching, because each
decision looks only at bytes and entropies up to its own position.

Entropy rules (``e[i] = H(p(x_i | x_<i))``, see ``bltlib.entropy``):

* global threshold: byte i starts a patch if ``e[i] > threshold``;
* monotonic (relative): if ``e[i] - e[i-1] > relative_threshold``;
* both given: both must hold (the reference ``threshold_add`` mode);
* ``max_patch_length``: a patch that reaches the maximum is split, from
  the left, so the next byte starts a new one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bltlib.bytes import as_bytes

SPACE_BYTES = frozenset(b" \t\n\r\f\v")


def _check_threshold(name: str, value: float | None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (nats), "
                         f"got {value}")


def _check_length(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _as_entropy_vector(entropies: torch.Tensor | Sequence[float]) -> torch.Tensor:
    e = torch.as_tensor(entropies, dtype=torch.float32)
    if e.dim() != 1:
        raise ValueError(f"expected a 1-D entropy vector, got shape {tuple(e.shape)}")
    if e.numel() == 0:
        raise ValueError("cannot patch an empty sequence")
    if not torch.isfinite(e).all():
        raise ValueError("entropies contain NaN or infinity")
    return e


def apply_max_length(starts: torch.Tensor, max_patch_length: int | None) -> torch.Tensor:
    """Split patches longer than ``max_patch_length`` from the left."""
    _check_length("max_patch_length", max_patch_length)
    if max_patch_length is None:
        return starts
    idx = torch.arange(starts.numel())
    patch_start = torch.cummax(torch.where(starts, idx, 0), dim=0).values
    return starts | ((idx - patch_start) % max_patch_length == 0)


def entropy_starts(entropies: torch.Tensor | Sequence[float], *,
                   threshold: float | None = None,
                   relative_threshold: float | None = None,
                   max_patch_length: int | None = None) -> torch.Tensor:
    """Patch starts (T,) bool from per-byte entropies (T,)."""
    _check_threshold("threshold", threshold)
    _check_threshold("relative_threshold", relative_threshold)
    if threshold is None and relative_threshold is None:
        raise ValueError("give threshold, relative_threshold or both")
    e = _as_entropy_vector(entropies)
    starts = torch.ones_like(e, dtype=torch.bool)
    if threshold is not None:
        starts &= e > threshold
    if relative_threshold is not None:
        rise = torch.cat([e[:1], e[1:] - e[:-1]])
        starts &= rise > relative_threshold
    starts[0] = True
    return apply_max_length(starts, max_patch_length)


def fixed_starts(length: int, stride: int) -> torch.Tensor:
    """A patch every ``stride`` bytes (the static baseline)."""
    _check_length("stride", stride)
    _check_length("length", length)
    return torch.arange(length) % stride == 0


def space_starts(data: str | bytes, *,
                 max_patch_length: int | None = None) -> torch.Tensor:
    """A new patch after each run of space-like bytes (BLT's space patching).

    Byte i starts a patch if byte i-1 is whitespace and byte i is not, so
    a word keeps its leading spaces' neighbour: ``"a bc"`` -> ``"a ", "bc"``.
    """
    raw = as_bytes(data)
    if not raw:
        raise ValueError("cannot patch an empty sequence")
    is_space = torch.tensor([b in SPACE_BYTES for b in raw])
    starts = torch.zeros(len(raw), dtype=torch.bool)
    starts[1:] = is_space[:-1] & ~is_space[1:]
    starts[0] = True
    return apply_max_length(starts, max_patch_length)


def starts_to_lengths(starts: torch.Tensor) -> torch.Tensor:
    """Bool starts (T,) -> patch lengths (P,), summing to T."""
    if starts.numel() == 0 or not bool(starts[0]):
        raise ValueError("starts must be non-empty with starts[0] True")
    pos = torch.nonzero(starts).flatten()
    ends = torch.cat([pos[1:], torch.tensor([starts.numel()])])
    return ends - pos


def lengths_to_starts(lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Patch lengths (P,) -> bool starts (sum(lengths),). Zeros are padding."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    lengths = lengths[lengths > 0]
    starts = torch.zeros(int(lengths.sum()), dtype=torch.bool)
    starts[torch.cumsum(lengths, 0) - lengths] = True
    return starts


def patch_ids(lengths: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Patch index of every byte: lengths [2, 3] -> [0, 0, 1, 1, 1]."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return torch.repeat_interleave(torch.arange(lengths.numel()), lengths)


def mean_patch_size(starts: torch.Tensor) -> float:
    """Bytes per patch."""
    return starts.numel() / max(int(starts.sum()), 1)


@dataclass(frozen=True)
class PatcherConfig:
    """How to cut bytes into patches; see the module docstring.

    ``mode`` is ``"entropy"``, ``"fixed"`` (every ``stride`` bytes) or
    ``"space"``. Thresholds are in nats.
    """

    mode: str = "entropy"
    threshold: float | None = 1.335442066192627  # the reference default
    relative_threshold: float | None = None
    max_patch_length: int | None = 8
    stride: int = 4

    def __post_init__(self) -> None:
        if self.mode not in ("entropy", "fixed", "space"):
            raise ValueError(f"unknown patching mode {self.mode!r}; "
                             "use 'entropy', 'fixed' or 'space'")
        _check_threshold("threshold", self.threshold)
        _check_threshold("relative_threshold", self.relative_threshold)
        _check_length("max_patch_length", self.max_patch_length)
        _check_length("stride", self.stride)
        if (self.mode == "entropy" and self.threshold is None
                and self.relative_threshold is None):
            raise ValueError("entropy patching needs a threshold")


def patch_starts(cfg: PatcherConfig, data: str | bytes,
                 entropies: torch.Tensor | None = None) -> torch.Tensor:
    """Starts (T,) for ``data`` under ``cfg``; entropy mode needs entropies."""
    raw = as_bytes(data)
    if not raw:
        raise ValueError("cannot patch an empty sequence")
    if cfg.mode == "fixed":
        return fixed_starts(len(raw), cfg.stride)
    if cfg.mode == "space":
        return space_starts(raw, max_patch_length=cfg.max_patch_length)
    if entropies is None:
        raise ValueError("entropy patching needs entropies; compute them "
                         "with bltlib.entropy.entropies(model, data)")
    if len(entropies) < len(raw):
        raise ValueError(f"{len(entropies)} entropies for {len(raw)} bytes")
    return entropy_starts(entropies[:len(raw)], threshold=cfg.threshold,
                          relative_threshold=cfg.relative_threshold,
                          max_patch_length=cfg.max_patch_length)


def next_start(cfg: PatcherConfig, index: int, last_start: int,
               entropy: float | None = None,
               prev_entropy: float | None = None) -> bool:
    """Does byte ``index`` open a patch? The streaming form of :func:`patch_starts`.

    A generator asks this before byte ``index`` exists, knowing only its
    entropy ``H(x_index | x_<index)`` (and the previous byte's, for the
    monotonic rule) and where the current patch started. By prefix
    stability the answers equal ``patch_starts`` over the whole sequence;
    comparisons run in float32 like the batch rule. Space patching needs
    the byte itself, so it cannot be streamed.
    """
    if index == 0:
        return True
    if cfg.mode == "fixed":
        return index % cfg.stride == 0
    if cfg.mode == "space":
        raise ValueError("space patching looks at the byte itself, so a "
                         "generator cannot know it in advance; use "
                         "entropy or fixed patching to generate")
    if entropy is None:
        raise ValueError("entropy patching needs the next byte's entropy")
    e = torch.tensor(entropy, dtype=torch.float32)
    start = True
    if cfg.threshold is not None:
        start = bool(e > cfg.threshold)
    if cfg.relative_threshold is not None:
        prev = torch.tensor(prev_entropy, dtype=torch.float32)
        start = start and bool(e - prev > cfg.relative_threshold)
    if cfg.max_patch_length is not None:
        start = start or index - last_start >= cfg.max_patch_length
    return start


def calibrate_threshold(entropies: torch.Tensor | Sequence[float],
                        target_patch_size: float, *,
                        relative_threshold: float | None = None,
                        max_patch_length: int | None = None,
                        iters: int = 60) -> float:
    """The global threshold whose mean patch size is closest to the target.

    Mean patch size grows monotonically with the threshold, so a bisection
    over [0, max entropy] finds it. The target must be reachable: above 1
    and, with a maximum patch length, below it.
    """
    e = _as_entropy_vector(entropies)
    if not (isinstance(target_patch_size, (int, float))
            and math.isfinite(target_patch_size) and target_patch_size > 1):
        raise ValueError(f"target_patch_size must be > 1, got {target_patch_size}")
    if max_patch_length is not None and target_patch_size >= max_patch_length:
        raise ValueError(f"target_patch_size {target_patch_size} is not below "
                         f"max_patch_length {max_patch_length}")

    def size(theta: float) -> float:
        return mean_patch_size(entropy_starts(
            e, threshold=theta, relative_threshold=relative_threshold,
            max_patch_length=max_patch_length))

    lo, hi = 0.0, float(e.max()) + 1e-6
    for _ in range(iters):
        mid = (lo + hi) / 2
        if size(mid) < target_patch_size:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda t: abs(size(t) - target_patch_size))
