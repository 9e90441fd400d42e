"""environment.yml (the conda route) and pyproject.toml (the ./dev route) install the same packages.

The pip section of environment.yml must list exactly the requirements of pyproject.toml: the project's
dependencies plus every optional-dependency group, with the same version ranges, and install the course
library itself (`-e .`). Its Python must satisfy `requires-python`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _by_name(lines: list[str]) -> dict[str, SpecifierSet]:
    result: dict[str, SpecifierSet] = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in result, f"{req.name} is listed twice"
        result[name] = req.specifier
    return result


def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = _pyproject()["project"]
    lines = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines += [line for line in group if canonicalize_name(Requirement(line).name) != "course-lib"]
    return _by_name(lines)


def _pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def environment_requirements() -> dict[str, SpecifierSet]:
    lines = [line for line in _pip_section(_environment()) if not line.startswith("-")]
    return _by_name(lines)


def test_same_packages():
    ours, theirs = set(pyproject_requirements()), set(environment_requirements())
    assert ours - theirs == set(), f"in pyproject.toml but not in environment.yml: {sorted(ours - theirs)}"
    assert theirs - ours == set(), f"in environment.yml but not in pyproject.toml: {sorted(theirs - ours)}"


def test_same_version_ranges():
    ours, theirs = pyproject_requirements(), environment_requirements()
    different = {
        name: (str(ours[name]), str(theirs[name]))
        for name in ours.keys() & theirs.keys()
        if ours[name] != theirs[name]
    }
    assert not different, f"version ranges differ (pyproject.toml, environment.yml): {different}"


def test_installs_the_course_library():
    options = [line for line in _pip_section(_environment()) if line.startswith("-")]
    assert any(line.split() in (["-e", "."], ["--editable", "."]) for line in options), (
        "environment.yml must install the course library with `-e .`"
    )


def test_python_version_satisfies_requires_python():
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    pythons = [
        d for d in _environment()["dependencies"] if isinstance(d, str) and canonicalize_name(d.split("=")[0]) == "python"
    ]
    assert len(pythons) == 1, "environment.yml must pin python once"
    version = pythons[0].split("=")[-1]
    assert Version(version) in requires, f"python {version} does not satisfy requires-python {requires}"


def test_comparison_detects_a_changed_range():
    """The comparison is not vacuous: loosening one range in a copy of environment.yml is detected."""
    lines = [line for line in _pip_section(_environment()) if not line.startswith("-")]
    assert lines, "environment.yml lists no pip packages"
    changed = [Requirement(lines[0]).name + ">=0"] + lines[1:]
    assert _by_name(changed) != environment_requirements()


def test_binder_installs_a_cpu_torch_in_the_project_ranges():
    """Binder takes PyTorch from the CPU-only index, with pyproject.toml's ranges for torch and torchvision."""
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    binder = _by_name([line for line in lines if not line.startswith("-")])
    ours = pyproject_requirements()
    assert set(binder) == {"torch", "torchvision"}
    assert all(binder[name] == ours[name] for name in binder), (binder, ours)
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "--no-deps -r requirements-attacks.txt" in post and "-e '.[book" in post
