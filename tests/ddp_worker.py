"""Worker for tests/test_ddp.py, started by torchrun with 2 CPU processes.

Each rank trains a tiny BLT for a few steps on its own random crops with
DistributedDataParallel (gloo), then saves its weights for comparison.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from bltlib import dist
from bltlib.blt_data import PatchedCorpus, sample_blt_batch
from bltlib.model.blt import BLT, BLTConfig
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig
from bltlib.training import TrainConfig, to_ids, train_loop


def main(out: Path) -> None:
    dist.setup()
    rank = torch.distributed.get_rank()
    local = TransformerConfig(dim=32, n_layers=1, n_heads=2)
    model = BLT(BLTConfig(encoder=local, decoder=local,
                          global_model=TransformerConfig(dim=48, n_layers=1,
                                                         n_heads=2),
                          hashing=HashConfig(sizes=(3,), vocab=31)), seed=0)
    text = bytes(range(32, 127)) * 40
    starts = torch.arange(len(text)) % 3 == 0
    corpus = PatchedCorpus(ids=to_ids(text), starts=starts)
    cfg = TrainConfig(steps=5, batch_size=2, seq_len=32, eval_every=100)
    seen = []

    def next_batch(gen):
        ids, lengths = sample_blt_batch(corpus, cfg.batch_size, cfg.seq_len, gen)
        seen.append(ids)
        return ids, lengths

    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_loop(model, next_batch, None, cfg, progress=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["_changed"] = torch.tensor(
        float(any(not torch.equal(before[k], state[k]) for k in before)))
    state["_first_batch"] = seen[0].float()
    save_file(state, out / f"rank{rank}.safetensors")
    dist.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
