"""Tests for the offline data builder and loaders (bltlib.data). No torch needed."""

from __future__ import annotations

import ast
import hashlib
import importlib
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

import bltlib.data as data

builder = importlib.import_module("bltlib.data.build")  # the module, not the function
texts = importlib.import_module("bltlib.data.texts")
codecorpus = importlib.import_module("bltlib.data.codecorpus")

HEADER = re.compile(r"^# file: (\S+\.py)$", re.M)


@pytest.fixture(scope="session")
def built() -> dict:
    """Build the default data directory (a no-op when it is up to date)."""
    return data.build(quiet=True)


def _headers(split: str):
    return HEADER.findall(data.load_text("code", split).decode("utf-8"))


# ------------------------------------------------------------------ manifest / builder


def test_manifest_structure_and_hashes(built):
    m = data.manifest()
    assert m == built
    assert m["builder_version"] == builder.BUILDER_VERSION
    assert m["python"] == sys.version
    assert sorted(m["files"]) == builder.EXPECTED_FILES
    root = data.data_dir()
    for rel, info in m["files"].items():
        assert set(info) >= {"bytes", "sha256", "source", "licence"}, rel
        raw = (root / rel).read_bytes()
        assert len(raw) == info["bytes"] > 0, rel
        assert hashlib.sha256(raw).hexdigest() == info["sha256"], rel
    lic = {rel: info["licence"] for rel, info in m["files"].items()}
    assert lic["code/train.txt"] == "PSF-2.0"
    assert lic["code/humaneval.jsonl"] == "MIT (OpenAI)"
    assert lic["translate/en_fr.test.tsv"] == "public domain"
    assert lic["prose/shakespeare.train.txt"].startswith("text public domain")
    # deterministic serialisation: sorted keys, no timestamps
    text = (root / "MANIFEST.json").read_text(encoding="utf-8")
    assert text == builder.dump_manifest(m).decode("utf-8")


def test_second_build_is_noop_and_fast(built, capsys):
    manifest_path = data.data_dir() / "MANIFEST.json"
    mtime = manifest_path.stat().st_mtime_ns
    t = time.perf_counter()
    again = data.build()
    elapsed = time.perf_counter() - t
    assert again == built
    assert "data up to date" in capsys.readouterr().out
    assert manifest_path.stat().st_mtime_ns == mtime
    assert elapsed < 5.0


def test_sources_txt_matches_pinned_artifacts():
    lines = [
        ln.split()
        for ln in builder.SOURCES_TXT.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    pinned = {}
    for spec, hash_opt in lines:
        name, version = spec.split("==")
        pinned[name] = (version, hash_opt.split("sha256:")[1])
    assert pinned == {n: (v, h) for n, (v, _f, h) in builder.ARTIFACTS.items()}


def test_build_hint_cli_parses():
    main = importlib.import_module("bltlib.data.__main__")
    with pytest.raises(SystemExit):
        main.main(["--help"])


# ------------------------------------------------------------------ code


def test_code_splits_nonempty_and_disjoint(built):
    paths = {s: _headers(s) for s in ("train", "val", "test")}
    for split, ps in paths.items():
        assert ps, split
        assert ps == sorted(ps), split
        assert len(ps) == len(set(ps)) == built["files"][f"code/{split}.txt"]["records"]
        assert all(codecorpus.split_of(p) == split for p in ps)
    assert not set(paths["train"]) & set(paths["val"])
    assert not set(paths["train"]) & set(paths["test"])
    assert not set(paths["val"]) & set(paths["test"])
    assert len(paths["train"]) > 5 * (len(paths["val"]) + len(paths["test"]))


def test_code_corpus_excludes_tests_and_site_packages(built):
    for split in ("train", "val", "test"):
        for p in _headers(split):
            parts = p.split("/")
            assert not set(parts[:-1]) & codecorpus.SKIP_DIRS, p
            assert "site-packages" not in p
    assert "__future__.py" in _headers("train") + _headers("val") + _headers("test")


def test_load_text_max_bytes(built):
    head = data.load_text("code", "train", max_bytes=1000)
    assert len(head) == 1000
    assert head.startswith(b"# file: ")
    assert data.load_text("code", "train").startswith(head)
    prose = data.load_text("prose", "val", max_bytes=200)
    assert prose.startswith(b"# work: ")


def test_humaneval(built):
    problems = data.load_jsonl("humaneval")
    assert len(problems) == 164
    for p in problems:
        assert set(p) == {"task_id", "prompt", "entry_point", "canonical_solution", "test"}
    assert problems[0]["task_id"] == "HumanEval/0"
    assert len({p["task_id"] for p in problems}) == 164


def test_docstring_body(built):
    items = data.load_jsonl("docstring_body")
    assert len(items) >= 200
    assert len(items) == built["files"]["code/docstring_body.jsonl"]["records"]
    assert len({it["id"] for it in items}) == len(items)
    test_paths = set(_headers("test")) | set(_headers("val"))
    for it in items:
        assert set(it) == {"id", "path", "prompt", "body"}
        assert it["id"].startswith(it["path"] + "::")
        assert it["path"] in test_paths
        assert it["prompt"].lstrip().startswith(("def ", "async def "))
        assert it["prompt"].endswith("\n") and it["body"].endswith("\n")
        tree = ast.parse(textwrap.dedent(it["prompt"] + it["body"]))
        fn = tree.body[0]
        assert isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        assert 1 <= len(fn.body) - 1 <= 14


def test_docstring_extraction_on_snippet():
    src = (
        "class A:\n"
        "    @property\n"
        "    def f(self):\n"
        '        """Doc\n        more."""\n'
        "        x = 1\n"
        "        return x\n"
        "\n"
        "def g():\n"
        '    "no body"\n'
        "def h(): 'one line'; return 1\n"
    )
    items = codecorpus.docstring_items("m.py", src)
    assert [it["id"] for it in items] == ["m.py::A.f"]
    it = items[0]
    assert it["prompt"] == '    def f(self):\n        """Doc\n        more."""\n'
    assert it["body"] == "        x = 1\n        return x\n"


# ------------------------------------------------------------------ translation / verses


def test_translation_splits(built):
    splits = {s: data.load_pairs(s) for s in ("train", "valid", "test")}
    books = {s: {int(ref.split(".")[0]) for ref, _en, _fr in rows} for s, rows in splits.items()}
    assert books["test"] == {43}
    assert books["valid"] == {8, 32}
    assert not books["train"] & {8, 32, 43}
    refs = [ref for rows in splits.values() for ref, _e, _f in rows]
    assert len(refs) == len(set(refs))
    for split, rows in splits.items():
        assert rows, split
        assert len(rows) == built["files"][f"translate/en_fr.{split}.tsv"]["records"]
        keys = [tuple(map(int, ref.split("."))) for ref, _e, _f in rows]
        assert keys == sorted(keys), split
        for ref, en, fr in rows:
            assert re.fullmatch(r"\d+\.\d+\.\d+", ref)
            for field in (en, fr):
                assert field and field == field.strip()
                assert not set(field) & {"\t", "\n", "\r"}
                assert "<" not in field or ">" not in field
            assert "`" not in en
    assert splits["test"][0] == (
        "43.1.1",
        "In the beginning was the Word, and the Word was with God, and the Word was God.",
        "Au commencement était la Parole, et la Parole était avec Dieu, et la Parole était Dieu.",
    )
    assert len(data.load_pairs("test", max_pairs=5)) == 5


def test_tsv_headers(built):
    root = data.data_dir()
    for split in ("train", "valid", "test"):
        with open(root / f"translate/en_fr.{split}.tsv", encoding="utf-8") as f:
            assert f.readline() == "ref\ten\tfr\n"
    for lang in data.LANGS:
        with open(root / f"multilingual/bible_{lang}.tsv", encoding="utf-8") as f:
            assert f.readline() == "ref\ttext\n"


def test_verses(built):
    en = data.load_verses("en")
    assert en["1.1.1"] == "In the beginning God created the heavens and the earth."
    assert "God's" in en["1.1.2"]
    assert data.load_verses("fr")["1.1.1"] == "Au commencement, Dieu créa les cieux et la terre."
    assert data.load_verses("ru")["1.1.3"].startswith("И сказал Бог")
    expected = {
        "es": "Porque de tal manera amó Dios",
        "ar": "لانه هكذا احب الله",
        "vi": "Vì Đức Chúa Trời yêu thương",
    }
    for lang, start in expected.items():
        assert data.load_verses(lang)["43.3.16"].startswith(start), lang
    assert len(en) > 31000
    # only the public-domain editions are ever written
    files = {p.name for p in (data.data_dir() / "multilingual").glob("*.tsv")}
    assert files == {f"bible_{lang}.tsv" for lang in data.LANGS}


def test_clean_verse():
    assert texts.clean_verse("God`s <i>Spirit</i>\t was  here ", "en") == "God's Spirit was here"
    assert texts.clean_verse(" : ", "ar") == ""
    assert texts.clean_verse("(ADDED FROM KJV: Song. => Песня.)", "ru") == "Песня."


# ------------------------------------------------------------------ prose


def test_shakespeare(built):
    works = {}
    for split in ("train", "val"):
        text = data.load_text("prose", split).decode("utf-8")
        works[split] = re.findall(r"^# work: (\S+)$", text, re.M)
    assert len(works["val"]) == 2
    assert len(works["train"]) >= 30
    assert not set(works["train"]) & set(works["val"])
    assert works["train"] == sorted(works["train"])
    assert "hamlet" in works["train"] + works["val"]


# ------------------------------------------------------------------ errors


def test_missing_data_gives_build_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("BLT_DATA_DIR", str(tmp_path))
    assert data.data_dir() == tmp_path
    calls = [
        lambda: data.load_text("code", "train"),
        lambda: data.load_pairs("test"),
        lambda: data.load_jsonl("humaneval"),
        lambda: data.load_verses("fr"),
        data.manifest,
    ]
    for call in calls:
        with pytest.raises(data.DataMissingError) as exc:
            call()
        assert isinstance(exc.value, FileNotFoundError)
        assert "python -m bltlib.data build" in str(exc.value)
        assert str(tmp_path) in str(exc.value)
    assert not builder.is_up_to_date(Path(tmp_path))


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match="code"):
        data.load_text("poetry", "train")
    with pytest.raises(ValueError, match="train"):
        data.load_text("prose", "test")
    with pytest.raises(ValueError, match="valid"):
        data.load_pairs("val")
    with pytest.raises(ValueError, match="humaneval"):
        data.load_jsonl("mbpp")
    with pytest.raises(ValueError, match="vi"):
        data.load_verses("de")


def test_no_torch_import_in_data_package():
    pkg = Path(data.__file__).parent
    for py in pkg.glob("*.py"):
        src = py.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+torch", src, re.M), py.name


def test_artifact_hash_mismatch_fails_clearly(monkeypatch, tmp_path):
    """A wrong archive in _downloads is reported, not used (pip is faked: offline)."""
    dl = tmp_path / builder.DOWNLOADS
    dl.mkdir()
    for _v, fname, _sha in builder.ARTIFACTS.values():
        (dl / fname).write_bytes(b"not the pinned archive")

    class Done:
        returncode, stdout = 0, ""

    calls = []
    monkeypatch.setattr(builder.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or Done())
    with pytest.raises(builder.BuildError, match="sha256 mismatch"):
        builder.fetch_artifacts(tmp_path, lambda *_: None)
    assert calls and calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert "--require-hashes" in calls[0]

    Done.returncode, Done.stdout = 1, "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES"
    with pytest.raises(builder.BuildError, match="pip download failed"):
        builder.fetch_artifacts(tmp_path, lambda *_: None)
