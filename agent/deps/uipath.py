"""UiPath projects: what a project's own files say it depends on.

A UiPath project is a folder with a `project.json` that Studio wrote (it names Studio's version,
or a `.xaml` entry point). Read from it:

- `project.json`: the packages it depends on (`library`, the version range as context);
- every workflow (`.xaml`, outside the folders Studio keeps for itself: `.local`, `.settings`,
  `.screenshots`, `.templates`...): applications, screens, selectors, URLs, queues, assets and
  credentials (names only), files, mailboxes, invoked workflows (uipath_xaml.py), and the
  activities in order as steps;
- the Object Repository (`.objects/`, uipath_objects.py): its applications, screens, elements.

A project inside the project (a folder with its own project.json) is left to its own reading.
A file that cannot be read, is not well-formed or is not what its name says is reported (file
and line) and skipped; the rest of the project is still read.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .model import Dependency, Extraction, Problem
from .uipath_objects import read_objects
from .uipath_xaml import is_workflow, read_workflow
from .xmltree import XmlError, decode, parse

__all__ = ["is_uipath_project", "extract", "MAX_FILES", "MAX_FILE_BYTES"]

MAX_FILES = 5000  # workflows read from one project
MAX_FILE_BYTES = 64 << 20  # a workflow larger than this is skipped (reported)
MAX_PROJECT_JSON_BYTES = 4 << 20
_STUDIO_KEYS = ("studioVersion", "toolVersion")


def is_uipath_project(project_json: Path) -> bool:
    """Whether `project_json` is a UiPath project's (Studio's version in it, or a workflow or
    coded workflow as its entry point); never raises."""
    try:
        if project_json.stat().st_size > MAX_PROJECT_JSON_BYTES:
            return False
        data = json.loads(decode(project_json.read_bytes()))
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    main = data.get("main")
    return any(k in data for k in _STUDIO_KEYS) or (
        isinstance(main, str) and main.lower().endswith((".xaml", ".cs")))


def extract(project_dir: Path, root: Path) -> Extraction:
    """Everything the project in `project_dir` depends on; file names relative to `root`."""
    def rel(path: Path) -> str:
        return Path(os.path.relpath(path, root)).as_posix()

    result = Extraction()
    project_json = project_dir / "project.json"
    if project_json.is_file():
        result.merge(_libraries(project_json, rel(project_json)))
    files = _workflow_files(project_dir)
    if len(files) > MAX_FILES:
        result.problems.append(Problem(rel(project_dir), 0, f"only the first {MAX_FILES} workflows read"))
        files = files[:MAX_FILES]
    for path in files:
        result.merge(_workflow(path, rel(path)))
    objects = project_dir / ".objects"
    if objects.is_dir() and not objects.is_symlink():
        result.merge(read_objects(objects, rel))
    return result


def _workflow_files(project_dir: Path) -> list[Path]:
    """The project's .xaml files, in a stable order: not in Studio's own folders (their names
    start with a dot) nor in a project nested in this one."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(project_dir):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not is_uipath_project(here / d / "project.json"))
        for name in sorted(names):
            path = here / name
            if name.lower().endswith(".xaml") and path.is_file() and not path.is_symlink():
                found.append(path)
                if len(found) > MAX_FILES:
                    return found
    return found


def _workflow(path: Path, file: str) -> Extraction:
    result = Extraction()
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            result.problems.append(Problem(file, 0, f"{size} bytes: too large, skipped"))
            return result
        root = parse(decode(path.read_bytes()))
    except XmlError as exc:
        result.problems.append(Problem(file, exc.line, str(exc)))
        return result
    except OSError as exc:
        result.problems.append(Problem(file, 0, f"unreadable: {exc.strerror or exc}"))
        return result
    result.files_read = 1
    if not is_workflow(root):
        result.problems.append(Problem(file, root.line, f"not a workflow: its root is <{root.name}>, not <Activity>"))
        return result
    deps, steps, problems = read_workflow(root, file)
    result.dependencies, result.steps, result.problems = deps, steps, problems
    return result


def _libraries(path: Path, file: str) -> Extraction:
    """The packages project.json depends on, each on the line that names it."""
    result = Extraction()
    try:
        if path.stat().st_size > MAX_PROJECT_JSON_BYTES:
            result.problems.append(Problem(file, 0, "too large, skipped"))
            return result
        text = decode(path.read_bytes())
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        result.problems.append(Problem(file, exc.lineno, f"not JSON: {exc.msg}"))
        return result
    except XmlError as exc:
        result.problems.append(Problem(file, exc.line, str(exc)))
        return result
    except (OSError, RecursionError) as exc:
        result.problems.append(Problem(file, 0, f"unreadable: {exc}"))
        return result
    result.files_read = 1
    packages = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(packages, dict):
        return result
    start = m.start() if (m := re.search(r'"dependencies"\s*:', text)) else 0
    for name, version in packages.items():
        if not name.strip():
            continue
        at = text.find(json.dumps(name, ensure_ascii=False), start)
        line = text.count("\n", 0, at) + 1 if at >= 0 else 0
        result.dependencies.append(Dependency("library", name, file, line, "uipath",
                                              version if isinstance(version, str) else ""))
    return result
