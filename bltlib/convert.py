"""Convert BLT checkpoints in the ``transformers`` format to and from ours.

Meta's released BLT weights are published in the format of
``transformers.models.blt``: a folder with ``config.json`` and
safetensors weights (one file, or shards with an index). Nothing is
downloaded here: you give a path. No pickled code is ever loaded.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from bltlib.checkpoint import CheckpointError, load_weights
from bltlib.entropy import EntropyModel, EntropyModelConfig
from bltlib.model.blt import BLT, BLTConfig
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig

HASH_KEY = "encoder_hash_tok_embedding.weight"
OUR_HASH_KEY = "local_encoder.hash_embedding.embedding.weight"


def _theta(sub: dict, default: float) -> float:
    rope = sub.get("rope_parameters") or {}
    return float(rope.get("rope_theta", sub.get("rope_theta", default)))


def _transformer(sub: dict, window: int | None, default_theta: float,
                 default_ffn: int | None) -> TransformerConfig:
    dim = sub["hidden_size"]
    return TransformerConfig(
        dim=dim, n_layers=sub["num_hidden_layers"],
        n_heads=sub["num_attention_heads"],
        n_kv_heads=sub.get("num_key_value_heads"),
        intermediate_size=sub.get("intermediate_size") or default_ffn
        or int(8 * dim / 3),
        rope_theta=_theta(sub, default_theta),
        norm_eps=sub.get("rms_norm_eps", 1e-5), sliding_window=window)


def config_from_hf(cfg: dict) -> BLTConfig:
    """A ``BltConfig`` dict (config.json) -> :class:`BLTConfig`."""
    window = cfg.get("local_attention_window_len", 512)
    enc, dec, glob = (cfg[k] for k in
                      ("encoder_config", "decoder_config", "global_config"))
    return BLTConfig(
        encoder=_transformer(enc, window, 500000.0, None),
        decoder=_transformer(dec, window, 500000.0, 2816),
        global_model=_transformer(glob, None, 500000.0, 5632),
        hashing=HashConfig(
            sizes=tuple(cfg.get("encoder_hash_byte_group_size")
                        or (3, 4, 5, 6, 7, 8)),
            vocab=cfg.get("encoder_hash_byte_group_vocab", 500002),
            n_functions=cfg.get("encoder_hash_byte_group_nb_functions", 1)),
        cross_attn_k=cfg.get("cross_attn_k", 2),
        encoder_cross_all_layers=enc.get("cross_attn_all_layers", False),
        decoder_cross_all_layers=dec.get("cross_attn_all_layers", True),
        vocab_size=cfg.get("vocab_size", 260),
        max_seq_len=cfg.get("max_position_embeddings",
                            enc.get("max_position_embeddings", 4096)))


def entropy_config_from_hf(cfg: dict) -> EntropyModelConfig:
    """The ``patcher_config`` of a ``BltConfig`` -> :class:`EntropyModelConfig`."""
    sub = cfg["patcher_config"]
    return EntropyModelConfig(
        transformer=_transformer(sub, sub.get("sliding_window", 512),
                                 10000.0, 2048),
        vocab_size=sub.get("vocab_size", 260),
        max_seq_len=sub.get("max_position_embeddings", 8192))


def state_from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``BltForCausalLM`` keys to ours (patcher weights dropped)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("model.")
        if key.startswith("patcher."):
            continue
        out[OUR_HASH_KEY if key == HASH_KEY else key] = value
    return out


def state_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys -> ``BltForCausalLM`` keys (the inverse of :func:`state_from_hf`)."""
    out = {}
    for key, value in state.items():
        if key == "lm_head.weight":
            out[key] = value
        elif key == OUR_HASH_KEY:
            out["model." + HASH_KEY] = value
        else:
            out["model." + key] = value
    return out


def config_to_hf(cfg: BLTConfig) -> dict[str, Any]:
    """:class:`BLTConfig` -> a ``BltConfig`` keyword dict (no patcher)."""
    def sub(t: TransformerConfig, **extra: Any) -> dict[str, Any]:
        return {"hidden_size": t.dim, "num_hidden_layers": t.n_layers,
                "num_attention_heads": t.n_heads,
                "num_key_value_heads": t.kv_heads,
                "intermediate_size": t.ffn_dim, "rms_norm_eps": t.norm_eps,
                "rope_parameters": {"rope_theta": t.rope_theta,
                                    "rope_type": "default"}, **extra}
    g, k = cfg.global_model.dim, cfg.cross_attn_k
    return {
        "vocab_size": cfg.vocab_size, "cross_attn_k": k,
        "patch_in_forward": False, "max_patch_length": None,
        "local_attention_window_len": cfg.encoder.sliding_window,
        "encoder_hash_byte_group_size": list(cfg.hashing.sizes),
        "encoder_hash_byte_group_vocab": cfg.hashing.vocab,
        "encoder_hash_byte_group_nb_functions": cfg.hashing.n_functions,
        "encoder_config": sub(cfg.encoder, cross_attn_k=k,
                              hidden_size_global=g,
                              cross_attn_all_layers=cfg.encoder_cross_all_layers),
        "decoder_config": sub(cfg.decoder, cross_attn_k=k,
                              hidden_size_global=g,
                              cross_attn_all_layers=cfg.decoder_cross_all_layers),
        "global_config": sub(cfg.global_model),
    }


def _read_folder(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} holds no config.json; expected a "
                              "transformers-format BLT folder")
    cfg = json.loads((path / "config.json").read_text())
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} holds no .safetensors weights "
                              "(pickled .bin files are not loaded)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    return cfg, state


def load_hf_blt(path: str | Path) -> BLT:
    """Build our :class:`BLT` from a transformers-format folder."""
    cfg, state = _read_folder(Path(path))
    model = BLT(config_from_hf(cfg))
    load_weights(model, state_from_hf(state), source=str(path))
    return model.eval()


def load_hf_entropy_model(path: str | Path) -> EntropyModel:
    """Our :class:`EntropyModel` from the patcher weights of a folder.

    Works on a full ``BltForCausalLM`` folder (keys ``model.patcher.*``)
    and on a stand-alone patcher folder (keys without that prefix).
    """
    cfg, state = _read_folder(Path(path))
    ecfg = entropy_config_from_hf(cfg if "patcher_config" in cfg
                                  else {"patcher_config": cfg})
    full = any(k.removeprefix("model.").startswith("patcher.") for k in state)
    ours = {}
    for key, value in state.items():
        key = key.removeprefix("model.")
        if full and not key.startswith("patcher."):
            continue  # the BLT's own weights
        ours[key.removeprefix("patcher.")] = value
    model = EntropyModel(ecfg)
    load_weights(model, ours, source=f"patcher weights in {path}")
    return model.eval()


def load_hf_patched_blt(path: str | Path):
    """A transformers-format BLT folder -> a generator-ready ``PatchedBLT``.

    The BLT, its entropy model (the ``patcher`` weights in the same
    folder) and the patching settings of its config
    (``patching_threshold``, ``max_patch_length``).
    """
    from bltlib.inference.bundle import PatchedBLT
    from bltlib.patching import PatcherConfig

    cfg = json.loads((Path(path) / "config.json").read_text())
    mode = cfg.get("patching_mode", "entropy")
    if mode != "entropy":
        raise CheckpointError(f"{path}: patching_mode {mode!r} is not "
                              "supported for generation; use entropy")
    patcher = PatcherConfig(
        threshold=cfg.get("patching_threshold", 1.335442066192627),
        max_patch_length=cfg.get("max_patch_length"))
    return PatchedBLT(load_hf_blt(path), load_hf_entropy_model(path), patcher,
                      name=Path(path).name)
