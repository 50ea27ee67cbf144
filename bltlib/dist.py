"""Data-parallel training with PyTorch's own engine (DDP).

Run the same command under ``torchrun``; each process trains on its own
random crops and DistributedDataParallel averages the gradients, so every
rank ends with identical weights. NCCL on GPUs, gloo on CPUs::

    torchrun --nproc_per_node=2 -m bltlib train --recipe blt-code
    torchrun --nproc_per_node=8 -m bltlib train --recipe blt-code   # 8 GPUs
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> torch.device | None:
    """Join the process group if torchrun started us; return this rank's device."""
    if not launched_by_torchrun() or dist.is_initialized():
        return None
    use_cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def is_main() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
