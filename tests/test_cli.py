"""The command line: train a fast recipe, never overwrite, clear errors."""
import json

import pytest

from bltlib.__main__ import main
from bltlib.checkpoint import read_checkpoint
from bltlib.entropy import EntropyModel, EntropyModelConfig, entropies
from bltlib.checkpoint import config_from_dict, load_weights


def test_train_fast_recipe_and_refuse_overwrite(tmp_path, capsys):
    out = tmp_path / "ent"
    assert main(["train", "--recipe", "entropy-small", "--fast",
                 "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fast"] is True and report["final_val_bpb"] > 0
    doc, state = read_checkpoint(out)
    assert doc["kind"] == "entropy" and doc["meta"]["recipe"] == "entropy-small"
    assert doc["meta"]["step"] == 40
    model = EntropyModel(config_from_dict(EntropyModelConfig, doc["config"]))
    load_weights(model, state)
    assert entropies(model, b"def f():").shape == (8,)
    before = (out / "model.safetensors").read_bytes()
    assert main(["train", "--recipe", "entropy-small", "--fast",
                 "--out", str(out)]) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


def test_unknown_recipe(capsys):
    assert main(["train", "--recipe", "nope"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_data_subcommand_is_a_no_op_when_built(capsys):
    assert main(["data", "build"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_missing_subcommand():
    with pytest.raises(SystemExit):
        main([])
