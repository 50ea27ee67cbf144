"""Decoders side by side: calls, Eq. 8 bandwidth, wall time and quality.

``compare(bundle, prompts, references, settings)`` runs every setting
(a ``generate`` method with its options) on the same held-out prompts
and reports, per setting, the mean calls per example, Eq. 8 with our
parameter counts and projected to the paper's 3B model, the reduction
of both against the first setting (the AR baseline), measured seconds,
and quality: chrF (sacrebleu) against the true continuation, and the
share of bytes equal to the baseline's output at the same position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sacrebleu
from tqdm.auto import tqdm

from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.generate import generate


@dataclass(frozen=True)
class Setting:
    """One row: a name, a ``generate`` method and its options."""

    name: str
    method: str = "ar"
    options: dict[str, Any] = field(default_factory=dict)


def _agreement(a: bytes, b: bytes) -> float:
    n = max(len(a), len(b))
    return sum(x == y for x, y in zip(a, b)) / n if n else 1.0


def compare(bundle: PatchedBLT, prompts: list[bytes], references: list[bytes],
            settings: list[Setting], max_new_bytes: int = 128,
            progress: bool = True,
            latency: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One dict per setting; the first setting is the baseline.

    With ``latency`` (seconds per call of each component, from
    :func:`bltlib.inference.bench.component_latencies`) each row also
    holds ``predicted_seconds``: calls x latency, the clock Eq. 8's call
    counting predicts on this machine.
    """
    from bltlib.inference.bench import predicted_seconds

    if len(prompts) != len(references) or not prompts:
        raise ValueError("give as many references as prompts (at least one)")
    outputs: dict[str, list[bytes]] = {}
    rows = []
    for s in settings:
        totals = dict(decoder_calls=0, global_calls=0, encoder_calls=0,
                      entropy_calls=0, new_bytes=0, wall_seconds=0.0,
                      eq8_gb=0.0, projected_3b_gb=0.0, drafted_bytes=0,
                      accepted_bytes=0, verify_calls=0, predicted_seconds=0.0,
                      steps_per_block=0.0)
        outs = []
        for prompt in tqdm(prompts, desc=s.name, disable=not progress):
            r = generate(bundle, prompt, s.method, max_new_bytes=max_new_bytes,
                         **s.options)
            outs.append(r.bytes)
            st = r.stats
            for k in ("decoder_calls", "global_calls", "encoder_calls",
                      "entropy_calls", "new_bytes", "wall_seconds",
                      "drafted_bytes", "accepted_bytes", "verify_calls"):
                totals[k] += getattr(st, k)
            totals["steps_per_block"] += st.extra.get("steps_per_block", 0.0)
            if latency:
                totals["predicted_seconds"] += predicted_seconds(st, latency)
            totals["eq8_gb"] += st.eq8_gb()
            totals["projected_3b_gb"] += st.projected_gb()
        outputs[s.name] = outs
        n = len(prompts)
        hyps = [o.decode("utf-8", "replace") for o in outs]
        refs = [r[:max_new_bytes].decode("utf-8", "replace") for r in references]
        base = outputs[settings[0].name]
        row = {"setting": s.name, **{k: v / n for k, v in totals.items()},
               "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
               "agree_with_baseline": sum(map(_agreement, outs, base)) / n,
               "acceptance_rate": (totals["accepted_bytes"] / totals["drafted_bytes"]
                                   if totals["drafted_bytes"] else None),
               "method": s.method, "options": dict(s.options)}
        rows.append(row)
    base = rows[0]
    for row in rows:
        for key in ("eq8_gb", "projected_3b_gb", "wall_seconds", "predicted_seconds"):
            row[f"{key}_vs_baseline"] = row[key] / base[key] if base[key] else None
    return rows


def _ratio(x: float | None) -> str:
    return f"{1 / x:.2f}x" if x else "-"


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A Markdown table; speed-ups are baseline seconds / row seconds."""
    lines = ["| setting | dec calls | glob calls | steps/block | accepted "
             "| Eq. 8 reduction (ours / 3B) | wall s | speed-up "
             "(measured / predicted) | chrF | agrees with AR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        red = (f"{1 - r['eq8_gb_vs_baseline']:.1%} / "
               f"{1 - r['projected_3b_gb_vs_baseline']:.1%}")
        acc = r.get("acceptance_rate")
        steps = r.get("steps_per_block") or 0.0
        lines.append(
            f"| {r['setting']} | {r['decoder_calls']:.1f} | {r['global_calls']:.1f} "
            f"| {f'{steps:.2f}' if steps else '-'} "
            f"| {'-' if acc is None else f'{acc:.1%}'} "
            f"| {red} | {r['wall_seconds']:.2f} | "
            f"{_ratio(r['wall_seconds_vs_baseline'])} / "
            f"{_ratio(r.get('predicted_seconds_vs_baseline'))} | {r['chrf']:.1f} "
            f"| {r['agree_with_baseline']:.1%} |")
    return "\n".join(lines)
