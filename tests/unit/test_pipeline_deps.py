"""dvc.yaml: every project module a stage's code imports is one of that stage's deps.

Otherwise a change to that module leaves the stage's outputs cached as if nothing had
changed (synthesize imports the sentence encoder from stages/evaluate/embed.py, for one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _files(dep: str) -> list[Path]:
    path = ROOT / dep
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _module_file(name: str) -> Path | None:
    """The file of a `stages...` module (a package's __init__.py), or None where the name is not a module."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_imports(path: Path) -> set[Path]:
    """The files of the `stages` modules `path` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "stages" or name.startswith("stages."):
                file = _module_file(name)
                if file is not None:
                    found.add(file)
    return found


def covered(file: Path, deps: list[str]) -> bool:
    return any(file == ROOT / dep or (ROOT / dep) in file.parents for dep in deps)


def test_project_imports_follow_from_imports():
    """The helper itself: synthesize's selection imports the encoder from evaluate (the case this file guards)."""
    imports = project_imports(ROOT / "stages/synthesize/selection.py")
    assert ROOT / "stages/evaluate/embed.py" in imports
    assert not covered(ROOT / "stages/evaluate/embed.py", ["stages/synthesize", "stages/evaluate.py"])


@pytest.mark.parametrize("stage", sorted(name for name, spec in STAGES.items()
                                         if any(str(d).startswith("stages/") for d in spec.get("deps", []))))
def test_every_imported_project_module_is_a_dep_of_the_stage(stage):
    deps = [str(d) for d in STAGES[stage]["deps"]]
    seen: set[Path] = set()
    todo = [f for d in deps if d.startswith("stages/") for f in _files(d)]
    missing = set()
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        for imported in project_imports(file):
            if not covered(imported, deps):
                missing.add(str(imported.relative_to(ROOT)))
            todo.append(imported)
    assert not missing, f"dvc.yaml stage {stage!r} imports {sorted(missing)} without declaring them as deps"
