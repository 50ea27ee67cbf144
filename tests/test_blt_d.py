"""BLT-D training: block layout, masks against brute force, no leakage."""
import pytest
import torch

from bltlib.bytes import MASK_ID, PAD_ID
from bltlib.model.blt import BLT, BLTConfig, decoder_patch_ids
from bltlib.model.blt_d import BLTD, BLTDConfig, block_layout, diffusion_masks
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig


def tiny(block_size=4, window=None, k=2, seed=0):
    tc = lambda d, l, h, w=None: TransformerConfig(  # noqa: E731
        dim=d, n_layers=l, n_heads=h, sliding_window=w)
    blt = BLTConfig(encoder=tc(32, 1, 2, window), global_model=tc(48, 2, 4),
                    decoder=tc(32, 2, 2, window), hashing=HashConfig(vocab=64),
                    cross_attn_k=k)
    return BLTD(BLTDConfig(blt=blt, block_size=block_size), seed=seed)


def batch(gen, n=2, t=20):
    ids = torch.randint(4, 260, (n, t), generator=gen)
    ids[:, 0] = 1
    rows = []
    for _ in range(n):
        lengths = [1]
        while sum(lengths) < t:
            lengths.append(min(int(torch.randint(1, 6, (1,), generator=gen)),
                               t - sum(lengths)))
        rows.append(lengths)
    width = max(map(len, rows))
    lengths = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return ids, lengths


def brute(model, lengths, t, bsz):
    """Masks by loops over (row, key) pairs from the written rules."""
    n, p = lengths.shape
    k, w = model.cfg.cross_attn_k, model.cfg.decoder.sliding_window
    dec = decoder_patch_ids(lengths, t)
    rows = []  # (kind, position, block, valid) per decoder row
    for b in range(n):
        lens = [x for x in lengths[b].tolist()]
        starts = [sum(lens[:i]) for i in range(len(lens))]
        total = min(sum(lens), t)
        r = [("c", i, None, True) for i in range(t)]
        for j in range(p - 1):
            s = starts[j + 1]
            for c in range(bsz):
                r.append(("b", s + c, j, lens[j + 1] > 0 and s + c < total))
        rows.append(r)
    size = len(rows[0])
    self_m = torch.zeros(n, size, size, dtype=torch.bool)
    cross = torch.zeros(n, size, p * k, dtype=torch.bool)
    for b in range(n):
        for qi, (qk, qp, qb, qv) in enumerate(rows[b]):
            for ki, (kk, kp, kb, kv) in enumerate(rows[b]):
                near = w is None or qp - kp < w
                if qk == "c":
                    ok = kk == "c" and kp <= qp and near
                else:
                    start = rows[b][t + qb * bsz][1]
                    ok = (kk == "c" and kp < start and near) or (
                        kk == "b" and kb == qb and (kv or ki == qi))
                self_m[b, qi, ki] = ok
            latent = int(dec[b, qp]) if qk == "c" else qb
            for slot in range(p * k):
                cross[b, qi, slot] = slot // k == latent
    return self_m, cross


@pytest.mark.parametrize("bsz,window", [(4, None), (8, 6), (16, None)])
def test_masks_match_brute_force(bsz, window):
    model = tiny(bsz, window)
    gen = torch.Generator().manual_seed(bsz)
    ids, lengths = batch(gen)
    layout = block_layout(lengths, ids.shape[1], bsz)
    m = diffusion_masks(model, lengths, ids.shape[1], layout)
    self_m, cross = brute(model, lengths, ids.shape[1], bsz)
    valid_rows = torch.cat([torch.ones(2, ids.shape[1], dtype=torch.bool),
                            layout["valid"]], 1)
    # rows of padding patches are never read; compare every real row
    for b in range(2):
        rows = valid_rows[b]
        assert torch.equal(m["self"][b][rows], self_m[b][rows])
        assert torch.equal(m["cross"][b][rows], cross[b][rows])


def test_block_layout_and_corruption():
    model = tiny(4)
    ids = torch.tensor([[1, 10, 11, 12, 13, 14, 15]])
    lengths = torch.tensor([[1, 2, 3, 1]])  # patches start at tokens 1, 3, 6
    t = torch.tensor([1.0])
    block_in, masked, layout = model.corrupt(ids, lengths, t,
                                             torch.zeros(1, 12))
    assert layout["target"].tolist() == [[10, 11, 12, 13, 12, 13, 14, 15,
                                          15, PAD_ID, PAD_ID, PAD_ID]]
    assert layout["pos"][0, :4].tolist() == [1, 2, 3, 4]  # original positions
    assert (block_in[masked] == MASK_ID).all() and masked.sum() == 9
    none, nmask, _ = model.corrupt(ids, lengths, torch.tensor([0.0]),
                                   torch.rand(1, 12))
    assert nmask.sum() == 0 and torch.equal(none, layout["target"])


def test_no_leakage_from_target_bytes():
    """A block's logits ignore the clean bytes it predicts (and later ones)."""
    model = tiny(8).eval()
    gen = torch.Generator().manual_seed(3)
    ids, lengths = batch(gen, n=1, t=24)
    t = torch.tensor([0.5])
    u = torch.rand(1, (lengths.shape[1] - 1) * 8, generator=gen)
    block_in, _, layout = model.corrupt(ids, lengths, t, u)
    with torch.no_grad():
        _, ref = model.diffusion_logits(ids, lengths, block_in, layout)
    starts = layout["start"][0].view(-1, 8)[:, 0].tolist()
    for j, s in enumerate(starts):
        if s >= ids.shape[1]:
            continue
        bad = ids.clone()
        bad[0, s:] = torch.randint(4, 260, (ids.shape[1] - s,), generator=gen)
        with torch.no_grad():
            _, got = model.diffusion_logits(bad, lengths, block_in, layout)
        rows = slice(j * 8, (j + 1) * 8)
        assert torch.allclose(got[0, rows], ref[0, rows], atol=1e-5), j


def test_clean_loss_is_the_blt_loss_and_training_helps():
    model = tiny(4)
    plain = BLT(model.cfg, seed=0)
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith(("block_embedding", "index_embedding"))})
    gen = torch.Generator().manual_seed(0)
    ids, lengths = batch(gen, n=4, t=24)
    assert torch.allclose(model.loss(ids, lengths), plain.loss(ids, lengths))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    r = (lengths.shape[1] - 1) * 4
    first = None
    for _ in range(30):
        t = torch.rand(4, generator=gen)
        loss = model.loss(ids, lengths, t, torch.rand(4, r, generator=gen))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first
    counts = model.param_counts()
    assert counts["embeddings"] > plain.param_counts()["embeddings"]


def test_bad_block_sizes():
    for bad in (0, 1, 65, 4.0, True):
        with pytest.raises(ValueError, match="block_size"):
            BLTDConfig(block_size=bad)
    with pytest.raises(ValueError, match="t_min"):
        BLTDConfig(t_min=0.0)


def _bundle(block_size=4, window=None, threshold=None):
    from bltlib.entropy import EntropyModel, EntropyModelConfig, entropies
    from bltlib.inference.bundle import PatchedBLT
    from bltlib.patching import PatcherConfig
    ent = EntropyModel(EntropyModelConfig(
        TransformerConfig(dim=32, n_layers=1, n_heads=2, sliding_window=8),
        max_seq_len=11), seed=5)
    probe = bytes(range(40, 140))
    theta = threshold or float(entropies(ent, probe).median())
    return PatchedBLT(tiny(block_size, window, seed=2), ent,
                      PatcherConfig(threshold=theta, max_patch_length=5))


@pytest.mark.parametrize("bsz,window", [(4, None), (8, 9)])
def test_block_step_equals_the_training_forward(bsz, window):
    """Cached block decoding computes what the training forward computes."""
    from bltlib.inference.diffusion import BlockSession
    from bltlib.patching import starts_to_lengths
    bundle = _bundle(bsz, window)
    model = bundle.model.eval()
    gen = torch.Generator().manual_seed(bsz)
    s = BlockSession(bundle)
    s.prefill(b"def f(x):\n  return", force_boundary=True)
    for _ in range(3):
        cells = [MASK_ID] * bsz
        cells[1] = 4 + 97  # one cell already committed
        got = s.block_logits(cells)
        n = s.n_bytes
        tail = torch.randint(4, 260, (bsz,), generator=gen).tolist()
        ids = torch.tensor([s.tokens + tail])
        starts = torch.tensor(s.starts[:n] + [True] + [False] * (bsz - 1))
        lengths = torch.cat([torch.tensor([1]), starts_to_lengths(starts)])[None]
        layout = block_layout(lengths, ids.shape[1], bsz)
        block_in = torch.full(layout["pos"].shape, MASK_ID)
        block_in[0, -bsz:] = torch.tensor(cells)
        with torch.no_grad():
            _, ref = model.diffusion_logits(ids, lengths, block_in, layout)
        assert torch.allclose(got, ref[0, -bsz:], atol=1e-4)
        s.append_block(bytes(torch.randint(97, 123, (bsz,), generator=gen).tolist()))
    assert s.calls["global"] == 4 and s.calls["decoder"] == 4  # prefill + 3


def test_commit_rules():
    from bltlib.inference.diffusion import (commit_confidence,
                                            commit_entropy_bounded)
    masked = torch.tensor([True, True, False, True])
    conf = torch.tensor([0.9, 0.2, 0.99, 0.8])
    assert commit_confidence(conf, masked, 0.7).tolist() == [True, False, False, True]
    assert commit_confidence(conf, masked, 0.95).tolist() == [True, False, False, False]
    assert commit_confidence(conf, masked, 0.0).tolist() == [True, True, False, True]
    ent = torch.tensor([0.5, 0.1, 0.0, 2.0])
    assert commit_entropy_bounded(ent, masked, 0.0).tolist() == [False, True, False, False]
    assert commit_entropy_bounded(ent, masked, 0.5).tolist() == [True, True, False, False]
    assert commit_entropy_bounded(ent, masked, 1e9).tolist() == [True, True, False, True]
    assert commit_entropy_bounded(ent, masked, 0.65, plain_sum=True).tolist() == [
        True, True, False, False]
    assert commit_entropy_bounded(ent, masked, 0.05, plain_sum=True).tolist() == [
        False, True, False, False]


def test_diffusion_generation_counts_and_errors():
    from bltlib.inference.generate import generate
    bundle = _bundle(4)
    for bsz in (4, 8, 16):
        r = generate(bundle, "x = 1\n", "diffusion", block_size=bsz,
                     max_new_bytes=37, alpha=0.0)
        assert len(r.bytes) == 37 or r.stats.stop_reason == "eos"
        blocks = -(-len(r.bytes) // bsz)
        assert r.stats.global_calls == blocks  # prefill + one per later block
        assert r.stats.decoder_calls == 1 + blocks  # alpha 0: one step each
    one = generate(bundle, "x = 1\n", "diffusion", block_size=8,
                   max_new_bytes=16, entropy_bound=0.0)
    assert one.stats.extra["steps_per_block"] == 8  # gamma 0: a byte a step
    huge = generate(bundle, "x = 1\n", "diffusion", block_size=8,
                    max_new_bytes=16, entropy_bound=1e9)
    assert huge.stats.extra["steps_per_block"] == 1
    for kw, words in [(dict(block_size=1), "block_size"),
                      (dict(block_size=100), "block_size"),
                      (dict(entropy_bound=-1.0), "entropy_bound"),
                      (dict(entropy_bound=float("nan")), "entropy_bound"),
                      (dict(alpha=float("nan")), "alpha"),
                      (dict(alpha=1.5), "alpha"),
                      (dict(alpha=0.5, entropy_bound=1.0), "not both")]:
        with pytest.raises(ValueError, match=words):
            generate(bundle, "x", "diffusion", max_new_bytes=4, **kw)
    from bltlib.inference.bundle import PatchedBLT
    plain = PatchedBLT(BLT(bundle.model.cfg), bundle.entropy_model, bundle.patcher)
    with pytest.raises(TypeError, match="BLT-D"):
        generate(plain, "x", "diffusion", max_new_bytes=4)


def test_compare_decoders_table():
    from bltlib.inference.compare import Setting, compare, format_rows
    bundle = _bundle(4)
    rows = compare(bundle, [b"def f(x):", b"class A:"], [b" return x", b"\n  pass"],
                   [Setting("AR"), Setting("D-4", "diffusion",
                                           dict(block_size=4, alpha=0.0))],
                   max_new_bytes=12, progress=False)
    assert rows[0]["agree_with_baseline"] == 1.0
    assert rows[0]["eq8_gb_vs_baseline"] == 1.0
    d = rows[1]
    assert d["global_calls"] <= 4 and d["decoder_calls"] <= 4  # 3 blocks + prefill
    assert 0 <= d["chrf"] <= 100
    assert "D-4" in format_rows(rows)


def test_sampled_blocks_and_mixed_block_sizes():
    from bltlib.blt_data import diffusion_noise
    from bltlib.model.blt_d import sample_blocks
    gen = torch.Generator().manual_seed(3)
    lengths = torch.tensor([[1, 3, 2, 4, 0, 0], [1, 2, 2, 2, 2, 1]])
    blocks = sample_blocks(lengths, 3, gen)
    assert blocks.shape == (2, 3)
    for row, real in zip(blocks.tolist(), (3, 5)):
        assert row == sorted(set(row))
        assert all(b < real for b in row)  # real patches first
    assert sample_blocks(lengths, 99, gen).shape == (2, 5)  # at most P - 1
    layout = block_layout(lengths, 11, 4, sample_blocks(lengths, 99, gen))
    assert not layout["valid"][0, 12:].any()  # padding blocks are invalid
    seen = set()
    for _ in range(30):
        t, u, bsz, blocks = diffusion_noise(lengths, (4, 8, 16), gen, seq_len=11)
        seen.add(bsz)
        assert blocks.shape[1] == min(max(1, 11 // bsz), 5)
        assert u.shape == (2, blocks.shape[1] * bsz) and t.shape == (2,)
    assert seen == {4, 8, 16}
    # all blocks chosen explicitly == the default (every block)
    model = tiny(4)
    ids, lens = batch(gen, n=2, t=20)
    r = (lens.shape[1] - 1) * 4
    t, u = torch.rand(2, generator=gen), torch.rand(2, r, generator=gen)
    every = torch.arange(lens.shape[1] - 1).expand(2, -1)
    assert torch.allclose(model.loss(ids, lens, t, u),
                          model.loss(ids, lens, t, u, 4, every))
    assert torch.isfinite(model.loss(ids, lens, t, u[:, :8], 4, every[:, :2]))


def test_warm_start_from_a_blt():
    model = tiny(8)
    base = BLT(model.cfg, seed=7)
    model.init_from_blt(base.state_dict())
    gen = torch.Generator().manual_seed(0)
    ids, lens = batch(gen, n=2, t=20)
    with torch.no_grad():  # the AR path is the BLT's, exactly
        assert torch.equal(model(ids, lens), base(ids, lens))
    rms = model.block_embedding.weight.pow(2).mean().sqrt().item()
    assert abs(rms - 0.25) < 1e-4
    with pytest.raises(ValueError, match="not a matching BLT"):
        model.init_from_blt({"nope": torch.zeros(1)})
