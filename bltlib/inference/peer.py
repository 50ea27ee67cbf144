"""Peer benchmark: our cached BLT against ``transformers``' BltForCausalLM.

``python -m bltlib bench-peer [--model DIR] [--new-bytes 128 512] [--json PATH]``

The same weights run in both: our checkpoint is converted to the
``transformers`` format (``bltlib.convert``). The peer generates the way
its own code and the official BLT code do: for every byte, re-patch the
prefix (our patcher and entropy model, so the patching is identical) and
run the whole model with ``use_cache=False`` (``use_cache=True`` fails in
transformers 5.24.0 for BLT). Both decode greedily; the benchmark checks
the outputs are byte-identical before it reports a ratio.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from bltlib.bytes import BOS_ID, OFFSET
from bltlib.convert import config_to_hf, state_to_hf
from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.generate import generate, sync_device
from bltlib.inference.reference import patch_lengths_with_next
from bltlib.inference.sampling import SamplingConfig, choose


def to_transformers(bundle: PatchedBLT) -> torch.nn.Module:
    """Our BLT as a ``transformers`` BltForCausalLM with the same weights."""
    from transformers import BltConfig, BltForCausalLM

    hf = BltForCausalLM(BltConfig(**config_to_hf(bundle.model.cfg)))
    hf.load_state_dict(state_to_hf(bundle.model.state_dict()))
    return hf.to(bundle.device).eval()


@torch.no_grad()
def transformers_generate(hf: torch.nn.Module, bundle: PatchedBLT,
                          prompt: bytes, max_new_bytes: int
                          ) -> tuple[bytes, float]:
    """Greedy bytes from the peer's no-cache loop, and its seconds."""
    greedy, dev = SamplingConfig(), bundle.device
    raw = bytearray(prompt)
    start = time.perf_counter()
    for _ in range(max_new_bytes):
        ids = torch.tensor([[BOS_ID] + [b + OFFSET for b in raw]], device=dev)
        lengths = patch_lengths_with_next(bundle, bytes(raw)).to(dev)[None]
        logits = hf(input_ids=ids, patch_lengths=lengths,
                    use_cache=False).logits[0, -1]
        token = choose(logits, greedy, None)
        if token < OFFSET:
            break
        raw.append(token - OFFSET)
    sync_device(dev)
    return bytes(raw[len(prompt):]), time.perf_counter() - start


def run(bundle: PatchedBLT, prompt: bytes,
        new_bytes: tuple[int, ...] = (128, 512),
        draft_len: int = 8) -> dict[str, Any]:
    import transformers

    hf = to_transformers(bundle)
    result: dict[str, Any] = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "device": str(bundle.device), "threads": torch.get_num_threads(),
        "params_total": bundle.param_counts()["total"],
        "prompt_bytes": len(prompt), "draft_len": draft_len, "rows": []}
    for n in new_bytes:
        ar = generate(bundle, prompt, "ar", max_new_bytes=n)
        spec = generate(bundle, prompt, "speculative", max_new_bytes=n,
                        draft_len=draft_len)
        peer, peer_s = transformers_generate(hf, bundle, prompt, n)
        row = {"new_bytes": len(ar.bytes),
               "identical": peer == ar.bytes == spec.bytes,
               "transformers_bytes_per_s": round(len(peer) / peer_s, 1),
               "ar_bytes_per_s": round(ar.stats.bytes_per_second, 1),
               "blt_s_bytes_per_s": round(spec.stats.bytes_per_second, 1),
               "blt_s_acceptance": spec.stats.acceptance_rate}
        row["ar_speedup"] = round(row["ar_bytes_per_s"]
                                  / row["transformers_bytes_per_s"], 2)
        row["blt_s_speedup"] = round(row["blt_s_bytes_per_s"]
                                     / row["transformers_bytes_per_s"], 2)
        result["rows"].append(row)
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{result['params_total'] / 1e6:.1f}M parameters, prompt "
             f"{result['prompt_bytes']} bytes, {result['device']}, "
             f"{result['threads']} threads, transformers "
             f"{result['transformers']}", "",
             "| new bytes | transformers loop bytes/s | bltlib cached AR bytes/s "
             f"| ratio | BLT-S (k={result['draft_len']}) bytes/s | ratio "
             "| acceptance | identical (all three) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        acc = r["blt_s_acceptance"]
        lines.append(f"| {r['new_bytes']} | {r['transformers_bytes_per_s']} | "
                     f"{r['ar_bytes_per_s']} | {r['ar_speedup']}x | "
                     f"{r['blt_s_bytes_per_s']} | {r['blt_s_speedup']}x | "
                     f"{'-' if acc is None else f'{acc:.1%}'} | "
                     f"{r['identical']} |")
    return "\n".join(lines)


def main(model: str | None, new_bytes: list[int], prompt_bytes: int,
         json_path: str | None) -> int:
    from bltlib.inference.bench import load_inputs, report

    bundle, prompt, path = load_inputs(model, prompt_bytes)
    result = run(bundle, prompt, tuple(new_bytes))
    result["model"] = str(path)
    return report(result, format_table(result), json_path)
