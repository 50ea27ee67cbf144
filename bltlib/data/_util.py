"""Small shared helpers for the data builder (standard library only)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class Output:
    """One file the builder writes, relative to the data directory."""

    relpath: str  # posix path relative to the data dir, e.g. "code/train.txt"
    data: bytes
    source: str
    licence: str
    records: Optional[int] = None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def tsv_field(text: str) -> str:
    """Guard: a TSV field may contain neither tabs nor newlines (cleaning removes them)."""
    if "\t" in text or "\n" in text or "\r" in text:
        raise ValueError(f"TSV field contains a tab or newline: {text[:60]!r}")
    return text
