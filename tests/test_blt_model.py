"""The BLT: shapes, padding, causality, masks, hashing, training, checkpoints."""
import pytest
import torch

from bltlib.blt_data import collate, crop_lengths
from bltlib.checkpoint import save_checkpoint
from bltlib.model.blt import BLT, BLTConfig
from bltlib.model.hashing import HashConfig, ngram_hash_ids, rolling_hash
from bltlib.model.layers import TransformerConfig
from bltlib.pipeline import load_model


def tiny_config(k=2, window=None, **kw):
    local = dict(dim=32, n_heads=2, sliding_window=window)
    return BLTConfig(
        encoder=TransformerConfig(n_layers=1, **local),
        global_model=TransformerConfig(dim=48, n_layers=2, n_heads=2),
        decoder=TransformerConfig(n_layers=2, **local),
        hashing=HashConfig(sizes=(3, 4), vocab=61), cross_attn_k=k, **kw)


def random_patching(gen, n_bytes, max_len=5):
    """BOS patch, then random patches over n_bytes bytes."""
    lengths = [1]
    while sum(lengths) < n_bytes + 1:
        lengths.append(min(int(torch.randint(1, max_len + 1, (1,),
                                             generator=gen)),
                           n_bytes + 1 - sum(lengths)))
    return lengths


@pytest.fixture(scope="module")
def model():
    return BLT(tiny_config(), seed=3).eval()


def test_shapes_and_param_counts(model):
    ids = torch.randint(4, 260, (2, 17))
    lengths = torch.tensor([[1, 4, 4, 4, 4], [1, 8, 8, 0, 0]])
    assert model(ids, lengths).shape == (2, 17, 260)
    counts = model.param_counts()
    assert (counts["embeddings"] + counts["encoder"] + counts["global"]
            + counts["decoder"]) == counts["total"]
    assert counts["global"] > counts["decoder"] > 0


def test_padded_batch_equals_single_rows(model):
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in (30, 11, 21):
        raw = torch.randint(4, 260, (n,), generator=gen)
        rows.append((raw, random_patching(gen, n - 1)))
    ids, lengths = collate(rows)  # BOS + bytes, right-padded
    with torch.no_grad():
        batched = model(ids, lengths)
        for b, (raw, pl) in enumerate(rows):
            single = model(ids[b:b + 1, :raw.numel() + 1],
                           torch.tensor([pl]))[0]
            torch.testing.assert_close(batched[b, :raw.numel() + 1], single,
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k,window", [(1, None), (2, 4)])
def test_no_future_byte_leaks(k, window):
    m = BLT(tiny_config(k=k, window=window), seed=1).eval()
    gen = torch.Generator().manual_seed(k)
    for trial in range(4):
        n = 24
        ids = torch.randint(4, 260, (1, n), generator=gen)
        lengths = torch.tensor([random_patching(gen, n)])  # covers n + 1
        with torch.no_grad():
            base = m(ids, lengths)
            for t in range(1, n):
                changed = ids.clone()
                changed[0, t] = 4 + (changed[0, t] + 50) % 256
                out = m(changed, lengths)
                torch.testing.assert_close(out[0, :t], base[0, :t],
                                           atol=0, rtol=0)
                assert not torch.equal(out[0, t:], base[0, t:])


def brute_force_masks(lengths, seq_len, k):
    """The cross-attention rules written as loops over a python list."""
    bounds, start = [], 0
    for p, n in enumerate(lengths):
        bounds.append((start, start + n))
        start += n

    def patch_of(pos):
        for p, (a, b) in enumerate(bounds):
            if a <= pos < b:
                return p
        return len(lengths) - 1  # past the end: the last patch continues

    enc = torch.zeros(len(lengths) * k, seq_len, dtype=torch.bool)
    dec = torch.zeros(seq_len, len(lengths) * k, dtype=torch.bool)
    for q in range(len(lengths) * k):
        for t in range(seq_len):
            enc[q, t] = patch_of(t) == q // k  # own patch's bytes only
    for i in range(seq_len):
        for q in range(len(lengths) * k):
            # byte i reads the patch before the one holding byte i + 1
            # (the BOS patch reads itself: there is no patch before it)
            dec[i, q] = q // k == max(patch_of(i + 1) - 1, 0)
    return enc, dec


@pytest.mark.parametrize("k", [1, 2])
def test_masks_match_brute_force(k):
    m = BLT(tiny_config(k=k))
    gen = torch.Generator().manual_seed(k)
    for n in (1, 2, 7, 19):
        for extra in (0, 1):  # lengths cover n or n + 1 bytes
            lengths = random_patching(gen, n - 1 + extra)
            got = m.masks(torch.tensor([lengths]), n)
            enc, dec = brute_force_masks(lengths, n, k)
            assert torch.equal(got["enc_cross"][0], enc), (lengths, n)
            assert torch.equal(got["dec_cross"][0], dec), (lengths, n)


def test_hashing_is_deterministic_and_in_range():
    assert rolling_hash(torch.tensor([1, 2, 3]), 31).item() == 1 + 2 * 31 + 3 * 961
    ids = torch.randint(0, 260, (3, 50), generator=torch.Generator().manual_seed(0))
    for n in (3, 8):
        a = ngram_hash_ids(ids, n, 1000000007, 500002)
        assert torch.equal(a, ngram_hash_ids(ids, n, 1000000007, 500002))
        assert a.min() >= 0 and a.max() < 500002
    # the n-gram ending at t depends only on ids[t-n+1 .. t]
    b = ids.clone()
    b[:, 10] += 1
    diff = ngram_hash_ids(ids, 3, 1000000007, 97) != ngram_hash_ids(b, 3, 1000000007, 97)
    assert not diff[:, :10].any() and not diff[:, 13:].any()


def test_loss_decreases_on_tiny_batch():
    m = BLT(tiny_config(), seed=0)
    gen = torch.Generator().manual_seed(0)
    rows = [(torch.randint(4, 40, (24,), generator=gen),
             crop_lengths(torch.rand(24, generator=gen) > 0.6))
            for _ in range(4)]
    ids, lengths = collate(rows)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = m.loss(ids, lengths).item()
    for _ in range(60):
        loss = m.loss(ids, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_checkpoint_round_trip(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "blt", kind="blt",
                           config=model.cfg)
    loaded, doc = load_model(path)
    assert loaded.cfg == model.cfg and doc["kind"] == "blt"
    ids = torch.randint(4, 260, (1, 9))
    lengths = torch.tensor([[1, 4, 4]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, lengths), model(ids, lengths))


def test_bad_configs_and_inputs(model):
    with pytest.raises(ValueError, match="share a width"):
        BLTConfig(encoder=TransformerConfig(dim=32, n_heads=2),
                  decoder=TransformerConfig(dim=64, n_heads=2))
    with pytest.raises(ValueError, match="2-D"):
        model(torch.zeros(5, dtype=torch.long), torch.tensor([[1, 4]]))
