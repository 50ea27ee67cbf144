"""``python -m bltlib.data build [--data-dir DIR] [--force] [--quiet]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _builder, build, data_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bltlib.data",
        description="Build the project's offline data (deterministic, idempotent).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build data/ (a no-op when up to date)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="output directory (default: $BLT_DATA_DIR or <repo>/data)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    if args.command == "build":
        try:
            build(args.data_dir or data_dir(), force=args.force, quiet=args.quiet)
        except _builder.BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
