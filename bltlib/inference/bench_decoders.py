"""``python -m bltlib bench-decoders``: every decoder on held-out prompts.

One run, same prompts, same machine: BLT (AR, the baseline), BLT-S with
k = 4 / 8 / 16 and, for a BLT-D checkpoint, BLT-D with B = 4 / 8 / 16
(one step, confidence alpha and EB gamma) and BLT-DV with B = 4 / 8 / 16.
Each row reports the calls, the Eq. 8 reduction against AR (our
parameters and the paper's 3B ones), the acceptance rate, measured
seconds and the speed-up, the speed-up that calls x per-call latency
predicts, and quality (chrF against the true continuation, agreement
with AR).

Prompts are held-out standard-library code (the test split): ``n``
prefixes of ``prompt_bytes`` ending just after ``"\\n    def "``, at
least 5,000 bytes apart; the reference is the true continuation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.compare import Setting, compare, format_rows
from bltlib.model.blt_d import BLTD

MARKER = b"\n    def "


def held_out_prompts(n: int, prompt_bytes: int = 96, ref_bytes: int = 128,
                     gap: int = 5000) -> tuple[list[bytes], list[bytes]]:
    """``n`` (prompt, true continuation) pairs from the code test split."""
    from bltlib import data

    if n < 1 or prompt_bytes < len(MARKER):
        raise ValueError("need n >= 1 prompts of at least 9 bytes")
    text = data.load_text("code", "test")
    prompts, refs = [], []
    pos = prompt_bytes
    while len(prompts) < n:
        i = text.find(MARKER, pos)
        if i < 0:
            raise ValueError(f"the code test split holds only {len(prompts)} "
                             f"prompts {gap} bytes apart; ask for fewer")
        end = i + len(MARKER)
        prompts.append(text[end - prompt_bytes:end])
        refs.append(text[end:end + ref_bytes])
        pos = end + gap
    return prompts, refs


def default_settings(bundle: PatchedBLT, quick: bool = False) -> list[Setting]:
    """AR first; BLT-S always; BLT-D and BLT-DV for BLT-D weights."""
    sizes = (4, 8, 16)
    rows = [Setting("BLT (AR)", "ar")]
    rows += [Setting(f"BLT-S k={k}", "speculative", {"draft_len": k})
             for k in ((8,) if quick else sizes)]
    if isinstance(bundle.model, BLTD):
        for b in ((8,) if quick else sizes):
            rows.append(Setting(f"BLT-D-{b} one step", "diffusion",
                                {"block_size": b, "alpha": 0.0}))
            rows.append(Setting(f"BLT-D-{b} alpha=0.7", "diffusion",
                                {"block_size": b, "alpha": 0.7}))
            rows.append(Setting(f"BLT-D-{b} EB gamma=1", "diffusion",
                                {"block_size": b, "entropy_bound": 1.0}))
        rows += [Setting(f"BLT-DV-{b}", "diffusion-verify", {"block_size": b})
                 for b in ((8,) if quick else sizes)]
    return rows


def run(bundle: PatchedBLT, n_prompts: int = 10, new_bytes: int = 128,
        prompt_bytes: int = 96, quick: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Measure every default setting; a JSON-ready dict."""
    from bltlib.inference.bench import component_latencies

    prompts, refs = held_out_prompts(n_prompts, prompt_bytes, new_bytes)
    latency = component_latencies(bundle, prompts[0])
    rows = compare(bundle, prompts, refs, default_settings(bundle, quick),
                   max_new_bytes=new_bytes, progress=progress, latency=latency)
    return {"rows": rows, "latency_seconds": latency, "prompts": n_prompts,
            "prompt_bytes": prompt_bytes, "new_bytes": new_bytes,
            "params": bundle.param_counts()}


def main(model: str | None, n_prompts: int, new_bytes: int, prompt_bytes: int,
         json_path: str | None, quick: bool = False) -> int:
    import platform

    import torch

    from bltlib.env import get_device
    from bltlib.inference.bench import report
    from bltlib.inference.bundle import load_patched_blt
    from bltlib.pipeline import local_checkpoint_dir

    path = Path(model) if model else local_checkpoint_dir("blt-d-code")
    bundle = load_patched_blt(path).to(get_device())
    result = run(bundle, n_prompts, new_bytes, prompt_bytes, quick)
    result.update(model=str(path), machine=f"{platform.machine()}, "
                  f"{torch.get_num_threads()} threads, {bundle.device}")
    table = (f"{n_prompts} held-out code prompts x {new_bytes} new bytes, "
             f"{result['machine']}\n\n" + format_rows(result["rows"]))
    return report(result, table, json_path)
