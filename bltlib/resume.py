"""Resumable training runs: weights, optimizer, sampler RNG and history.

A run folder holds the model checkpoint (``bltlib.checkpoint``:
safetensors + JSON) and ``trainer.pt`` with the optimizer state, the
generator state, the step and the history. ``trainer.pt`` holds only
tensors and plain containers and is read with ``weights_only=True``, so
no pickled code ever runs.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from bltlib.checkpoint import (CheckpointError, load_weights, read_checkpoint,
                               save_checkpoint)
from bltlib.training import TrainConfig, TrainHistory, TrainState, make_optimizer

TRAINER = "trainer.pt"


def save_run(model: torch.nn.Module, state: TrainState, path: str | Path, *,
             kind: str, config: Any, meta: dict | None = None) -> None:
    """Write (or replace) the resumable state of a run in ``path``."""
    path = Path(path)
    save_checkpoint(model, path, kind=kind, config=config,
                    meta={**(meta or {}), "step": state.step}, overwrite=True)
    blob = {"optimizer": state.optimizer.state_dict(),
            "generator": state.generator.get_state(), "step": state.step,
            "history": dataclasses.asdict(state.history)}
    fd, tmp = tempfile.mkstemp(dir=path, prefix=f".{TRAINER}.")
    os.close(fd)
    torch.save(blob, tmp)
    os.replace(tmp, path / TRAINER)


def load_run(model: torch.nn.Module, cfg: TrainConfig,
             path: str | Path) -> TrainState:
    """Load weights into ``model`` and return the state to resume from."""
    path = Path(path)
    _, weights = read_checkpoint(path)
    load_weights(model, weights, source=str(path))
    try:
        blob = torch.load(path / TRAINER, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} holds weights but no {TRAINER}; "
                              "it cannot be resumed") from None
    except Exception as err:  # corrupt file: say so plainly
        raise CheckpointError(f"{path / TRAINER} is unreadable: {err}") from None
    opt = make_optimizer(model, cfg)
    opt.load_state_dict(blob["optimizer"])
    gen = torch.Generator()
    gen.set_state(blob["generator"])
    return TrainState(optimizer=opt, generator=gen, step=int(blob["step"]),
                      history=TrainHistory(**blob["history"]))
