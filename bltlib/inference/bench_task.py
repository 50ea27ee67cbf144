"""``python -m bltlib bench --task translate|code``: the paper-style table.

One run, one machine, the same held-out prompts for every row:

* BLT (AR) on the task's BLT weights: the baseline of every reduction;
* BLT-S with k = 4 / 8 / 16 on the same BLT weights (identical output);
* BLT-D-4 / 8 / 16 on the task's BLT-D weights: one step (alpha = 0),
  confidence alpha = 0.7 and EB gamma = 1.5 (the paper's main settings);
* BLT-DV-4 / 8 / 16 drafting with alpha = 0.3 (the paper's acceptance
  table) and BLT-DV-8 with EB gamma = 1.5 (its main table);
* AR on the BLT-D weights, which every BLT-DV row reproduces exactly.

Columns: task quality (translate: chrF, BLEU; code: chrF, exact match,
share that parses), decoder and encoder/global calls, acceptance, Eq. 8
(ours and projected to the 3B counts) with the reduction against BLT,
measured seconds, measured and call-predicted speed-up, and their ratio.
Models are the shipped ones (``bltlib.load``): ``blt-<task>`` and
``blt-d-<task>``.
"""
from __future__ import annotations

import platform
from typing import Any

from bltlib import tasks
from bltlib.evaluate import code_body, code_scores, translation_scores
from bltlib.inference.compare import Setting, compare

SIZES = (4, 8, 16)
NEW_BYTES = {"translate": 200, "code": 256}
STOPS = {"translate": (b"\n",),
         "code": (b"\ndef ", b"\nclass ", b"\n    def ", b"\n\n\n")}


def task_settings(quick: bool = False) -> list[Setting]:
    """The rows, baseline first; ``quick`` keeps k = 8 and B = 8 only."""
    ks = (8,) if quick else SIZES
    bs = (8,) if quick else SIZES
    rows = [Setting("BLT", "ar", model="blt")]
    rows += [Setting(f"BLT-S k={k}", "speculative", {"draft_len": k}, "blt")
             for k in ks]
    for b in bs:
        rows += [
            Setting(f"BLT-D-{b} one step", "diffusion",
                    {"block_size": b, "alpha": 0.0}, "blt-d"),
            Setting(f"BLT-D-{b} alpha=0.7", "diffusion",
                    {"block_size": b, "alpha": 0.7}, "blt-d"),
            Setting(f"BLT-D-{b} EB gamma=1.5", "diffusion",
                    {"block_size": b, "entropy_bound": 1.5}, "blt-d")]
    rows += [Setting(f"BLT-DV-{b} alpha=0.3", "diffusion-verify",
                     {"block_size": b, "alpha": 0.3}, "blt-d") for b in bs]
    rows.append(Setting("BLT-DV-8 EB gamma=1.5", "diffusion-verify",
                        {"block_size": 8, "entropy_bound": 1.5}, "blt-d"))
    rows.append(Setting("AR of BLT-D weights", "ar", model="blt-d"))
    return rows


def scorer(task: str, examples: list[tasks.Example]):
    """``outputs -> metrics`` for the task (see :mod:`bltlib.evaluate`)."""
    refs = [e.reference for e in examples]
    if task == "translate":
        return lambda outs: translation_scores(outs, refs)
    prompts = [e.prompt for e in examples]
    return lambda outs: code_scores(prompts, outs, refs)


def run(task: str, bundles: dict[str, Any], n: int = 20, quick: bool = False,
        progress: bool = True) -> dict[str, Any]:
    """Every setting on ``n`` held-out examples of ``task``; JSON-ready."""
    import torch

    from bltlib.inference.bench import component_latencies

    examples = tasks.examples(task, n)
    prompts = [e.prompt for e in examples]
    refs = [e.reference for e in examples]
    latency = {k: component_latencies(b, prompts[0])
               for k, b in bundles.items()}
    rows = compare(bundles, prompts, refs, task_settings(quick),
                   max_new_bytes=NEW_BYTES[task], progress=progress,
                   latency=latency, stop=STOPS[task],
                   score=scorer(task, examples))
    if task == "code":  # what is scored is the body
        for r in rows:
            r["outputs"] = [code_body(o, e.prompt)
                            for o, e in zip(r["outputs"], examples)]
    for r in rows:
        m, p = r["wall_seconds_vs_baseline"], r["predicted_seconds_vs_baseline"]
        r["speedup"] = 1 / m if m else None
        r["predicted_speedup"] = 1 / p if p else None
        r["speedup_ratio"] = (r["speedup"] / r["predicted_speedup"]
                              if m and p else None)
    return {"task": task, "examples": len(examples),
            "ids": [e.id for e in examples], "rows": rows,
            "latency_seconds": latency, "new_bytes_max": NEW_BYTES[task],
            "params": {k: b.param_counts() for k, b in bundles.items()},
            "machine": f"{platform.machine()}, {torch.get_num_threads()} "
                       f"threads, {next(iter(bundles.values())).device}",
            "torch": torch.__version__}


def humaneval(bundles: dict[str, Any], n: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """HumanEval: pass@1 of greedy BLT (AR), executed in subprocesses, and
    the bits per byte of each canonical solution given its prompt."""
    from tqdm.auto import tqdm

    from bltlib import data
    from bltlib.evaluate import continuation_bpb, humaneval_pass
    from bltlib.inference.generate import generate

    problems = tasks.spread(data.load_jsonl("humaneval"), n)
    outs = [generate(bundles["blt"], p["prompt"].encode(), "ar",
                     max_new_bytes=NEW_BYTES["code"], stop=STOPS["code"]).bytes
            for p in tqdm(problems, desc="HumanEval", disable=not progress)]
    result = {"problems": len(problems), **humaneval_pass(problems, outs)}
    for key, b in bundles.items():
        bpb = [continuation_bpb(b, p["prompt"].encode(),
                                p["canonical_solution"].encode())
               for p in problems]
        result[f"canonical_bpb_{key}"] = sum(bpb) / len(bpb)
    return result


def diversity(bundles: dict[str, Any], examples: list[tasks.Example],
              task: str, seed: int = 0) -> list[dict[str, Any]]:
    """Type-token ratio of the outputs, greedy against top-p sampling
    (temperature 1, p = 0.9), for BLT and for BLT-D-8 with EB gamma = 1.5
    (the paper's Figure 8); one explicit generator per row."""
    import torch

    from bltlib.evaluate import type_token_ratio
    from bltlib.inference.generate import generate

    rows = []
    for name, key, method, opts in (
            ("BLT", "blt", "ar", {}),
            ("BLT-D-8 EB gamma=1.5", "blt-d", "diffusion",
             {"block_size": 8, "entropy_bound": 1.5})):
        for label, samp in (("greedy", {}),
                            ("top-p 0.9", {"temperature": 1.0, "top_p": 0.9})):
            gen = torch.Generator().manual_seed(seed)
            outs = [generate(bundles[key], e.prompt, method,
                             max_new_bytes=NEW_BYTES[task], stop=STOPS[task],
                             generator=gen if samp else None, **samp,
                             **opts).bytes for e in examples]
            rows.append({"setting": f"{name} {label}",
                         "type_token_ratio": type_token_ratio(outs)})
    return rows


QUALITY = {"translate": ("chrf", "bleu"), "code": ("chrf", "exact_match",
                                                   "parses")}


def format_table(result: dict[str, Any]) -> str:
    """The paper-style Markdown table."""
    q = QUALITY[result["task"]]
    lines = [f"{result['task']}: {result['examples']} held-out examples, "
             f"{result['machine']}", "",
             "| setting | " + " | ".join(q) + " | dec calls | global calls "
             "| accepted | Eq. 8 reduction (ours / 3B) | seconds | speed-up "
             "measured / predicted (ratio) |",
             "|---|" + "---|" * len(q) + "---|---|---|---|---|---|"]
    for r in result["rows"]:
        acc = r.get("acceptance_rate")
        red = (f"{1 - r['eq8_gb_vs_baseline']:.1%} / "
               f"{1 - r['projected_3b_gb_vs_baseline']:.1%}")
        sp = (f"{r['speedup']:.2f}x / {r['predicted_speedup']:.2f}x "
              f"({r['speedup_ratio']:.2f})" if r.get("speedup_ratio") else "-")
        lines.append(
            f"| {r['setting']} | " + " | ".join(f"{r[k]:.1f}" for k in q)
            + f" | {r['decoder_calls']:.1f} | {r['global_calls']:.1f} "
            f"| {'-' if acc is None else f'{acc:.1%}'} | {red} "
            f"| {r['wall_seconds']:.2f} | {sp} |")
    return "\n".join(lines)


def main(task: str, n: int, json_path: str | None, quick: bool = False,
         device: str | None = None) -> int:
    from bltlib import zoo
    from bltlib.env import get_device
    from bltlib.inference.bench import report

    if task not in tasks.TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {tasks.TASKS}")
    dev = get_device(device)
    bundles = {"blt": zoo.load(f"blt-{task}").to(dev),
               "blt-d": zoo.load(f"blt-d-{task}").to(dev)}
    result = run(task, bundles, n, quick)
    examples = tasks.examples(task, n)
    result["diversity"] = diversity(bundles, examples, task)
    extra = "\n\nDiversity (type-token ratio): " + ", ".join(
        f"{r['setting']} {r['type_token_ratio']:.3f}"
        for r in result["diversity"])
    if task == "code":
        he = result["humaneval"] = humaneval(bundles, None if not quick
                                             else 10)
        extra += (f"\n\nHumanEval ({he['problems']} problems): pass@1 "
                  f"{he['pass_at_1']:.1f}% ({he['passed']} passed); bits "
                  f"per byte of the canonical solution: BLT "
                  f"{he['canonical_bpb_blt']:.3f}, BLT-D "
                  f"{he['canonical_bpb_blt-d']:.3f}")
    result["models"] = {k: f"blt-{task}" if k == "blt" else f"blt-d-{task}"
                        for k in bundles}
    return report(result, format_table(result) + extra, json_path)
