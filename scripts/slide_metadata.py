#!/usr/bin/env python3
"""Slide types for the chapter notebooks: the reveal.js decks (scripts/slides.py) and live slides (RISE).

Sets ``metadata.slideshow.slide_type`` of every cell of every chapter notebook in _toc.yml from the rules
below, and changes nothing else: the notebooks are rewritten the way nbformat writes them, with only that
metadata key added or changed. Deterministic and idempotent: re-run it after editing a notebook's content.

    .venv/bin/python scripts/slide_metadata.py            # update the notebooks
    .venv/bin/python scripts/slide_metadata.py --check    # exit 1 if a notebook is not up to date
    .venv/bin/python scripts/slide_metadata.py --show 03  # print the slide type of every cell of chapter 3

The rules, for a lecture (first match wins; "the slide" is the one the cells before have filled):

markdown
  - inside a skipped section (a heading such as "Checks of the solutions", down to the next heading of the same
    or a higher level) ................................................................... skip
  - starts with a heading: "#" or "##" ................................................... slide
    "###" and deeper ..................................................................... subslide
  - holds a theorem or proof directive (sphinx-proof) ..................................... subslide
  - at most FRAGMENT_LINES lines right after a figure (a remark on the figure) ............ fragment
  - follows markdown on a slide without a figure, and both fit (SLIDE_LINES) .............. -
  - anything else ........................................................................ subslide
code
  - the Colab installation cell, set-up cells (SETUP_IMPORTS or more imports), cells whose output the book
    folds (hide-output), cells whose input the book folds (hide-input) unless they draw a figure or print library
    source, cells without output that only check (asserts, no assignment) or only define functions,
    budget checks ........................................................................ skip
  - draws a figure or a slider, or prints library source: on a slide of its own ........... subslide,
    or "-" after a short lead-in that starts the slide (markdown only, at most LEAD_IN_LINES lines)
  - follows markdown on a slide without a figure, and both fit (SLIDE_LINES) .............. -
  - anything else (a figure keeps its slide to itself) .................................... subslide

Judgement calls the rules cannot make are in OVERRIDES (notebook, cell id) -> slide type; an override whose
cell no longer exists is reported. scripts/slides.py further splits long markdown cells of the *deck* (not of
the notebooks) so that every theorem, proof and exercise gets a slide of its own and solutions are left out.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]

SLIDE, SUBSLIDE, FRAGMENT, CONTINUE, SKIP, NOTES = "slide", "subslide", "fragment", "-", "skip", "notes"
SLIDE_TYPES = (SLIDE, SUBSLIDE, FRAGMENT, CONTINUE, SKIP, NOTES)
SHOWN = (SLIDE, SUBSLIDE, FRAGMENT, CONTINUE)  # the types a slide shows ("notes" go to the speaker view)

SLIDE_LINES = 20     # source lines (markdown + code) that fit one slide
LEAD_IN_LINES = 5    # a markdown cell this short that starts a slide may share it with the figure after it
FRAGMENT_LINES = 2   # a remark this short after a figure appears under the figure, on the next key press
SETUP_IMPORTS = 3    # a code cell with this many import statements is set-up

# Manual overrides: (notebook stem, cell id) -> slide type.
OVERRIDES: dict[tuple[str, str], str] = {
    # "A few small helpers for the pictures": the helpers' code is skipped, so is its announcement.
    ("01_adversarial_examples", "e6aaae40"): SKIP,
}

# Sections that are not lecture material (their heading and every cell up to the next heading of that level).
SKIP_SECTIONS = re.compile(r"checks? of the solutions?\b", re.I)
# sphinx-proof directives (theorem-like and proofs), written with backticks or colons: ```{prf:proof}
PROOF_DIRECTIVE = re.compile(
    r"^ {0,3}(?:`{3,}|:{3,})\s*\{(?:prf:)?(?:proof|theorem|lemma|proposition|corollary|definition|algorithm|"
    r"assumption|axiom|conjecture|criterion|example|remark|observation|property)\}",
    re.M,
)
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
# Calls that draw: matplotlib, the course's slider and plotting helpers (outside function bodies only).
FIGURE_CALL = re.compile(r"^(show|subplots|subplot_mosaic|figure|imshow|matshow|plot|bar|barh|hist|scatter|"
                         r"frame_slider|image_grid|interact|.+_plot|.+_figure)$")
OUTPUT_CALL = {"print", "display", "display_markdown", "display_html"}


def chapters() -> list[Path]:
    """The chapter notebooks (notebooks/*.ipynb, not the subfolders), in the order of _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    files += [c["file"] for c in toc.get("chapters", [])]
    return [ROOT / f"{f.removesuffix('.ipynb')}.ipynb" for f in files
            if f.startswith("notebooks/") and "/" not in f.removeprefix("notebooks/")]


def find_chapter(name: str, paths: list[Path] | None = None) -> Path:
    """The chapter a name points to: its number (3 or 03) or the start of its notebook name."""
    paths = chapters() if paths is None else paths
    matches = [p for p in paths if p.stem == name or p.stem.startswith(name)
               or (name.isdigit() and p.stem.split("_")[0] == name.zfill(2))]
    if len(matches) != 1:
        raise ValueError(f"{name!r} names {len(matches)} chapters; one of: {', '.join(p.stem for p in paths)}")
    return matches[0]


def heading(source: str) -> tuple[int, str]:
    """(level, title) of the heading the cell starts with, (0, "") if it does not start with one."""
    lines = source.strip().splitlines()
    match = HEADING.match(lines[0]) if lines else None
    return (len(match.group(1)), match.group(2).strip()) if match else (0, "")


def has_proof_directive(source: str) -> bool:
    return bool(PROOF_DIRECTIVE.search(source))


def n_lines(source: str) -> int:
    return len(source.strip().splitlines())


@dataclass
class Code:
    """What a code cell does, read from its source (the notebooks are committed without outputs)."""

    install: bool = False
    imports: int = 0
    figure: bool = False
    output: bool = False
    asserts: bool = False
    listing: bool = False
    budget: bool = False
    assigns: bool = False      # computes something at top level (so the cell is more than a check)
    defines_only: bool = False  # only imports, functions and classes


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def analyse(cell) -> Code:
    source = cell.source
    first = source.lstrip().splitlines()[0] if source.strip() else ""
    info = Code(install=first.startswith("# Colab") or "%pip install" in source,
                budget=first.startswith("# Budget check"))
    try:
        from IPython.core.inputtransformer2 import TransformerManager  # turns %magics into Python

        tree = ast.parse(TransformerManager().transform_cell(source))
    except (ImportError, SyntaxError):
        info.output = True  # cannot tell: assume the cell shows something
        return info
    info.imports = sum(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)
    info.assigns = any(isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) for node in tree.body)
    definitions = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    info.defines_only = all(isinstance(node, definitions) for node in tree.body)
    todo = list(tree.body)
    while todo:  # every node outside function and class bodies (those run later, if at all)
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Assert):
            info.asserts = True
        if isinstance(node, ast.Call):
            name = _call_name(node)
            info.figure |= bool(FIGURE_CALL.match(name))
            info.output |= name in OUTPUT_CALL
            info.listing |= name == "getsource"
        todo.extend(ast.iter_child_nodes(node))
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr) and not isinstance(last.value, ast.Constant):
        info.output = True  # a trailing expression is displayed
    return info


@dataclass
class Current:
    """The slide being filled: what its last shown cell was, how many source lines it holds, whether it has a figure."""

    last: str = ""          # "markdown", "code", "figure" (or slider) or "listing" (library source)
    lines: int = 0
    markdown_only: bool = True
    figure: bool = False


def slide_types(nb, stem: str = "") -> list[str]:
    """The slide type of every cell of ``nb`` by the rules of the module docstring, then OVERRIDES."""
    types: list[str] = []
    now = Current()
    skip_level = 0  # > 0: inside a skipped section that a heading of this level (or higher) ends
    for cell in nb.cells:
        lines = n_lines(cell.source)
        level, title = heading(cell.source) if cell.cell_type == "markdown" else (0, "")
        if skip_level and level and level <= skip_level:
            skip_level = 0
        if level and SKIP_SECTIONS.search(title):
            skip_level = level
        kind = cell.cell_type
        fits = not now.figure and now.lines + lines <= SLIDE_LINES  # may join the slide being filled
        if skip_level or cell.cell_type == "raw":
            slide_type = SKIP
        elif cell.cell_type == "markdown":
            if level:
                slide_type = SLIDE if level <= 2 else SUBSLIDE
            elif has_proof_directive(cell.source):
                slide_type = SUBSLIDE
            elif now.last == "figure" and lines <= FRAGMENT_LINES:
                slide_type = FRAGMENT
            elif now.last == "markdown" and fits:
                slide_type = CONTINUE
            else:
                slide_type = SUBSLIDE
        else:
            code = analyse(cell)
            tags = set(cell.metadata.get("tags", []))
            hidden = bool(tags & {"hide-input", "remove-input"})
            kind = "figure" if code.figure else "listing" if code.listing else "code"
            shows = code.figure or code.output or code.listing
            if (code.install or code.budget or code.imports >= SETUP_IMPORTS
                    or tags & {"hide-output", "remove-output", "remove-cell"}
                    or (hidden and kind == "code")
                    or (not shows and (code.defines_only or (code.asserts and not code.assigns)))):
                slide_type = SKIP
            elif kind in ("figure", "listing"):
                lead_in = now.markdown_only and not now.figure and 0 < now.lines <= LEAD_IN_LINES
                slide_type = CONTINUE if lead_in else SUBSLIDE
            elif now.last == "markdown" and fits:
                slide_type = CONTINUE
            else:
                slide_type = SUBSLIDE
        slide_type = OVERRIDES.get((stem, cell.get("id", "")), slide_type)
        types.append(slide_type)
        if slide_type in (SLIDE, SUBSLIDE):
            now = Current()
        if slide_type in SHOWN:
            now.last, now.lines = kind, now.lines + lines
            now.markdown_only &= kind == "markdown"
            now.figure |= kind in ("figure", "listing")
    return types


def update(path: Path, write: bool = True) -> list[int]:
    """Set the slide types of the notebook at ``path``; return the indices of the cells that changed."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    changed = []
    for index, (cell, slide_type) in enumerate(zip(nb.cells, slide_types(nb, path.stem))):
        if cell.metadata.get("slideshow", {}).get("slide_type") != slide_type:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = slide_type
            changed.append(index)
    if changed and write:
        nbformat.write(nb, path)
    return changed


def stale_overrides(paths: list[Path]) -> list[tuple[str, str]]:
    ids = {(p.stem, c.get("id", "")) for p in paths for c in nbformat.read(p, as_version=4).cells}
    return sorted(key for key in OVERRIDES if key not in ids and key[0] in {p.stem for p in paths})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not up to date")
    parser.add_argument("--show", metavar="CHAPTER", help="print every cell's slide type (chapter number or stem)")
    args = parser.parse_args(argv)
    paths = chapters()
    if args.show:
        try:
            path = find_chapter(args.show, paths)
        except ValueError as error:
            parser.error(str(error))
        nb = nbformat.read(path, as_version=4)
        for index, (cell, slide_type) in enumerate(zip(nb.cells, slide_types(nb, path.stem))):
            first = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
            print(f"{index:3d} {cell.cell_type[:4]} {n_lines(cell.source):4d} {slide_type:9s} {first}")
        return 0
    for key in stale_overrides(paths):
        print(f"warning: OVERRIDES names cell {key[1]!r} of {key[0]}, which no longer exists", file=sys.stderr)
    stale = False
    for path in paths:
        changed = update(path, write=not args.check)
        if changed:
            stale = True
            verb = "would change" if args.check else "updated"
            print(f"{path.relative_to(ROOT)}: {verb} the slide type of {len(changed)} cells")
    if args.check and stale:
        print("run: .venv/bin/python scripts/slide_metadata.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
