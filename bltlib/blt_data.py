"""Training data for the BLT: bytes with their entropy patches, cached.

Patching happens once per data shard, not per batch: the entropy model
runs over each shard (prefix-stable chunks), the patch starts are saved
in a cache keyed by the shard's content, the entropy model's weights and
the patcher settings, and batches are random crops of bytes with their
starts. Each crop is read after a BOS, which is its own patch (as in the
reference patcher), and the crop's first byte always opens a patch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bltlib.bytes import BOS_ID, PAD_ID
from bltlib.entropy import EntropyModel, entropies
from bltlib.patching import PatcherConfig, patch_starts, starts_to_lengths
from bltlib.training import LN2, to_ids

SHARD_BYTES = 1 << 20  # 1 MiB


@dataclass
class PatchedCorpus:
    """Byte ids (N,) and patch starts (N,) of one text."""

    ids: torch.Tensor
    starts: torch.Tensor

    def __len__(self) -> int:
        return self.ids.numel()

    @property
    def mean_patch_size(self) -> float:
        return len(self) / max(int(self.starts.sum()), 1)


def _model_digest(model: EntropyModel | None) -> str:
    if model is None:
        return "none"
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def patch_corpus(text: bytes, cfg: PatcherConfig,
                 entropy_model: EntropyModel | None = None, *,
                 cache_dir: str | Path | None = None,
                 shard_bytes: int = SHARD_BYTES) -> PatchedCorpus:
    """Patch ``text`` shard by shard, reusing cached shards when possible."""
    if not text:
        raise ValueError("cannot patch an empty corpus")
    if cfg.mode == "entropy" and entropy_model is None:
        raise ValueError("entropy patching needs an entropy model")
    digest = _model_digest(entropy_model if cfg.mode == "entropy" else None)
    if cfg.mode == "entropy":  # the scoring context changes the entropies
        digest += f"/ctx{entropy_model.cfg.max_seq_len}"
    settings = json.dumps(asdict(cfg), sort_keys=True)
    cache = Path(cache_dir) if cache_dir else None
    parts = []
    for off in range(0, len(text), shard_bytes):
        shard = text[off:off + shard_bytes]
        key = hashlib.sha256(shard + digest.encode()
                             + settings.encode()).hexdigest()[:24]
        hit = cache / f"{key}.safetensors" if cache else None
        if hit is not None and hit.exists():
            parts.append(load_file(hit)["starts"].bool())
            continue
        ent = (entropies(entropy_model, shard)
               if cfg.mode == "entropy" else None)
        starts = patch_starts(cfg, shard, ent)
        if hit is not None:
            hit.parent.mkdir(parents=True, exist_ok=True)
            save_file({"starts": starts.to(torch.uint8)}, hit)
        parts.append(starts)
    return PatchedCorpus(ids=to_ids(text), starts=torch.cat(parts))


def crop_lengths(starts: torch.Tensor) -> list[int]:
    """Patch lengths of a crop after BOS: [1, ...] summing to len + 1."""
    starts = starts.clone()
    starts[0] = True  # a crop opens a patch
    return [1] + starts_to_lengths(starts).tolist()


def collate(rows: list[tuple[torch.Tensor, list[int]]]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, lengths) rows -> ids (B, T+1) after BOS, lengths (B, P) 0-padded."""
    width = max(ids.numel() for ids, _ in rows) + 1
    n_patches = max(len(lengths) for _, lengths in rows)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    out = torch.zeros(len(rows), n_patches, dtype=torch.long)
    for b, (row, lengths) in enumerate(rows):
        ids[b, 0] = BOS_ID
        ids[b, 1:row.numel() + 1] = row
        out[b, :len(lengths)] = torch.tensor(lengths)
    return ids, out


def sample_blt_batch(corpus: PatchedCorpus, batch_size: int, seq_len: int,
                     generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops: ids (B, seq_len + 1) and patch lengths (B, P)."""
    if len(corpus) <= seq_len:
        raise ValueError(f"corpus ({len(corpus)} bytes) must be longer than "
                         f"seq_len ({seq_len})")
    offs = torch.randint(0, len(corpus) - seq_len, (batch_size,),
                         generator=generator).tolist()
    return collate([(corpus.ids[o:o + seq_len],
                     crop_lengths(corpus.starts[o:o + seq_len])) for o in offs])


def diffusion_noise(lengths: torch.Tensor, block_sizes: tuple[int, ...],
                    generator: torch.Generator, seq_len: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """BLT-D corruption draws for a batch: t (N,), cell noise (N, R), B, blocks.

    The block size B is drawn uniformly from ``block_sizes`` (one per
    batch: mixed-B training). Each row carries ``seq_len // B`` blocks at
    random patches (``blocks`` (N, M), see ``sample_blocks``), so the
    decoder sees about ``seq_len`` block rows whatever B and the patch
    count. A cell of block row r is masked when ``noise[r] < t`` (see
    ``bltlib.model.blt_d``); R = M * B.
    """
    from bltlib.model.blt_d import sample_blocks

    n, n_patches = lengths.shape
    seq_len = seq_len or int(lengths.sum(1).max())
    pick = int(torch.randint(len(block_sizes), (1,), generator=generator)) \
        if len(block_sizes) > 1 else 0
    block_size = block_sizes[pick]
    blocks = sample_blocks(lengths, max(1, seq_len // block_size), generator)
    t = torch.rand(n, generator=generator)
    u = torch.rand(n, blocks.shape[1] * block_size, generator=generator)
    return t, u, block_size, blocks


@torch.no_grad()
def evaluate_blt_bpb(model: torch.nn.Module, corpus: PatchedCorpus,
                     seq_len: int, batch_size: int = 16) -> float:
    """Bits per byte over consecutive ``seq_len`` chunks of ``corpus``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    offs = list(range(0, len(corpus), seq_len))
    total, count = 0.0, 0
    for i in range(0, len(offs), batch_size):
        rows = [(corpus.ids[o:o + seq_len],
                 crop_lengths(corpus.starts[o:o + seq_len]))
                for o in offs[i:i + batch_size]]
        ids, lengths = collate(rows)
        n = sum(r.numel() for r, _ in rows)
        total += model.loss(ids.to(device), lengths.to(device)).item() * n
        count += n
    model.train(was_training)
    return total / count / LN2
