#!/usr/bin/env python3
"""Lecture slides: one reveal.js deck per chapter, from the notebooks the book build executed.

    .venv/bin/python scripts/slides.py                      # every chapter, after ./dev book
    .venv/bin/python scripts/slides.py 01 03                # some chapters (number or notebook name)
    .venv/bin/python scripts/slides.py --executed DIR       # executed notebooks from elsewhere (nbclient, ...)
    .venv/bin/python scripts/slides.py --out _build/html/slides --assets ..   # the copy the book links to

writes _build/slides/<chapter>.slides.html, an offline index.html listing the decks, and everything the decks
load: vendor/{reveal.js,requirejs,mathjax,html-manager} (copied from --vendor, the folder `./dev setup` fills
from pinned, checksum-verified npm tarballs) and course-js/widgets-setup.js (the book's, for the sliders).
(With --assets, the decks use the vendor/ and course-js/ folders the book already has instead.) Nothing is
loaded from outside: the build fails if a deck refers to an external script or style.

The decks are nbconvert's SlidesExporter (what `jupyter nbconvert --to slides` runs) with a small template on top
of nbconvert's reveal template, which swaps the MathJax 2 set-up for the local MathJax 3, drops jQuery and
mermaid (nothing here uses them), and starts reveal.js in linear navigation (right arrow, space and a presenter's
clicker step through every slide and fragment). Outputs are those of the book: the executed copies that
`./dev book` leaves in _build/jupyter_execute/notebooks. The slide types come from the notebooks themselves
(cells matched by id; scripts/slide_metadata.py sets them), so they may be retuned without rebuilding the book.

The deck, not the notebook, is then laid out for a lecture:
  - markdown is turned from MyST into what nbconvert renders: theorem-like directives become boxes, proofs
    boxes of their own, exercises keep their statement and lose their solution, citations read
    "Author et al. [year]" as in the book, cross-references the title of what they point to;
  - a markdown cell is cut at its headings (## starts a slide, ### a subslide) and around every theorem, proof
    and exercise, so that each proof has a slide to itself; short pieces share a slide (SLIDE_LINES source
    lines), long prose is cut between paragraphs;
  - inputs the book folds (hide-input) are not shown, nor figure code longer than FIGURE_CODE_LINES lines:
    the figure gets the slide; progress bars (tqdm widgets) are left out;
  - figures are drawn as large as the slide allows (FIGURE_HEIGHT of the slide height).
"""

from __future__ import annotations

import argparse
import codecs
import copy
import html
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_metadata as sm  # noqa: E402  (the chapters, the slide types and their constants)

ROOT = sm.ROOT
DEFAULT_EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"
DEFAULT_VENDOR = ROOT / ".cache" / "book-assets" / "vendor"
DEFAULT_OUT = ROOT / "_build" / "slides"
BIB = ROOT / "book" / "references.bib"
WIDGETS_SETUP = ROOT / "book" / "_extra" / "course-js" / "widgets-setup.js"

WIDTH, HEIGHT = 1280, 720          # reveal.js slide size; the deck is scaled as a whole to the screen
FIGURE_HEIGHT = 0.72               # figures (and slider frames) are drawn this high, as a share of HEIGHT
FIGURE_CODE_LINES = 10             # visible figure code longer than this is left to the book
SLIDE_LINES = sm.SLIDE_LINES       # non-blank markdown source lines that fit one slide

# What the decks load, relative to the deck: (path in the vendor folder, why).
VENDOR_FILES = {
    "reveal.js/dist/reveal.js": "reveal.js",
    "reveal.js/dist/reveal.css": "reveal.js",
    "reveal.js/dist/theme/white.css": "reveal.js",
    "reveal.js/plugin/notes/notes.js": "reveal.js (speaker notes)",
    "requirejs/require.js": "require.js (loads reveal.js and the widget manager)",
    "mathjax/tex-mml-chtml.js": "MathJax 3",
    "html-manager/embed-amd.js": "the widget manager (sliders)",
}
VENDOR_DIRS = ("reveal.js", "requirejs", "mathjax", "html-manager")
REVEAL_THEME = "white"             # its fonts ship with reveal.js (simple, serif, ... import Google fonts)


class SlidesError(Exception):
    pass


# ---- MyST markdown -> what nbconvert's markdown renderer understands ----------------------------------------

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|:{3,})\s*\{(?P<name>[\w:.-]+)\}\s*(?P<arg>.*?)\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
ROLE = re.compile(r"\{(?P<role>[\w:.-]+)\}`(?P<content>[^`]*)`")
TARGET = re.compile(r"^\((?P<label>[\w.:-]+)\)=\s*$")


@dataclass
class Block:
    kind: str                       # "prose", "heading", "directive"
    lines: list[str]
    level: int = 0                  # heading level
    name: str = ""                  # directive name without "prf:"
    arg: str = ""                   # directive argument (title)
    options: dict = field(default_factory=dict)
    body: str = ""


def parse_blocks(source: str) -> list[Block]:
    """Split markdown into headings, top-level MyST directives and the prose between them."""
    blocks: list[Block] = []
    lines = source.split("\n")
    code_fence = ""  # inside a plain fenced code block (```python ... ```): its opening fence
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = None if code_fence else FENCE.match(line)
        if directive:
            fence = directive.group("fence")
            closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
            end = i + 1
            while end < len(lines) and not closing.match(lines[end]):
                end += 1
            body = lines[i + 1:end]
            options = {}
            while body and OPTION.match(body[0]):
                option = OPTION.match(body[0])
                options[option.group("key")] = option.group("value")
                body = body[1:]
            blocks.append(Block("directive", lines[i:end + 1], name=directive.group("name").removeprefix("prf:"),
                                arg=directive.group("arg"), options=options, body="\n".join(body).strip("\n")))
            i = end + 1
            continue
        fence = re.match(r"^ {0,3}(`{3,}|~{3,})(.*)$", line)
        if code_fence:
            if fence and fence.group(1)[0] == code_fence[0] and len(fence.group(1)) >= len(code_fence) \
                    and not fence.group(2).strip():
                code_fence = ""
        elif fence:
            code_fence = fence.group(1)
        heading = None if code_fence else sm.HEADING.match(line)
        if heading:
            blocks.append(Block("heading", [line], level=len(heading.group(1))))
        elif blocks and blocks[-1].kind == "prose":
            blocks[-1].lines.append(line)
        else:
            blocks.append(Block("prose", [line]))
        i += 1
    return [b for b in blocks if b.kind != "prose" or "\n".join(b.lines).strip()]


def _plain(text: str) -> str:
    """A BibTeX name or title without TeX accents and braces."""
    try:
        text = codecs.decode(text, "ulatex")
    except Exception:  # noqa: BLE001 (latexcodec missing or unusual TeX: keep the text)
        pass
    return text.replace("{", "").replace("}", "")


def load_bibliography(path: Path = BIB) -> dict[str, tuple[str, str]]:
    """key -> (authors as cited, year), e.g. ("Cohen et al.", "2019")."""
    try:
        from pybtex.database import parse_file
    except ImportError:
        return {}
    entries = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_plain(" ".join(p.prelast_names + p.last_names)) for p in people]
        who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}" if len(names) == 2
               else f"{names[0]} et al." if names else key)
        entries[key] = (who, entry.fields.get("year", ""))
    return entries


def label_titles(notebooks: list) -> dict[str, str]:
    """label -> how a cross-reference to it reads, over all chapters (references may cross chapters)."""
    titles = {}
    for nb in notebooks:
        exercises = 0
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for block in parse_blocks(cell.source):
                if block.kind != "directive":
                    continue
                kind = block.name.capitalize()
                if block.name == "exercise":
                    exercises += 1
                    kind = f"Exercise {exercises}"
                label = block.options.get("label")
                if label:
                    titles[label] = f"{kind} ({block.arg})" if block.arg else kind
    return titles


# Code, math and HTML tags, where "--" is not a dash.
VERBATIM = re.compile(r"(`+).*?\1|\$\$.*?\$\$|\$[^$]+\$|<[^>]*>", re.S)


def smart_dashes(text: str) -> str:
    """Neyman--Pearson -> Neyman\u2013Pearson, as Sphinx's smartquotes writes it in the book."""
    out, pos = [], 0
    for match in list(VERBATIM.finditer(text)) + [None]:
        end = match.start() if match else len(text)
        out.append(re.sub(r"(?<=\w)--(?=\w)", "\u2013", re.sub(r"(?<=\w)---(?=\w)", "\u2014", text[pos:end])))
        if match:
            out.append(match.group(0))
            pos = match.end()
    return "".join(out)


def translate_inline(text: str, bib: dict, labels: dict) -> str:
    """MyST roles and targets -> plain markdown."""

    def cite(keys: str, textual: bool) -> str:
        # As sphinxcontrib-bibtex's author_year style writes them in the book: [Cohen et al., 2019] and
        # Cohen et al. [2019] (brackets escaped, so that markdown does not take them for a link).
        found = [bib.get(k.strip(), (k.strip(), "")) for k in keys.split(",") if k.strip()]
        if textual:
            return ", ".join(f"{who} \\[{year}\\]" if year else who for who, year in found)
        return "\\[" + ", ".join(f"{who}, {year}" if year else who for who, year in found) + "\\]"

    def role(match: re.Match) -> str:
        name, content = match.group("role"), match.group("content")
        explicit = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", content, re.S)
        if name in ("cite", "cite:p", "cite:ps", "cite:alp", "cite:ts"):
            return cite(content, textual=False)
        if name in ("cite:t", "cite:ct"):
            return cite(content, textual=True)
        if name == "math":
            return f"${content}$"
        if explicit:
            return explicit.group("text")
        if name in ("prf:ref", "ref", "numref", "eq", "doc", "term", "any", "download"):
            return labels.get(content, content)
        return content

    text = "\n".join(line for line in text.split("\n") if not TARGET.match(line))
    return smart_dashes(ROLE.sub(role, text))


def render_directive(block: Block, number: int, bib: dict, labels: dict) -> str:
    """A directive as a box of markdown nbconvert can render (blank lines keep the markdown inside the div)."""
    body = translate_markdown(block.body, bib, labels)
    name = block.name
    if name == "proof":
        head = "*Proof.*"
        body = f"{body}\n\n<p class=\"course-qed\">&#8718;</p>"
    elif name == "exercise":
        head = f"**Exercise {number}**" + (f" ({block.arg})" if block.arg else "")
    else:
        head = f"**{name.capitalize()}**" + (f" ({block.arg})" if block.arg else "")
    head = translate_inline(head, bib, labels)
    css = html.escape(f"course-directive course-{name}")
    return f'<div class="{css}">\n\n{head}\n\n{body}\n\n</div>'


def translate_markdown(source: str, bib: dict, labels: dict) -> str:
    """The whole cell, without splitting it (directive bodies, and cells that keep their own slide)."""
    parts = []
    exercises = 0
    for block in parse_blocks(source):
        if block.kind == "directive":
            if block.name == "solution":
                continue
            exercises += block.name == "exercise"
            parts.append(render_directive(block, exercises, bib, labels))
        else:
            parts.append(translate_inline("\n".join(block.lines), bib, labels))
    return "\n\n".join(parts)


# ---- a markdown cell cut into slides ------------------------------------------------------------------------


@dataclass
class Piece:
    kind: str           # "heading", "prose", "statement", "exercise", "proof"
    text: str
    lines: int
    slide_type: str     # the type the piece starts with
    boxed: bool = False  # holds a statement or an exercise already (a second one gets a slide of its own)


def _count(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip())


def _paragraph_chunks(text: str, budget: int) -> list[str]:
    """Long prose cut between paragraphs (never inside display math or a code block) into chunks <= budget lines."""
    paragraphs, current, in_math, in_code = [], [], False, False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_code = not in_code
        elif not in_code and stripped.count("$$") % 2 == 1:
            in_math = not in_math
        if not stripped and not in_math and not in_code:
            if current:
                paragraphs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    chunks: list[str] = []
    for paragraph in paragraphs:
        if chunks and _count(chunks[-1]) + _count(paragraph) <= budget:
            chunks[-1] += "\n\n" + paragraph
        else:
            chunks.append(paragraph)
    return chunks


def split_markdown(source: str, slide_type: str, bib: dict, labels: dict, exercises: list[int]) -> list[Piece]:
    """The pieces of one markdown cell, each starting a (sub)slide except the first, which keeps ``slide_type``.

    ``exercises`` is a one-element counter of the chapter's exercises so far (they are numbered per chapter).
    """
    pieces: list[Piece] = []
    for block in parse_blocks(source):
        if block.kind == "heading":
            text = translate_inline(block.lines[0], bib, labels)
            pieces.append(Piece("heading", text, 1, sm.SLIDE if block.level <= 2 else sm.SUBSLIDE))
        elif block.kind == "directive":
            if block.name == "solution":
                continue
            if block.name == "exercise":
                exercises[0] += 1
            text = render_directive(block, exercises[0], bib, labels)
            kind = ("proof" if block.name == "proof" else "exercise" if block.name == "exercise"
                    else "statement")
            pieces.append(Piece(kind, text, _count(block.body) + 1, sm.SUBSLIDE, boxed=kind != "proof"))
        else:
            text = translate_inline("\n".join(block.lines), bib, labels)
            for chunk in _paragraph_chunks(text, SLIDE_LINES) if _count(text) > SLIDE_LINES else [text]:
                pieces.append(Piece("prose", chunk, _count(chunk), sm.SUBSLIDE))
    merged: list[Piece] = []
    for piece in pieces:
        prev = merged[-1] if merged else None
        bare_heading = prev is not None and prev.kind == "heading"  # never a slide of its own
        if (prev is not None and prev.kind != "proof" and piece.kind not in ("heading", "proof")
                and not (piece.boxed and prev.boxed)
                and (bare_heading or prev.lines + piece.lines <= SLIDE_LINES)):
            prev.text += "\n\n" + piece.text
            prev.lines += piece.lines
            prev.boxed |= piece.boxed
            prev.kind = piece.kind if piece.kind != "prose" else ("statement" if prev.boxed else "prose")
        else:
            merged.append(piece)
    if merged:
        merged[0].slide_type = slide_type
    return merged


# ---- the deck notebook --------------------------------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}


def _widget_state(nb) -> dict:
    return nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})


def _is_progress_bar(output, state: dict) -> bool:
    """A tqdm bar: a widget view of a box that holds a progress model."""
    model_id = output.get("data", {}).get(WIDGET_VIEW, {}).get("model_id") if "data" in output else None
    model = state.get(model_id or "", {})
    children = [c.removeprefix("IPY_MODEL_") for c in model.get("state", {}).get("children", [])]
    return any(state.get(c, {}).get("model_name") in PROGRESS_MODELS for c in children)


def _has_figure(cell) -> bool:
    return any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
               or WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", []))


def deck_notebook(source_nb, executed_nb, bib: dict, labels: dict, stem: str = "") -> tuple[object, list[str]]:
    """The notebook nbconvert turns into the deck, and warnings (stale executed copy)."""
    warnings = []
    types = {c.get("id"): c.metadata.get("slideshow", {}).get("slide_type") for c in source_nb.cells}
    executed_ids = [c.get("id") for c in executed_nb.cells]
    if executed_ids != list(types):
        warnings.append(f"{stem}: the executed copy's cells differ from the notebook's (cells added, removed or "
                        "moved since the book was built): the deck shows the old cells; run ./dev book")
    state = _widget_state(executed_nb)
    nb = copy.deepcopy(executed_nb)
    cells = []
    exercises = [0]
    for cell in nb.cells:
        slide_type = types.get(cell.get("id")) or cell.metadata.get("slideshow", {}).get("slide_type") or "-"
        if slide_type == sm.SKIP:
            continue
        if cell.cell_type == "markdown":
            if slide_type == sm.NOTES:
                cell.source = translate_markdown(cell.source, bib, labels)
                cell.metadata["slideshow"] = {"slide_type": sm.NOTES}
                cells.append(cell)
                continue
            for piece in split_markdown(cell.source, slide_type, bib, labels, exercises):
                new = nbformat.v4.new_markdown_cell(piece.text)
                new.metadata["slideshow"] = {"slide_type": piece.slide_type}
                if cell.get("attachments"):  # pasted images: every piece may refer to them
                    new.attachments = cell.attachments
                cells.append(new)
            continue
        cell.metadata["slideshow"] = {"slide_type": slide_type}
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if not _is_progress_bar(o, state)]
            tags = list(cell.metadata.get("tags", []))
            if _has_figure(cell) and sm.n_lines(cell.source) > FIGURE_CODE_LINES:
                tags.append("remove-input")
            cell.metadata["tags"] = tags
        cells.append(cell)
    nb.cells = cells
    return nb, warnings


# ---- nbconvert ----------------------------------------------------------------------------------------------

TEMPLATE = r"""
{%- extends 'index.html.j2' -%}

{%- block html_head_js -%}
<script src="{{ resources.require_js_url }}"></script>
<script src="{{ resources.course_assets }}course-js/widgets-setup.js"></script>
{%- endblock html_head_js -%}

{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams"
  },
  options: {skipHtmlTags: ["script", "noscript", "style", "textarea", "pre", "code"]}
};
</script>
<script src="{{ resources.mathjax_url }}" defer></script>
{%- endblock html_head_js_mathjax -%}

{%- block html_head_css -%}
<style type="text/css">
{{ resources.course_css }}
</style>
{%- endblock html_head_css -%}

{% block footer_js %}
<script>
require({waitSeconds: 60},
  ["{{ resources.reveal.url_prefix }}/dist/reveal.js", "{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"],
  function (Reveal, RevealNotes) {
    window.Reveal = Reveal;  // as with a plain <script> (the AMD module defines no global)
    // A slide taller than the deck scrolls (the mouse wheel or the trackpad) instead of running off the screen.
    // (Slides far from the current one are not displayed and measure 0: measured again at every change.)
    function fitTallSlides() {
      var slides = document.querySelectorAll(".reveal .slides section");
      for (var i = 0; i < slides.length; i++) {
        var s = slides[i];
        if (s.querySelector("section") || !s.offsetParent) continue;  // a vertical stack, or not displayed
        if (s.scrollHeight > {{ resources.reveal.height }} + 2) s.classList.add("course-scroll");
      }
    }
    Reveal.initialize({
      controls: true,
      progress: true,
      history: true,
      center: false,
      navigationMode: "linear",
      transition: "{{ resources.reveal.transition }}",
      slideNumber: "{{ resources.reveal.number }}",
      width: {{ resources.reveal.width }},
      height: {{ resources.reveal.height }},
      margin: 0.03,
      plugins: [RevealNotes]
    }).then(function () {
      fitTallSlides();
      window.courseSlidesReady = true;  // for the browser tests
    });
    Reveal.on("slidechanged", fitTallSlides);
  });
</script>
{% endblock footer_js %}
"""

CSS = """
.reveal .slides section { font-size: 24px; line-height: 1.4; }
.reveal .slides section.course-scroll { height: %(height)dpx; overflow-y: auto; }
.reveal .slides section h1, .reveal .slides section h2, .reveal .slides section h3,
.reveal .slides section h4 { text-transform: none; margin: 0 0 0.5em 0; }  /* uppercase would turn ε into Ε */
.reveal .slides section h1 { font-size: 2.0em; }
.reveal .slides section h2 { font-size: 1.6em; }
.reveal .slides section h3, .reveal .slides section h4 { font-size: 1.3em; }
.reveal .jp-RenderedHTMLCommon p, .reveal .jp-RenderedHTMLCommon li { font-size: 24px; line-height: 1.4; }
.reveal .jp-RenderedMarkdown { overflow: visible; }  /* no stray horizontal scroll bar under wide math */
.reveal div.highlight > pre, .reveal div.jp-OutputArea-output > pre { font-size: 17px; line-height: 1.3; }
.reveal div.jp-OutputArea-output > pre { width: 100%%; }
.reveal .jp-RenderedHTMLCommon table { font-size: 18px; margin: 0.3em auto; }
/* Figures large: the slide is %(width)dx%(height)d and scaled to the screen as a whole. */
.reveal .jp-RenderedImage img {
  display: block; margin: 0 auto; height: %(figure)dpx; width: auto; max-width: 100%%; object-fit: contain;
}
.reveal .jupyter-widgets .widget-image {
  height: %(frame)dpx; width: auto; max-width: 100%%; object-fit: contain; margin: 0 auto;
}
.reveal .course-directive {
  border-left: 6px solid #4a7ab5; background: #f3f6fb; padding: 0.2em 0.8em; margin: 0.4em 0;
}
.reveal .course-proof { border-left-color: #999; background: #f7f7f7; }
.reveal .course-exercise { border-left-color: #3d8b3d; background: #f2f8f2; }
.reveal .course-qed { text-align: right; margin: 0; }
"""


def exporter(vendor: str = "vendor"):
    """nbconvert's SlidesExporter with every URL it would load pointed at the vendor folder (a relative URL)."""
    from jinja2 import DictLoader
    from nbconvert.exporters import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.reveal_url_prefix = f"{vendor}/reveal.js"
    config.SlidesExporter.reveal_theme = REVEAL_THEME
    config.SlidesExporter.reveal_transition = "slide"
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_width = str(WIDTH)
    config.SlidesExporter.reveal_height = str(HEIGHT)
    config.SlidesExporter.require_js_url = f"{vendor}/requirejs/require.js"
    config.SlidesExporter.mathjax_url = f"{vendor}/mathjax/tex-mml-chtml.js"
    config.SlidesExporter.widget_renderer_url = f"{vendor}/html-manager/embed-amd.js"
    # Not used by the template above; pointed at nothing external all the same.
    for trait in ("jquery_url", "mermaid_js_url", "mermaid_layout_elk_js_url", "font_awesome_url"):
        setattr(config.SlidesExporter, trait, "")
    config.SlidesExporter.jupyter_widgets_base_url = f"{vendor}/"
    config.SlidesExporter.exclude_input_prompt = True
    config.SlidesExporter.exclude_output_prompt = True
    config.SlidesExporter.exclude_anchor_links = True
    config.SlidesExporter.template_file = "course_slides.html.j2"
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.TagRemovePreprocessor.remove_input_tags = {"hide-input", "remove-input"}
    config.TagRemovePreprocessor.remove_all_outputs_tags = {"hide-output", "remove-output"}
    return SlidesExporter(config=config, extra_loaders=[DictLoader({"course_slides.html.j2": TEMPLATE})])


# Script and style sources that would leave the folder (links <a href> to papers are fine: nothing loads them).
EXTERNAL = re.compile(r"""(<script[^>]*\ssrc=["']?|<link[^>]*\shref=["']?|@import\s+(url\()?["']?|"""
                      r"""\bimport\s[^;]*?from\s+["'])(?P<url>(https?:)?//[^"' )>]+)""", re.I)


def external_urls(text: str) -> list[str]:
    return sorted({m.group("url") for m in EXTERNAL.finditer(text)})


def count_slides(deck_html: str) -> int:
    """Leaf <section>s: what Reveal.getTotalSlides() counts."""
    body = deck_html[deck_html.find('<div class="slides">'):]
    count, previous = 0, ""
    for tag in re.findall(r"<section\b|</section>", body):
        count += tag == "</section>" and previous == "<section"
        previous = tag
    return count


# ---- the build ----------------------------------------------------------------------------------------------


def check_vendor(vendor: Path, hint: str) -> None:
    missing = [rel for rel in VENDOR_FILES if not (vendor / rel).is_file()]
    if missing:
        raise SlidesError(f"{vendor} lacks {', '.join(missing)}: {hint}")


def copy_vendor(vendor: Path, out: Path) -> None:
    check_vendor(vendor, "run ./dev setup (it fetches the pinned npm packages into .cache/book-assets/vendor), "
                         "or pass --vendor DIR")
    for name in VENDOR_DIRS:
        target = out / "vendor" / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(vendor / name, target)
    (out / "course-js").mkdir(parents=True, exist_ok=True)
    shutil.copy2(WIDGETS_SETUP, out / "course-js" / WIDGETS_SETUP.name)


def chapter_title(nb) -> str:
    for cell in nb.cells:
        level, title = sm.heading(cell.source) if cell.cell_type == "markdown" else (0, "")
        if level == 1:
            return title
    return ""


INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Accuracy vs. Robustness: lecture slides</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46em; margin: 3em auto; padding: 0 1em; color: #222; }}
li {{ margin: 0.4em 0; }} .n {{ color: #777; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>Accuracy vs. Robustness: lecture slides</h1>
<p>One deck per chapter. Keys: right arrow or space for the next slide, left arrow back, <kbd>F</kbd> full screen,
<kbd>S</kbd> speaker notes, <kbd>Esc</kbd> overview. Everything loads from this folder: the decks work offline.</p>
<ol>
{items}
</ol>
</body>
</html>
"""


def build(chapters: list[Path], executed: Path, vendor: Path, out: Path, assets: str | None = None,
          log=print) -> dict[str, int]:
    """Write the decks of ``chapters`` and the index into ``out``; return the slide count of every deck.

    The decks load vendor/ and course-js/ from ``assets`` (a URL relative to ``out``, e.g. ".." for the copy
    inside the book, whose root has both); by default both are copied into ``out``.
    """
    missing = [p.stem for p in chapters if not (executed / p.name).is_file()]
    if missing:
        raise SlidesError(f"no executed notebooks for {', '.join(missing)} in {executed}: run ./dev book first "
                          "(or pass --executed DIR)")
    sources = [nbformat.read(p, as_version=4) for p in sm.chapters()]
    labels = label_titles(sources)
    bib = load_bibliography()
    out.mkdir(parents=True, exist_ok=True)
    if assets is None:
        copy_vendor(vendor, out)
        prefix = ""
    else:
        prefix = assets.rstrip("/") + "/"
        check_vendor(out / prefix / "vendor", f"the decks in {out} load them from {assets}/vendor (--assets); "
                                              "for the book: ./dev book")
        if not (out / prefix / "course-js" / WIDGETS_SETUP.name).is_file():
            raise SlidesError(f"{out / prefix / 'course-js'} lacks {WIDGETS_SETUP.name} (--assets {assets})")
    slides_exporter = exporter(f"{prefix}vendor")
    counts, items = {}, []
    for path in chapters:
        source_nb = nbformat.read(path, as_version=4)
        executed_nb = nbformat.read(executed / path.name, as_version=4)
        nb, warnings = deck_notebook(source_nb, executed_nb, bib, labels, path.stem)
        for warning in warnings:
            log(f"warning: {warning}")
        css = CSS % {"width": WIDTH, "height": HEIGHT, "figure": round(FIGURE_HEIGHT * HEIGHT),
                     "frame": round(FIGURE_HEIGHT * HEIGHT) - 60}
        resources = {"metadata": {"name": chapter_title(source_nb) or path.stem, "path": str(path.parent)},
                     "course_css": css, "course_assets": prefix}
        body, _ = slides_exporter.from_notebook_node(nb, resources=resources)
        outside = external_urls(body)
        if outside:
            raise SlidesError(f"the deck of {path.stem} would load {outside}: point them at the vendor folder")
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(body, encoding="utf-8")
        counts[path.stem] = count_slides(body)
        title = html.escape(chapter_title(source_nb) or path.stem)
        items.append(f'<li><a href="{deck.name}">{title}</a> <span class="n">({counts[path.stem]} slides)</span></li>')
        log(f"{deck.relative_to(out.parent) if out.parent in deck.parents else deck}: {counts[path.stem]} slides, "
            f"{deck.stat().st_size / 1e6:.1f} MB")
    (out / "index.html").write_text(INDEX.format(items="\n".join(items)), encoding="utf-8")
    return counts


def select(names: list[str]) -> list[Path]:
    chapters = sm.chapters()
    if not names:
        return chapters
    try:
        return [sm.find_chapter(name, chapters) for name in names]
    except ValueError as error:
        raise SlidesError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter numbers or notebook names (default: every chapter)")
    parser.add_argument("--executed", type=Path, default=DEFAULT_EXECUTED,
                        help=f"folder of executed notebooks (default: {DEFAULT_EXECUTED.relative_to(ROOT)})")
    parser.add_argument("--vendor", type=Path, default=DEFAULT_VENDOR,
                        help=f"folder with reveal.js, requirejs, mathjax, html-manager (default: "
                             f"{DEFAULT_VENDOR.relative_to(ROOT)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where the decks go (default: {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument("--assets", metavar="URL",
                        help="load vendor/ and course-js/ from this URL relative to --out instead of copying them "
                             "(e.g. --out _build/html/slides --assets .. for the copy the book links to)")
    args = parser.parse_args(argv)
    try:
        counts = build(select(args.chapters), args.executed, args.vendor, args.out, args.assets)
    except SlidesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(counts)} decks, {sum(counts.values())} slides: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
