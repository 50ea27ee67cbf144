"""Static checks of the chapters: pairing, no stored outputs, structure."""
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"
SOURCES = sorted(CHAPTERS.glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))


def cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_chapter_is_paired():
    assert SOURCES, "no chapters found"
    assert [p.stem for p in SOURCES] == [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync(src):
    """The .ipynb holds exactly the cells of its py:percent twin.

    Fix with ``make sync`` (or ``jupytext --to ipynb chapters/NN_x.py``).
    """
    assert cells(jupytext.read(src)) == cells(
        jupytext.read(src.with_suffix(".ipynb"))), f"{src.name} out of sync"


def is_check_cell(cell):
    return (cell.cell_type == "code"
            and cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_check_cells_store_outputs(path):
    """Outputs are stored only where nbval compares them, and there always.

    Regenerate with ``make sync`` (tests/tools/sync_notebooks.py).
    """
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and not is_check_cell(c) and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs"
    empty = [i for i, c in enumerate(nb.cells)
             if is_check_cell(c) and not (c.outputs and c.execution_count)]
    assert not empty, (f"{path.name}: NBVAL_CHECK_OUTPUT cells {empty} have "
                       "no stored output to compare; run make sync")


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.stem)
def test_structure_and_line_length(src):
    nb = jupytext.read(src)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Learning goals" in text
    assert re.search(r"^## Summary", text, re.M)
    assert re.search(r"^## Exercises", text, re.M)
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert "assert" in last_code.source, "exercises must be checked in code"
    long = [line for c in nb.cells if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > 79]
    assert not long, f"code lines over 79 characters: {long[:3]}"
