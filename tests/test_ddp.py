"""Data-parallel training: 2 CPU processes under gloo end with equal weights."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_two_gloo_ranks_end_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", str(WORKER), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(tmp_path / "rank0.safetensors")
    b = load_file(tmp_path / "rank1.safetensors")
    assert a.pop("_changed").item() == 1.0  # training moved the weights
    b.pop("_changed")
    # the ranks trained on different data ...
    assert not torch.equal(a.pop("_first_batch"), b.pop("_first_batch"))
    # ... and DDP kept their weights identical
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
