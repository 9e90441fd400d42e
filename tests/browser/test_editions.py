"""The two editions of the book: the instructor edition (_build/html, `./dev book`) shows every exercise's
solution, the student edition (_build/student/html, `./dev student`) shows the exercises and no solution text.

The solutions are read from the chapter notebooks' sources (the bodies of the ```{solution}``` directives), so the
test follows the book as it changes. Each solution is matched by its longest run of plain prose words (no math,
code or roles in between, which render differently), against the words of the page's text. The test runs after
both builds in `./dev test` (marked browser, with the other tests on built HTML); it skips when a build is missing.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
EDITIONS = {"instructor": ROOT / "_build" / "html", "student": ROOT / "_build" / "student" / "html"}
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = [ROOT / f"{chapter['file']}.ipynb" for part in TOC["parts"] for chapter in part["chapters"]
            if chapter["file"].startswith("notebooks/")]
MIN_WORDS = 5

DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{(exercise|solution)\}[^\n]*\n(.*?)^\1\s*$", re.M | re.S)
OPTION = re.compile(r"^:[\w-]+:.*$", re.M)
NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\{[\w:-]+\}`[^`]*`|`[^`]*`|\[[^\]]*\]\([^)]*\)|<[^>]+>", re.S)
WORD = re.compile(r"[A-Za-z]+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def longest_prose_run(body: str) -> list[str]:
    """The longest run of consecutive plain words of a directive body (math, code, roles and links cut runs)."""
    body = OPTION.sub("", body)
    runs = [_words(piece) for chunk in NOT_PROSE.split(body) for piece in re.split(r"\n\s*\n|[*_#>|]", chunk)]
    return max(runs, key=len, default=[])


def directive_snippets(kind: str) -> dict[str, list[list[str]]]:
    """Per chapter page, the longest prose run of each ``kind`` directive ("exercise" or "solution")."""
    found = {}
    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        runs = [longest_prose_run(m.group(3)) for cell in nb.cells if cell.cell_type == "markdown"
                for m in DIRECTIVE.finditer(cell.source) if m.group(2) == kind]
        found[f"notebooks/{path.stem}"] = runs
    return found


def page_words(edition: str, page: str) -> str:
    root = EDITIONS[edition]
    if not (root / "index.html").exists():
        pytest.skip(f"{root} not built (./dev {'book' if edition == 'instructor' else 'student'})")
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]+>", " ", (root / f"{page}.html").read_text(), flags=re.S)
    return " " + " ".join(_words(html.unescape(text))) + " "


def contains(words: str, run: list[str]) -> bool:
    return f" {' '.join(run)} " in words


SOLUTIONS = directive_snippets("solution")
EXERCISES = directive_snippets("exercise")


def test_every_chapter_has_checkable_solutions():
    for page, runs in SOLUTIONS.items():
        assert runs, f"{page}: no {{solution}} directives found (did the syntax change?)"
        assert all(len(run) >= MIN_WORDS for run in runs), (page, [" ".join(r) for r in runs])


@pytest.mark.parametrize("page", sorted(SOLUTIONS))
def test_instructor_edition_has_every_solution(page: str):
    words = page_words("instructor", page)
    missing = [" ".join(run) for run in SOLUTIONS[page] if not contains(words, run)]
    assert not missing, f"{page}: solutions missing from the instructor edition: {missing}"


@pytest.mark.parametrize("page", sorted(SOLUTIONS))
def test_student_edition_has_exercises_but_no_solution(page: str):
    words = page_words("student", page)
    leaked = [" ".join(run) for run in SOLUTIONS[page] if contains(words, run)]
    assert not leaked, f"{page}: solution text in the student edition: {leaked}"
    missing = [" ".join(run) for run in EXERCISES[page] if len(run) >= MIN_WORDS and not contains(words, run)]
    assert not missing, f"{page}: exercises missing from the student edition: {missing}"
    assert 'class="solution' not in (EDITIONS["student"] / f"{page}.html").read_text()


@pytest.mark.parametrize("edition", sorted(EDITIONS))
def test_book_links_to_slides_and_homework(edition: str):
    """The intro links to the slides and the homework, and both are in the edition's folder (the student edition
    without the autograder zips, which hold the hidden tests)."""
    root = EDITIONS[edition]
    if not (root / "index.html").exists():
        pytest.skip(f"{root} not built")
    intro = (root / "book" / "intro.html").read_text()
    for target in ("slides/index.html", "homework/index.html"):
        assert f'href="../{target}"' in intro, f"{edition}: the intro does not link to {target}"
        assert (root / target).is_file(), f"{edition}: {target} is linked but missing (./dev slides, ./dev homework)"
    decks = sorted((root / "slides").glob("*.slides.html"))
    assert [d.name.split(".")[0] for d in decks] == [c.stem for c in CHAPTERS]
    handouts = sorted((root / "homework").glob("hw*/student/*.ipynb"))
    assert len(handouts) == len(CHAPTERS), handouts
    zips = list((root / "homework").glob("hw*/autograder/*.zip"))
    assert len(zips) == (len(CHAPTERS) if edition == "instructor" else 0), zips
    assert not list((root / "homework").glob("hw*/autograder/*.ipynb")), "the solutions notebook was published"
