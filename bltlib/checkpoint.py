"""Safe checkpoints: safetensors weights plus a JSON config beside them.

A checkpoint is a folder holding ``model.safetensors`` and
``config.json`` (``{"kind": ..., "config": {...}, "meta": {...}}``).
Loading never unpickles anything. A missing, corrupt or mismatched
checkpoint raises :class:`CheckpointError` with a readable message.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not fit the model."""


def config_to_dict(cfg: Any) -> dict:
    """A (nested) dataclass config -> plain dict."""
    return dataclasses.asdict(cfg)


def config_from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) frozen dataclass config from a plain dict."""
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise CheckpointError(f"unknown config fields for {cls.__name__}: "
                              f"{sorted(unknown)}")
    for name, value in data.items():
        ftype = fields[name].type
        sub = _dataclass_type(cls, name, ftype)
        if sub:
            value = config_from_dict(sub, value)
        elif isinstance(value, list):  # JSON has no tuples; configs use them
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _dataclass_type(cls: type, name: str, ftype: Any) -> type | None:
    default = fields_default(cls, name)
    if default is not None and dataclasses.is_dataclass(default):
        return type(default)
    return ftype if isinstance(ftype, type) and dataclasses.is_dataclass(ftype) else None


def fields_default(cls: type, name: str) -> Any:
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def save_checkpoint(model: torch.nn.Module, path: str | Path, *, kind: str,
                    config: Any, meta: dict | None = None,
                    overwrite: bool = False) -> Path:
    """Write ``model``'s weights and config to the folder ``path``.

    Refuses to replace an existing checkpoint unless ``overwrite``; files
    are written to a temporary name and moved into place.
    """
    path = Path(path)
    if (path / WEIGHTS).exists() and not overwrite:
        raise FileExistsError(f"{path} already holds a checkpoint; pass "
                              "overwrite=True or choose another path")
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    doc = {"kind": kind, "config": config_to_dict(config), "meta": meta or {}}
    for name, writer in ((WEIGHTS, lambda p: save_file(state, p)),
                         (CONFIG, lambda p: Path(p).write_text(
                             json.dumps(doc, indent=2, sort_keys=True)))):
        fd, tmp = tempfile.mkstemp(dir=path, prefix=f".{name}.")
        os.close(fd)
        writer(tmp)
        os.replace(tmp, path / name)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Return (config document, weights) without building a model."""
    path = Path(path)
    if not (path / WEIGHTS).is_file() or not (path / CONFIG).is_file():
        raise CheckpointError(f"no checkpoint at {path}: expected {WEIGHTS} "
                              f"and {CONFIG} in that folder")
    try:
        doc = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path / CONFIG} is not valid JSON: {err}") from None
    try:
        state = load_file(path / WEIGHTS)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path / WEIGHTS} is corrupt or not a "
                              f"safetensors file: {err}") from None
    return doc, state


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor],
                 source: str = "checkpoint") -> None:
    """Strict load with a readable report of missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state))
              if state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:3]}")
        raise CheckpointError(f"{source} does not fit the model: "
                              + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
