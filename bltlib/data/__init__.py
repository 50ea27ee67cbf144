"""Offline data for the project: builder and loaders (standard library only, no torch).

Build once with ``python -m bltlib.data build`` (seconds; downloads three pinned registry
artifacts, then works offline). The data directory is ``$BLT_DATA_DIR`` or ``<repo>/data``.

Loaders::

    load_text("code", "train", max_bytes=2_000_000) -> bytes   # code: train/val/test
    load_text("prose", "val")                                  # prose: train/val
    load_pairs("test")  -> [(ref, en, fr), ...]                # train/valid/test
    load_jsonl("humaneval"), load_jsonl("docstring_body")     -> [dict, ...]
    load_verses("ru")  -> {"1.1.1": "...", ...}                # en fr es ru ar vi
    manifest()          -> dict

Note: the builder lives in the submodule ``bltlib.data.build``, but the package attribute
``bltlib.data.build`` is the *function* below; use ``importlib.import_module`` (or
``sys.modules``) for the module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import build as _builder  # imported first: the function below then takes the name

__all__ = [
    "DataMissingError",
    "build",
    "data_dir",
    "load_jsonl",
    "load_pairs",
    "load_text",
    "load_verses",
    "manifest",
]

BUILD_HINT = "run `python -m bltlib.data build`"

TEXT_FILES: Dict[str, Dict[str, str]] = {
    "code": {"train": "code/train.txt", "val": "code/val.txt", "test": "code/test.txt"},
    "prose": {"train": "prose/shakespeare.train.txt", "val": "prose/shakespeare.val.txt"},
}
PAIR_SPLITS = ("train", "valid", "test")
JSONL_FILES = {"humaneval": "code/humaneval.jsonl", "docstring_body": "code/docstring_body.jsonl"}
LANGS = ("en", "fr", "es", "ru", "ar", "vi")


class DataMissingError(FileNotFoundError):
    """A data file is missing: the data has not been built (or BLT_DATA_DIR points elsewhere)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        super().__init__(
            f"data file {self.path} is missing; {BUILD_HINT} "
            "(or set BLT_DATA_DIR to a built data directory)"
        )


def data_dir() -> Path:
    """``$BLT_DATA_DIR`` if set, else ``<repo>/data``."""
    return _builder.default_data_dir()


_default_data_dir = data_dir  # ``build`` below has a parameter of the same name


def build(data_dir: Optional[Path] = None, force: bool = False, quiet: bool = False) -> dict:
    """Build the data (a no-op when up to date, unless ``force``); return the manifest."""
    target = Path(data_dir) if data_dir is not None else _default_data_dir()
    return _builder.run_build(target, force=force, quiet=quiet)


def _path(rel: str) -> Path:
    path = data_dir() / rel
    if not path.is_file():
        raise DataMissingError(path)
    return path


def _choice(kind: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(sorted(valid))}")


def load_text(corpus: str, split: str, max_bytes: Optional[int] = None) -> bytes:
    """Raw UTF-8 bytes of a text corpus (``code`` or ``prose``), truncated to ``max_bytes``."""
    _choice("corpus", corpus, TEXT_FILES)
    _choice(f"split for corpus {corpus!r}", split, TEXT_FILES[corpus])
    with open(_path(TEXT_FILES[corpus][split]), "rb") as f:
        return f.read() if max_bytes is None else f.read(max(0, int(max_bytes)))


def _read_tsv(rel: str) -> List[List[str]]:
    text = _path(rel).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.split("\t") for line in lines[1:]]  # skip the header


def load_pairs(split: str, max_pairs: Optional[int] = None) -> List[Tuple[str, str, str]]:
    """EN-FR verse pairs ``(ref, en, fr)`` in verse order; split in train/valid/test."""
    _choice("split", split, PAIR_SPLITS)
    rows = _read_tsv(f"translate/en_fr.{split}.tsv")
    if max_pairs is not None:
        rows = rows[: max(0, int(max_pairs))]
    return [(r[0], r[1], r[2]) for r in rows]


def load_jsonl(name: str) -> List[dict]:
    """``humaneval`` (164 problems) or ``docstring_body`` (stdlib held-out functions)."""
    _choice("jsonl set", name, JSONL_FILES)
    with open(_path(JSONL_FILES[name]), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_verses(lang: str) -> Dict[str, str]:
    """ref (``book.chapter.verse``) -> text of a public-domain edition."""
    _choice("language", lang, LANGS)
    return {r[0]: r[1] for r in _read_tsv(f"multilingual/bible_{lang}.tsv")}


def manifest() -> dict:
    """The parsed ``MANIFEST.json`` of the data directory."""
    return json.loads(_path(_builder.MANIFEST_NAME).read_text(encoding="utf-8"))
