"""Train a named recipe end to end: data, patching, model, checkpoints.

``train_recipe`` is what ``python -m bltlib train --recipe NAME`` and the
chapters call. For a BLT recipe it first finds (or trains) the entropy
model, calibrates the patching threshold to the target mean patch size,
patches the corpus once (cached under ``data/cache/patches``), then
trains. Under ``torchrun`` it runs data-parallel (see :mod:`bltlib.dist`).
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bltlib import data
from bltlib.blt_data import (diffusion_noise, evaluate_blt_bpb, patch_corpus,
                             sample_blt_batch)
from bltlib.checkpoint import (config_from_dict, load_weights,
                               read_checkpoint, save_checkpoint)
from bltlib.entropy import EntropyModel, entropies
from bltlib.inference.bundle import ENTROPY_DIR
from bltlib.model.blt import BLT, BLTConfig
from bltlib.model.blt_d import BLTD, BLTDConfig
from bltlib.model.byte_lm import ByteLM, ByteLMConfig
from bltlib.patching import PatcherConfig, calibrate_threshold
from bltlib.recipes import PATCHED_KINDS, Recipe, get_recipe, recipe_text
from bltlib.resume import load_run, save_run
from bltlib.training import (evaluate_bpb, sample_batch, to_ids, train_loop,
                             TrainHistory)

CALIBRATION_BYTES = 1 << 18  # 256 KiB of training text


@dataclass
class Run:
    """A trained model with its history and the facts worth recording."""

    model: torch.nn.Module
    history: TrainHistory
    meta: dict[str, Any] = field(default_factory=dict)
    patcher: PatcherConfig | None = None


def local_checkpoint_dir(name: str, fast: bool = False) -> Path:
    """Where locally trained (not shipped) checkpoints live."""
    return data.data_dir() / "checkpoints" / "local" / (
        name + ("-fast" if fast else ""))


def build_model(recipe: Recipe, seed: int = 0) -> torch.nn.Module:
    if recipe.kind == "blt":
        return BLT(recipe.model, seed=seed)
    if recipe.kind == "blt-d":
        return BLTD(recipe.model, seed=seed)
    cls = EntropyModel if recipe.kind == "entropy" else ByteLM
    return cls(recipe.model, seed=seed)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Any checkpoint written by the pipeline -> (model, its JSON document)."""
    doc, state = read_checkpoint(path)
    kind = doc.get("kind")
    if kind == "blt":
        model = BLT(config_from_dict(BLTConfig, doc["config"]))
    elif kind == "blt-d":
        model = BLTD(config_from_dict(BLTDConfig, doc["config"]))
    elif kind in ("entropy", "byte"):
        cls = EntropyModel if kind == "entropy" else ByteLM
        model = cls(config_from_dict(ByteLMConfig, doc["config"]))
    else:
        raise ValueError(f"{path}: unknown checkpoint kind {kind!r}")
    load_weights(model, state, source=str(path))
    return model.eval(), doc


def entropy_model_for(name: str, fast: bool, progress: bool = True) -> EntropyModel:
    """The local entropy model of recipe ``name``; trained once if missing."""
    from bltlib import zoo

    if not fast and name in zoo.available():  # the shipped one, if any
        return zoo.load(name)
    path = local_checkpoint_dir(name, fast)
    if (path / "model.safetensors").exists():
        return load_model(path)[0]
    if progress:
        print(f"training entropy model {name!r} (saved to {path})")
    run = train_recipe(get_recipe(name, fast), progress=progress)
    save_checkpoint(run.model, path, kind="entropy", config=run.model.cfg,
                    meta=run.meta)
    return run.model


def patched_blt_for(name: str, fast: bool, progress: bool = True):
    """The local BLT of recipe ``name`` with its patcher; trained once if missing.

    Returns a :class:`~bltlib.inference.bundle.PatchedBLT` read from
    ``data/checkpoints/local/<name>[-fast]``.
    """
    from bltlib.inference.bundle import load_patched_blt

    path = local_checkpoint_dir(name, fast)
    if not (path / "model.safetensors").exists():
        if progress:
            print(f"training BLT {name!r} (saved to {path})")
        train_recipe(get_recipe(name, fast), progress=progress, out=path)
    return load_patched_blt(path)


def calibrated_patcher(recipe: Recipe, model: EntropyModel,
                       text: bytes) -> PatcherConfig:
    """Global threshold giving the recipe's mean patch size on ``text``."""
    ent = entropies(model, text[:CALIBRATION_BYTES])
    theta = calibrate_threshold(ent, recipe.target_patch_size,
                                max_patch_length=recipe.max_patch_length)
    return PatcherConfig(threshold=theta,
                         max_patch_length=recipe.max_patch_length)


def _meta(recipe: Recipe, model: torch.nn.Module, hist: TrainHistory,
          device: torch.device) -> dict[str, Any]:
    counts = (model.param_counts() if hasattr(model, "param_counts")
              else {"total": sum(p.numel() for p in model.parameters())})
    return {"recipe": recipe.name, "fast": recipe.fast,
            "train_seconds": round(hist.seconds, 1),
            "steps": len(hist.step) and hist.step[-1] + 1,
            "bytes_seen": hist.bytes_seen,
            "final_val_bpb": round(hist.final_val_bpb, 4),
            "params": counts,
            "machine": f"{platform.machine()} {torch.get_num_threads()} "
                       f"threads, {device.type}",
            "torch": torch.__version__}


def train_recipe(recipe: Recipe, *, progress: bool = True,
                 out: str | Path | None = None, resume: bool = False,
                 device: torch.device | None = None) -> Run:
    """Train ``recipe`` from scratch (or resume it from ``out``)."""
    from bltlib.dist import is_main
    from bltlib.env import get_device

    device = device or get_device()
    cfg = recipe.train
    model = build_model(recipe, seed=cfg.seed)
    train_text, val_text = recipe_text(recipe, "train"), recipe_text(recipe, "val")
    val_text = val_text[:cfg.eval_bytes]
    patcher = None
    extra: dict[str, Any] = {}
    if recipe.kind in PATCHED_KINDS:
        ent = entropy_model_for(recipe.entropy_recipe, recipe.fast, progress)
        patcher = calibrated_patcher(recipe, ent, train_text)
        cache = data.data_dir() / "cache" / "patches"
        train_c = patch_corpus(train_text, patcher, ent, cache_dir=cache)
        val_c = patch_corpus(val_text, patcher, ent, cache_dir=cache)
        extra = {"patcher": dataclasses.asdict(patcher),
                 "entropy_recipe": recipe.entropy_recipe,
                 "mean_patch_size_train": round(train_c.mean_patch_size, 3),
                 "mean_patch_size_val": round(val_c.mean_patch_size, 3)}

        def next_batch(gen: torch.Generator):
            batch = sample_blt_batch(train_c, cfg.batch_size, cfg.seq_len, gen)
            if recipe.kind == "blt-d":  # the corruption, from the same generator
                batch = (*batch, *diffusion_noise(batch[1], model.train_block_sizes,
                                                    gen, cfg.seq_len))
            return batch

        def evaluate(m: torch.nn.Module) -> float:
            return evaluate_blt_bpb(m, val_c, cfg.seq_len)
    else:
        train_ids = to_ids(train_text)

        def next_batch(gen: torch.Generator):
            return (sample_batch(train_ids, cfg.batch_size, cfg.seq_len, gen),)

        def evaluate(m: torch.nn.Module) -> float:
            return evaluate_bpb(m, val_text, cfg.seq_len)

    model.to(device)
    state = None
    if resume and out is not None and (Path(out) / "trainer.pt").exists():
        state = load_run(model, cfg, out)
    elif recipe.init_from:
        from bltlib import zoo

        base = local_checkpoint_dir(recipe.init_from, recipe.fast)
        if not recipe.fast and recipe.init_from in zoo.available():
            base = zoo.verify(recipe.init_from)  # start from the shipped one
        elif not (base / "model.safetensors").exists():
            if progress:
                print(f"training {recipe.init_from!r} first (saved to {base})")
            train_recipe(get_recipe(recipe.init_from, recipe.fast),
                         progress=progress, out=base, device=device)
        start, base_doc = load_model(base)
        model.init_from_blt(start.state_dict())
        extra["init_from"] = {"recipe": recipe.init_from,
                              "train_seconds": base_doc["meta"]["train_seconds"],
                              "steps": base_doc["meta"]["steps"]}

    def save(live) -> None:
        if out is not None and is_main():
            save_run(model, live, out, kind=recipe.kind, config=recipe.model,
                     meta={**_meta(recipe, model, live.history, device), **extra})
            ent_dir = Path(out) / ENTROPY_DIR  # a BLT checkpoint generates alone
            if (recipe.kind in PATCHED_KINDS
                    and not (ent_dir / "model.safetensors").exists()):
                save_checkpoint(ent, ent_dir, kind="entropy", config=ent.cfg,
                                meta={"recipe": recipe.entropy_recipe})

    hist = train_loop(model, next_batch, evaluate, cfg, device=device,
                      progress=progress, state=state, on_eval=save)
    return Run(model=model, history=hist, patcher=patcher,
               meta={**_meta(recipe, model, hist, device), **extra})
