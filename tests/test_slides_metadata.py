"""The chapters' slide metadata (scripts/slide_metadata.py) and the lecture layout of the decks (scripts/slides.py).

Fast: reads the committed notebooks, executes nothing and runs no browser (tests/browser/test_slides.py opens the
built decks). If a test here fails after a notebook was edited, re-run
`.venv/bin/python scripts/slide_metadata.py` and look at `git diff`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import slide_metadata as sm  # noqa: E402
import slides  # noqa: E402

CHAPTERS = sm.chapters()


def _id(path: Path) -> str:
    return path.stem


def _types(nb) -> list[str | None]:
    return [cell.metadata.get("slideshow", {}).get("slide_type") for cell in nb.cells]


def test_the_chapters_are_the_notebooks_of_the_book():
    assert len(CHAPTERS) >= 7 and all(p.is_file() for p in CHAPTERS)


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_every_cell_has_a_slide_type(path: Path):
    nb = nbformat.read(path, as_version=4)
    bad = [f"cell {i}: {t!r}" for i, t in enumerate(_types(nb)) if t not in sm.SLIDE_TYPES]
    assert not bad, f"{path.name}: cells without a valid slide type (run scripts/slide_metadata.py): {bad}"


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_the_first_cell_shown_is_a_slide(path: Path):
    shown = [t for t in _types(nbformat.read(path, as_version=4)) if t in sm.SHOWN]
    assert shown and shown[0] == sm.SLIDE, f"{path.name}: the first cell shown is a {shown[:1]}, not a slide"


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_every_proof_or_theorem_starts_a_slide(path: Path):
    nb = nbformat.read(path, as_version=4)
    bad = [f"cell {i} ({t})" for i, (cell, t) in enumerate(zip(nb.cells, _types(nb)))
           if cell.cell_type == "markdown" and sm.has_proof_directive(cell.source) and t not in (sm.SLIDE, sm.SUBSLIDE)]
    assert not bad, f"{path.name}: cells with a proof or theorem that do not start a (sub)slide: {bad}"


@pytest.mark.parametrize("path", CHAPTERS, ids=_id)
def test_slide_metadata_is_up_to_date_and_rerunning_changes_nothing(path: Path):
    text = path.read_text(encoding="utf-8")
    assert sm.update(path, write=False) == [], (
        f"{path.name}: the slide types differ from the rules; run .venv/bin/python scripts/slide_metadata.py"
    )
    # what the script writes is what nbformat writes: a re-run leaves the file byte for byte as it is
    assert nbformat.writes(nbformat.reads(text, as_version=nbformat.NO_CONVERT)) + "\n" == text
    assert path.read_text(encoding="utf-8") == text


def test_overrides_name_existing_cells():
    assert sm.stale_overrides(CHAPTERS) == []


def _code(source: str, **metadata) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata=metadata)


def test_the_rules_on_small_examples():
    cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nIntro."),
        _code("# Colab, or a Jupyter without the course installed\n%pip install course_lib"),
        _code("import numpy as np\nimport torch\nfrom course_lib import zoo\nx = 1"),
        nbformat.v4.new_markdown_cell("## A section\n\nText."),
        _code("fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()", tags=["hide-input"]),  # joins its lead-in
        nbformat.v4.new_markdown_cell("A remark."),
        _code("assert 1 + 1 == 2", tags=["hide-input"]),
        _code("assert x == 1"),
        _code("def helper():\n    return plt.imshow(x)"),
        _code("y = x + 1\nprint(y)"),
        nbformat.v4.new_markdown_cell("```{prf:proof}\nObvious.\n```"),
        nbformat.v4.new_markdown_cell("### Checks of the solutions"),
        _code("print('checked')"),
        nbformat.v4.new_markdown_cell("## Next"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    assert sm.slide_types(nb) == [
        "slide", "skip", "skip", "slide", "-", "fragment", "skip", "skip", "skip", "subslide",
        "subslide", "skip", "skip", "slide",
    ]


# ---- the decks' lecture layout (scripts/slides.py), on the committed notebooks -------------------------------

SOURCES = {p.stem: nbformat.read(p, as_version=4) for p in CHAPTERS}
BIB = slides.load_bibliography()
LABELS = slides.label_titles(list(SOURCES.values()))
MYST_LEFT = re.compile(r"\{[\w:-]+\}`|^\s*(```|:::)\s*\{|^:label:|^:class:|^\([\w-]+\)=\s*$", re.M)


@pytest.mark.parametrize("stem", list(SOURCES), ids=str)
def test_deck_markdown_has_no_myst_left_and_every_proof_has_its_slide(stem: str):
    nb, warnings = slides.deck_notebook(SOURCES[stem], SOURCES[stem], BIB, LABELS, stem)
    assert not warnings
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    leftovers = [m.group(0) for c in markdown for m in MYST_LEFT.finditer(c.source)]
    assert not leftovers, f"{stem}: MyST syntax left in the deck: {leftovers[:5]}"
    for cell in markdown:
        if "course-proof" in cell.source:
            assert cell.source.count("course-directive") == 1, "a proof shares its slide"
            assert cell.metadata["slideshow"]["slide_type"] in (sm.SLIDE, sm.SUBSLIDE)
    assert not any("course-solution" in c.source for c in markdown), "a solution was left in the deck"
    unresolved = [k for c in markdown for k in re.findall(r"\b[a-z]+\d{4}[a-z]+\b", c.source)]
    assert not unresolved, f"{stem}: citations not found in book/references.bib: {unresolved}"


def test_split_markdown_gives_proofs_their_own_slide_and_drops_solutions():
    source = "\n".join([
        "## Section", "", "Lead-in.", "",
        "```{prf:theorem} Big", ":label: thm-big", "", "Statement.", "```", "",
        "```{prf:proof}", "By {prf:ref}`thm-big`.", "```", "",
        "After the proof.", "",
        "````{exercise}", ":label: ex-1", "", "Do it.", "````", "",
        "````{solution} ex-1", ":class: dropdown", "", "Done.", "````",
    ])
    pieces = slides.split_markdown(source, "slide", {}, {"thm-big": "Theorem (Big)"}, [0])
    assert [(p.kind, p.slide_type) for p in pieces] == [
        ("statement", "slide"), ("proof", "subslide"), ("exercise", "subslide")]
    assert "Theorem** (Big)" in pieces[0].text and "Lead-in." in pieces[0].text
    assert "By Theorem (Big)." in pieces[1].text
    assert "After the proof." in pieces[2].text and "Exercise 1" in pieces[2].text
    assert not any("Done." in p.text for p in pieces)


def test_long_prose_is_cut_between_paragraphs_not_inside_math():
    paragraph = "\n".join(["word " * 12] * 6)
    source = "\n\n".join([paragraph, "$$\na\n\nb\n$$", paragraph, paragraph, paragraph])
    pieces = slides.split_markdown(source, "-", {}, {}, [0])
    assert len(pieces) > 1 and all(p.lines <= slides.SLIDE_LINES for p in pieces)
    assert sum(p.text.count("$$") for p in pieces) == 2 and any("$$\na\n\nb\n$$" in p.text for p in pieces)


def test_external_urls_are_caught():
    assert slides.external_urls('<script src="https://cdn.example/x.js"></script>') == ["https://cdn.example/x.js"]
    assert slides.external_urls("<style>@import url(https://fonts.example/a.css);</style>") == [
        "https://fonts.example/a.css"]
    assert slides.external_urls('<link rel="stylesheet" href="//cdn.example/a.css">') == ["//cdn.example/a.css"]
    assert slides.external_urls('<a href="https://arxiv.org/abs/1">paper</a><script src="vendor/x.js">') == []
