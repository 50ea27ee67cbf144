"""Generation benchmark: the cached BLT against the no-cache loop.

``python -m bltlib bench-generate [--model DIR] [--new-bytes 128 512]
[--prompt-bytes 64] [--json PATH]``

Side by side in one process, on the same prompt and weights:

1. **Speed-up.** Greedy generation with ``method="ar"`` (KV caches at
   every level) and ``method="reference"`` (the official loop: re-patch
   and re-run everything per byte). Both must give the same bytes; the
   benchmark checks it.
2. **Does time track the call counts?** Each component's latency per
   call is timed alone (:func:`component_latencies`); the predicted AR
   time is the sum of calls x latency, printed next to the measured one.
3. **Eq. 8.** The estimated weight traffic of both runs, with our
   parameter counts and projected to the paper's 3B model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from bltlib.bytes import BOS_ID, encode
from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.generate import generate, sync_device
from bltlib.inference.session import BLTSession


@torch.no_grad()
def component_latencies(bundle: PatchedBLT, prompt: bytes,
                        repeats: int = 30) -> dict[str, float]:
    """Seconds per call of each component, decoding one byte after ``prompt``.

    Every call is undone (caches rolled back) so each repeat sees the
    same context length; the result is the fastest of three rounds.
    """
    s = BLTSession(bundle)
    s.prefill(prompt)
    m, dev = bundle.model, bundle.device
    t = len(s.tokens)
    ids = torch.tensor([s.tokens[-m.local_encoder.context_bytes:]], device=dev)
    h = s.enc_h[-1][None, None]  # (1, 1, D)
    kv = s.latent_kv[-1]
    pe = m.local_encoder.pool_one(torch.stack(s.enc_h[-4:])[None])

    def enc() -> None:
        m.local_encoder.step(ids, 1, s.enc_cache)
        s.enc_cache.rollback(t)

    def glob() -> None:
        lat = m.global_transformer(pe[:, None], cache=s.glob_cache)
        m.local_decoder.cross_kv(lat)
        s.glob_cache.rollback(s.glob_cache.length - 1)

    def dec() -> None:
        m.lm_head(m.local_decoder(h, None, None, None, cache=s.dec_cache,
                                  cross_kv=kv))
        s.dec_cache.rollback(t)

    def ent() -> None:
        s.stream.push(65)
        s.stream.rollback(len(s.stream.raw) - 1)

    parts = {"encoder": enc, "global": glob, "decoder": dec}
    if s.stream is not None:
        parts["entropy"] = ent
    return {name: _fastest(fn, dev, max(repeats // 3, 1))
            for name, fn in parts.items()}


def predicted_seconds(stats: Any, latency: dict[str, float]) -> float:
    """Sum over components of calls x seconds per call."""
    return sum(getattr(stats, f"{name}_calls") * sec
               for name, sec in latency.items())


ROW_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@torch.no_grad()
def row_latencies(bundle: PatchedBLT, prompt: bytes,
                  sizes: tuple[int, ...] = ROW_SIZES, repeats: int = 24
                  ) -> dict[str, dict[int, float]]:
    """Seconds per call of each component when the call carries ``n`` rows.

    Like :func:`component_latencies` (after ``prompt``, every call
    undone), but each component gets ``n`` new rows per call: ``n`` bytes
    for the encoder, the decoder (causal among themselves, as a
    verification pass) and the entropy model, ``n`` patches for the
    global model. On a GPU at scale a call costs about the same whatever
    its rows (weight traffic dominates, Eq. 8's premise); on a CPU with
    toy widths, compute per row is not negligible. Fastest of 3 rounds.
    """
    s = BLTSession(bundle)
    s.prefill(prompt)
    m, dev = bundle.model, bundle.device
    t = len(s.tokens)
    ctx = m.local_encoder.context_bytes
    kv = s.latent_kv[-1]
    pe1 = m.local_encoder.pool_one(torch.stack(s.enc_h[-4:])[None])  # (1, K*D)
    ent_model = bundle.entropy_model
    if ent_model is not None:  # its own short context, so long calls fit
        e_cache = ent_model.new_cache()
        ent_model(torch.tensor([[BOS_ID] + encode(prompt[-32:])], device=dev),
                  cache=e_cache)
        e_len = e_cache.length
    out: dict[str, dict[int, float]] = {c: {} for c in (
        "encoder", "global", "decoder") + (("entropy",) if ent_model else ())}
    for n in sizes:
        ids = torch.randint(4, 260, (1, n + ctx - 1), device=dev)
        h = torch.stack([s.enc_h[-1]] * n)[None]  # (1, n, D)
        mask = torch.ones(n, t + n, dtype=torch.bool, device=dev)
        mask[:, t:] = torch.ones(n, n, dtype=torch.bool, device=dev).tril()
        cross = torch.ones(1, n, m.cfg.cross_attn_k, dtype=torch.bool,
                           device=dev)
        pos = torch.arange(t, t + n, device=dev)[None]
        pe = pe1[:, None].expand(1, n, -1).contiguous()  # (1, n, K*D)

        def enc() -> None:
            m.local_encoder.step(ids, n, s.enc_cache)
            s.enc_cache.rollback(t)

        def glob() -> None:
            length = s.glob_cache.length
            m.local_decoder.cross_kv(m.global_transformer(pe, cache=s.glob_cache))
            s.glob_cache.rollback(length)

        def dec() -> None:
            m.lm_head(m.local_decoder(h, None, None if n == 1 else mask[None],
                                      None if n == 1 else cross,
                                      positions=None if n == 1 else pos,
                                      cache=s.dec_cache, cross_kv=kv))
            s.dec_cache.rollback(t)

        def ent() -> None:
            ent_model(ids[:, -n:], cache=e_cache)
            e_cache.rollback(e_len)

        parts = {"encoder": enc, "global": glob, "decoder": dec}
        if ent_model is not None and e_len + n <= ent_model.cfg.max_seq_len:
            parts["entropy"] = ent
        for name, fn in parts.items():
            out[name][n] = _fastest(fn, dev, max(repeats // 3, 1))
    return out


def _fastest(fn, dev: torch.device, reps: int) -> float:
    """Seconds per call of ``fn``: the fastest of 3 rounds of ``reps``
    calls after a warm-up (robust to a busy machine)."""
    fn()  # warm up
    rounds = []
    for _ in range(3):
        sync_device(dev)
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        sync_device(dev)
        rounds.append((time.perf_counter() - start) / reps)
    return min(rounds)


def row_cost(table: dict[int, float], n: int) -> float:
    """Seconds of one call with ``n`` rows: linear between measured sizes,
    and along the last two beyond them."""
    xs = sorted(table)
    if n <= xs[0]:
        return table[xs[0]]
    for a, b in zip(xs, xs[1:]):
        if n <= b:
            return table[a] + (table[b] - table[a]) * (n - a) / (b - a)
    a, b = xs[-2], xs[-1]
    return table[b] + (table[b] - table[a]) * (n - b) / (b - a)


def row_predicted_seconds(stats: Any, table: dict[str, dict[int, float]]
                          ) -> float:
    """Sum over every call of the measured latency at its number of rows
    (``stats.call_rows``): the call-count prediction with each call priced
    by its length."""
    return sum(row_cost(table[name], n)
               for name, rows in stats.call_rows.items() if table.get(name)
               for n in rows)


def run(bundle: PatchedBLT, prompt: bytes, new_bytes: tuple[int, ...] = (128, 512),
        reference: bool = True) -> dict[str, Any]:
    """Measure both generators at each length; returns a JSON-ready dict."""
    latency = component_latencies(bundle, prompt)
    result: dict[str, Any] = {
        "torch": torch.__version__, "device": str(bundle.device),
        "threads": torch.get_num_threads(), "prompt_bytes": len(prompt),
        "params": bundle.param_counts(),
        "latency_ms": {k: round(v * 1e3, 3) for k, v in latency.items()},
        "rows": []}
    for n in new_bytes:
        ar = generate(bundle, prompt, "ar", max_new_bytes=n)
        row: dict[str, Any] = {"new_bytes": len(ar.bytes)}
        row["ar"] = _summary(ar.stats)
        row["ar"]["predicted_s"] = round(predicted_seconds(ar.stats, latency), 3)
        if reference:
            ref = generate(bundle, prompt, "reference", max_new_bytes=n)
            row["reference"] = _summary(ref.stats)
            row["identical"] = ref.bytes == ar.bytes
            row["speedup"] = round(ref.stats.wall_seconds / ar.stats.wall_seconds, 2)
            row["eq8_speedup"] = round(ref.stats.eq8_gb() / ar.stats.eq8_gb(), 2)
        result["rows"].append(row)
    return result


def _summary(s: Any) -> dict[str, Any]:
    return {"wall_s": round(s.wall_seconds, 3),
            "bytes_per_s": round(s.bytes_per_second, 1),
            "decoder_calls": s.decoder_calls, "global_calls": s.global_calls,
            "encoder_calls": s.encoder_calls, "entropy_calls": s.entropy_calls,
            "eq8_gb": s.eq8_gb(), "projected_3b_gb": round(s.projected_gb(), 2)}


def format_table(result: dict[str, Any]) -> str:
    lines = [f"prompt {result['prompt_bytes']} bytes, {result['device']}, "
             f"{result['threads']} threads; ms per call: "
             + ", ".join(f"{k} {v}" for k, v in result["latency_ms"].items()),
             "",
             "| new bytes | method | wall s | bytes/s | dec calls | glob calls "
             "| Eq.8 @3B GB | predicted s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        for name in ("reference", "ar"):
            if name not in row:
                continue
            r = row[name]
            lines.append(
                f"| {row['new_bytes']} | {name} | {r['wall_s']} | {r['bytes_per_s']} "
                f"| {r['decoder_calls']} | {r['global_calls']} "
                f"| {r['projected_3b_gb']} | {r.get('predicted_s', '-')} |")
    for row in result["rows"]:
        if "speedup" in row:
            lines.append(f"\n{row['new_bytes']} bytes: cached AR is "
                         f"{row['speedup']}x faster than the no-cache loop "
                         f"(Eq. 8 predicts {row['eq8_speedup']}x); identical "
                         f"output: {row['identical']}")
    return "\n".join(lines)


def load_inputs(model: str | None, prompt_bytes: int
                ) -> tuple[PatchedBLT, bytes, Path]:
    """The benchmarked checkpoint (default: the local ``blt-code``) on the
    default device, and a prompt from held-out standard-library code."""
    from bltlib import data
    from bltlib.env import get_device
    from bltlib.inference.bundle import load_patched_blt
    from bltlib.pipeline import local_checkpoint_dir

    path = Path(model) if model else local_checkpoint_dir("blt-code")
    bundle = load_patched_blt(path).to(get_device())
    return bundle, data.load_text("code", "test")[:prompt_bytes], path


def report(result: dict[str, Any], table: str, json_path: str | None) -> int:
    """Print a benchmark's table; write its JSON when asked."""
    print(table)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2,
                                              default=_jsonable))
    return 0


def _jsonable(obj: Any) -> Any:
    """JSON for generated bytes: the safely decoded text."""
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", "replace")
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def main(model: str | None, new_bytes: list[int], prompt_bytes: int,
         json_path: str | None, reference: bool = True) -> int:
    bundle, prompt, path = load_inputs(model, prompt_bytes)
    result = run(bundle, prompt, tuple(new_bytes), reference)
    result["model"] = str(path)
    return report(result, format_table(result), json_path)
