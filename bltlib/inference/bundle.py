"""A BLT together with the patcher that cuts its input: what generators run.

A BLT alone cannot generate: every new byte must be patched, and entropy
patching needs the entropy model. :class:`PatchedBLT` keeps the three
together; :func:`load_patched_blt` reads one from a checkpoint folder
written by ``python -m bltlib train`` (the BLT weights, the patcher
settings in its metadata and the entropy model in ``entropy/``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bltlib.checkpoint import CheckpointError
from bltlib.entropy import EntropyModel
from bltlib.model.blt import BLT
from bltlib.patching import PatcherConfig

ENTROPY_DIR = "entropy"


@dataclass
class PatchedBLT:
    """A BLT, its entropy model (None for fixed patching) and its patcher."""

    model: BLT
    entropy_model: EntropyModel | None
    patcher: PatcherConfig
    name: str = "BLT"

    def __post_init__(self) -> None:
        if not isinstance(self.model, BLT):
            raise TypeError(f"model must be a bltlib BLT, got "
                            f"{type(self.model).__name__}")
        if self.patcher.mode == "space":
            raise ValueError("space patching needs each byte before it is "
                             "generated; use entropy or fixed patching")
        if self.patcher.mode == "entropy" and self.entropy_model is None:
            raise ValueError("entropy patching needs an entropy model")
        self.model.eval()
        if self.entropy_model is not None:
            self.entropy_model.eval()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_seq_len(self) -> int:
        """Longest BOS + bytes sequence the generators accept."""
        return self.model.cfg.max_seq_len

    def to(self, device: torch.device | str) -> "PatchedBLT":
        self.model.to(device)
        if self.entropy_model is not None:
            self.entropy_model.to(device)
        return self

    def param_counts(self) -> dict[str, int]:
        """BLT counts (see ``BLT.param_counts``) plus the entropy model's."""
        counts = dict(self.model.param_counts())
        ent = self.entropy_model
        counts["entropy"] = (ent.param_counts()["body"] if ent is not None
                             else 0)
        return counts


def load_patched_blt(path: str | Path,
                     entropy_path: str | Path | None = None) -> PatchedBLT:
    """A BLT checkpoint folder -> :class:`PatchedBLT`.

    Either ours (written by ``python -m bltlib train``, with ``entropy/``
    inside) or a ``transformers``-format folder (``model_type: blt``, as
    Meta's published BLT weights), converted on the fly.
    """
    import json

    from bltlib.pipeline import load_model

    path = Path(path)
    try:
        doc = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        doc = {}
    if doc.get("model_type") == "blt":
        from bltlib.convert import load_hf_patched_blt
        return load_hf_patched_blt(path)
    model, doc = load_model(path)
    if not isinstance(model, BLT):
        raise CheckpointError(f"{path} holds a {doc.get('kind')!r} model, "
                              "not a BLT")
    settings = doc.get("meta", {}).get("patcher")
    if not settings:
        raise CheckpointError(f"{path}: no patcher settings in config.json "
                              "meta; it was not written by the training "
                              "pipeline")
    patcher = PatcherConfig(**settings)
    ent = None
    if patcher.mode == "entropy":
        ent_path = Path(entropy_path) if entropy_path else path / ENTROPY_DIR
        if not (ent_path / "model.safetensors").exists():
            raise CheckpointError(
                f"no entropy model at {ent_path}; pass entropy_path, or "
                f"retrain with `python -m bltlib train --recipe "
                f"{doc.get('meta', {}).get('recipe', 'NAME')}`")
        ent = load_model(ent_path)[0]
        if not isinstance(ent, EntropyModel):
            raise CheckpointError(f"{ent_path} is not an entropy model")
    return PatchedBLT(model, ent, patcher,
                      name=doc.get("meta", {}).get("recipe", path.name))
