"""The command line: ``python -m bltlib {data, train, ship, generate, bench, ...}``.

* ``python -m bltlib data build`` builds the offline data (same as
  ``python -m bltlib.data build``).
* ``python -m bltlib train --recipe NAME [--fast] [--out DIR] [--resume]
  [--steps N] [--max-seconds S]`` trains a named recipe (see
  ``bltlib.recipes``) and saves a resumable safetensors checkpoint. The
  same command runs data-parallel under ``torchrun`` (``bltlib.dist``).
  With ``--ship`` it then copies the result into the shipped zoo
  (``data/checkpoints``, see ``bltlib.zoo``); ``python -m bltlib ship
  NAME`` ships an existing local checkpoint.

* ``python -m bltlib generate --model DIR --prompt TEXT [--method ar]
  [--max-new-bytes N] [--temperature T] [--top-k K] [--top-p P]
  [--seed S] [--stop S] [--json]`` continues a prompt (or
  ``--prompt-file F``, read as raw bytes) with a trained BLT checkpoint.
* ``python -m bltlib bench --task translate|code [--json PATH]`` runs every
  decoder on the task's held-out examples with the shipped models and
  prints the paper-style table (quality, calls, Eq. 8, speed-up);
* ``python -m bltlib bench-decoders`` runs every decoder (AR, BLT-S,
  BLT-D, BLT-DV) on held-out prompts: calls, Eq. 8, speed, quality;
* ``python -m bltlib bench-generate`` times cached generation against the
  no-cache loop; ``python -m bltlib bench-train`` times BLT training
  against the byte LM.
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
        if args.ship:
            return _ship_one(args.recipe, out)
    return 0


def _ship_one(name: str, source: Path) -> int:
    from bltlib import zoo
    from bltlib.checkpoint import CheckpointError

    try:
        entry = zoo.ship(name, source)
    except (CheckpointError, FileExistsError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"shipped {name} to {zoo.zoo_dir() / name} "
          f"({entry['size_bytes'] / 1e6:.1f} MB)")
    return 0


def _ship(args: argparse.Namespace) -> int:
    from bltlib.pipeline import local_checkpoint_dir

    return _ship_one(args.recipe, Path(args.source) if args.source
                     else local_checkpoint_dir(args.recipe))


BLOCK_METHODS = ("diffusion", "diffusion-verify")


def _method_options(args: argparse.Namespace) -> dict:
    """Options of the chosen decoder, only those the user gave."""
    opts: dict = {}
    if args.draft_len is not None:
        if args.method != "speculative":
            raise ValueError("--draft-len applies to --method speculative only")
        opts["draft_len"] = args.draft_len
    given = [f for f in ("block_size", "alpha", "entropy_bound")
             if getattr(args, f) is not None]
    if args.method not in BLOCK_METHODS:
        if given or args.eb_plain_sum:
            raise ValueError(f"--{(given or ['eb_plain_sum'])[0].replace('_', '-')}"
                             f" applies to --method {' / '.join(BLOCK_METHODS)} only")
        return opts
    opts.update({k: getattr(args, k) for k in given})
    return {**opts, "eb_plain_sum": args.eb_plain_sum}


def _load_bundle(model: str):
    """A checkpoint folder, or the name of a shipped model."""
    from bltlib import zoo
    from bltlib.inference.bundle import load_patched_blt

    if not Path(model).exists() and model in zoo.available():
        return zoo.load(model)
    return load_patched_blt(model)


def _generate(args: argparse.Namespace) -> int:
    from bltlib.checkpoint import CheckpointError
    from bltlib.env import get_device
    from bltlib.inference import generate as gen_mod
    from bltlib.inference.bundle import load_patched_blt

    if (args.prompt is None) == (args.prompt_file is None):
        print("error: give exactly one of --prompt and --prompt-file",
              file=sys.stderr)
        return 2
    try:
        prompt = (args.prompt.encode("utf-8", "surrogateescape")
                  if args.prompt is not None
                  else Path(args.prompt_file).read_bytes())
        bundle = _load_bundle(args.model).to(get_device(args.device))
        result = gen_mod.generate(
            bundle, prompt, args.method, max_new_bytes=args.max_new_bytes,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            generator=args.seed, stop=args.stop, **_method_options(args))
    except (CheckpointError, OSError, ValueError, TypeError,
            RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        doc = {"prompt_hex": prompt.hex(), "text": result.text,
               "hex": result.bytes.hex(), "stats": result.stats.to_dict()}
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(result.text + "\n")
        s = result.stats
        print(f"[{s.method}: {s.new_bytes} bytes in {s.wall_seconds:.2f} s, "
              f"{s.decoder_calls} decoder / {s.global_calls} global calls, "
              f"stop: {s.stop_reason}]", file=sys.stderr)
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
    t.add_argument("--ship", action="store_true",
                   help="then copy it into the shipped zoo (data/checkpoints, "
                   "float16, manifest with sha256); never replaces one")
    sh = sub.add_parser("ship", help="copy a trained local checkpoint into "
                        "the shipped zoo")
    sh.add_argument("recipe")
    sh.add_argument("--source", help="checkpoint folder (default: "
                    "data/checkpoints/local/<recipe>)")
    g = sub.add_parser("generate", help="continue a prompt with a BLT")
    g.add_argument("--model", required=True,
                   help="BLT checkpoint folder or shipped model name")
    g.add_argument("--method", default="ar", help="decoder (default: ar)")
    g.add_argument("--prompt", help="prompt text")
    g.add_argument("--prompt-file", help="read the prompt bytes from a file")
    g.add_argument("--max-new-bytes", type=int, default=256)
    g.add_argument("--temperature", type=float, default=0.0,
                   help="0 (default) is greedy")
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int, help="sampling seed (0 is a seed)")
    g.add_argument("--stop", action="append",
                   help="stop after this text (repeatable)")
    g.add_argument("--draft-len", type=int,
                   help="speculative (BLT-S): bytes drafted per verification, k")
    g.add_argument("--block-size", type=int,
                   help="diffusion: bytes per block (default: the model's)")
    g.add_argument("--alpha", type=float,
                   help="diffusion: confidence threshold (0 = one step)")
    g.add_argument("--entropy-bound", type=float,
                   help="diffusion: EB sampling bound gamma (nats)")
    g.add_argument("--eb-plain-sum", action="store_true",
                   help="diffusion: EB with sum(H) <= gamma")
    g.add_argument("--device", help="cpu or cuda (default: BLT_DEVICE, "
                   "else CUDA when present)")
    g.add_argument("--json", action="store_true",
                   help="print text, hex and every stat as JSON")
    bg = sub.add_parser("bench-generate",
                        help="cached AR vs the no-cache loop")
    bg.add_argument("--model", help="BLT checkpoint folder (default: "
                    "data/checkpoints/local/blt-code)")
    bg.add_argument("--new-bytes", type=int, nargs="+", default=[128, 512])
    bg.add_argument("--prompt-bytes", type=int, default=64)
    bg.add_argument("--no-reference", action="store_true",
                    help="time the cached generator only")
    bg.add_argument("--json", help="write the results to this file")
    bb = sub.add_parser("bench", help="every decoder on a task's held-out "
                        "examples with the shipped models: the paper's table")
    bb.add_argument("--task", choices=("translate", "code"), default="code")
    bb.add_argument("--prompts", type=int, default=20,
                    help="held-out examples (default 20)")
    bb.add_argument("--quick", action="store_true",
                    help="k = 8 and B = 8 only; 10 HumanEval problems")
    bb.add_argument("--device", help="cpu or cuda")
    bb.add_argument("--json", help="write the results to this file")
    bd = sub.add_parser("bench-decoders",
                        help="AR, BLT-S, BLT-D and BLT-DV on held-out prompts")
    bd.add_argument("--model", help="checkpoint folder (default: "
                    "data/checkpoints/local/blt-d-code)")
    bd.add_argument("--prompts", type=int, default=10)
    bd.add_argument("--new-bytes", type=int, default=128)
    bd.add_argument("--prompt-bytes", type=int, default=96)
    bd.add_argument("--quick", action="store_true",
                    help="one setting per decoder (k = 8, B = 8)")
    bd.add_argument("--json", help="write the results to this file")
    bp = sub.add_parser("bench-peer",
                        help="cached AR vs transformers' BLT loop")
    bp.add_argument("--model", help="BLT checkpoint folder (default: "
                    "data/checkpoints/local/blt-code)")
    bp.add_argument("--new-bytes", type=int, nargs="+", default=[128, 512])
    bp.add_argument("--prompt-bytes", type=int, default=64)
    bp.add_argument("--json", help="write the results to this file")
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
    if args.command == "bench-generate":
        from bltlib.inference.bench import main as bench_gen_main
        return bench_gen_main(args.model, args.new_bytes, args.prompt_bytes,
                              args.json, not args.no_reference)
    if args.command == "bench":
        from bltlib.inference.bench_task import main as bench_task_main
        return bench_task_main(args.task, args.prompts, args.json,
                               args.quick, args.device)
    if args.command == "bench-decoders":
        from bltlib.inference.bench_decoders import main as bench_dec_main
        return bench_dec_main(args.model, args.prompts, args.new_bytes,
                              args.prompt_bytes, args.json, args.quick)
    if args.command == "bench-peer":
        from bltlib.inference.peer import main as peer_main
        return peer_main(args.model, args.new_bytes, args.prompt_bytes,
                         args.json)
    if args.command == "generate":
        return _generate(args)
    if args.command == "ship":
        return _ship(args)
    if args.command == "data":
        from bltlib.data.__main__ import main as data_main
        return data_main(args.rest or ["build"])
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())
