"""Notebooks are committed clean: no outputs (except `# NBVAL_CHECK_OUTPUT` cells), a kernelspec, in the book.

Outputs belong in the built book, not in git: they bloat the repository (slider frames are PNGs), make diffs
unreadable, and go stale when course_lib changes. Strip them with
`jupyter nbconvert --clear-output --inplace notebooks/*.ipynb` (then re-run the marked cells if any).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files += [section["file"] for section in chapter.get("sections", [])]
    files += [chapter["file"] for chapter in toc.get("chapters", [])]
    return [f.removesuffix(".ipynb").removesuffix(".md") for f in files]


def _id(path: Path) -> str:
    return path.name


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_valid_and_has_a_kernelspec(path: Path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name"), f"{path.name}: metadata.kernelspec.name is missing"
    assert kernelspec.get("language", "python") == "python", f"{path.name}: not a Python kernel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_has_a_title(path: Path):
    nb = nbformat.read(path, as_version=4)
    first_markdown = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    assert first_markdown is not None and first_markdown.source.lstrip().startswith("# "), (
        f"{path.name}: the first markdown cell must start with a '# Title' (the page title in the book)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_has_no_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and CHECK_MARKER not in cell.source
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} have outputs or execution counts; strip them "
        f"(jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)})"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_has_no_saved_widget_state(path: Path):
    nb = nbformat.read(path, as_version=4)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state")
    assert not state, (
        f"{path.name}: saved widget state in the notebook metadata (the slider PNGs); "
        "the book build stores it itself. Remove metadata.widgets (or save with widget state off)."
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_notebook_is_in_the_table_of_contents(path: Path):
    entry = path.relative_to(ROOT).with_suffix("").as_posix()
    assert entry in _toc_files(), f"{entry} is not listed in _toc.yml"


def test_every_toc_entry_exists():
    for entry in _toc_files():
        candidates = [ROOT / f"{entry}{suffix}" for suffix in (".ipynb", ".md")]
        assert any(c.is_file() for c in candidates), f"_toc.yml lists {entry}, which does not exist"


# --- How the book reads: code within the column, folded cells with a caption -------------------------------------

MAX_CODE_LINE = 80  # characters of code the HTML book shows without a horizontal scroll bar
FOLD_TAG = "hide-input"


def _lines(source) -> list[str]:
    text = "".join(source) if isinstance(source, list) else source
    return text.splitlines()


def _long_code_lines(nb, limit: int = MAX_CODE_LINE) -> list[str]:
    """'cell <index>, line <n> (<length> chars): <line>' for every code line longer than ``limit``."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for number, line in enumerate(_lines(cell["source"]), start=1):
            if len(line) > limit:
                found.append(f"cell {index}, line {number} ({len(line)} chars): {line.strip()[:60]}")
    return found


def _folded_cells_without_caption(nb) -> list[str]:
    """'cell <index> (id <id>)' for every code cell tagged hide-input without a mystnb.code_prompt_show caption."""
    found = []
    for index, cell in enumerate(nb["cells"]):
        metadata = cell.get("metadata", {})
        if cell["cell_type"] != "code" or FOLD_TAG not in metadata.get("tags", []):
            continue
        caption = metadata.get("mystnb", {}).get("code_prompt_show")
        if not isinstance(caption, str) or not caption.strip():
            found.append(f"cell {index} (id {cell.get('id', '?')})")
    return found


def _synthetic_notebook(source: str, metadata: dict | None = None) -> dict:
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Title"},
                      {"cell_type": "code", "metadata": metadata or {}, "source": source}]}


# Every chapter is laid out for the book column (issue 8).
LAID_OUT = NOTEBOOKS


@pytest.mark.parametrize("path", LAID_OUT, ids=_id)
def test_code_lines_fit_the_book_column(path: Path):
    nb = nbformat.read(path, as_version=4)
    long_lines = _long_code_lines(nb)
    assert not long_lines, (
        f"{path.name}: code lines longer than {MAX_CODE_LINE} characters (the HTML book cuts them off):\n  "
        + "\n  ".join(long_lines)
    )


@pytest.mark.parametrize("path", LAID_OUT, ids=_id)
def test_folded_code_cells_have_a_caption(path: Path):
    nb = nbformat.read(path, as_version=4)
    missing = _folded_cells_without_caption(nb)
    assert not missing, (
        f"{path.name}: code cells tagged {FOLD_TAG!r} without a caption: {', '.join(missing)}; add cell metadata "
        '{"mystnb": {"code_prompt_show": "Show the checks of the claims above"}} (or a caption fitting the cell)'
    )


def test_the_book_layout_checks_can_fail():
    # an 81-character line is caught, an 80-character one is not; the message names cell and line
    assert _long_code_lines(_synthetic_notebook("x = 1\n" + "y" * 81)) == [f"cell 1, line 2 (81 chars): {'y' * 60}"]
    assert _long_code_lines(_synthetic_notebook("y" * 80 + "\nx = 1")) == []
    assert _long_code_lines(_synthetic_notebook(["x = 1\n", "#" * 81])) != []  # list-of-lines sources too
    # a folded cell needs a non-empty caption; unfolded cells need none
    tags = {"tags": [FOLD_TAG]}
    assert _folded_cells_without_caption(_synthetic_notebook("x = 1", tags)) == ["cell 1 (id ?)"]
    assert _folded_cells_without_caption(
        _synthetic_notebook("x = 1", {**tags, "mystnb": {"code_prompt_show": "  "}})) == ["cell 1 (id ?)"]
    assert _folded_cells_without_caption(
        _synthetic_notebook("x = 1", {**tags, "mystnb": {"code_prompt_show": "Show the checks"}})) == []
    assert _folded_cells_without_caption(_synthetic_notebook("x = 1")) == []


def _list_markers_inside_inline_math(source: str) -> list[str]:
    """Prose lines that start like a list item ("1) ", "2. ", "- ") while an inline $...$ from an earlier line is
    still open: Markdown then starts a list and the math is split into raw TeX (seen in the HTML book)."""
    found, open_dollar, fenced = [], False, False
    for line in source.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or line.strip() == "$$":
            continue
        if open_dollar and re.match(r"^\s*(\d+[.)]|[-*+])\s", line):
            found.append(line[:60])
        singles = len(re.findall(r"(?<![\\$])\$(?!\$)", line))
        open_dollar ^= singles % 2 == 1
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_inline_math_is_not_broken_by_a_list_marker(path: Path):
    nb = nbformat.read(path, as_version=4)
    bad = [f"cell {i}: {line}" for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
           for line in _list_markers_inside_inline_math(c.source)]
    assert not bad, f"{path.name}: a line inside inline math starts like a list item (reflow it):\n  " + "\n  ".join(bad)


def test_the_inline_math_check_can_fail():
    assert _list_markers_inside_inline_math("weight $a = (0.1 +\n1) / 6$ on average") == ["1) / 6$ on average"]
    assert _list_markers_inside_inline_math("weight $a = (0.1 + 1) / 6$\n1) a list item") == []
    assert _list_markers_inside_inline_math("$$\nx = 1\n$$\n- item with $y$") == []
