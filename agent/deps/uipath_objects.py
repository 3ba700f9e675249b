"""A UiPath project's Object Repository (`.objects/`): its applications, screens and elements.

Studio keeps one folder per object, nested as the repository is (library > application >
version > screen > element, elements grouped in elements):

    .objects/.type                    "Library"
    .objects/uQCj/.type               "App"          .metadata: {"Name": "RBC", ...} (JSON)
    .objects/uQCj/Uq5Y/.type          "AppVersion"
    .objects/uQCj/Uq5Y/RzuK/.type     "Screen"
        .data/ObjectRepositoryScreenData/.content    XML: a TargetApp (Selector, Url)
    .objects/uQCj/Uq5Y/RzuK/94KB/.type               "Element"
        .data/ObjectRepositoryTargetData/.content    XML: a TargetAnchorable (selectors)

An application gives an `application` (its name in the repository, on the `"Name"` line of its
.metadata); a screen's and an element's descriptors are read as a workflow's targets are
(uipath_xaml.py), with the context "Object Repository: <application> / <screen> / <element>".
An element whose descriptor names no window or page takes its screen's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from .model import Dependency, Extraction, Problem
from .uipath_values import Top, selector_top
from .uipath_xaml import properties, read_descriptor
from .xmltree import Node, XmlError, decode, parse

__all__ = ["read_objects", "MAX_OBJECTS"]

MAX_OBJECTS = 5000  # folders: a repository larger than this is read in part, and says so
MAX_DESCRIPTOR_BYTES = 16 << 20
_DATA = {"Screen": "ObjectRepositoryScreenData", "Element": "ObjectRepositoryTargetData"}
_NAME_KEY = re.compile(r'"Name"\s*:')


def read_objects(objects: Path, rel: Callable[[Path], str]) -> Extraction:
    """Everything the repository under `objects` names; file names by `rel`."""
    result = Extraction()
    stack: list[tuple[Path, tuple[str, ...], Top | None]] = [(objects, (), None)]
    seen = 0
    while stack:
        folder, names, screen = stack.pop()
        seen += 1
        if seen > MAX_OBJECTS:
            result.problems.append(Problem(rel(objects), 0, f"only the first {MAX_OBJECTS} objects read"))
            break
        kind = _read_type(folder / ".type", rel, result)
        name = _read_name(folder / ".metadata", rel, result) if kind in ("App", "Screen", "Element") else None
        if name is not None:
            names = names + (name[0],)
        context = "Object Repository: " + " / ".join(names) if names else "Object Repository"
        if kind == "App" and name is not None:
            result.dependencies.append(Dependency("application", name[0], rel(folder / ".metadata"), name[1],
                                                  "uipath", "Object Repository"))
        if kind in _DATA:
            descriptor = folder / ".data" / _DATA[kind] / ".content"
            found = _read_descriptor(descriptor, context, screen, rel, result)
            if kind == "Screen" and found is not None:
                screen = found
        try:
            children = sorted((p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                               and not p.name.startswith(".")), reverse=True)
        except OSError as exc:
            result.problems.append(Problem(rel(folder), 0, f"cannot list: {exc.strerror or exc}"))
            continue
        stack.extend((child, names, screen) for child in children)
    return result


class _TooLarge(ValueError):
    pass


def _read(path: Path, limit: int = MAX_DESCRIPTOR_BYTES) -> bytes:
    """A file's bytes, read no further than `limit` (_TooLarge beyond it)."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _TooLarge(f"more than {limit} bytes: too large, skipped")
    return data


def _read_type(path: Path, rel: Callable[[Path], str], result: Extraction) -> str:
    if not path.is_file():
        return ""
    try:
        text = decode(_read(path, 256))
    except (XmlError, _TooLarge) as exc:
        result.problems.append(Problem(rel(path), getattr(exc, "line", 0), str(exc)))
        return ""
    except OSError as exc:
        result.problems.append(Problem(rel(path), 0, f"unreadable: {exc.strerror or exc}"))
        return ""
    result.files_read += 1
    return text.strip()


def _read_name(path: Path, rel: Callable[[Path], str], result: Extraction) -> tuple[str, int] | None:
    """An object's name and the line it is on, from its .metadata (JSON)."""
    try:
        text = decode(_read(path))
        data = json.loads(text)
    except FileNotFoundError:
        result.problems.append(Problem(rel(path), 0, "missing: the object has no name"))
        return None
    except json.JSONDecodeError as exc:
        result.problems.append(Problem(rel(path), exc.lineno, f"not JSON: {exc.msg}"))
        return None
    except XmlError as exc:
        result.problems.append(Problem(rel(path), exc.line, str(exc)))
        return None
    except _TooLarge as exc:
        result.problems.append(Problem(rel(path), 0, str(exc)))
        return None
    except (OSError, RecursionError) as exc:
        result.problems.append(Problem(rel(path), 0, f"unreadable: {exc}"))
        return None
    result.files_read += 1
    name = data.get("Name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name.strip():
        result.problems.append(Problem(rel(path), 0, "no \"Name\": the object is skipped"))
        return None
    m = _NAME_KEY.search(text)
    return name, (text.count("\n", 0, m.start()) + 1 if m else 0)


def _read_descriptor(path: Path, context: str, screen: Top | None, rel: Callable[[Path], str],
                     result: Extraction) -> Top | None:
    """Reads a screen's or element's descriptor into `result`; the top of its TargetApp's
    selector (a screen's window or page), when it has one."""
    if not path.is_file() or path.is_symlink():
        return None
    file = rel(path)
    try:
        root = parse(decode(_read(path)))
    except _TooLarge as exc:
        result.problems.append(Problem(file, 0, str(exc)))
        return None
    except XmlError as exc:
        result.problems.append(Problem(file, exc.line, str(exc)))
        return None
    except OSError as exc:
        result.problems.append(Problem(file, 0, f"unreadable: {exc.strerror or exc}"))
        return None
    result.files_read += 1
    if not root.name.startswith("ObjectRepository"):
        result.problems.append(Problem(file, root.line, f"not an Object Repository descriptor: <{root.name}>"))
        return None
    deps, problems = read_descriptor(root, file, context, screen)
    result.dependencies += deps
    result.problems += problems
    return _target_app_top(root)


def _target_app_top(root: Node) -> Top | None:
    for node in root.iter():
        if node.name == "TargetApp":
            selector = properties(node).get("Selector", (None, 0))[0]
            return selector_top(selector) if selector else None
    return None
