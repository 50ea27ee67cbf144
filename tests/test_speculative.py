"""BLT-S and BLT-DV: exact greedy equality, cache state after rejections,
the speculative sampling rule, counters and bad input."""
import random

import pytest
import torch

from bltlib.inference.bundle import PatchedBLT
from bltlib.inference.generate import generate
from bltlib.inference.sampling import SamplingConfig, distribution
from bltlib.inference.session import BLTSession
from bltlib.inference.speculative import accept
from bltlib.model.blt_d import BLTD, BLTDConfig
from bltlib.patching import PatcherConfig
from test_inference import median_threshold, tiny_blt, tiny_entropy, trained  # noqa: F401


def prompts(n, seed=0):
    rng = random.Random(seed)
    texts = [b"def f(x):\n    return x", b"import os\n", b"\xff\xfe\x00 bytes",
             b"class A:\n    pass\n\n"]
    out = []
    for i in range(n):
        if i < len(texts):
            out.append(texts[i])
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
    return out


@pytest.fixture(scope="module")
def bundles():
    ent = tiny_entropy()
    theta = median_threshold(ent)
    shapes = [dict(k=2), dict(k=1, window=7, enc_all=True),
              dict(k=3, window=5, enc_layers=1)]
    out = [PatchedBLT(tiny_blt(seed=i, **s), ent,
                      PatcherConfig(threshold=theta, max_patch_length=4))
           for i, s in enumerate(shapes)]
    out.append(PatchedBLT(tiny_blt(seed=9), None, PatcherConfig(mode="fixed", stride=3)))
    return out


def bltd_bundle(block_size=8, seed=4, window=None):
    base = tiny_blt(seed=seed, window=window)
    model = BLTD(BLTDConfig(blt=base.cfg, block_size=block_size), seed=seed)
    model.init_from_blt(base.state_dict())
    ent = tiny_entropy()
    return PatchedBLT(model.eval(), ent,
                      PatcherConfig(threshold=median_threshold(ent), max_patch_length=4))


@pytest.mark.parametrize("k", [1, 4, 8, 16])
def test_blt_s_greedy_equals_blt_greedy_random_weights(bundles, k):
    for i, bundle in enumerate(bundles):
        for prompt in prompts(3, seed=i + k):
            ar = generate(bundle, prompt, method="ar", max_new_bytes=32)
            s = generate(bundle, prompt, method="speculative", draft_len=k,
                         max_new_bytes=32)
            assert s.bytes == ar.bytes
            st = s.stats
            assert st.accepted_bytes <= st.drafted_bytes
            assert st.verify_calls >= 1


def test_blt_s_greedy_equals_blt_greedy_trained(trained):  # noqa: F811
    bundle, text = trained
    for k in (4, 8, 16):
        for off in range(0, 6000, 2000):
            prompt = text[off:off + 48]
            ar = generate(bundle, prompt, method="ar", max_new_bytes=64)
            s = generate(bundle, prompt, method="speculative", draft_len=k,
                         max_new_bytes=64)
            assert s.bytes == ar.bytes
    # a trained decoder agrees with its full model on part of its drafts
    assert 0 < s.stats.accepted_bytes <= s.stats.drafted_bytes


@pytest.mark.parametrize("block_size", [4, 8, 16])
def test_blt_dv_greedy_equals_ar_greedy_of_the_same_weights(block_size):
    bundle = bltd_bundle(block_size, seed=block_size)
    for prompt in prompts(3, seed=block_size):
        ar = generate(bundle, prompt, method="ar", max_new_bytes=40)
        for opts in ({}, {"alpha": 0.5}, {"entropy_bound": 1.0}):
            dv = generate(bundle, prompt, method="diffusion-verify",
                          block_size=block_size, max_new_bytes=40, **opts)
            assert dv.bytes == ar.bytes, opts
            assert dv.stats.drafted_bytes >= dv.stats.accepted_bytes


def snapshot(session):
    dec = [(a.k[:, :, :a.length].clone(), a.v[:, :, :a.length].clone())
           for a in session.dec_cache.layers]
    enc = [(a.k[:, :, :a.length].clone(), a.v[:, :, :a.length].clone())
           for a in session.enc_cache.layers]
    glob = [(a.k[:, :, :a.length].clone(), a.v[:, :, :a.length].clone())
            for a in session.glob_cache.layers]
    return dict(tokens=list(session.tokens), starts=list(session.starts),
                patch_tok=list(session.patch_tok), dec=dec, enc=enc, glob=glob,
                logits=torch.stack(session.row_logits),
                latents=[kv[0][0] for kv in session.latent_kv],
                entropy=list(session.stream.values) if session.stream else None)


def assert_same(a, b):
    assert a["tokens"] == b["tokens"] and a["starts"] == b["starts"]
    assert a["patch_tok"] == b["patch_tok"]
    torch.testing.assert_close(a["logits"], b["logits"], atol=1e-5, rtol=0)
    for name in ("dec", "enc", "glob"):
        assert len(a[name]) == len(b[name])
        for (k1, v1), (k2, v2) in zip(a[name], b[name]):
            torch.testing.assert_close(k1, k2, atol=1e-5, rtol=0)
            torch.testing.assert_close(v1, v2, atol=1e-5, rtol=0)
    assert len(a["latents"]) == len(b["latents"])
    for x, y in zip(a["latents"], b["latents"]):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    if a["entropy"] is not None:
        assert a["entropy"] == pytest.approx(b["entropy"], abs=1e-5)


def test_cache_state_after_each_rejection_equals_a_fresh_recompute(bundles):
    """Draft, verify, reject at every position: the session equals one
    that read the accepted bytes from scratch."""
    gen = torch.Generator().manual_seed(0)
    for bundle in bundles:
        prompt = b"x = [1, 2, 3]\nfor"
        for keep in range(0, 9):
            s = BLTSession(bundle)
            s.prefill(prompt)
            n0 = s.n_bytes
            for b in torch.randint(0, 256, (5,), generator=gen).tolist():
                s.draft_push(b)  # a BLT-S draft, then undone
            s.rollback(n0)
            draft = bytes(torch.randint(0, 256, (8,), generator=gen).tolist())
            rows = s.extend(draft)  # the verification pass
            assert rows.shape == (8, bundle.model.cfg.vocab_size)
            s.rollback(n0 + keep) if keep else s.rollback(n0)
            fresh = BLTSession(bundle)
            fresh.prefill(prompt + draft[:keep])
            assert_same(snapshot(s), snapshot(fresh))
            # and it goes on exactly: one more verification pass
            more = b" in range(3):"
            torch.testing.assert_close(s.extend(more), fresh.extend(more),
                                       atol=1e-5, rtol=0)


def test_extend_equals_pushing_byte_by_byte(bundles):
    for bundle in bundles:
        a, b = BLTSession(bundle), BLTSession(bundle)
        a.prefill(b"abc")
        b.prefill(b"abc")
        tail = b"def g(y): return y * 2\n"
        rows = a.extend(tail)
        pushed = torch.stack([b.push(x) for x in tail])
        torch.testing.assert_close(rows, pushed, atol=1e-5, rtol=0)
        assert a.calls["decoder"] == 2 and a.calls["encoder"] == 2
        assert a.calls["global"] <= 2


def chi_square(counts, probs, n):
    return sum((counts.get(k, 0) - n * p) ** 2 / (n * p) for k, p in probs.items())


def test_speculative_rule_samples_the_target_distribution():
    """accept() with draft q and target p yields exactly p (chi-square)."""
    gen = torch.Generator().manual_seed(0)
    cfg = SamplingConfig(temperature=1.0)
    vocab = 12
    p_logits = torch.randn(vocab, generator=gen) * 2
    q_logits = torch.randn(vocab, generator=gen) * 2
    p, q = distribution(p_logits, cfg), distribution(q_logits, cfg)  # specials 0
    rows = torch.stack([p_logits, torch.zeros(vocab)])
    n, counts = 20000, {}
    for _ in range(n):
        d = int(torch.multinomial(q, 1, generator=gen))
        m, nxt = accept([d], [q], rows, cfg, gen)
        out = d if m == 1 else nxt
        counts[out] = counts.get(out, 0) + 1
    assert set(counts) <= {i for i in range(vocab) if p[i] > 0}
    stat = chi_square(counts, {i: float(p[i]) for i in range(vocab) if p[i] > 0}, n)
    assert stat < 26.1  # chi-square: 9 ids (PAD, BOS, MASK excluded), 8 dof, p = 0.001


@pytest.mark.slow
@pytest.mark.parametrize("method", ["speculative", "diffusion-verify"])
def test_speculative_generation_matches_ar_distribution(method):
    """Two sampled bytes (top-k 3): their joint law is the AR model's."""
    bundle = bltd_bundle(4, seed=11)
    cfg = SamplingConfig(temperature=1.0, top_k=3)
    prompt = b"x = 1\n"
    s = BLTSession(bundle)
    first = distribution(s.prefill(prompt), cfg)
    probs = {}
    for b1 in torch.nonzero(first).flatten().tolist():
        s2 = BLTSession(bundle)
        s2.prefill(prompt + bytes([b1 - 4]))
        second = distribution(s2.logits, cfg)
        for b2 in torch.nonzero(second).flatten().tolist():
            probs[(b1, b2)] = float(first[b1] * second[b2])
    n, counts = 900, {}
    gen = torch.Generator().manual_seed(1)
    opts = {"draft_len": 4} if method == "speculative" else {"block_size": 4}
    for _ in range(n):
        out = generate(bundle, prompt, method=method, max_new_bytes=2,
                       temperature=1.0, top_k=3, generator=gen, **opts)
        key = (out.bytes[0] + 4, out.bytes[1] + 4)
        counts[key] = counts.get(key, 0) + 1
    assert set(counts) <= set(probs)
    stat = chi_square(counts, probs, n)
    assert stat < 27.9  # 9 cells, 8 degrees of freedom, p = 0.001


def test_bad_input(bundles):
    bundle = bundles[0]
    for k in (0, -1, 65, 2.5, True):
        with pytest.raises(ValueError, match="draft_len"):
            generate(bundle, b"x", method="speculative", draft_len=k)
    with pytest.raises(TypeError, match="BLT-D"):
        generate(bundle, b"x", method="diffusion-verify")
    dv = bltd_bundle(4)
    with pytest.raises(ValueError, match="block_size"):
        generate(dv, b"x", method="diffusion-verify", block_size=1)
    with pytest.raises(ValueError, match="entropy_bound"):
        generate(dv, b"x", method="diffusion-verify", entropy_bound=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        generate(dv, b"x", method="diffusion-verify", alpha=float("nan"))
    out = generate(dv, b"\xff\xfe", method="diffusion-verify", max_new_bytes=5)
    assert len(out.bytes) <= 5 and isinstance(out.text, str)


def test_bench_decoders_rows_and_exactness():
    """The decoder benchmark runs every setting on held-out prompts; the
    verified decoders agree with AR on every byte."""
    from bltlib.inference.bench_decoders import held_out_prompts, run
    from bltlib.inference.compare import format_rows
    prompts, refs = held_out_prompts(2, prompt_bytes=40, ref_bytes=16)
    assert all(p.endswith(b"\n    def ") and len(p) == 40 for p in prompts)
    result = run(bltd_bundle(8), n_prompts=2, new_bytes=16, prompt_bytes=40,
                 quick=True, progress=False)
    names = [r["setting"] for r in result["rows"]]
    assert names[0] == "BLT (AR)" and "BLT-S k=8" in names and "BLT-DV-8" in names
    for r in result["rows"]:
        if r["method"] in ("speculative", "diffusion-verify"):
            assert r["agree_with_baseline"] == 1.0
            assert 0 <= r["acceptance_rate"] <= 1
        assert r["new_bytes"] == 16
    assert "BLT-D-8 one step" in format_rows(result["rows"])


def test_cli_speculative(tmp_path, capsys):
    import json

    from bltlib.__main__ import main
    from bltlib.checkpoint import save_checkpoint
    bundle = bltd_bundle(4)
    save_checkpoint(bundle.model, tmp_path / "m", kind="blt-d",
                    config=bundle.model.dcfg,
                    meta={"patcher": {"mode": "entropy",
                                      "threshold": bundle.patcher.threshold,
                                      "max_patch_length": 4}})
    save_checkpoint(bundle.entropy_model, tmp_path / "m" / "entropy",
                    kind="entropy", config=bundle.entropy_model.cfg)
    outs = {}
    for method, extra in (("ar", []), ("speculative", ["--draft-len", "4"]),
                          ("diffusion-verify", ["--block-size", "4"])):
        assert main(["generate", "--model", str(tmp_path / "m"), "--prompt", "ab",
                     "--max-new-bytes", "12", "--method", method, "--json",
                     *extra]) == 0
        outs[method] = json.loads(capsys.readouterr().out)["hex"]
    assert outs["ar"] == outs["speculative"] == outs["diffusion-verify"]
    assert main(["generate", "--model", str(tmp_path / "m"), "--prompt", "ab",
                 "--draft-len", "4"]) == 2
    assert "speculative only" in capsys.readouterr().err
