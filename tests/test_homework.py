"""The homework: otter-grader master notebooks in notebooks/homework/ (see its README.md), one per chapter.

For every ``hwNN_<slug>.ipynb`` found there:

1. the master notebook follows the format (config, one solution cell per question, public and hidden tests, no
   outputs) and ``tests/homework_cases/hwNN.py`` has wrong answers for every question;
2. ``otter assign`` builds it (once per test session, into a temporary directory);
3. the reference solutions pass every test, public and hidden, in well under a minute;
4. the blank student notebook scores 0 on every question;
5. every wrong answer fails its question with the intended message;
6. the student notebook and its public test files contain no line of the solutions and no hidden test.

Steps 3-5 grade in-process (the notebook's code cells run in one namespace, then otter's test files run against
it): fast. The real student path runs once, for the first homework: ``otter run`` on the solutions and on the
blank notebook, and the student notebook executed in a kernel with a wrong answer, where ``grader.check`` must
show the failure message.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
HOMEWORK_DIR = NOTEBOOKS / "homework"
HOMEWORK = sorted(HOMEWORK_DIR.glob("hw[0-9][0-9]_*.ipynb"))
CHAPTER_NAME = re.compile(r"(\d\d)_([a-z0-9_]+)\.ipynb")
CHAPTERS = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if CHAPTER_NAME.fullmatch(p.name))

ANSWER_TAGS = {"otter_assign_solution_cell", "otter_answer_cell"}  # autograder / student notebook
CHECK_CELL = re.compile(r'grader\.check\("([^"]+)"\)')
OTTER_CELL = re.compile(r"^\s*(import otter|grader\s*=|grader\.)", re.MULTILINE)  # init, check-all, export
MIN_LEAK_LENGTH = 12  # solution lines shorter than this (`else:`, `return x`) may appear anywhere
MAX_GRADING_SECONDS = 30  # the reference notebook and ALL its tests, in-process

pytestmark = pytest.mark.filterwarnings(
    "ignore:Traits should be given as instances:DeprecationWarning",  # otter's nbconvert configuration
    "ignore::UserWarning",  # torch's, about what the wrong answers do (e.g. F.kl_div's reduction="mean")
)


def _id(path: Path) -> str:
    return path.stem.split("_")[0]


# --------------------------------------------------------------------------------------------------------
# Reading a master notebook (the format: notebooks/homework/README.md)

BOUNDARY = re.compile(r"#\s+(begin|end)\s+(question|solution|tests|prompt)\b", re.IGNORECASE)  # as otter's


@dataclass
class Question:
    name: str
    points: float
    solutions: list[str] = field(default_factory=list)
    public: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)


def read_master(path: Path) -> tuple[dict, list[Question]]:
    """The assignment config and the questions of a master notebook (raising AssertionError on a format error)."""
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "raw" and re.match(r"#\s+assignment\s+config", first.source, re.IGNORECASE), (
        f"{path.name}: the first cell must be a raw '# ASSIGNMENT CONFIG' cell")
    config = yaml.safe_load(first.source) or {}
    questions: list[Question] = []
    blocks: list[str] = []
    for index, cell in enumerate(nb.cells[1:], start=1):
        lines = cell.source.splitlines() or [""]
        boundary = BOUNDARY.match(lines[0].strip()) if cell.cell_type == "raw" else None
        if boundary:
            kind, block = boundary.group(1).lower(), boundary.group(2).lower()
            if kind == "begin":
                if block == "question":
                    assert not blocks, f"{path.name}, cell {index}: a question inside a question"
                    q = yaml.safe_load(cell.source) or {}
                    assert "name" in q, f"{path.name}, cell {index}: a question without a name"
                    questions.append(Question(q["name"], q.get("points", 1)))
                blocks.append(block)
            else:
                assert blocks and blocks[-1] == block, f"{path.name}, cell {index}: END {block} without BEGIN"
                blocks.pop()
            continue
        if blocks and blocks[-1] == "solution" and cell.cell_type == "code":
            questions[-1].solutions.append(cell.source)
        elif blocks and blocks[-1] == "tests":
            assert cell.cell_type == "code", f"{path.name}, cell {index}: a non-code cell among the tests"
            hidden = lines[0].lstrip().startswith("#") and re.search(r"\bhidden\b", lines[0], re.IGNORECASE)
            (questions[-1].hidden if hidden else questions[-1].public).append(cell.source)
    assert not blocks, f"{path.name}: unclosed block(s) {blocks}"
    return config, questions


SOLUTION_LINE = r"#\s*SOLUTION(\s+NO PROMPT)?\s*$"


def solution_lines(source: str) -> list[str]:
    """The lines otter removes from the student version: inside BEGIN/END SOLUTION, or ending in '# SOLUTION'."""
    found, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if re.match(r"#\s*BEGIN SOLUTION", stripped):
            inside = True
        elif re.match(r"#\s*END SOLUTION", stripped):
            inside = False
        elif inside or re.search(SOLUTION_LINE, stripped):
            found.append(re.sub(SOLUTION_LINE, "", stripped).strip())
    return [line for line in found if len(line) >= MIN_LEAK_LENGTH and not line.startswith("#")]


def _normalized(text: str) -> str:
    # test files are written by ast.unparse: quotes and spacing change, the code does not
    return re.sub(r"\s+", "", text).replace('"', "'")


def leaked_lines(lines: list[str], text: str) -> list[str]:
    haystack = _normalized(text)
    return [line for line in lines if _normalized(line) in haystack]


def function_names(source: str) -> list[str]:
    return re.findall(r"^def (\w+)\(", source, re.MULTILINE)


def wrong_answers(homework: Path) -> dict[str, list[tuple[str, str, str]]]:
    return importlib.import_module(f"homework_cases.{_id(homework)}").WRONG_ANSWERS


def _wrong_answer_cases() -> list:
    cases = []
    for homework in HOMEWORK:
        try:
            answers = wrong_answers(homework)
        except Exception:  # noqa: BLE001 - reported by test_homework_format, without breaking the collection
            continue
        for question, entries in answers.items():
            for label, source, message in entries:
                cases.append(pytest.param(homework, question, source, message,
                                          id=f"{_id(homework)}-{question}-{label}"))
    return cases


# --------------------------------------------------------------------------------------------------------
# Building with otter assign, grading in-process

@dataclass
class Built:
    root: Path
    name: str

    @property
    def autograder_notebook(self) -> Path:
        return self.root / "autograder" / f"{self.name}.ipynb"

    @property
    def student_notebook(self) -> Path:
        return self.root / "student" / f"{self.name}.ipynb"

    @property
    def autograder_tests(self) -> Path:
        return self.root / "autograder" / "tests"

    @property
    def student_tests(self) -> Path:
        return self.root / "student" / "tests"

    @property
    def zip(self) -> Path:
        (zip_path,) = (self.root / "autograder").glob(f"{self.name}-autograder_*.zip")
        return zip_path


def assign(master: Path, out: Path) -> Built:
    """``otter assign`` without running the tests in a kernel (the harness grades the solutions itself)."""
    import otter.assign

    otter.assign.main(str(master), str(out), no_pdfs=True, no_run_tests=True)
    return Built(out, master.stem)


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """``build(master)``: the otter assign output of one homework, built once per session."""
    done: dict[Path, Built | BaseException] = {}

    def get(master: Path) -> Built:
        if master not in done:
            try:
                done[master] = assign(master, tmp_path_factory.mktemp(master.stem))
            except Exception as err:  # noqa: BLE001 - reported once per homework, with the reason
                done[master] = err
        result = done[master]
        if isinstance(result, BaseException):
            pytest.fail(f"otter assign {master.relative_to(ROOT)} failed: {type(result).__name__}: {result}")
        return result

    return get


def notebook_code(path: Path, replace: dict[str, str] | None = None) -> list[str]:
    """The code cells of an otter-generated notebook without otter's own cells, with the answer cell of each
    question in ``replace`` (the tagged cell before its ``grader.check`` cell) replaced by the given source."""
    nb = nbformat.read(path, as_version=4)
    replace = dict(replace or {})
    sources: list[str] = []
    answers: list[int] = []  # answer cells not yet claimed by a check cell
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        check = CHECK_CELL.fullmatch(cell.source.strip())
        if check:
            question = check.group(1)
            if question in replace:
                assert len(answers) == 1, f"{path.name}: {question} has {len(answers)} answer cells, expected 1"
                sources[answers[0]] = replace.pop(question)
            answers = []
        elif not OTTER_CELL.search(cell.source):
            if ANSWER_TAGS & set(cell.metadata.get("tags", [])):
                answers.append(len(sources))
            sources.append(cell.source)
    assert not replace, f"{path.name}: no answer cell found for {sorted(replace)}"
    return sources


def grade(sources: list[str], tests_dir: Path, questions: list[str] | None = None) -> dict[str, list]:
    """Run the cells in one namespace, then otter's test files: ``{question: [TestCaseResult, ...]}``."""
    from otter.test_files import create_test_file

    env: dict = {"__name__": "__main__"}
    for index, source in enumerate(sources):
        exec(compile(source, f"<homework cell {index}>", "exec"), env)  # noqa: S102 - our own notebooks
    results = {}
    for path in sorted(tests_dir.glob("*.py")):
        if questions is None or path.stem in questions:
            test_file = create_test_file(str(path), None)
            test_file.run(env)
            results[test_file.name] = test_file.test_case_results
    return results


def failures(results: list) -> list[str]:
    return [r.message for r in results if not r.passed]


# --------------------------------------------------------------------------------------------------------
# Every chapter has its homework

def test_there_is_homework():
    assert HOMEWORK, f"no homework (hwNN_<slug>.ipynb) found in {HOMEWORK_DIR}"


def test_every_chapter_has_its_homework():
    assert CHAPTERS, f"no chapter notebooks (NN_<slug>.ipynb) found in {NOTEBOOKS}"
    missing = []
    for chapter in CHAPTERS:
        number, slug = CHAPTER_NAME.fullmatch(chapter.name).groups()
        if not (HOMEWORK_DIR / f"hw{number}_{slug}.ipynb").is_file():
            missing.append(f"notebooks/homework/hw{number}_{slug}.ipynb")
        if not (ROOT / "tests" / "homework_cases" / f"hw{number}.py").is_file():
            missing.append(f"tests/homework_cases/hw{number}.py")
    assert not missing, "every chapter brings its homework and its wrong answers; missing: " + ", ".join(missing)


def test_every_homework_belongs_to_a_chapter():
    chapters = {f"hw{chapter.name}" for chapter in CHAPTERS}
    orphans = [hw.name for hw in HOMEWORK if hw.name not in chapters]
    assert not orphans, f"homework without a chapter of the same number and slug: {orphans}"


# --------------------------------------------------------------------------------------------------------
# Per homework: the format, the build, the grades

@pytest.mark.parametrize("homework", HOMEWORK, ids=_id)
def test_homework_format(homework: Path):
    config, questions = read_master(homework)
    assert config.get("name") == homework.stem, f"{homework.name}: the config's name must be {homework.stem!r}"
    assert config.get("tests") == {"files": True, "ok_format": False}, (
        f"{homework.name}: use exception-based tests in files (tests: {{files: true, ok_format: false}})")
    assert config.get("export_cell") is False, f"{homework.name}: export_cell: false (students submit the notebook)"
    assert questions, f"{homework.name}: no questions"
    names = [q.name for q in questions]
    assert len(set(names)) == len(names), f"{homework.name}: duplicate question names {names}"
    for q in questions:
        assert re.fullmatch(r"q\d+_[a-z0-9_]+", q.name), f"{homework.name}: name {q.name!r} is not q<N>_<what>"
        assert len(q.solutions) == 1, f"{homework.name}, {q.name}: {len(q.solutions)} solution cells, expected 1"
        assert solution_lines(q.solutions[0]), f"{homework.name}, {q.name}: no BEGIN/END SOLUTION lines"
        assert q.public, f"{homework.name}, {q.name}: no public test (shown to students)"
        assert q.hidden, f"{homework.name}, {q.name}: no hidden test (other seeds, shapes, edge cases)"
    nb = nbformat.read(homework, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{homework.name}: code cells {dirty} have outputs; commit master notebooks without outputs"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{homework.name}: kernelspec python3"
    assert nb.cells[1].cell_type == "markdown" and nb.cells[1].source.startswith("# "), (
        f"{homework.name}: the cell after the config is the '# Title' markdown cell")

    try:
        answers = wrong_answers(homework)
    except Exception as err:  # noqa: BLE001
        pytest.fail(f"tests/homework_cases/{_id(homework)}.py is missing or broken: {type(err).__name__}: {err}")
    without = [name for name in names if not answers.get(name)]
    assert not without, f"tests/homework_cases/{_id(homework)}.py: no wrong answer for {without}"
    unknown = sorted(set(answers) - set(names))
    assert not unknown, f"tests/homework_cases/{_id(homework)}.py: questions {unknown} are not in {homework.name}"
    for name, entries in answers.items():
        for entry in entries:
            assert isinstance(entry, tuple) and len(entry) == 3 and all(isinstance(s, str) and s for s in entry), (
                f"{_id(homework)}.py, {name}: entries are (label, source, message) strings, got {entry!r:.80}")
        labels = [label for label, _, _ in entries]
        assert len(set(labels)) == len(labels), f"{_id(homework)}.py, {name}: duplicate labels {labels}"


@pytest.mark.parametrize("homework", HOMEWORK, ids=_id)
def test_otter_assign_builds_it(homework: Path, build):
    built = build(homework)
    _, questions = read_master(homework)
    assert built.student_notebook.is_file() and built.autograder_notebook.is_file()
    assert built.zip.is_file()
    for q in questions:
        for tests_dir, expected in ((built.student_tests, len(q.public)), (built.autograder_tests,
                                                                             len(q.public) + len(q.hidden))):
            path = tests_dir / f"{q.name}.py"
            assert path.is_file(), f"otter assign wrote no {path.relative_to(built.root)}"
            count = path.read_text().count("@test_case(")
            assert count == expected, f"{path.relative_to(built.root)}: {count} test cases, expected {expected}"


@pytest.mark.parametrize("homework", HOMEWORK, ids=_id)
def test_reference_solutions_pass_every_test(homework: Path, build, single_thread):
    built = build(homework)
    start = time.perf_counter()
    results = grade(notebook_code(built.autograder_notebook), built.autograder_tests)
    seconds = time.perf_counter() - start
    _, questions = read_master(homework)
    assert sorted(results) == sorted(q.name for q in questions)
    failed = {q: failures(r) for q, r in results.items() if failures(r)}
    assert not failed, f"{homework.name}: the reference solutions fail tests:\n" + "\n".join(
        f"{q}:\n{m}" for q, ms in failed.items() for m in ms)
    assert seconds < MAX_GRADING_SECONDS, (
        f"{homework.name}: the solutions and all tests took {seconds:.1f} s (limit {MAX_GRADING_SECONDS} s); "
        "use smaller models and inputs")


@pytest.mark.parametrize("homework", HOMEWORK, ids=_id)
def test_blank_student_notebook_scores_zero(homework: Path, build, single_thread):
    built = build(homework)
    results = grade(notebook_code(built.student_notebook), built.autograder_tests)
    passing = {q: [r.test_case.name for r in rs if r.passed] for q, rs in results.items()}
    passing = {q: names for q, names in passing.items() if names}
    assert not passing, f"{homework.name}: the blank student notebook passes test cases {passing}"


@pytest.mark.parametrize("homework, question, source, message", _wrong_answer_cases())
def test_wrong_answer_fails_with_its_message(homework: Path, question: str, source: str, message: str, build,
                                             single_thread):
    built = build(homework)
    sources = notebook_code(built.autograder_notebook, replace={question: source})
    messages = failures(grade(sources, built.autograder_tests, [question])[question])
    assert messages, f"{homework.name}: this wrong answer passes every test of {question}:\n{source}"
    assert any(message in m for m in messages), (
        f"{homework.name}, {question}: the wrong answer fails, but no failure message contains {message!r}; "
        f"the messages:\n" + "\n---\n".join(messages))


@pytest.mark.parametrize("homework", HOMEWORK, ids=_id)
def test_student_files_show_no_solution_and_no_hidden_test(homework: Path, build):
    built = build(homework)
    _, questions = read_master(homework)
    student = nbformat.read(built.student_notebook, as_version=4)
    assert not any(c.get("outputs") for c in student.cells if c.cell_type == "code"), "student notebook has outputs"
    texts = {"the student notebook": "\n".join(c.source for c in student.cells) + json.dumps(student.metadata)}
    texts.update({f"student/tests/{p.name}": p.read_text() for p in sorted(built.student_tests.glob("*.py"))})
    for q in questions:
        lines = solution_lines(q.solutions[0])
        hidden = [name for source in q.hidden for name in function_names(source.split("\n", 1)[1])]
        for where, text in texts.items():
            leaks = leaked_lines(lines, text)
            assert not leaks, f"{homework.name}, {q.name}: solution lines visible in {where}: {leaks}"
            shown = [name for name in hidden if re.search(rf"\b{name}\b", text)]
            assert not shown, f"{homework.name}, {q.name}: hidden tests {shown} visible in {where}"
            assert "BEGIN SOLUTION" not in text and "# HIDDEN" not in text, f"{where}: otter markers left in"


def test_the_leak_check_can_fail():
    source = 'def f(x):\n    # BEGIN SOLUTION\n    y = x.clamp(0.0, 1.0)\n    return y\n    # END SOLUTION\n' \
             'z = compute_something(1)  # SOLUTION\n'
    lines = solution_lines(source)
    assert lines == ["y = x.clamp(0.0, 1.0)", "z = compute_something(1)"]  # `return y` is too short to count
    assert leaked_lines(lines, "def f(x):\n    ...\n") == []
    # ast.unparse writes single quotes and its own spacing: still a leak
    assert leaked_lines(lines, "    y = x.clamp(0.0,1.0)\n") == ["y = x.clamp(0.0, 1.0)"]
    assert leaked_lines(["s = f(\"a\")  "], "s = f('a')") == ["s = f(\"a\")  "]


def test_in_process_grading_can_fail(tmp_path):
    (tmp_path / "q1_demo.py").write_text(
        "from otter.test_files import test_case\nOK_FORMAT = False\nname = 'q1_demo'\npoints = 1\n"
        "@test_case(points=None, hidden=False)\ndef test_demo(square):\n"
        "    assert square(3) == 9, 'square(3) must be 9'\n")
    assert failures(grade(["def square(x):\n    return x * x"], tmp_path)["q1_demo"]) == []
    (message,) = failures(grade(["def square(x):\n    return 2 * x"], tmp_path)["q1_demo"])
    assert "square(3) must be 9" in message


# --------------------------------------------------------------------------------------------------------
# The real student path, for the first homework: otter run, and grader.check in a kernel

def _otter_run(built: Built, notebook: Path, out: Path) -> dict[str, tuple[float, float]]:
    out.mkdir()
    run = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(built.zip), "-o", str(out), str(notebook)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"otter run {notebook.name} failed:\n{run.stdout}\n{run.stderr}"
    tests = json.loads((out / "results.json").read_text())["tests"]
    return {t["name"]: (t["score"], t["max_score"]) for t in tests if t["name"] != "Public Tests"}


@pytest.mark.skipif(not HOMEWORK, reason="no homework")
def test_otter_run_grades_the_solutions_and_the_blank_notebook(build, tmp_path):
    built = build(HOMEWORK[0])
    _, questions = read_master(HOMEWORK[0])
    names = sorted(q.name for q in questions)
    solved = _otter_run(built, built.autograder_notebook, tmp_path / "solutions")
    assert sorted(solved) == names and all(score == top > 0 for score, top in solved.values()), solved
    blank = _otter_run(built, built.student_notebook, tmp_path / "blank")
    assert sorted(blank) == names and all(score == 0 for score, _ in blank.values()), blank


@pytest.mark.skipif(not HOMEWORK, reason="no homework")
def test_grader_check_shows_the_failure_message_in_the_notebook(build, tmp_path):
    from nbclient import NotebookClient

    built = build(HOMEWORK[0])
    _, questions = read_master(HOMEWORK[0])
    first, second = questions[0], questions[1]
    _, wrong, message = wrong_answers(HOMEWORK[0])[first.name][0]
    student = tmp_path / "student"
    shutil.copytree(built.student_notebook.parent, student)
    nb = nbformat.read(built.student_notebook, as_version=4)
    answers = [c for c in nb.cells if ANSWER_TAGS & set(c.metadata.get("tags", []))]
    answers[0].source, answers[1].source = wrong, second.solutions[0]  # a wrong first answer, a right second one
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(student)}}).execute()

    def shown(question: str) -> str:
        (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.strip() == f'grader.check("{question}")']
        return "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)

    assert message in shown(first.name), f"grader.check({first.name!r}) showed:\n{shown(first.name)}"
    assert "All test cases passed" in shown(second.name), f"grader.check({second.name!r}):\n{shown(second.name)}"
