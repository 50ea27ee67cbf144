"""A small, honest training loop for byte language models.

AdamW, linear warmup then cosine decay, gradient clipping, periodic
validation bits-per-byte and a tqdm progress bar. Any model with a
``loss(ids) -> mean nats`` method trains here; ``ids`` (B, T+1) start
with BOS and hold a random crop of the training bytes.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
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
    """What happened: losses per step and validation bpb over time.

    ``seconds`` and ``val_seconds`` count training time only (evaluation
    excluded), so curves against wall-clock compare models fairly.
    """

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


@dataclass
class TrainState:
    """Everything a run needs to resume: optimizer, sampler RNG, progress."""

    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    history: TrainHistory = field(default_factory=TrainHistory)


def lr_at(step: int, cfg: TrainConfig, seconds: float = 0.0) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``lr * min_lr_ratio``.

    The schedule follows the run's progress: ``step / steps``, or, with a
    time budget, ``seconds / max_seconds`` when that is further along.
    So a run cut short by ``max_seconds`` still warms up (for the same
    share of the run, ``warmup_steps / steps``) and decays fully by the
    end of its budget, instead of stopping mid-warmup.
    """
    progress = (step + 1) / cfg.steps
    if cfg.max_seconds:
        progress = max(progress, seconds / cfg.max_seconds)
    warm = cfg.warmup_steps / cfg.steps
    if progress < warm:
        return cfg.lr * progress / warm
    decay = min((progress - warm) / max(1.0 - warm, 1e-9), 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * decay))


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


class _LossModule(torch.nn.Module):
    """forward(*batch) = model.loss(*batch), so DDP can wrap the loss."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.model.loss(*batch)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; matrices decay, vectors (norms) do not."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
        betas=(0.9, 0.95))


def train_loop(model: torch.nn.Module,
               next_batch: Callable[[torch.Generator], tuple[torch.Tensor, ...]],
               evaluate: Callable[[torch.nn.Module], float] | None,
               cfg: TrainConfig, *, device: torch.device | None = None,
               progress: bool = True, state: TrainState | None = None,
               on_eval: Callable[[TrainState], None] | None = None
               ) -> TrainHistory:
    """Train ``model`` in place; ``model.loss(*next_batch(gen))`` is the loss.

    * ``evaluate(model)`` returns validation bits per byte; it runs every
      ``cfg.eval_every`` steps and at the end (rank 0 only under DDP).
    * ``state`` resumes a run (see :mod:`bltlib.resume`); ``on_eval`` is
      called with the live state after each evaluation, e.g. to save it.
    * Under ``torch.distributed`` the model is wrapped in
      DistributedDataParallel and each rank samples its own batches.
    """
    device = device or next(model.parameters()).device
    model.to(device).train()
    rank, world = _dist_info()
    runner: torch.nn.Module = _LossModule(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        runner = DistributedDataParallel(
            runner, device_ids=[device.index] if device.type == "cuda" else None)
    if state is None:
        state = TrainState(optimizer=make_optimizer(model, cfg),
                           generator=torch.Generator().manual_seed(
                               cfg.seed + 1000 * rank))
    hist, opt, gen = state.history, state.optimizer, state.generator
    bar = tqdm(range(state.step, cfg.steps), disable=not progress or rank > 0,
               desc="train", initial=state.step, total=cfg.steps)
    for step in bar:
        tick = time.perf_counter()
        lr = lr_at(step, cfg, _agreed(hist.seconds, world))
        for group in opt.param_groups:
            group["lr"] = lr
        batch = tuple(t.to(device) if isinstance(t, torch.Tensor) else t
                      for t in next_batch(gen))
        loss = runner(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        hist.step.append(step)
        hist.train_bpb.append(loss.item() / LN2)
        hist.bytes_seen += cfg.batch_size * cfg.seq_len * world
        hist.seconds += time.perf_counter() - tick
        state.step = step + 1
        last = state.step == cfg.steps or _out_of_time(hist.seconds, cfg, world)
        if evaluate is not None and rank == 0 and (
                state.step % cfg.eval_every == 0 or last):
            hist.val_step.append(state.step)
            hist.val_bpb.append(evaluate(model))
            hist.val_seconds.append(hist.seconds)
            bar.set_postfix(val_bpb=f"{hist.val_bpb[-1]:.3f}")
            model.train()
            if on_eval is not None:
                on_eval(state)
        if last:
            break
    bar.close()
    model.eval()
    return hist


def _dist_info() -> tuple[int, int]:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _agreed(seconds: float, world: int) -> float:
    """The largest elapsed time over ranks, so every rank uses one lr."""
    if world == 1:
        return seconds
    import torch.distributed as dist
    t = torch.tensor(float(seconds))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def _out_of_time(seconds: float, cfg: TrainConfig, world: int) -> bool:
    """Time budget check, agreed on by every rank."""
    if cfg.max_seconds is None:
        return False
    over = torch.tensor(float(seconds > cfg.max_seconds))
    if world > 1:
        import torch.distributed as dist
        dist.all_reduce(over, op=dist.ReduceOp.MAX)
    return bool(over.item())


def train_byte_lm(model: torch.nn.Module, train_data: bytes, val_data: bytes,
                  cfg: TrainConfig, *, device: torch.device | None = None,
                  progress: bool = True) -> TrainHistory:
    """Train a byte LM (``loss(ids)``) on random crops of ``train_data``."""
    train_ids = to_ids(train_data)
    val = as_bytes(val_data)[:cfg.eval_bytes]

    def next_batch(gen: torch.Generator) -> tuple[torch.Tensor]:
        return (sample_batch(train_ids, cfg.batch_size, cfg.seq_len, gen),)

    def evaluate(m: torch.nn.Module) -> float:
        return evaluate_bpb(m, val, cfg.seq_len)

    return train_loop(model, next_batch, evaluate if val else None, cfg,
                      device=device, progress=progress)
