"""Build the homework: ``otter assign`` every notebooks/homework/hw*.ipynb, then an offline index page.

    .venv/bin/python scripts/homework.py [--no-run-tests]
    .venv/bin/python scripts/homework.py --publish DIR [--no-autograder]

For each homework ``<name>`` this writes, under _build/homework/<name>/:

- ``student/``: the notebook to hand out (solutions replaced by ``...``) and its public tests;
- ``autograder/``: the solutions notebook, all tests, and ``<name>-autograder.zip`` for
  ``otter run -a <name>-autograder.zip <submission>.ipynb``.

otter assign also runs the solutions notebook against every test, public and hidden, in a kernel
(``--no-run-tests`` skips that). Then _build/homework/index.html lists the homework, their questions and the
links. Any failure stops the build with the homework's name and otter's message.

``--publish DIR`` copies what may be handed out from the last build into DIR (the book's ``homework/`` folder,
which the book links to): each student folder and, unless ``--no-autograder`` (the student edition), the autograder
zip, never the solutions notebook; and an index page.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "homework"
OUT = ROOT / "_build" / "homework"


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def questions(master: Path) -> tuple[str, list[tuple[str, str, float]]]:
    """The homework's title and its questions as (name, heading, points), read from the master notebook."""
    nb = nbformat.read(master, as_version=4)
    title, found, pending = master.stem, [], None
    for cell in nb.cells:
        if cell.cell_type == "raw" and re.match(r"#\s+begin\s+question", cell.source, re.IGNORECASE):
            config = yaml.safe_load(cell.source)
            pending = (config["name"], config.get("points", 1))
        elif cell.cell_type == "markdown":
            heading = cell.source.lstrip().split("\n", 1)[0]
            if heading.startswith("# ") and title == master.stem:
                title = heading[2:].strip()
            elif pending:
                heading = re.sub(r"^#+\s*(Question \d+:\s*)?", "", heading)
                heading = heading.replace("$", "").replace("\\ell_", "ℓ").replace("\\infty", "∞")  # no MathJax here
                found.append((pending[0], heading, pending[1]))
                pending = None
    return title, found


def assign(master: Path, run_tests: bool) -> Path:
    """otter assign into OUT/<name>; returns the autograder zip, renamed without otter's timestamp."""
    import otter.assign

    out = OUT / master.stem
    shutil.rmtree(out, ignore_errors=True)
    otter.assign.main(str(master), str(out), no_pdfs=True, no_run_tests=not run_tests)
    (stamped,) = (out / "autograder").glob(f"{master.stem}-autograder_*.zip")
    return stamped.rename(stamped.with_name(f"{master.stem}-autograder.zip"))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Accuracy vs. Robustness: homework</title>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto; padding: 0 1em; line-height: 1.5; }}
code, pre {{ background: #f4f4f4; padding: 0.1em 0.3em; }}
pre {{ padding: 0.6em; overflow-x: auto; }}
li.homework {{ margin-bottom: 1em; }}
</style>
</head>
<body>
<h1>Accuracy vs. Robustness: homework</h1>
<p>One homework per chapter, with automatic feedback (<a href="https://otter-grader.readthedocs.io">otter-grader</a>).
Copy a homework's <code>student</code> folder, open the notebook in Jupyter, replace each <code>...</code> by your
code and run the <code>grader.check(...)</code> cell below it: it runs the public tests and says what is wrong.
To grade a submission with the hidden tests too, without Docker:</p>
<pre>otter run -a hw01_adversarial_examples-autograder.zip hw01_adversarial_examples.ipynb</pre>
<p>(It writes <code>results.json</code>. Hand out only the <code>student</code> folders: the <code>autograder</code>
folders hold the solutions and the hidden tests.)</p>
<ol>
{items}
</ol>
</body>
</html>
"""


def index(built: list[tuple[Path, str, list[tuple[str, str, float]]]], autograder: bool = True) -> str:
    items = []
    for master, title, qs in built:
        name = master.stem
        rows = "\n".join(f"  <li><code>{html.escape(q)}</code>: {html.escape(heading)} ({points:g} points)</li>"
                         for q, heading, points in qs)
        items.append(
            f'<li class="homework"><strong>{html.escape(title)}</strong> (<code>{name}</code>)<br>\n'
            f'<a href="{name}/student/{name}.ipynb">student notebook</a> '
            f'(<a href="{name}/student/">folder, with the public tests</a>)'
            + (f' &middot; <a href="{name}/autograder/{name}-autograder.zip">autograder zip</a>' if autograder else "")
            + f'\n<ul>\n{rows}\n</ul></li>')
    return PAGE.format(items="\n".join(items))


def publish(target: Path, autograder: bool) -> int:
    """Copy the student folders (and the autograder zips) of the last build into ``target``, with an index."""
    masters = sorted(SOURCE.glob("hw[0-9][0-9]_*.ipynb"))
    missing = [m.stem for m in masters if not (OUT / m.stem / "student").is_dir()]
    if missing:
        print(f"not built yet: {missing}; run ./dev homework first", file=sys.stderr)
        return 1
    shutil.rmtree(target, ignore_errors=True)
    for master in masters:
        shutil.copytree(OUT / master.stem / "student", target / master.stem / "student")
        if autograder:
            zip_name = f"{master.stem}-autograder.zip"
            (target / master.stem / "autograder").mkdir(parents=True)
            shutil.copy2(OUT / master.stem / "autograder" / zip_name, target / master.stem / "autograder" / zip_name)
    built = [(master, *questions(master)) for master in masters]
    (target / "index.html").write_text(index(built, autograder), encoding="utf-8")
    print(f"published {len(masters)} homework to {shown(target)}" + ("" if autograder else " (no autograder)"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run-tests", action="store_true", help="do not run the solutions against the tests")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="copy the last build's hand-outs into DIR")
    parser.add_argument("--no-autograder", action="store_true", help="with --publish: leave the autograder zips out")
    args = parser.parse_args()
    if args.publish:
        return publish(args.publish.resolve(), autograder=not args.no_autograder)
    try:
        import otter  # noqa: F401
    except ImportError:
        print("otter-grader is not installed: .venv/bin/pip install 'otter-grader==7.0.0'", file=sys.stderr)
        return 1
    masters = sorted(SOURCE.glob("hw[0-9][0-9]_*.ipynb"))
    if not masters:
        print(f"no homework (hwNN_<slug>.ipynb) in {SOURCE}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    start, built = time.perf_counter(), []
    for master in masters:
        t0 = time.perf_counter()
        try:
            title, qs = questions(master)
            zip_path = assign(master, run_tests=not args.no_run_tests)
        except Exception as err:  # noqa: BLE001 - say which homework failed, and why
            print(f"FAILED: otter assign {shown(master)}: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        built.append((master, title, qs))
        print(f"{master.stem}: {len(qs)} questions, {shown(zip_path)} "
              f"({time.perf_counter() - t0:.1f} s)")
    (OUT / "index.html").write_text(index(built), encoding="utf-8")
    print(f"{len(built)} homework in {time.perf_counter() - start:.1f} s; open {shown(OUT / 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
