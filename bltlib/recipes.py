"""Named training recipes: a chapter and the CLI train the same thing.

A recipe fixes the model config, the optimisation settings and the data.
``fast=True`` shrinks a recipe so it trains in seconds (CI, fast mode);
the full recipe is what a student runs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bltlib import data
from bltlib.entropy import EntropyModel, EntropyModelConfig
from bltlib.model.layers import TransformerConfig
from bltlib.training import TrainConfig, TrainHistory, train_byte_lm


@dataclass(frozen=True)
class EntropyRecipe:
    """An entropy model trained on a mix of corpora (bytes per corpus)."""

    name: str
    model: EntropyModelConfig
    train: TrainConfig
    corpora: tuple[tuple[str, int], ...]  # (corpus, max training bytes)
    val_bytes: int = 65536
    target_patch_size: float = 4.0  # the paper's mean patch size
    max_patch_length: int = 8  # the paper's maximum


ENTROPY_RECIPES = {
    "entropy-small": EntropyRecipe(
        name="entropy-small",
        model=EntropyModelConfig(TransformerConfig(
            dim=128, n_layers=2, n_heads=4, sliding_window=512)),
        train=TrainConfig(steps=600, batch_size=16, seq_len=256, lr=2e-3,
                          warmup_steps=30, eval_every=100,
                          eval_bytes=32768),
        corpora=(("code", 3_000_000), ("prose", 1_500_000)),
    ),
}


def get_entropy_recipe(name: str, fast: bool = False) -> EntropyRecipe:
    """Look up a recipe; ``fast`` cuts it to a few dozen steps."""
    if name not in ENTROPY_RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of "
                         f"{sorted(ENTROPY_RECIPES)}")
    recipe = ENTROPY_RECIPES[name]
    if fast:
        recipe = dataclasses.replace(
            recipe,
            train=dataclasses.replace(recipe.train, steps=40, eval_every=20,
                                      eval_bytes=8192, warmup_steps=5),
            corpora=tuple((c, min(n, 300_000)) for c, n in recipe.corpora),
            val_bytes=8192)
    return recipe


def recipe_text(recipe: EntropyRecipe, split: str) -> bytes:
    """The recipe's training ("train") or validation ("val") bytes.

    Corpora are interleaved in 64 KiB blocks so random crops see each
    in proportion to its size.
    """
    if split not in ("train", "val"):
        raise ValueError("split must be 'train' or 'val'")
    per = [data.load_text(c, split, max_bytes=n if split == "train"
                          else recipe.val_bytes // len(recipe.corpora))
           for c, n in recipe.corpora]
    block = 65536
    out = []
    for i in range(0, max(map(len, per)), block):
        out.extend(text[i:i + block] for text in per)
    return b"".join(out)


def train_entropy_recipe(name: str, fast: bool = False, *,
                         progress: bool = True
                         ) -> tuple[EntropyModel, TrainHistory]:
    """Train the named entropy model from scratch; deterministic per seed."""
    recipe = get_entropy_recipe(name, fast)
    model = EntropyModel(recipe.model, seed=recipe.train.seed)
    hist = train_byte_lm(model, recipe_text(recipe, "train"),
                         recipe_text(recipe, "val"), recipe.train,
                         progress=progress)
    return model, hist
