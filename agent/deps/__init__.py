"""Dependencies read from a bot's own source (its estate entry's `source:`): which applications,
screens, selectors, URLs, queues, assets, files and mailboxes it touches, each with file and line.

    model.py       Dependency, Problem, Step, Extraction: what every extractor gives
    uipath.py      UiPath projects: project.json, the .xaml workflows (uipath_xaml.py, values in
                   uipath_values.py, a line-numbered XML tree in xmltree.py), the Object
                   Repository (uipath_objects.py)
    robot.py       Robot Framework suites and resource files (Robot Framework's own parser; the
                   keyword tables in robot_keywords.py, variables in robot_variables.py)
    python_src.py  Python bots: Selenium and Playwright locators and URLs, the botwatch SDK's calls
                   (python_calls.py, python_scope.py, python_locators.py)
    estate.py      every bot's dependencies, and which bots a change would hit (`botwatch impact`)
    applications.py  the applications (with their screens) and sites a bot's dependencies name
    index.py       the agent's index: every bot's dependencies, read again only when its files change

`extract(path)` walks a folder (or takes one file) and gives each file to the extractor of its
kind; a UiPath project's files go to the UiPath extractor only.
"""

from __future__ import annotations

import os
from pathlib import Path

from .model import KINDS, TOOLS, Dependency, Extraction, Problem, Step

__all__ = ["KINDS", "TOOLS", "Dependency", "Extraction", "Problem", "Step", "extract"]

SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                       ".mypy_cache", ".pytest_cache", ".local", ".objects", ".settings", ".screenshots"})
MAX_FILES = 5000


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            f = Path(folder) / name
            if f.is_file() and not f.is_symlink():
                out.append(f)
                if len(out) >= MAX_FILES:
                    return out
    return out


def extract(path: Path) -> Extraction:
    """Every dependency found under `path` (a folder or one file); file names relative to it."""
    from . import python_src, robot, uipath

    root = path if path.is_dir() else path.parent
    files = _files(path)
    result = Extraction()
    if len(files) >= MAX_FILES:
        result.problems.append(Problem(".", 0, f"only the first {MAX_FILES} files read"))
    projects = sorted({f.parent for f in files if f.name == "project.json" and uipath.is_uipath_project(f)})
    project_set = set(projects)
    inside = {f for f in files if any(p in project_set for p in f.parents)}  # a project's files are its reader's
    for project in projects:
        result.merge(uipath.extract(project, root))
    rest = [f for f in files if f not in inside]
    result.merge(robot.extract(root, [f for f in rest if f.suffix.lower() in (".robot", ".resource")]))
    result.merge(python_src.extract(root, [f for f in rest if f.suffix.lower() == ".py"]))
    return result
