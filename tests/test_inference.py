"""The KV-cached inference engine: exactness, counters, Eq. 8, bad input."""
import inspect
import json
import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bltlib.checkpoint import save_checkpoint
from bltlib.entropy import EntropyModel, EntropyModelConfig, entropies
from bltlib.inference.bundle import PatchedBLT, load_patched_blt
from bltlib.inference.entropy_stream import EntropyStream
from bltlib.inference.generate import generate
from bltlib.inference.reference import next_logits
from bltlib.inference.sampling import SamplingConfig, distribution
from bltlib.inference.session import BLTSession
from bltlib.inference.stats import PAPER_3B, eq8_bytes
from bltlib.model.blt import BLT, BLTConfig
from bltlib.model.cache import KVCache
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig
from bltlib.patching import PatcherConfig, entropy_starts, next_start


def tc(dim, layers, heads, window=None):
    return TransformerConfig(dim=dim, n_layers=layers, n_heads=heads,
                             sliding_window=window)


def tiny_entropy(seed=3, window=6, max_seq_len=9):
    return EntropyModel(EntropyModelConfig(tc(32, 2, 2, window),
                                           max_seq_len=max_seq_len), seed=seed)


def tiny_blt(seed=0, k=2, window=None, enc_layers=2, enc_all=False,
             max_seq_len=4096):
    cfg = BLTConfig(encoder=tc(32, enc_layers, 2, window),
                    global_model=tc(48, 2, 4), decoder=tc(32, 2, 2, window),
                    hashing=HashConfig(vocab=64), cross_attn_k=k,
                    encoder_cross_all_layers=enc_all, max_seq_len=max_seq_len)
    return BLT(cfg, seed=seed)


def median_threshold(ent, n=400, seed=0):
    """A threshold that opens patches at about every second byte."""
    rng = random.Random(seed)
    raw = bytes(rng.randrange(256) for _ in range(n))
    return float(entropies(ent, raw).median())


@pytest.fixture(scope="module")
def bundles():
    ent = tiny_entropy()
    theta = median_threshold(ent)
    shapes = [dict(k=2), dict(k=1, window=7, enc_all=True),
              dict(k=3, window=5, enc_layers=1), dict(k=2, enc_layers=0)]
    out = [PatchedBLT(tiny_blt(seed=i, **s), ent,
                      PatcherConfig(threshold=theta, max_patch_length=4))
           for i, s in enumerate(shapes)]
    out.append(PatchedBLT(tiny_blt(seed=9), None,
                          PatcherConfig(mode="fixed", stride=3)))
    return out


@pytest.fixture(scope="module")
def trained():
    """A tiny BLT and entropy model trained briefly on real Python source."""
    text = inspect.getsource(json).encode()[:20000]
    torch.manual_seed(0)
    ent = tiny_entropy(window=32, max_seq_len=65)
    blt = tiny_blt(seed=1, window=32)
    ids = torch.tensor([b + 4 for b in text])
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(ent.parameters(), lr=3e-3)
    for _ in range(40):
        offs = torch.randint(0, len(text) - 64, (8,), generator=gen)
        batch = torch.stack([torch.cat([torch.tensor([1]), ids[o:o + 64]])
                             for o in offs.tolist()])
        loss = ent.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ent.eval()
    theta = float(entropies(ent, text[:4000]).quantile(0.7))
    patcher = PatcherConfig(threshold=theta, max_patch_length=8)
    from bltlib.blt_data import PatchedCorpus, sample_blt_batch
    from bltlib.patching import patch_starts
    with torch.no_grad():
        starts = patch_starts(patcher, text, entropies(ent, text))
    corpus = PatchedCorpus(ids=ids, starts=starts)
    opt = torch.optim.AdamW(blt.parameters(), lr=3e-3)
    for _ in range(40):
        loss = blt.loss(*sample_blt_batch(corpus, 8, 64, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return PatchedBLT(blt, ent, patcher), text


def test_kv_cache_append_grow_rollback():
    c = KVCache(capacity=2)
    k = torch.arange(5.0).view(1, 1, 5, 1)
    all_k, _ = c.append(k[:, :, :3], k[:, :, :3])
    assert c.length == 3 and torch.equal(all_k, k[:, :, :3])
    c.rollback(1)
    all_k, _ = c.append(k[:, :, 3:], k[:, :, 3:])
    assert torch.equal(all_k.flatten(), torch.tensor([0.0, 3.0, 4.0]))
    with pytest.raises(ValueError):
        c.rollback(4)


@pytest.mark.parametrize("window", [None, 3])
def test_cached_byte_lm_equals_full_forward(window):
    m = tiny_entropy(window=window, max_seq_len=64).eval()
    ids = torch.randint(4, 260, (1, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(ids)
        cache = m.new_cache()
        parts = [m(ids[:, :7], cache=cache)]
        parts += [m(ids[:, i:i + 1], cache=cache) for i in range(7, 20)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_entropy_stream_matches_batch_scoring_with_rollback():
    m = tiny_entropy(window=5, max_seq_len=8).eval()  # chunks of 7 bytes
    rng = random.Random(0)
    for _ in range(12):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        full = entropies(m, raw, include_next=True)
        cut = rng.randrange(1, len(raw) + 1)
        s = EntropyStream(m)
        assert torch.allclose(s.prefill(raw[:cut]), full[:cut + 1], atol=1e-5)
        for b in raw[cut:]:
            s.push(b)
        assert torch.allclose(torch.tensor(s.values), full, atol=1e-5)
        back = rng.randrange(1, len(raw) + 1)
        s.rollback(back)
        for b in raw[back:]:
            s.push(b)
        assert torch.allclose(torch.tensor(s.values), full, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 5, width=32), min_size=1, max_size=40),
       st.one_of(st.none(), st.floats(0.5, 4)),
       st.one_of(st.none(), st.floats(0, 2)),
       st.one_of(st.none(), st.integers(1, 6)))
def test_next_start_streams_the_batch_rule(ents, thr, rel, max_len):
    if thr is None and rel is None:
        thr = 2.0
    cfg = PatcherConfig(threshold=thr, relative_threshold=rel,
                        max_patch_length=max_len)
    batch = entropy_starts(torch.tensor(ents), threshold=thr,
                           relative_threshold=rel, max_patch_length=max_len)
    last = 0
    for i, e in enumerate(ents):
        s = next_start(cfg, i, last, e, ents[i - 1] if i else None)
        assert s == bool(batch[i])
        last = i if s else last


def test_session_matches_full_forward_across_patches_and_rollback(bundles):
    rng = random.Random(0)
    for b in bundles:
        for _ in range(2):
            raw = bytearray(rng.randrange(256) for _ in range(rng.randrange(1, 15)))
            s = BLTSession(b)
            assert torch.allclose(s.prefill(bytes(raw)), next_logits(b, bytes(raw)),
                                  atol=1e-4)
            for _ in range(20):
                raw.append(rng.randrange(256))
                logits = s.push(raw[-1])
                assert torch.allclose(logits, next_logits(b, bytes(raw)), atol=1e-4)
            assert 2 < sum(s.starts) < len(s.starts)  # real patches, not bytes
            back = rng.randrange(1, len(raw))
            assert torch.allclose(s.rollback(back), next_logits(b, bytes(raw[:back])),
                                  atol=1e-4)
            for x in raw[back:]:
                logits = s.push(x)
            assert torch.allclose(logits, next_logits(b, bytes(raw)), atol=1e-4)


def test_cached_greedy_equals_no_cache_greedy_random_weights(bundles):
    rng = random.Random(1)
    for b in bundles:
        for _ in range(4):
            prompt = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
            fast = generate(b, prompt, max_new_bytes=40)
            slow = generate(b, prompt, "reference", max_new_bytes=40)
            assert fast.bytes == slow.bytes  # (a random model may pick EOS)
            assert fast.stats.stop_reason == slow.stats.stop_reason


def test_cached_greedy_equals_no_cache_greedy_trained(trained):
    bundle, text = trained
    rng = random.Random(2)
    for _ in range(6):
        start = rng.randrange(0, len(text) - 100)
        prompt = text[start:start + rng.randrange(5, 60)]
        fast = generate(bundle, prompt, max_new_bytes=48)
        slow = generate(bundle, prompt, "reference", max_new_bytes=48)
        assert fast.bytes == slow.bytes
        st_ = fast.stats
        assert st_.decoder_calls == st_.new_bytes == 48
        assert st_.encoder_calls == 48 and st_.entropy_calls == 48
        assert 1 < st_.global_calls < 48  # one per closed patch, plus prefill
        assert slow.stats.global_calls == 48  # the no-cache loop: every byte


def test_sampling_is_reproducible_and_seed_zero_is_a_seed(trained):
    bundle, _ = trained
    kw = dict(max_new_bytes=30, temperature=1.0, top_p=0.9)
    a = generate(bundle, "def ", generator=torch.Generator().manual_seed(0), **kw)
    b = generate(bundle, "def ", generator=0, **kw)
    c = generate(bundle, "def ", generator=1, **kw)
    assert a.bytes == b.bytes
    assert a.bytes != c.bytes
    ref = generate(bundle, "def ", "reference", generator=0, **kw)
    assert ref.bytes == a.bytes  # the same draws, cached or not


def test_distribution_top_k_top_p():
    logits = torch.full((260,), -10.0)
    logits[10:14] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    p = distribution(logits, SamplingConfig(1.0, top_k=2))
    assert set(torch.nonzero(p).flatten().tolist()) == {10, 11}
    p = distribution(logits, SamplingConfig(1.0, top_p=0.5))
    assert torch.nonzero(p).flatten().tolist() == [10]
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-6)
    logits[1] = 100.0  # BOS is never generated
    assert int(distribution(logits, SamplingConfig()).argmax()) == 10


def test_stop_sequences_and_context_limit(bundles):
    b = bundles[0]
    free = generate(b, "ab", max_new_bytes=30)
    stop = free.bytes[5:7]
    cut = generate(b, "ab", max_new_bytes=30, stop=[stop])
    assert cut.stats.stop_reason == "stop"
    assert free.bytes.startswith(cut.bytes) and stop not in cut.bytes[:-1] + b"\0"
    small = PatchedBLT(tiny_blt(max_seq_len=12), b.entropy_model, b.patcher)
    r = generate(small, "abcd", max_new_bytes=100)
    assert len(r.bytes) == 12 - 1 - 4 and r.stats.stop_reason == "context"


def test_bad_input_gives_clear_errors(bundles):
    b = bundles[0]
    cases = [
        (dict(prompt=""), "empty"),
        (dict(prompt="x" * 5000), "max_seq_len"),
        (dict(max_new_bytes=0), "max_new_bytes"),
        (dict(max_new_bytes=-3), "max_new_bytes"),
        (dict(top_p=0.0, temperature=1.0, generator=0), "top_p"),
        (dict(top_p=1.5, temperature=1.0, generator=0), "top_p"),
        (dict(top_p=float("nan"), temperature=1.0, generator=0), "top_p"),
        (dict(temperature=-1.0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(top_k=0, temperature=1.0, generator=0), "top_k"),
        (dict(temperature=0.7), "generator"),
        (dict(method="nope"), "unknown method"),
        (dict(stop=""), "stop"),
    ]
    for kw, words in cases:
        kw = {"prompt": "hi", **kw}
        with pytest.raises(ValueError, match=words):
            generate(b, **kw)
    with pytest.raises(ValueError, match="space"):
        PatchedBLT(b.model, None, PatcherConfig(mode="space"))
    with pytest.raises(TypeError):
        generate(b.model, "hi")


def test_invalid_utf8_prompt_works_and_display_is_safe(trained):
    r = generate(trained[0], b"\xff\xfe\xc3(", max_new_bytes=20)
    assert r.bytes and r.stats.prompt_bytes == 4
    assert isinstance(r.text, str)  # undecodable bytes show as U+FFFD


def test_eq8_reproduces_the_papers_3b_rows():
    rows = [(512, 308, 1920.99), (534, 215, 1395.99), (580, 130, 928.73),
            (724, 87, 727.17), (216, 128, 797.58), (179, 64, 421.51),
            (162, 32, 233.87), (251, 126, 802.07)]
    for n_dec, n_enc, gb in rows:
        assert abs(eq8_bytes(n_dec, n_enc, PAPER_3B) / 1e9 - gb) / gb < 0.01


def test_stats_bandwidth_uses_real_counts(trained):
    bundle, _ = trained
    r = generate(bundle, "import ", max_new_bytes=32)
    s = r.stats
    p = bundle.param_counts()
    expect = 2 * (s.decoder_calls * p["decoder"]
                  + s.global_calls * (p["encoder"] + p["global"])) / 1e9
    assert math.isclose(s.eq8_gb(), expect)
    assert s.engine_gb() > s.eq8_gb() * 0  # counts every component
    d = s.to_dict()
    assert d["projected_3b_gb"] == pytest.approx(
        2 * (s.decoder_calls * 0.1598e9 + s.global_calls * 2.8525e9) / 1e9)
    assert s.wall_seconds > 0 and s.bytes_per_second > 0


def test_checkpoint_bundle_and_cli(tmp_path, trained, capsys):
    from bltlib.__main__ import main
    bundle, _ = trained
    path = tmp_path / "blt"
    save_checkpoint(bundle.model, path, kind="blt", config=bundle.model.cfg,
                    meta={"recipe": "tiny", "patcher": {
                        "threshold": bundle.patcher.threshold,
                        "max_patch_length": bundle.patcher.max_patch_length}})
    with pytest.raises(Exception, match="entropy"):
        load_patched_blt(path)
    save_checkpoint(bundle.entropy_model, path / "entropy", kind="entropy",
                    config=bundle.entropy_model.cfg)
    loaded = load_patched_blt(path)
    want = generate(bundle, "def f(", max_new_bytes=24)
    assert generate(loaded, "def f(", max_new_bytes=24).bytes == want.bytes
    rc = main(["generate", "--model", str(path), "--prompt", "def f(",
               "--max-new-bytes", "24", "--json", "--device", "cpu"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert bytes.fromhex(doc["hex"]) == want.bytes
    assert doc["stats"]["decoder_calls"] == 24 and "eq8_gb" in doc["stats"]
    (tmp_path / "p.bin").write_bytes(b"\xff\xfe")
    assert main(["generate", "--model", str(path), "--prompt-file",
                 str(tmp_path / "p.bin"), "--max-new-bytes", "4",
                 "--device", "cpu"]) == 0
    assert main(["generate", "--model", str(path), "--prompt", "x",
                 "--max-new-bytes", "0", "--device", "cpu"]) == 2
    assert "max_new_bytes" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "nope"),
                 "--prompt", "x"]) == 2


def test_generation_benchmark_runs_and_checks_equality(trained):
    from bltlib.inference.bench import format_table, run
    bundle, text = trained
    result = run(bundle, text[:40], (16, 32))
    assert all(row["identical"] for row in result["rows"])
    assert set(result["latency_ms"]) == {"encoder", "global", "decoder", "entropy"}
    assert all(v > 0 for v in result["latency_ms"].values())
    row = result["rows"][-1]
    assert row["ar"]["decoder_calls"] == 32 and row["reference"]["global_calls"] == 32
    assert row["ar"]["predicted_s"] > 0
    assert "no-cache loop" in format_table(result)


def test_call_rows_record_every_call_and_its_length(trained):
    """``call_rows`` has one entry per counted call; AR's calls after the
    prefill carry one byte (or one patch); a BLT-S verification carries
    its drafted bytes."""
    bundle, _ = trained
    prompt = b"import os\n"
    ar = generate(bundle, prompt, max_new_bytes=24).stats
    rows = ar.call_rows
    for name in ("encoder", "global", "decoder", "entropy"):
        assert len(rows[name]) == getattr(ar, f"{name}_calls"), name
    assert rows["encoder"][0] == rows["decoder"][0] == len(prompt) + 1  # BOS
    assert set(rows["encoder"][1:]) == set(rows["decoder"][1:]) == {1}
    assert set(rows["global"][1:]) <= {1}
    sp = generate(bundle, prompt, "speculative", max_new_bytes=24,
                  draft_len=4).stats
    assert len(sp.call_rows["decoder"]) == sp.decoder_calls
    assert max(sp.call_rows["decoder"][1:]) == 5  # c + 4 drafts verified
    d = ar.to_dict()
    assert "call_rows" not in d and d["mean_rows_per_call"]["encoder"] > 1


def test_row_predicted_seconds_prices_each_call_by_its_rows(trained):
    from types import SimpleNamespace

    from bltlib.inference.bench import (row_cost, row_latencies,
                                        row_predicted_seconds)
    table = {1: 1.0, 4: 2.5, 8: 3.0}
    assert row_cost(table, 1) == 1.0 and row_cost(table, 2) == 1.5
    assert row_cost(table, 6) == 2.75 and row_cost(table, 16) == 4.0
    stats = SimpleNamespace(call_rows={"decoder": [1, 4, 8], "global": [2]})
    assert row_predicted_seconds(
        stats, {"decoder": table, "global": {1: 10.0, 2: 12.0}}) == 18.5
    bundle, text = trained
    lat = row_latencies(bundle, text[:64], sizes=(1, 4), repeats=3)
    assert set(lat) == {"encoder", "global", "decoder", "entropy"}
    assert all(set(t) == {1, 4} and min(t.values()) > 0 for t in lat.values())


def test_shared_latency_shares_components_of_equal_size():
    """BLT and BLT-D weights share every component but the embeddings:
    each shared component gets the fastest of the two measurements."""
    from types import SimpleNamespace

    from bltlib.inference.bench_task import shared_latency
    sizes = {"blt": {"encoder": 5, "global": 9, "decoder": 3, "embeddings": 1},
             "blt-d": {"encoder": 5, "global": 9, "decoder": 4, "embeddings": 2}}
    bundles = {k: SimpleNamespace(param_counts=lambda v=v: v)
               for k, v in sizes.items()}
    lat = {"blt": {"encoder": 1.0, "global": 3.0, "decoder": 2.0},
           "blt-d": {"encoder": 2.0, "global": 2.5, "decoder": 1.0}}
    out = shared_latency(lat, bundles)
    assert out["blt"] == {"encoder": 1.0, "global": 2.5, "decoder": 2.0}
    assert out["blt-d"] == {"encoder": 1.0, "global": 2.5, "decoder": 1.0}
    tables = {"blt": {"global": {1: 3.0, 2: 4.0}},
              "blt-d": {"global": {1: 2.0, 2: 5.0}}}
    assert shared_latency(tables, bundles)["blt"]["global"] == {1: 2.0, 2: 4.0}
