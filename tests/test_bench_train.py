"""The training benchmark runs end to end (fast recipes) and reports sanely."""
from bltlib.bench_train import format_table, run


def test_bench_train_fast_smoke():
    result = run(steps=1, seconds=None, fast=True, progress=False)
    models = result["models"]
    assert set(models) == {"BLT", "byte LM"}
    for r in models.values():
        assert r["bytes_per_s"] > 0 and r["params_non_embedding"] > 0
    # the BLT's global model runs once per patch: fewer FLOPs per byte
    assert (models["BLT"]["train_flops_per_byte"]
            < models["byte LM"]["train_flops_per_byte"])
    assert 1.5 < result["mean_patch_size"] < 8
    assert "BLT / byte LM throughput" in format_table(result)
