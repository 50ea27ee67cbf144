"""The shipped model zoo: small trained checkpoints in ``data/checkpoints``.

Each shipped checkpoint is a folder ``data/checkpoints/<recipe>/`` with
``model.safetensors`` (float16, to keep the repository small; loading
casts back to float32) and ``config.json``. ``manifest.json`` beside
them records, per recipe, the sha256 of every file, the recipe, training
time and steps, the final validation bits-per-byte, the parameter counts
per component and the machine. A BLT folder does not repeat its entropy
model: the manifest names the entropy recipe, itself shipped.

* :func:`load` returns a ready model by name (``bltlib.load("blt-code")``),
  after checking the hashes. A missing or altered file raises
  :class:`~bltlib.checkpoint.CheckpointError` naming the command that
  rebuilds it.
* :func:`ship` copies a locally trained checkpoint into the zoo (what
  ``python -m bltlib train --recipe NAME --ship`` does). It never
  replaces a shipped checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from bltlib.checkpoint import WEIGHTS, CONFIG, CheckpointError, read_checkpoint

MANIFEST = "manifest.json"
SHIP_DTYPE = torch.float16


def zoo_dir() -> Path:
    """``$BLT_ZOO_DIR`` if set, else ``<repo>/data/checkpoints``."""
    env = os.environ.get("BLT_ZOO_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def _rebuild_hint(name: str) -> str:
    return f"rebuild it with `python -m bltlib train --recipe {name} --ship`"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(root: Path | None = None) -> dict[str, Any]:
    """The parsed manifest (``{}`` if none was written yet)."""
    path = (root or zoo_dir()) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


def available(root: Path | None = None) -> list[str]:
    """Names of the shipped checkpoints listed in the manifest."""
    return sorted(manifest(root))


def verify(name: str, root: Path | None = None) -> Path:
    """Check ``name``'s files against the manifest; return its folder."""
    root = root or zoo_dir()
    entry = manifest(root).get(name)
    if entry is None:
        raise CheckpointError(
            f"no shipped checkpoint {name!r} in {root / MANIFEST} (shipped: "
            f"{', '.join(available(root)) or 'none'}); {_rebuild_hint(name)}")
    folder = root / name
    for fname, digest in entry["sha256"].items():
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(f"shipped checkpoint {name!r} lacks {path}; "
                                  + _rebuild_hint(name))
        if sha256(path) != digest:
            raise CheckpointError(
                f"{path} does not match its sha256 in {root / MANIFEST} "
                f"(altered or corrupt); restore it with git, or "
                + _rebuild_hint(name))
    return folder


def load(name: str, root: Path | None = None, device: str | None = None):
    """A shipped model by recipe name, hashes checked.

    BLT and BLT-D recipes give a :class:`~bltlib.inference.bundle.PatchedBLT`
    (with its shipped entropy model); entropy and byte recipes the model.
    """
    from bltlib.inference.bundle import load_patched_blt
    from bltlib.pipeline import load_model

    root = root or zoo_dir()
    folder = verify(name, root)
    entry = manifest(root)[name]
    if entry["kind"] in ("blt", "blt-d"):
        ent = entry["entropy_recipe"]
        out = load_patched_blt(folder, entropy_path=verify(ent, root))
    else:
        out = load_model(folder)[0]
    return out.to(device) if device else out


def ship(name: str, source: str | Path, root: Path | None = None) -> dict:
    """Copy the local checkpoint ``source`` into the zoo as ``name``.

    Weights are stored in float16 (the ``entropy/`` copy inside a BLT
    folder is left out: the manifest names the entropy recipe, which must
    be shipped first). Refuses to replace a shipped checkpoint.
    """
    root = root or zoo_dir()
    doc, state = read_checkpoint(source)
    meta = doc.get("meta", {})
    if meta.get("fast"):
        raise CheckpointError(f"{source} is a fast-mode checkpoint; ship "
                              "only full recipes")
    folder = root / name
    if folder.exists() or name in manifest(root):
        raise FileExistsError(f"{folder} is already shipped; delete it and "
                              "its manifest entry by hand to replace it")
    entry: dict[str, Any] = {"kind": doc["kind"], "recipe": meta.get("recipe"),
                             "dtype": str(SHIP_DTYPE).removeprefix("torch.")}
    if doc["kind"] in ("blt", "blt-d"):
        entry["entropy_recipe"] = meta["entropy_recipe"]
        verify(entry["entropy_recipe"], root)  # shipped first, and intact
    for key in ("train_seconds", "steps", "bytes_seen", "final_val_bpb",
                "params", "machine", "torch", "init_from",
                "mean_patch_size_val"):
        if key in meta:
            entry[key] = meta[key]
    half = {k: (v.to(SHIP_DTYPE) if v.is_floating_point() else v).contiguous()
            for k, v in state.items()}
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    save_file(half, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(json.dumps(doc, indent=2, sort_keys=True))
    entry["sha256"] = {f: sha256(tmp / f) for f in (WEIGHTS, CONFIG)}
    entry["size_bytes"] = sum((tmp / f).stat().st_size
                              for f in (WEIGHTS, CONFIG))
    tmp.chmod(0o755)  # mkdtemp makes it private
    os.replace(tmp, folder)
    full = manifest(root)
    full[name] = entry
    (root / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True)
                                 + "\n")
    return entry
