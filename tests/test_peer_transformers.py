"""Peer test: our BLT equals ``transformers``' BltForCausalLM, logit for logit.

Random tiny reference models are converted with ``bltlib.convert`` and
compared on random bytes with random patchings, in float32 on CPU.
"""
import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import BltConfig, BltForCausalLM  # noqa: E402
from transformers.models.blt.modeling_blt import BltPatcher  # noqa: E402

from bltlib.convert import (config_from_hf, config_to_hf,  # noqa: E402
                            entropy_config_from_hf, state_from_hf,
                            state_to_hf)
from bltlib.entropy import EntropyModel, entropy_of_logits  # noqa: E402
from bltlib.model.blt import BLT  # noqa: E402
from bltlib.checkpoint import load_weights  # noqa: E402

SHAPES = [  # (k, enc layers, dec layers, enc dim, global dim, heads, window)
    (1, 1, 1, 32, 48, 2, None),
    (2, 2, 3, 32, 64, 4, 16),
    (2, 3, 2, 48, 96, 4, 8),
    (1, 2, 2, 32, 32, 2, None),  # global width == K*D: no projection
]


def hf_config(k, enc_l, dec_l, dim, gdim, heads, window, seed):
    sub = dict(hidden_size=dim, num_attention_heads=heads, cross_attn_k=k,
               hidden_size_global=gdim, intermediate_size=3 * dim)
    return BltConfig(
        vocab_size=260, cross_attn_k=k, patch_in_forward=False,
        max_patch_length=None, local_attention_window_len=window,
        encoder_hash_byte_group_size=[3, 4, 5, 6, 7, 8][:2 + seed % 5],
        encoder_hash_byte_group_vocab=97 + seed,
        encoder_hash_byte_group_nb_functions=1 + seed % 2,
        encoder_config=dict(sub, num_hidden_layers=enc_l),
        decoder_config=dict(sub, num_hidden_layers=dec_l),
        global_config=dict(hidden_size=gdim, num_attention_heads=heads,
                           num_hidden_layers=2, intermediate_size=2 * gdim),
        patcher_config=dict(hidden_size=32, num_attention_heads=2,
                            num_hidden_layers=2, intermediate_size=64,
                            sliding_window=window or 512))


def random_lengths(gen, seq_len):
    """A BOS patch of length 1, then random patches of 1-8 bytes."""
    lengths = [1]
    while sum(lengths) < seq_len:
        lengths.append(min(int(torch.randint(1, 9, (1,), generator=gen)),
                           seq_len - sum(lengths)))
    return lengths


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_match_transformers(shape):
    seed = SHAPES.index(shape)
    torch.manual_seed(seed)  # transformers initialises from the global RNG
    hf = BltForCausalLM(hf_config(*shape, seed)).eval()
    ours = BLT(config_from_hf(hf.config.to_dict())).eval()
    load_weights(ours, state_from_hf(hf.state_dict()))
    gen = torch.Generator().manual_seed(seed)
    for seq_len in (1, 9, 40):
        ids = torch.randint(0, 260, (1, seq_len), generator=gen)
        lengths = torch.tensor([random_lengths(gen, seq_len)])
        with torch.no_grad():
            ref = hf(input_ids=ids, patch_lengths=lengths,
                     use_cache=False).logits
            got = ours(ids, lengths)
        assert (got - ref).abs().max().item() <= 1e-4


def test_batched_rows_match_single_rows():
    torch.manual_seed(7)
    hf = BltForCausalLM(hf_config(*SHAPES[1], 7)).eval()
    ours = BLT(config_from_hf(hf.config.to_dict())).eval()
    load_weights(ours, state_from_hf(hf.state_dict()))
    gen = torch.Generator().manual_seed(3)
    rows = [random_lengths(gen, 30) for _ in range(3)]
    width = max(map(len, rows))
    lengths = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    ids = torch.randint(4, 260, (3, 30), generator=gen)
    with torch.no_grad():
        batched = ours(ids, lengths)
        for b in range(3):
            ref = hf(input_ids=ids[b:b + 1],
                     patch_lengths=torch.tensor([rows[b]]),
                     use_cache=False).logits[0]
            assert (batched[b] - ref).abs().max().item() <= 1e-4


def test_round_trip_to_transformers():
    ours = BLT(config_from_hf(hf_config(*SHAPES[2], 2).to_dict()), seed=5)
    hf = BltForCausalLM(BltConfig(**config_to_hf(ours.cfg))).eval()
    hf.load_state_dict(state_to_hf(ours.state_dict()))
    ids = torch.randint(0, 260, (1, 25))
    lengths = torch.tensor([[1, 4, 8, 8, 4]])
    with torch.no_grad():
        diff = (hf(input_ids=ids, patch_lengths=lengths,
                   use_cache=False).logits - ours(ids, lengths)).abs().max()
    assert diff.item() <= 1e-4


@pytest.mark.parametrize("window", [4, 512])
def test_patcher_entropies_match(window):
    torch.manual_seed(window)
    cfg = hf_config(*SHAPES[0], 0)
    cfg.patcher_config.sliding_window = window
    hf = BltPatcher(cfg.patcher_config).eval()
    ours = EntropyModel(entropy_config_from_hf(cfg.to_dict())).eval()
    load_weights(ours, dict(hf.state_dict()))
    ids = torch.randint(0, 260, (1, 50))
    with torch.no_grad():
        ref_entropy, _, ref_logits = hf(ids)
        got = entropy_of_logits(ours(ids))
    assert (ours(ids) - ref_logits).abs().max().item() <= 1e-4
    assert (got - ref_entropy).abs().max().item() <= 1e-4


def test_peer_generation_loop_matches_cached_generation():
    """transformers' no-cache loop and our cached AR give the same bytes."""
    from bltlib.entropy import EntropyModelConfig
    from bltlib.inference.bundle import PatchedBLT
    from bltlib.inference.peer import run
    from bltlib.model.layers import TransformerConfig
    from bltlib.patching import PatcherConfig

    ours = BLT(config_from_hf(hf_config(*SHAPES[1], 1).to_dict()), seed=2)
    ent = EntropyModel(EntropyModelConfig(
        TransformerConfig(dim=32, n_layers=1, n_heads=2)), seed=4)
    probe = torch.randint(4, 260, (1, 200),
                          generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theta = float(entropy_of_logits(ent(probe)).median())
    bundle = PatchedBLT(ours, ent, PatcherConfig(threshold=theta,
                                                 max_patch_length=6))
    result = run(bundle, b"def main():\n", (24,))
    assert result["rows"][0]["identical"]


def test_transformers_folder_loads_as_a_generator(tmp_path):
    """A saved BltForCausalLM folder runs in bltlib.generate directly."""
    from bltlib.inference.bundle import load_patched_blt
    from bltlib.inference.generate import generate

    torch.manual_seed(11)
    cfg = hf_config(*SHAPES[0], 0)
    cfg.patch_in_forward = True  # keep the patcher weights in the folder
    cfg.patching_threshold = 5.5
    cfg.max_patch_length = 4
    hf = BltForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    bundle = load_patched_blt(tmp_path)
    assert bundle.patcher.threshold == 5.5
    assert bundle.patcher.max_patch_length == 4
    fast = generate(bundle, "hello", max_new_bytes=16)
    slow = generate(bundle, "hello", "reference", max_new_bytes=16)
    assert fast.bytes == slow.bytes
    for k in (4, 8, 16):  # BLT-S on the converted model: byte-identical
        spec = generate(bundle, "hello", "speculative", max_new_bytes=16, draft_len=k)
        assert spec.bytes == fast.bytes
