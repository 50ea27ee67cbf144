"""The command line: ``python -m bltlib {data, train} ...``.

* ``python -m bltlib data build`` builds the offline data (same as
  ``python -m bltlib.data build``).
* ``python -m bltlib train --recipe entropy-small [--fast] [--out DIR]``
  trains a named recipe and saves a safetensors checkpoint.

``generate`` and ``bench`` arrive with the decoders.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bltlib import data


def _train(args: argparse.Namespace) -> int:
    from bltlib.checkpoint import save_checkpoint
    from bltlib.recipes import (ENTROPY_RECIPES, get_entropy_recipe,
                                train_entropy_recipe)

    if args.recipe not in ENTROPY_RECIPES:
        print(f"error: unknown recipe {args.recipe!r}; choose one of "
              f"{sorted(ENTROPY_RECIPES)}", file=sys.stderr)
        return 2
    out = Path(args.out or data.data_dir() / "checkpoints" / "local"
               / (args.recipe + ("-fast" if args.fast else "")))
    if (out / "model.safetensors").exists() and not args.overwrite:
        print(f"error: {out} already holds a checkpoint; pass --overwrite "
              "or --out elsewhere", file=sys.stderr)
        return 1
    recipe = get_entropy_recipe(args.recipe, args.fast)
    model, hist = train_entropy_recipe(args.recipe, args.fast)
    meta = {"recipe": args.recipe, "fast": args.fast,
            "train_seconds": round(hist.seconds, 1),
            "bytes_seen": hist.bytes_seen,
            "final_val_bpb": round(hist.final_val_bpb, 4)}
    save_checkpoint(model, out, kind="entropy", config=recipe.model,
                    meta=meta, overwrite=args.overwrite)
    print(json.dumps({"checkpoint": str(out), **meta}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bltlib")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="build the offline data")
    d.add_argument("rest", nargs=argparse.REMAINDER,
                   help="arguments for `python -m bltlib.data`")
    t = sub.add_parser("train", help="train a named recipe")
    t.add_argument("--recipe", required=True)
    t.add_argument("--fast", action="store_true",
                   help="the seconds-long version of the recipe")
    t.add_argument("--out", help="checkpoint folder (default: "
                   "data/checkpoints/local/<recipe>)")
    t.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "data":
        from bltlib.data.__main__ import main as data_main
        return data_main(args.rest or ["build"])
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
