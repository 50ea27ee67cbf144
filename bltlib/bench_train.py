"""Training throughput and quality per second: BLT against a byte LM.

``python -m bltlib bench-train [--steps N] [--seconds S] [--json PATH]``

Both models come from the recipes (``blt-code`` and ``byte-code``, about
equal non-embedding parameters) and train on the same code corpus, side
by side in one process, so their ratio is honest on any machine:

1. throughput: ``steps`` timed optimizer steps each (after 2 warm-up
   steps), in bytes per second;
2. optionally, quality per wall-second: each model trains for ``seconds``
   of training time, and its validation bits per byte is reported.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from bltlib import data
from bltlib.blt_data import patch_corpus, sample_blt_batch
from bltlib.flops import blt_flops_per_byte, byte_lm_flops_per_byte
from bltlib.pipeline import (build_model, calibrated_patcher,
                             entropy_model_for, train_recipe)
from bltlib.recipes import get_recipe, recipe_text
from bltlib.training import make_optimizer, sample_batch, to_ids


def _time_steps(model: torch.nn.Module, batches: list[tuple], steps: int) -> float:
    """Seconds per optimizer step, after two warm-up steps."""
    opt = make_optimizer(model, get_recipe("blt-code").train)
    model.train()
    for i, batch in enumerate(batches[:steps + 2]):
        if i == 2:
            start = time.perf_counter()
        loss = model.loss(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def run(steps: int = 10, seconds: float | None = None, fast: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Measure both models; returns a JSON-ready dict."""
    blt_r, byte_r = get_recipe("blt-code", fast), get_recipe("byte-code", fast)
    cfg = blt_r.train
    text = recipe_text(blt_r, "train")
    ent = entropy_model_for(blt_r.entropy_recipe, fast, progress)
    patcher = calibrated_patcher(blt_r, ent, text)
    cache = data.data_dir() / "cache" / "patches"
    corpus = patch_corpus(text, patcher, ent, cache_dir=cache)
    ids = to_ids(text)
    gen = torch.Generator().manual_seed(0)
    blt_batches = [sample_blt_batch(corpus, cfg.batch_size, cfg.seq_len, gen)
                   for _ in range(steps + 2)]
    byte_batches = [(sample_batch(ids, cfg.batch_size, cfg.seq_len, gen),)
                    for _ in range(steps + 2)]
    blt, byte = build_model(blt_r), build_model(byte_r)
    bytes_per_step = cfg.batch_size * cfg.seq_len
    result: dict[str, Any] = {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "batch": [cfg.batch_size, cfg.seq_len],
        "mean_patch_size": round(corpus.mean_patch_size, 3),
        "models": {}}
    for name, model, batches, flops in (
            ("BLT", blt, blt_batches, blt_flops_per_byte(
                blt, cfg.seq_len, corpus.mean_patch_size)),
            ("byte LM", byte, byte_batches,
             byte_lm_flops_per_byte(byte, cfg.seq_len))):
        sec = _time_steps(model, batches, steps)
        counts = model.param_counts()
        result["models"][name] = {
            "params_total": counts["total"],
            "params_non_embedding": counts["total"] - counts["embeddings"],
            "bytes_per_s": round(bytes_per_step / sec, 1),
            "train_flops_per_byte": round(flops),
        }
    m = result["models"]
    result["speedup"] = round(m["BLT"]["bytes_per_s"] / m["byte LM"]["bytes_per_s"], 2)
    if seconds:  # the same pipeline as `python -m bltlib train`
        budget = dict(max_seconds=seconds, steps=10**6, eval_every=10**6)
        for name, recipe in (("BLT", blt_r), ("byte LM", byte_r)):
            hist = train_recipe(get_recipe(recipe.name, fast, **budget),
                                progress=progress).history
            m[name].update(train_seconds=round(hist.seconds, 1),
                           bytes_seen=hist.bytes_seen,
                           val_bpb=round(hist.final_val_bpb, 4))
    return result


def format_table(result: dict[str, Any]) -> str:
    rows = ["| model | params (non-emb) | bytes/s | train FLOPs/byte | val bpb |",
            "|---|---|---|---|---|"]
    for name, r in result["models"].items():
        bpb = r.get("val_bpb", "-")
        rows.append(f"| {name} | {r['params_non_embedding']/1e6:.2f}M | "
                    f"{r['bytes_per_s']:,.0f} | {r['train_flops_per_byte']/1e6:.1f}M | {bpb} |")
    rows.append(f"\nBLT / byte LM throughput: {result['speedup']}x "
                f"(mean patch size {result['mean_patch_size']})")
    return "\n".join(rows)


def main(steps: int, seconds: float | None, fast: bool, json_path: str | None) -> int:
    result = run(steps, seconds, fast)
    print(format_table(result))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2))
    return 0
