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
                           if not k.startswith("block_embedding")})
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
