"""Evaluation metrics on known inputs, and the task formats."""
import pytest

from bltlib import evaluate, tasks


def test_translation_scores_known_values():
    same = evaluate.translation_scores(["le chat est noir"], ["le chat est noir"])
    assert same["chrf"] == pytest.approx(100.0)
    assert same["bleu"] == pytest.approx(100.0)
    none = evaluate.translation_scores(["xyz"], ["le chat est noir"])
    assert none["chrf"] < 5 and none["bleu"] == pytest.approx(0.0)
    part = evaluate.translation_scores([b"le chat est blanc"], [b"le chat est noir"])
    assert 0 < part["bleu"] < 100 and 0 < part["chrf"] < 100
    with pytest.raises(ValueError):
        evaluate.translation_scores([], [])


def test_code_body_stops_at_column_zero():
    out = b"    x = 1\n\n    return x\ndef g():\n    pass\n"
    assert evaluate.code_body(out) == b"    x = 1\n\n    return x\n"
    assert evaluate.code_body(b"print(1)\n") == b"\n"
    # a method: its body is deeper than the indented def line
    meth = b"        return 1\n    def g(self):\n"
    assert evaluate.code_body(meth, b"    def f(self):\n") == b"        return 1\n"
    assert evaluate.parses(b"    def f(self):\n        return 1\n")


def test_code_scores_known_values():
    prompt = b"def f(x):\n    \"\"\"Double.\"\"\"\n"
    ref = b"    return 2 * x\n"
    good = evaluate.code_scores([prompt], [ref + b"def h():\n"], [ref])
    assert good == {"exact_match": 100.0, "chrf": pytest.approx(100.0),
                    "parses": 100.0}
    bad = evaluate.code_scores([prompt, prompt],
                               [b"    return (2 *\n", b"    return 3 * x\n"],
                               [ref, ref])
    assert bad["exact_match"] == 0.0 and bad["parses"] == 50.0


def test_humaneval_executes_in_a_subprocess():
    problems = [p for p in tasks.data.load_jsonl("humaneval")[:3]]
    canonical = [p["canonical_solution"].encode() for p in problems]
    assert evaluate.humaneval_pass(problems, canonical) == {
        "pass_at_1": 100.0, "passed": 3}
    wrong = [b"    return None\n"] * 3
    assert evaluate.humaneval_pass(problems, wrong)["passed"] == 0
    # a hanging completion is cut by the timeout, and fails
    assert not evaluate.run_program("while True:\n    pass\n", timeout=1.0)
    assert evaluate.run_program("import sys\nsys.exit(0)\n")


def test_type_token_ratio():
    assert evaluate.type_token_ratio(["a b a b"]) == 0.5
    assert evaluate.type_token_ratio([b"one two", "three"]) == 1.0
    assert evaluate.type_token_ratio([]) == 0.0


def test_continuation_bpb_matches_forward():
    import math

    import torch

    from test_inference import tiny_blt, tiny_entropy  # noqa: F401
    from bltlib.inference.bundle import PatchedBLT
    from bltlib.patching import PatcherConfig
    bundle = PatchedBLT(tiny_blt(seed=3), tiny_entropy(),
                        PatcherConfig(threshold=2.0, max_patch_length=4))
    prompt, cont = b"def f(x):\n", b"    return x\n"
    bpb = evaluate.continuation_bpb(bundle, prompt, cont)
    # byte by byte through the cached generator's logits
    from bltlib.inference.reference import next_logits
    nll = 0.0
    for i in range(len(cont)):
        logp = torch.log_softmax(next_logits(bundle, prompt + cont[:i]), -1)
        nll -= logp[cont[i] + 4].item()
    assert bpb == pytest.approx(nll / math.log(2) / len(cont), rel=1e-4)
    with pytest.raises(ValueError):
        evaluate.continuation_bpb(bundle, prompt, b"")


def test_task_formats():
    rec = tasks.translation_record("In the beginning", "Au commencement")
    assert rec == b"EN: In the beginning\nFR: Au commencement\n"
    with pytest.raises(ValueError):
        tasks.translation_record("two\nlines")
    ex = tasks.examples("translate", 5)
    assert len(ex) == 5 and all(e.prompt.endswith(b"\nFR: ") for e in ex)
    assert all(e.prompt.count(b"EN: ") == 2 for e in ex)  # one-shot context
    assert all(len(e.prompt) + len(e.reference) < tasks.MAX_EXAMPLE_BYTES
               for e in ex)
    text = tasks.translation_text("val", 1000)
    assert len(text) == 1000 and text.startswith(b"EN: ")
    code = tasks.examples("code", 4)
    assert len(code) == 4 and all(e.prompt.lstrip().startswith(b"def ")
                                  for e in code)
    # every reference body parses after its prompt
    assert all(evaluate.parses(e.prompt + e.reference)
               for e in tasks.examples("code"))
    assert tasks.spread(list(range(10)), 3) == [0, 3, 6]
    with pytest.raises(ValueError):
        tasks.examples("poetry")
    assert tasks.cut_at_stop(b"abc\ndef", b"\n") == b"abc"
