"""Named training recipes: a chapter and the CLI train the same thing.

A recipe fixes the model config, the optimisation settings and the data.
``fast=True`` shrinks a recipe so it trains in seconds (CI, fast mode);
the full recipe is what a student runs. Training lives in
:mod:`bltlib.pipeline`; this module only describes.

Recipes:

* ``entropy-small``: the entropy model (code + prose), about 1-2 min;
* ``blt-code``: a BLT on the standard-library code, patched by
  ``entropy-small`` at mean patch size 4 (max 8);
* ``entropy-translate``, ``blt-translate``, ``blt-d-translate``: the
  same three for the EN -> FR verse task (:mod:`bltlib.tasks`);
* ``byte-code``: the plain byte-level transformer with about the same
  number of non-embedding parameters as ``blt-code``;
* ``blt-d-code``: BLT-D, warm-started from ``blt-code`` and trained with
  both losses, the block size drawn per batch from 4 / 8 / 16 (mixed B:
  one model serves every block size; the one chapters use);
* ``blt-d4-code``, ``blt-d8-code``, ``blt-d16-code``: the same with one
  block size each, for comparison.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bltlib import data
from bltlib.model.blt import BLTConfig
from bltlib.model.blt_d import BLTDConfig
from bltlib.model.byte_lm import ByteLMConfig
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig
from bltlib.training import TrainConfig

KINDS = ("entropy", "byte", "blt", "blt-d")
PATCHED_KINDS = ("blt", "blt-d")  # trained on entropy-patched data


@dataclass(frozen=True)
class Recipe:
    """What to train, on what, for how long.

    ``corpora`` lists (corpus, max training bytes); BLT recipes name the
    entropy recipe that patches their data and the target patch sizes.
    """

    name: str
    kind: str
    model: ByteLMConfig | BLTConfig | BLTDConfig
    train: TrainConfig
    corpora: tuple[tuple[str, int], ...]
    val_bytes: int = 65536
    entropy_recipe: str | None = None
    target_patch_size: float = 4.0  # the paper's mean patch size
    max_patch_length: int = 8  # the paper's maximum
    fast: bool = False  # set by get_recipe(fast=True)
    init_from: str | None = None  # recipe whose local checkpoint starts training

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"recipe kind must be one of {KINDS}")
        if self.kind in PATCHED_KINDS and not self.entropy_recipe:
            raise ValueError("a BLT recipe needs an entropy_recipe")


def _local(dim: int, layers: int) -> TransformerConfig:
    return TransformerConfig(dim=dim, n_layers=layers, n_heads=4,
                             rope_theta=500000.0, sliding_window=512)


BLT_SMALL = BLTConfig(
    encoder=_local(128, 1),
    global_model=TransformerConfig(dim=384, n_layers=4, n_heads=6,
                                   rope_theta=500000.0),
    decoder=_local(128, 2),
    hashing=HashConfig(vocab=2048),
    cross_attn_k=2,
)

# The translation BLT is smaller (global 256 x 4, hash tables of 512 rows)
# so that every shipped checkpoint fits in about 60 MB (float16): 9.0 MB
# against blt-code's 19.5 MB.
BLT_TRANSLATE = dataclasses.replace(
    BLT_SMALL,
    global_model=TransformerConfig(dim=256, n_layers=4, n_heads=4,
                                   rope_theta=500000.0),
    hashing=HashConfig(vocab=512))

CODE_TRAIN = TrainConfig(steps=3000, batch_size=16, seq_len=512, lr=2e-3,
                         warmup_steps=100, eval_every=250, eval_bytes=65536,
                         max_seconds=20 * 60)

# BLT-D continues a trained BLT (see ``init_from``): the clean path is
# already good, the block path learns from a byte-aware start. A step
# budget (about 14 min alone on 2 cores), so a busy machine changes the
# time, not the model.
BLTD_TRAIN = dataclasses.replace(CODE_TRAIN, steps=250, lr=2e-3,
                                 warmup_steps=20, eval_every=125,
                                 max_seconds=None)

# Both entropy models: scored in chunks no longer than they were trained on
# (256 bytes).
ENTROPY_SMALL = ByteLMConfig(TransformerConfig(dim=128, n_layers=2, n_heads=4,
                                               sliding_window=512),
                             max_seq_len=257)
ENTROPY_TRAIN = TrainConfig(steps=600, batch_size=16, seq_len=256, lr=2e-3,
                            warmup_steps=30, eval_every=100, eval_bytes=32768)

RECIPES: dict[str, Recipe] = {
    "entropy-small": Recipe(
        name="entropy-small", kind="entropy",
        model=ENTROPY_SMALL, train=ENTROPY_TRAIN,
        corpora=(("code", 3_000_000), ("prose", 1_500_000))),
    "blt-code": Recipe(
        name="blt-code", kind="blt", model=BLT_SMALL, train=CODE_TRAIN,
        corpora=(("code", 4_000_000),), entropy_recipe="entropy-small"),
    **{name: Recipe(
        name=name, kind="blt-d",
        model=BLTDConfig(blt=BLT_SMALL, block_size=b, train_block_sizes=sizes),
        train=BLTD_TRAIN, corpora=(("code", 4_000_000),),
        entropy_recipe="entropy-small", init_from="blt-code")
       for name, b, sizes in (("blt-d-code", 8, (4, 8, 16)),
                              ("blt-d4-code", 4, ()), ("blt-d8-code", 8, ()),
                              ("blt-d16-code", 16, ()))},
    # The translation task: EN -> FR verse records ("EN: ...\nFR: ...\n",
    # see bltlib.tasks), its own entropy model, BLT and mixed-B BLT-D.
    "entropy-translate": Recipe(
        name="entropy-translate", kind="entropy",
        model=ENTROPY_SMALL, train=ENTROPY_TRAIN,
        corpora=(("translate", 8_000_000),)),
    "blt-translate": Recipe(
        name="blt-translate", kind="blt", model=BLT_TRANSLATE, train=CODE_TRAIN,
        corpora=(("translate", 8_000_000),),
        entropy_recipe="entropy-translate"),
    "blt-d-translate": Recipe(
        name="blt-d-translate", kind="blt-d",
        model=BLTDConfig(blt=BLT_TRANSLATE, block_size=8,
                         train_block_sizes=(4, 8, 16)),
        train=BLTD_TRAIN, corpora=(("translate", 8_000_000),),
        entropy_recipe="entropy-translate", init_from="blt-translate"),
    "byte-code": Recipe(
        name="byte-code", kind="byte",
        model=ByteLMConfig(TransformerConfig(dim=384, n_layers=4, n_heads=6,
                                             rope_theta=500000.0),
                           max_seq_len=4096),
        train=CODE_TRAIN, corpora=(("code", 4_000_000),)),
}


def get_recipe(name: str, fast: bool = False, **train_overrides) -> Recipe:
    """Look up a recipe; ``fast`` cuts it to seconds; overrides edit ``train``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of "
                         f"{sorted(RECIPES)}")
    recipe = RECIPES[name]
    train = recipe.train
    if fast:
        train = dataclasses.replace(
            train, steps=40, eval_every=20, eval_bytes=8192,
            warmup_steps=5, seq_len=min(train.seq_len, 256),
            max_seconds=None)
        recipe = dataclasses.replace(
            recipe, corpora=tuple((c, min(n, 300_000))
                                  for c, n in recipe.corpora),
            val_bytes=8192, fast=True)
    if train_overrides:
        train = dataclasses.replace(train, **train_overrides)
    return dataclasses.replace(recipe, train=train)


def recipe_text(recipe: Recipe, split: str) -> bytes:
    """The recipe's training ("train") or validation ("val") bytes.

    Corpora are interleaved in 64 KiB blocks so random crops see each
    in proportion to its size.
    """
    if split not in ("train", "val"):
        raise ValueError("split must be 'train' or 'val'")
    per = [_corpus_text(c, split, n if split == "train"
                        else recipe.val_bytes // len(recipe.corpora))
           for c, n in recipe.corpora]
    block = 65536
    out = []
    for i in range(0, max(map(len, per)), block):
        out.extend(text[i:i + block] for text in per)
    return b"".join(out)


def _corpus_text(corpus: str, split: str, max_bytes: int) -> bytes:
    if corpus == "translate":  # EN -> FR verse records (bltlib.tasks)
        from bltlib.tasks import translation_text
        return translation_text(split, max_bytes)
    return data.load_text(corpus, split, max_bytes=max_bytes)


# Chapter 02 names, kept stable.
ENTROPY_RECIPES = {k: v for k, v in RECIPES.items() if v.kind == "entropy"}


def get_entropy_recipe(name: str, fast: bool = False) -> Recipe:
    """:func:`get_recipe` restricted to entropy-model recipes."""
    if name not in ENTROPY_RECIPES:
        raise ValueError(f"unknown entropy recipe {name!r}; choose one of "
                         f"{sorted(ENTROPY_RECIPES)}")
    return get_recipe(name, fast)


def train_entropy_recipe(name: str, fast: bool = False, *,
                         progress: bool = True, keep: bool = True):
    """Train the named entropy model from scratch: (model, history).

    With ``keep`` the model is also saved to
    ``data/checkpoints/local/<name>[-fast]`` unless a checkpoint is already
    there (nothing is overwritten), so later chapters load it instead of
    training it again.
    """
    from bltlib.checkpoint import save_checkpoint
    from bltlib.pipeline import local_checkpoint_dir, train_recipe
    run = train_recipe(get_entropy_recipe(name, fast), progress=progress)
    path = local_checkpoint_dir(name, fast)
    if keep and not (path / "model.safetensors").exists():
        save_checkpoint(run.model, path, kind="entropy", config=run.model.cfg,
                        meta=run.meta)
    return run.model, run.history
