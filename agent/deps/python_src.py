"""Python bots: the Selenium and Playwright locators and URLs in their source, the screens and
selectors of their botwatch calls, the credentials they read (by name), and their steps.

Each file is read as bytes (a byte order mark, else a PEP 263 coding line, else UTF-8) and
parsed with `ast`; nothing is imported or run. A file that is not Python (a syntax error, NUL
bytes, nesting too deep to parse) is a problem with its line, and the others are still read.

Only what the source writes is a value: a string literal, an f-string of literals, a `+` of
them, or a name bound once to one (module and class constants, `self.` attributes, locals; also
across the bot's own modules through their imports). A value computed at run time is a problem
("computed at run time"), except a parameter of the function around, whose value is written
where the function is called. Text typed into a page (`send_keys`, `fill`, `type`, `press`) is
never read. What each call gives is described in docs/dependencies.md.
"""

from __future__ import annotations

import ast
import codecs
import io
import tokenize
import warnings
from pathlib import Path
from typing import Callable

from ..governance.secrets import BOMS, decode_source
from .model import Dependency, Extraction, Problem
from .python_calls import Sink, Walker
from .python_scope import Index, Module, build_module

MAX_FILE_BYTES = 4 * 1024 * 1024  # a larger .py file is not a bot's source: noted, not read


def source_text(data: bytes) -> str:
    """A Python file's text: by its byte order mark, else its coding line, else UTF-8; bytes
    that do not decode are replaced (line numbers hold)."""
    if data.startswith(tuple(bom for bom, _ in BOMS)):
        return decode_source(data)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        codec = codecs.lookup(encoding).name
        if codec not in ("utf-8", "utf-8-sig") and "x = '#'\n".encode(codec) == b"x = '#'\n":
            return data.decode(codec, "replace")
    except (SyntaxError, LookupError, UnicodeError, ValueError):
        pass  # a coding line Python itself would refuse (utf-16, rot13...): read as UTF-8
    return decode_source(data)


def parse(text: str, name: str) -> tuple[ast.Module | None, Problem | None]:
    """The module's tree, or the problem that keeps it from being read."""
    try:
        with warnings.catch_warnings():  # the bot's invalid escapes are not the agent's warnings
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=name), None
    except SyntaxError as exc:
        line = exc.lineno or 0
        if "\0" in text and "null bytes" in str(exc.msg):
            line = text.count("\n", 0, text.index("\0")) + 1
        return None, Problem(name, line, f"not valid Python: {exc.msg}")
    except ValueError as exc:  # NUL bytes on older Pythons
        line = text.count("\n", 0, text.index("\0")) + 1 if "\0" in text else 0
        return None, Problem(name, line, f"not valid Python: {exc}")
    except (RecursionError, MemoryError):
        return None, Problem(name, 0, "not read: nested too deeply to parse")


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _library(module: Module) -> str | None:
    heads = {dotted.split(".")[0] for dotted, _ in module.imports.values()}
    if heads & {"playwright", "pytest_playwright"}:
        return "playwright"
    if "selenium" in heads:
        return "selenium"
    return None


def _bot_library(modules: list[Module]) -> str:
    """What the bot drives, for a credential read in a module that imports neither library:
    the library most of its modules import (Playwright on a tie), else botwatch."""
    counts = {"playwright": 0, "selenium": 0}
    for module in modules:
        library = _library(module)
        if library:
            counts[library] += 1
    if not any(counts.values()):
        return "botwatch"
    return "playwright" if counts["playwright"] >= counts["selenium"] else "selenium"


def extract(root: Path, files: list[Path]) -> Extraction:
    """Every dependency of the Python files `files` (under `root`, whose names they are given by)."""
    result = Extraction()
    sink = Sink()
    modules: list[Module] = []
    for path in files:
        name = _relative(root, path)
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                sink.problems.setdefault(Problem(name, 0, f"not read: {size} bytes, more than {MAX_FILE_BYTES}"))
                continue
            data = path.read_bytes()
        except OSError as exc:
            sink.problems.setdefault(Problem(name, 0, f"not read: {exc.strerror or exc}"))
            continue
        result.files_read += 1
        tree, problem = parse(source_text(data), name)
        if problem is not None:
            sink.problems.setdefault(problem)
        if tree is not None:
            modules.append(build_module(name, tree))
    index = Index(modules)
    fallback = _bot_library(modules)
    walkers = [Walker(index, module, sink, _library(module) or fallback) for module in modules]
    for walker in walkers:
        _guarded(walker, walker.walk)
    for walker in walkers:  # locators no call read: a page object's constants, read where written
        _guarded(walker, walker.read_unused_locators)
    result.dependencies = sorted(sink.dependencies.values(), key=_order)
    result.problems = sorted(sink.problems, key=lambda p: (p.file, p.line, p.message))
    result.steps = sink.steps
    return result


def _guarded(walker: Walker, work: Callable[[], None]) -> None:
    try:
        work()
    except RecursionError:
        walker.sink.problems.setdefault(Problem(walker.module.file, walker.line,
                                                "not read to the end: nested too deeply from here"))


def _order(dep: Dependency) -> tuple[str, int, str, str, str]:
    return (dep.file, dep.line, dep.kind, dep.value, dep.tool)
