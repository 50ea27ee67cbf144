"""A small, honest training loop for byte language models.

AdamW, linear warmup then cosine decay, gradient clipping, periodic
validation bits-per-byte and a tqdm progress bar. Any model with a
``loss(ids) -> mean nats`` method trains here; ``ids`` (B, T+1) start
with BOS and hold a random crop of the training bytes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from bltlib.bytes import BOS_ID, OFFSET, as_bytes

LN2 = math.log(2.0)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; ``max_seconds`` stops early on a time budget."""

    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_bytes: int = 65536
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")


@dataclass
class TrainHistory:
    """What happened: losses per step and validation bpb over time."""

    step: list[int] = field(default_factory=list)
    train_bpb: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_bpb: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    bytes_seen: int = 0

    @property
    def final_val_bpb(self) -> float:
        return self.val_bpb[-1] if self.val_bpb else float("nan")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def to_ids(data: bytes | str) -> torch.Tensor:
    """Bytes -> a flat id tensor (T,), without specials."""
    raw = as_bytes(data)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long() + OFFSET


def sample_batch(ids: torch.Tensor, batch_size: int, seq_len: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Random crops of ``seq_len`` ids, each after a BOS: (B, seq_len + 1)."""
    if ids.numel() <= seq_len:
        raise ValueError(f"training data ({ids.numel()} bytes) must be longer "
                         f"than seq_len ({seq_len})")
    starts = torch.randint(0, ids.numel() - seq_len, (batch_size,),
                           generator=generator)
    crops = torch.stack([ids[s:s + seq_len] for s in starts.tolist()])
    bos = torch.full((batch_size, 1), BOS_ID, dtype=torch.long)
    return torch.cat([bos, crops], dim=1)


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, data: bytes | str, seq_len: int,
                 batch_size: int = 16) -> float:
    """Bits per byte over consecutive ``seq_len`` chunks of ``data``."""
    ids = to_ids(data)
    if ids.numel() < 2:
        raise ValueError("validation data must hold at least 2 bytes")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    n_full = ids.numel() // seq_len
    chunks = [ids[i * seq_len:(i + 1) * seq_len] for i in range(n_full)]
    if ids.numel() % seq_len:
        chunks.append(ids[n_full * seq_len:])
    for i in range(0, len(chunks), batch_size):
        group = chunks[i:i + batch_size]
        for size in sorted({c.numel() for c in group}):  # ragged tail alone
            same = [c for c in group if c.numel() == size]
            bos = torch.full((len(same), 1), BOS_ID, dtype=torch.long)
            batch = torch.cat([bos, torch.stack(same)], 1).to(device)
            total += model.loss(batch).item() * batch[:, 1:].numel()
            count += batch[:, 1:].numel()
    model.train(was_training)
    return total / count / LN2


def train_byte_lm(model: torch.nn.Module, train_data: bytes, val_data: bytes,
                  cfg: TrainConfig, *, device: torch.device | None = None,
                  progress: bool = True) -> TrainHistory:
    """Train ``model`` in place and return its :class:`TrainHistory`."""
    device = device or next(model.parameters()).device
    model.to(device).train()
    train_ids = to_ids(train_data)
    val = as_bytes(val_data)[:cfg.eval_bytes]
    gen = torch.Generator().manual_seed(cfg.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
        betas=(0.9, 0.95))
    hist = TrainHistory()
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), disable=not progress, desc="train")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = sample_batch(train_ids, cfg.batch_size, cfg.seq_len, gen)
        loss = model.loss(batch.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        hist.step.append(step)
        hist.train_bpb.append(loss.item() / LN2)
        hist.bytes_seen += cfg.batch_size * cfg.seq_len
        elapsed = time.perf_counter() - start
        last = step == cfg.steps - 1 or (
            cfg.max_seconds is not None and elapsed > cfg.max_seconds)
        if val and ((step + 1) % cfg.eval_every == 0 or last):
            hist.val_step.append(step + 1)
            hist.val_bpb.append(evaluate_bpb(model, val, cfg.seq_len))
            hist.val_seconds.append(time.perf_counter() - start)
            bar.set_postfix(val_bpb=f"{hist.val_bpb[-1]:.3f}")
        if last:
            break
    bar.close()
    model.eval()
    hist.seconds = time.perf_counter() - start
    return hist
