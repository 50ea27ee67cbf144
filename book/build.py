"""Build the book site: every chapter executed, warnings as errors.

    python book/build.py                 # full mode -> book/_build/html
    BLT_FAST=1 python book/build.py      # fast mode, same place
    python book/build.py --fast --out _build/book-fast

Runs, from the repository root,

    jupyter-book build . --config book/_config.yml --toc book/_toc.yml \
        --path-output OUT -W --keep-going

with ``PLOTLY_RENDERER=plotly_mimetype+notebook`` after checking the
vendored assets (``book/fetch_assets.sh --check``). Every build starts
clean (``OUT/_build`` is removed first): Sphinx re-executes only the pages
it re-reads, and neither a change of mode nor a new checkpoint changes a
page's source. On success it writes ``OUT/_build/build-ok.json`` (mode,
seconds, site size), which ``tests/test_book.py`` uses to reuse a site
that is newer than everything it was built from.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
RENDERER = "plotly_mimetype+notebook"
STAMP = "build-ok.json"


def site_dir(out: Path) -> Path:
    """Where jupyter-book writes the HTML for ``--path-output out``."""
    return out / "_build" / "html"


def stamp_path(out: Path) -> Path:
    return out / "_build" / STAMP


def inputs() -> list[Path]:
    """Every file a build reads or executes (for the freshness check)."""
    files = list(ROOT.glob("chapters/*.ipynb"))
    files += [p for p in BOOK.rglob("*") if p.is_file() and not (
        {"_build", "__pycache__", ".ipynb_checkpoints"} & set(p.parts))]
    files += list(ROOT.glob("bltlib/**/*.py"))
    files += [p for p in (ROOT / "data" / "checkpoints" / "manifest.json",)
              if p.exists()]
    files += list(ROOT.glob("data/results/*.json"))
    return files


def fresh(out: Path) -> dict | None:
    """The stamp of a successful build at ``out`` newer than its inputs."""
    stamp = stamp_path(out)
    if not stamp.exists() or not (site_dir(out) / "index.html").exists():
        return None
    built = stamp.stat().st_mtime
    if any(p.stat().st_mtime > built for p in inputs()):
        return None
    return json.loads(stamp.read_text())


def build(out: Path, fast: bool | None = None, log: Path | None = None,
          quiet: bool = False) -> dict:
    """Build the site into ``out``; raise ``RuntimeError`` if it fails."""
    out = Path(out).resolve()
    env = dict(os.environ)
    if fast is not None:
        env["BLT_FAST"] = "1" if fast else ""
        if not fast:
            env.pop("BLT_FAST")
    env["PLOTLY_RENDERER"] = RENDERER
    mode = "fast" if env.get("BLT_FAST", "") not in ("", "0") else "full"

    subprocess.run(["bash", str(BOOK / "fetch_assets.sh"), "--check"],
                   check=True, cwd=ROOT)
    shutil.rmtree(out / "_build", ignore_errors=True)
    (out / "_build").mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", ".",
           "--config", "book/_config.yml", "--toc", "book/_toc.yml",
           "--path-output", str(out), "-W", "--keep-going"]
    log = log or out / "_build" / "build.log"
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        for line in proc.stdout:
            f.write(line)
            if not quiet:
                sys.stdout.write(line)
        rc = proc.wait()
    seconds = round(time.time() - start, 1)
    if rc != 0:
        tail = "".join(log.read_text().splitlines(True)[-40:])
        raise RuntimeError(f"jupyter-book build failed (exit {rc}, {mode} "
                           f"mode, {seconds} s; log {log}):\n{tail}")
    html = site_dir(out)
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file())
    info = {"mode": mode, "seconds": seconds, "site_bytes": size,
            "site": str(html), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    stamp_path(out).write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=BOOK,
                    help="--path-output of jupyter-book (default: book/, "
                         "so the site is book/_build/html)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", default=None,
                      help="fast mode (default: BLT_FAST from the environment)")
    mode.add_argument("--full", dest="fast", action="store_false",
                      default=None, help="full mode")
    args = ap.parse_args(argv)
    try:
        info = build(args.out, args.fast)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"book: {info['mode']} mode, {info['seconds']} s, "
          f"{info['site_bytes'] / 1e6:.1f} MB in {info['site']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
