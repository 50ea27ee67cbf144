"""Entropy model: index convention, causality, chunking, training, checkpoints."""
import json
import math

import pytest
import torch

from bltlib import bytes as B
from bltlib.checkpoint import (CheckpointError, load_weights, read_checkpoint,
                               save_checkpoint, config_from_dict)
from bltlib.entropy import (EntropyModel, EntropyModelConfig, bits_per_byte,
                            entropies, entropy_of_logits)
from bltlib.model.layers import TransformerConfig, causal_mask
from bltlib.training import TrainConfig, evaluate_bpb, lr_at, train_byte_lm

TINY = EntropyModelConfig(TransformerConfig(dim=32, n_layers=2, n_heads=2,
                                            sliding_window=16),
                          max_seq_len=64)


@pytest.fixture(scope="module")
def model():
    return EntropyModel(TINY, seed=1).eval()


def test_entropy_of_logits_matches_definition():
    logits = torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    p = torch.softmax(logits, -1)
    manual = -(p * p.log()).sum(-1)
    torch.testing.assert_close(entropy_of_logits(logits), manual)
    assert math.isclose(entropy_of_logits(logits)[1].item(), math.log(3),
                        rel_tol=1e-6)


def test_index_convention(model):
    raw = b"hello world"
    e = entropies(model, raw, include_next=True)
    assert e.shape == (len(raw) + 1,)
    ids = torch.tensor(B.encode(raw, bos=True))[None]
    logits = model(ids)[0]  # logits[j] predicts id j + 1, i.e. byte j
    torch.testing.assert_close(e, entropy_of_logits(logits))
    assert entropies(model, raw).shape == (len(raw),)


def test_no_future_leak(model):
    raw = bytearray(b"the quick brown fox jumps")
    base = entropies(model, bytes(raw))
    for t in (0, 5, len(raw) - 1):
        changed = bytearray(raw)
        changed[t] = (changed[t] + 7) % 256
        e = entropies(model, bytes(changed))
        # entropy i depends on bytes < i only: positions <= t are unchanged
        torch.testing.assert_close(e[:t + 1], base[:t + 1])


def test_chunking_is_prefix_stable(model):
    raw = bytes(range(40, 140))
    full = entropies(model, raw, chunk_len=30)
    for cut in (1, 29, 30, 31, 60, 77):
        torch.testing.assert_close(entropies(model, raw[:cut], chunk_len=30),
                                   full[:cut])


def test_sliding_window_mask():
    m = causal_mask(5, window=2)
    assert m.tolist()[4] == [False, False, False, True, True]
    assert causal_mask(2, 5).tolist() == [[True] * 4 + [False], [True] * 5]


def test_empty_input_is_clear(model):
    with pytest.raises(ValueError, match="empty"):
        entropies(model, b"")
    with pytest.raises(ValueError, match="empty"):
        bits_per_byte(model, "")


def test_invalid_utf8_is_fine(model):
    assert entropies(model, b"\xff\xfe\xc3").shape == (3,)


def test_training_lowers_loss_and_is_deterministic():
    text = b"abcabcabd " * 300
    cfg = TrainConfig(steps=60, batch_size=8, seq_len=32, lr=3e-3,
                      warmup_steps=5, eval_every=30, eval_bytes=512)
    runs = []
    for _ in range(2):
        m = EntropyModel(TINY, seed=0)
        before = evaluate_bpb(m, text[:512], 32)
        hist = train_byte_lm(m, text, text[:512], cfg, progress=False)
        runs.append(hist.final_val_bpb)
        assert hist.final_val_bpb < 0.5 * before
        assert hist.bytes_seen == 60 * 8 * 32
    assert runs[0] == runs[1]


def test_lr_schedule():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.1, abs=1e-3)
    assert lr_at(55, cfg) < lr_at(20, cfg)
    # a time budget drives the same schedule when it is further along
    timed = TrainConfig(steps=10_000, warmup_steps=100, lr=1.0,
                        min_lr_ratio=0.1, max_seconds=100.0)
    assert lr_at(5, timed, seconds=0.5) == pytest.approx(0.5)  # warming up
    assert lr_at(5, timed, seconds=50.0) == pytest.approx(0.55, abs=0.01)
    assert lr_at(5, timed, seconds=100.0) == pytest.approx(0.1)


def test_checkpoint_round_trip(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "ent", kind="entropy",
                           config=TINY, meta={"note": "test"})
    doc, state = read_checkpoint(path)
    cfg = config_from_dict(EntropyModelConfig, doc["config"])
    assert cfg == TINY
    fresh = EntropyModel(cfg, seed=99)
    load_weights(fresh, state)
    torch.testing.assert_close(entropies(fresh, b"abc"),
                               entropies(model, b"abc"))
    with pytest.raises(FileExistsError):
        save_checkpoint(model, path, kind="entropy", config=TINY)


def test_corrupt_and_mismatched_checkpoints(tmp_path, model):
    path = save_checkpoint(model, tmp_path / "ent", kind="entropy",
                           config=TINY)
    other = EntropyModel(EntropyModelConfig(TransformerConfig(
        dim=64, n_layers=1, n_heads=2)))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights(other, read_checkpoint(path)[1])
    (path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "nowhere")
    bad = json.loads(json.dumps({"transformer": {"dim": 32}, "bogus": 1}))
    with pytest.raises(CheckpointError, match="unknown config fields"):
        config_from_dict(EntropyModelConfig, bad)


def test_bad_train_config():
    with pytest.raises(ValueError):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError):
        TrainConfig(steps=0)


def test_include_next_matches_the_next_byte(model):
    raw = bytes(range(50, 110))
    for cut in (5, 29, 30, 31, 59):
        nxt = entropies(model, raw[:cut], include_next=True, chunk_len=30)
        later = entropies(model, raw[:cut + 1], chunk_len=30)
        torch.testing.assert_close(nxt, later, atol=1e-5, rtol=1e-5)
