"""The command line: ``python -m bltlib {data, train} ...``.

* ``python -m bltlib data build`` builds the offline data (same as
  ``python -m bltlib.data build``).
* ``python -m bltlib train --recipe NAME [--fast] [--out DIR] [--resume]
  [--steps N] [--max-seconds S]`` trains a named recipe (see
  ``bltlib.recipes``) and saves a resumable safetensors checkpoint. The
  same command runs data-parallel under ``torchrun`` (``bltlib.dist``).

``generate`` and ``bench`` arrive with the decoders.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



def _train(args: argparse.Namespace) -> int:
    from bltlib import dist
    from bltlib.pipeline import local_checkpoint_dir, train_recipe
    from bltlib.recipes import RECIPES, get_recipe

    if args.recipe not in RECIPES:
        print(f"error: unknown recipe {args.recipe!r}; choose one of "
              f"{sorted(RECIPES)}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("steps", args.steps),
                                   ("max_seconds", args.max_seconds),
                                   ("batch_size", args.batch_size),
                                   ("seed", args.seed)) if v is not None}
    try:
        recipe = get_recipe(args.recipe, args.fast, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else local_checkpoint_dir(
        args.recipe, args.fast)
    if ((out / "model.safetensors").exists() and not args.overwrite
            and not args.resume):
        print(f"error: {out} already holds a checkpoint; pass --resume to "
              "continue it, --overwrite to replace it, or --out elsewhere",
              file=sys.stderr)
        return 1
    device = dist.setup()
    try:
        run = train_recipe(recipe, out=out, resume=args.resume,
                           device=device, progress=not args.quiet)
    finally:
        dist.teardown()
    if dist.is_main():
        print(json.dumps({"checkpoint": str(out), **run.meta}, indent=2))
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
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing checkpoint at --out")
    t.add_argument("--resume", action="store_true",
                   help="continue the run saved at --out")
    t.add_argument("--steps", type=int)
    t.add_argument("--max-seconds", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    bt = sub.add_parser("bench-train", help="BLT vs byte-LM training speed")
    bt.add_argument("--steps", type=int, default=10)
    bt.add_argument("--seconds", type=float,
                    help="also train each for this long and compare val bpb")
    bt.add_argument("--fast", action="store_true")
    bt.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.command == "bench-train":
        from bltlib.bench_train import main as bench_main
        return bench_main(args.steps, args.seconds, args.fast, args.json)
    if args.command == "data":
        from bltlib.data.__main__ import main as data_main
        return data_main(args.rest or ["build"])
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
