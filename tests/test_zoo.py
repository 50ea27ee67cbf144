"""The shipped model zoo: manifest, hashes, loading by name, safety."""
import shutil

import pytest
import torch

from bltlib import zoo
from bltlib.checkpoint import CheckpointError, save_checkpoint
from bltlib.inference.generate import generate
from test_inference import tiny_blt, tiny_entropy  # noqa: F401


def _local(tmp_path, name, model, kind, **meta):
    path = tmp_path / "local" / name
    save_checkpoint(model, path, kind=kind, config=model.cfg,
                    meta={"recipe": name, "fast": False, "steps": 3,
                          "final_val_bpb": 2.5, **meta})
    return path


def test_ship_verify_load_and_refusals(tmp_path):
    root = tmp_path / "zoo"
    ent = tiny_entropy()
    entry = zoo.ship("ent", _local(tmp_path, "ent", ent, "entropy"), root)
    assert entry["dtype"] == "float16" and entry["final_val_bpb"] == 2.5
    assert zoo.available(root) == ["ent"]
    loaded = zoo.load("ent", root)
    for (k, a), b in zip(ent.state_dict().items(), loaded.state_dict().values()):
        assert b.dtype == torch.float32  # stored half, loaded as float32
        assert torch.allclose(a, b, atol=1e-3), k
    # never replaced
    with pytest.raises(FileExistsError):
        zoo.ship("ent", _local(tmp_path, "ent2", ent, "entropy"), root)
    # a fast checkpoint is not shipped
    fast = _local(tmp_path, "f", ent, "entropy")
    (fast / "config.json").write_text(
        (fast / "config.json").read_text().replace('"fast": false', '"fast": true'))
    with pytest.raises(CheckpointError, match="fast"):
        zoo.ship("f", fast, root)
    # a BLT needs its entropy recipe shipped first
    blt = tiny_blt()
    patcher = {"mode": "entropy", "threshold": 2.0, "max_patch_length": 4}
    src = _local(tmp_path, "b", blt, "blt", entropy_recipe="missing",
                 patcher=patcher)
    with pytest.raises(CheckpointError, match="missing"):
        zoo.ship("b", src, root)
    src = _local(tmp_path, "b2", blt, "blt", entropy_recipe="ent",
                 patcher=patcher)
    zoo.ship("b2", src, root)
    bundle = zoo.load("b2", root)
    assert generate(bundle, b"abc", max_new_bytes=5).stats.new_bytes == 5
    # tampering is caught, with the command that rebuilds it
    w = root / "ent" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="train --recipe ent --ship"):
        zoo.load("b2", root)  # its entropy model is checked too
    w.unlink()
    with pytest.raises(CheckpointError, match="lacks"):
        zoo.load("ent", root)
    with pytest.raises(CheckpointError, match="no shipped checkpoint 'nope'"):
        zoo.load("nope", root)
    shutil.rmtree(root / "b2")
    with pytest.raises(CheckpointError):
        zoo.verify("b2", root)


def test_shipped_manifest_verifies_and_fits_the_budget():
    names = zoo.available()
    assert {"entropy-small", "blt-code", "blt-d-code"} <= set(names)
    total = 0
    for name in names:
        zoo.verify(name)
        entry = zoo.manifest()[name]
        for key in ("recipe", "train_seconds", "final_val_bpb", "params",
                    "machine", "sha256"):
            assert key in entry, (name, key)
        total += entry["size_bytes"]
    assert total <= 62e6, f"shipped checkpoints take {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", ["blt-code", "blt-d-code"])
def test_shipped_models_keep_exactness(name):
    """fp16 storage, float32 compute: BLT-S == AR, and BLT-DV == AR."""
    bundle = zoo.load(name)
    prompt = b"def main(argv):\n    parser = argparse."
    ar = generate(bundle, prompt, "ar", max_new_bytes=48).bytes
    assert generate(bundle, prompt, "speculative", draft_len=8,
                    max_new_bytes=48).bytes == ar
    if name == "blt-d-code":
        assert generate(bundle, prompt, "diffusion-verify", block_size=8,
                        max_new_bytes=48).bytes == ar
