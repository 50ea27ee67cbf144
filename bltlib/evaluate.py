"""Offline evaluation metrics for the two tasks (see :mod:`bltlib.tasks`).

Every text metric comes from a library: chrF and BLEU from ``sacrebleu``,
parsing from ``ast``. HumanEval programs run in a fresh ``python -I``
subprocess with a timeout and only the standard library; generated code
is never executed in this process.

* :func:`translation_scores`: corpus chrF and BLEU.
* :func:`code_scores`: exact match, chrF and the share of prompt + body
  that parses.
* :func:`humaneval_pass`: pass@1 (one greedy sample per problem).
* :func:`continuation_bpb`: bits per byte of a reference continuation
  given its prompt, from one full BLT forward.
* :func:`type_token_ratio`: distinct / total whitespace words (diversity).
"""
from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from typing import Sequence

import sacrebleu
import torch
import torch.nn.functional as F

from bltlib.bytes import BOS_ID, OFFSET


def _text(b: bytes | str) -> str:
    return b if isinstance(b, str) else b.decode("utf-8", "replace")


def translation_scores(hyps: Sequence[bytes | str], refs: Sequence[bytes | str]
                       ) -> dict[str, float]:
    """Corpus chrF and BLEU (sacrebleu defaults) of hypotheses vs references."""
    if len(hyps) != len(refs) or not hyps:
        raise ValueError("need as many hypotheses as references (at least one)")
    h, r = [_text(x) for x in hyps], [_text(x) for x in refs]
    return {"chrf": sacrebleu.corpus_chrf(h, [r]).score,
            "bleu": sacrebleu.corpus_bleu(h, [r]).score}


def _indent(line: bytes) -> int:
    return len(line) - len(line.lstrip(b" \t"))


def code_body(out: bytes, prompt: bytes = b"") -> bytes:
    """A generated function body: the leading lines that are blank or
    indented deeper than the prompt's ``def`` line (column 0 without a
    prompt); it ends at the first line that is not."""
    first = prompt.split(b"\n", 1)[0]
    base = _indent(first) if first.strip() else 0
    keep = []
    for line in out.split(b"\n"):
        if line.strip() and _indent(line) <= base:
            break
        keep.append(line)
    return b"\n".join(keep).rstrip() + b"\n"


def parses(source: bytes | str) -> bool:
    """True when ``source`` (dedented) is valid Python (``ast.parse``)."""
    try:
        ast.parse(textwrap.dedent(_text(source)))
    except (SyntaxError, ValueError):
        return False
    return True


def code_scores(prompts: Sequence[bytes], hyps: Sequence[bytes],
                refs: Sequence[bytes]) -> dict[str, float]:
    """Exact match (after trailing-space strip), chrF and parse share (%)."""
    if not (len(prompts) == len(hyps) == len(refs)) or not hyps:
        raise ValueError("need one prompt, hypothesis and reference each")
    bodies = [code_body(h, p) for h, p in zip(hyps, prompts)]
    exact = sum(b.rstrip() == r.rstrip() for b, r in zip(bodies, refs))
    ok = sum(parses(p + b) for p, b in zip(prompts, bodies))
    n = len(hyps)
    return {"exact_match": 100.0 * exact / n,
            "chrf": sacrebleu.corpus_chrf([_text(b) for b in bodies],
                                          [[_text(r) for r in refs]]).score,
            "parses": 100.0 * ok / n}


def run_program(source: str, timeout: float = 5.0) -> bool:
    """Run ``source`` in an isolated ``python -I`` subprocess; True if it
    exits 0 within ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prog.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        try:
            proc = subprocess.run([sys.executable, "-I", path], cwd=tmp,
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return proc.returncode == 0


def humaneval_program(problem: dict, completion: str) -> str:
    """The HumanEval check program: prompt + completion + test + check()."""
    return (problem["prompt"] + completion + "\n\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})\n")


def humaneval_pass(problems: Sequence[dict], completions: Sequence[bytes],
                   timeout: float = 5.0) -> dict[str, float]:
    """pass@1 (%) with one completion per problem, and the passed count."""
    if len(problems) != len(completions) or not problems:
        raise ValueError("need one completion per problem")
    passed = sum(run_program(humaneval_program(p, _text(code_body(c))), timeout)
                 for p, c in zip(problems, completions))
    return {"pass_at_1": 100.0 * passed / len(problems), "passed": passed}


@torch.no_grad()
def continuation_bpb(bundle, prompt: bytes, continuation: bytes) -> float:
    """Bits per byte of ``continuation`` given ``prompt`` under a BLT.

    One full forward over BOS + prompt + continuation with the bundle's
    own (causal) patching; logits[:, i] predicts byte i + 1.
    """
    from bltlib.inference.reference import patch_lengths_with_next

    if not continuation:
        raise ValueError("continuation must not be empty")
    text = prompt + continuation
    if len(text) + 1 > bundle.max_seq_len:
        raise ValueError(f"prompt + continuation is {len(text)} bytes; the "
                         f"model takes at most {bundle.max_seq_len - 1}")
    dev = bundle.device
    ids = torch.tensor([[BOS_ID] + [b + OFFSET for b in text]], device=dev)
    lengths = patch_lengths_with_next(bundle, text[:-1]).to(dev)[None]
    logits = bundle.model(ids, lengths)[0].float()  # (T, V)
    start = len(prompt)  # logits[start] predicts text[start]
    nll = F.cross_entropy(logits[start:len(text)], ids[0, start + 1:],
                          reduction="sum")
    return nll.item() / math.log(2) / len(continuation)


def type_token_ratio(texts: Sequence[bytes | str]) -> float:
    """Distinct words / words over all texts (whitespace split); 0 if none."""
    words = [w for t in texts for w in _text(t).split()]
    return len(set(words)) / len(words) if words else 0.0
