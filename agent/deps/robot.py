"""Robot Framework suites and resource files, read with Robot Framework's own parser.

What is taken (each with its file and line):

- libraries: every `Library` import (kind library, the name as written) and `Import Library`;
  resource files: every `Resource` import and `Import Resource` (kind workflow, the path as written);
- locators: the locator argument of the keywords of SeleniumLibrary, RPA.Browser.Selenium, the
  Browser library (RPA.Browser.Playwright), RPA.Windows and RPA.Desktop (kind selector, context the
  keyword), by the tables of robot_keywords;
- URLs opened (`Open Browser`, `Go To`, `New Page`, `Download`, `Create Session`...) and every
  argument or variable value that is a whole http(s), ftp, ws or file URL; user information is masked;
- secrets by name only: `Get Secret    name` (kind credential); a password typed with `Input
  Password` or `Fill Secret` is taken only when it names an environment variable (`%{APP_PASSWORD}`);
- files read (`Open Workbook`, `Read Table From CSV`, `Get File`...), mailboxes authorised, Control
  Room assets read, applications started (`Open Application`, `Windows Search`, `Start Process`);
- steps: each keyword call, named as written (library prefix dropped, lower-case), in source order.

An argument that is a variable is resolved where its value is written in the source
(robot_variables); when an argument is one such variable (`Click Element    ${SUBMIT}`), the
variable's definition is a dependency too, at its own line, with context `variable ${SUBMIT}`. An
argument whose value is unknown (a keyword's argument, a result) is skipped; one with text around
unknown variables (`id:num${n}Button`) is taken as written.

Libraries and variables reach a file through its resource imports; keywords of a resource file run
with the libraries of the suites that import it, so a file's libraries, variables and own keywords
are those of every file connected to it by imports. A keyword of the file's own (a user keyword)
hides a library keyword of the same name, as in Robot Framework.

Robot Framework is not a dependency of botwatch: without it each file is reported as not read.
"""

from __future__ import annotations

import ast
import io
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.redact import redact_url
from .model import Dependency, Extraction, Problem, Step
from .robot_keywords import (FAMILIES, LIBRARIES, RUN_KEYWORD_IF, RUN_KEYWORDS, RUNNERS, SET_VARIABLE, STRATEGIES, Role,
                             normalize)
from .robot_variables import Definition, Scope, is_lone_variable, scalar_name, search

TOOL = "robotframework"
NEEDS_ROBOT = "reading Robot Framework files needs Robot Framework: pip install robotframework"
NOT_READ = "could not be read to the end"  # the safety net's message: a fault of the extractor
MAX_BYTES = 5_000_000
MAX_RUN_DEPTH = 8  # `Run Keyword    Run Keyword    ...`
URL = re.compile(r"(?i)(?:https?|ftps?|wss?|file)://\S+")
NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)
ERROR_TOKENS = frozenset({"ERROR", "FATAL ERROR", "INVALID HEADER"})  # the other tokens' errors are warnings
FIXTURES = frozenset({"SuiteSetup", "SuiteTeardown", "TestSetup", "TestTeardown", "Setup", "Teardown"})


def extract(root: Path, files: list[Path]) -> Extraction:
    """The dependencies and steps of the Robot Framework files `files` (under `root`)."""
    result = Extraction()
    try:
        from robot.api import get_init_model, get_model, get_resource_model
    except ImportError:
        result.problems += [Problem(_relative(root, f), 0, NEEDS_ROBOT) for f in files]
        return result
    parsed: dict[str, _File] = {}
    for f in files:
        rel = _relative(root, f)
        parse = (get_resource_model if f.suffix.lower() == ".resource"
                 else get_init_model if f.stem.lower() == "__init__" else get_model)
        read = _parse(f, rel, parse, result.problems)
        if read is not None:
            parsed[rel] = read
            result.files_read += 1
    importers = _link(parsed)
    for rel, read in parsed.items():
        try:
            _Reader(read, _Context.of(read, parsed, importers), result).read()
        except Exception as exc:  # a safety net: the fuzz tests hold that it is never reached
            result.problems.append(Problem(rel, 0, f"{NOT_READ}: {type(exc).__name__}: {exc}"))
    result.dependencies = list(dict.fromkeys(result.dependencies))
    return result


def _relative(root: Path, f: Path) -> str:
    try:
        return f.relative_to(root).as_posix()
    except ValueError:
        return f.as_posix()


@dataclass
class _File:
    rel: str
    model: Any
    libraries: list[tuple[str, str]] = field(default_factory=list)  # (name, alias): imports and `Import Library`
    resources: list[str] = field(default_factory=list)  # as written
    variables: dict[str, Definition] = field(default_factory=dict)  # its Variables section's plain scalars
    keywords: set[str] = field(default_factory=set)  # its own keywords, normalised
    links: list[str] = field(default_factory=list)  # the resource files it imports that are read too


def _parse(f: Path, rel: str, parse: Any, problems: list[Problem]) -> _File | None:
    try:
        if f.stat().st_size > MAX_BYTES:
            problems.append(Problem(rel, 0, f"larger than {MAX_BYTES // 1_000_000} MB: not read"))
            return None
        data = f.read_bytes()
    except OSError as exc:
        problems.append(Problem(rel, 0, f"cannot be read: {exc.strerror or exc}"))
        return None
    text = _decode(data, rel, problems)
    try:
        model = parse(io.StringIO(text))
    except RecursionError:
        problems.append(Problem(rel, 0, "nested too deeply for Robot Framework's parser: not read"))
        return None
    except Exception as exc:  # the parser's own fault on some input: the file is skipped, not the others
        problems.append(Problem(rel, 0, f"Robot Framework could not parse it: {type(exc).__name__}: {exc}"))
        return None
    problems += _errors(model, rel)
    if text.strip() and all(getattr(s, "header", None) is None for s in model.sections):
        problems.append(Problem(rel, 1, "no section header (such as *** Tasks *** or *** Keywords ***): nothing read"))
    return _collect(model, rel)


def _decode(data: bytes, rel: str, problems: list[Problem]) -> str:
    """The file's text: Robot Framework files are UTF-8 (a BOM allowed); bytes that are not are replaced."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # counted as Robot Framework counts lines (str.splitlines: a lone CR ends one too)
        line = len((data[:exc.start].decode("utf-8-sig", "replace") + ".").splitlines())
        problems.append(Problem(rel, line, "not UTF-8 text: the bytes that are not are replaced"))
        return data.decode("utf-8-sig", "replace")


def _walk(node: Any) -> Iterator[Any]:
    """Every node under `node` (itself first), in source order; without recursion, so that deep
    nesting Robot Framework's parser accepted does not stop the reading."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children: list[Any] = []
        for name in getattr(current, "_fields", ()):
            value = getattr(current, name, None)
            if isinstance(value, ast.AST):
                children.append(value)
            elif isinstance(value, (list, tuple)):
                children += [v for v in value if isinstance(v, ast.AST)]
        stack += reversed(children)


def _errors(model: Any, rel: str) -> list[Problem]:
    """What Robot Framework found wrong: a misspelt setting, an unclosed FOR, a bad section. Not
    its deprecation warnings (`[Return]`, `*** Test Case ***`): those files run, as they are read."""
    found: dict[tuple[int, str], None] = {}
    for node in _walk(model):
        for token in getattr(node, "tokens", ()):
            if token.error and token.type in ERROR_TOKENS:
                found[(token.lineno, token.error)] = None
        for message in getattr(node, "errors", ()) or ():
            found[(getattr(node, "lineno", 0) or 0, str(message))] = None
    return [Problem(rel, line, message) for line, message in found]


def _tokens(node: Any, *types: str) -> list[Any]:
    return [t for t in node.tokens if t.type in types]


def _collect(model: Any, rel: str) -> _File:
    """What other files see of this one: its imports, variables and keywords."""
    read = _File(rel, model)
    for node in _walk(model):
        kind = type(node).__name__
        if kind == "LibraryImport" and node.name:
            read.libraries.append((node.name, node.alias or ""))
        elif kind == "ResourceImport" and node.name:
            read.resources.append(node.name)
        elif kind == "Variable" and not node.errors:
            values = _tokens(node, "ARGUMENT")
            key = scalar_name(node.name)
            if key is not None and len(values) == 1 and not _has_option(node):
                read.variables.setdefault(key, Definition(node.name, values[0].value, rel, values[0].lineno))
        elif kind == "Keyword" and node.name:
            read.keywords.add(normalize(node.name))
        elif kind == "KeywordCall" and node.keyword and node.args:
            if normalize(node.keyword.rpartition(".")[2]) == "importlibrary" and not search(node.args[0]):
                read.libraries.append((node.args[0], ""))
    return read


def _has_option(node: Any) -> bool:
    return bool(_tokens(node, "OPTION"))  # `separator=`: a joined value, not one to resolve


def _link(parsed: dict[str, _File]) -> dict[str, list[str]]:
    """Each file's resource imports, found among the files read: beside the importing file (as
    Robot Framework looks first), else the one file whose path ends with the import's path (a
    folder on Robot Framework's search path, as a robot.yaml's PYTHONPATH names). Gives the
    files importing each file."""
    for read in parsed.values():
        folder = posixpath.dirname(read.rel)
        for written in read.resources:
            path = written.replace("${CURDIR}", folder or ".").replace("${/}", "/").replace("\\", "/")
            if search(path):
                continue
            beside = posixpath.normpath(posixpath.join(folder, path))
            if beside in parsed:
                read.links.append(beside)
                continue
            parts = posixpath.normpath(path).split("/")
            while parts and parts[0] in ("", ".", ".."):
                parts.pop(0)
            tail = "/" + "/".join(parts)
            found = [rel for rel in parsed if ("/" + rel).endswith(tail)] if parts else []
            if len(found) == 1:
                read.links.append(found[0])
    importers: dict[str, list[str]] = {}
    for read in parsed.values():
        for target in read.links:
            importers.setdefault(target, []).append(read.rel)
    return importers


@dataclass
class _Context:
    """What the keyword calls of one file are read against."""
    families: list[str]  # keyword families of the libraries in reach, in lookup order
    prefixes: dict[str, tuple[str, ...]]  # `Library.Keyword` prefix (name or alias) -> families
    keywords: set[str]  # user keywords in reach
    tables: list[dict[str, Definition]]  # Variables sections in lookup order

    @classmethod
    def of(cls, read: _File, parsed: dict[str, _File], importers: dict[str, list[str]]) -> _Context:
        order = _reach(read, parsed, importers)
        families: list[str] = []
        prefixes: dict[str, tuple[str, ...]] = dict(LIBRARIES)
        for f in order:
            for name, alias in f.libraries:
                known = LIBRARIES.get(normalize(name), ())
                families += [k for k in known if k not in families]
                if alias and known:
                    prefixes[normalize(alias)] = known
        families.append("builtin")
        return cls(families, prefixes, set().union(*(f.keywords for f in order)), [f.variables for f in order])


def _reach(read: _File, parsed: dict[str, _File], importers: dict[str, list[str]]) -> list[_File]:
    """The file, the resources it imports (breadth first), then the rest of the files connected
    to it by imports (the suites that import it and what they import)."""
    order = [read.rel]
    seen = {read.rel}
    for follow_importers in (False, True):
        i = 0
        while i < len(order):
            rel = order[i]
            nexts = parsed[rel].links + (importers.get(rel, []) if follow_importers else [])
            for target in nexts:
                if target not in seen:
                    seen.add(target)
                    order.append(target)
            i += 1
    return [parsed[rel] for rel in order]


class _Reader:
    """Reads one file's dependencies and steps into `result`."""

    def __init__(self, read: _File, context: _Context, result: Extraction) -> None:
        self.file = read
        self.context = context
        self.result = result

    def read(self) -> None:
        for section in self.file.model.sections:
            for item in section.body:
                kind = type(item).__name__
                if kind in ("TestCase", "Keyword"):
                    self._body(item)
                else:
                    self._setting_or_variable(item)

    def _setting_or_variable(self, node: Any) -> None:
        kind = type(node).__name__
        scope = Scope(self.context.tables)
        if kind in ("LibraryImport", "ResourceImport") and node.name:
            name = _tokens(node, "NAME")[0]
            what = "library" if kind == "LibraryImport" else "workflow"
            self._add(what, scope.resolve(name.value), self.file.rel, name.lineno,
                      "Library" if what == "library" else "Resource")
        elif kind in FIXTURES:
            self._fixture(node, scope)
        elif kind == "Variable" and not node.errors:
            for token in _tokens(node, "ARGUMENT"):
                if URL.fullmatch(token.value):
                    self._add("url", redact_url(scope.resolve(token.value)), self.file.rel, token.lineno,
                              f"variable {node.name}")

    def _body(self, item: Any) -> None:
        scope = Scope(self.context.tables)
        for node in _walk(item):
            kind = type(node).__name__
            if kind == "Arguments":
                for token in _tokens(node, "ARGUMENT"):
                    scope.shadow(token.value)
            elif kind == "KeywordCall":
                keyword = _tokens(node, "KEYWORD")
                if keyword:
                    self._call(keyword[0], _tokens(node, "ARGUMENT"), scope)
                self._assign(node, scope)
            elif kind in FIXTURES:
                self._fixture(node, scope)
            elif kind == "Var":
                self._var(node, scope)
            elif hasattr(node, "tokens"):  # FOR loop variables, `EXCEPT ... AS ${error}`, inline IF results
                for token in _tokens(node, "ASSIGN", "VARIABLE"):
                    scope.shadow(token.value)

    def _fixture(self, node: Any, scope: Scope) -> None:
        name = _tokens(node, "NAME")
        if name and name[0].value.upper() != "NONE":
            self._call(name[0], _tokens(node, "ARGUMENT"), scope)

    def _assign(self, node: Any, scope: Scope) -> None:
        """`${x} =    Set Variable    value` gives `${x}` a value; any other assignment an unknown one."""
        assigned = [t.value for t in _tokens(node, "ASSIGN")]
        values = _tokens(node, "ARGUMENT")
        if (len(assigned) == 1 and len(values) == 1 and node.keyword
                and normalize(node.keyword.rpartition(".")[2]) == SET_VARIABLE):
            scope.define(assigned[0], values[0].value, self.file.rel, values[0].lineno)
        else:
            for written in assigned:
                scope.shadow(written)

    def _var(self, node: Any, scope: Scope) -> None:
        names = _tokens(node, "VARIABLE")
        values = _tokens(node, "ARGUMENT")
        if not names:
            return
        if len(values) == 1 and not _has_option(node):
            scope.define(names[0].value, values[0].value, self.file.rel, values[0].lineno)
        else:
            scope.shadow(names[0].value)

    def _call(self, keyword: Any, args: list[Any], scope: Scope, depth: int = 0) -> None:
        """One keyword call: its step, then what its arguments name."""
        name = keyword.value
        families, base, prefixed = self._families(name)
        self.result.steps.append(Step(self.file.rel, keyword.lineno, _step_name(name.rpartition(".")[2]
                                                                                if prefixed else name)))
        if not prefixed and base in self.context.keywords:  # a user keyword: its arguments are its own
            self._urls(name, args, scope, set())
            return
        if "builtin" in families and self._run(base, args, scope, depth):
            return
        roles = next((t[base] for t in (FAMILIES[f] for f in families) if base in t), ())
        skipped: set[int] = set()
        for role in roles:
            found = _argument(args, role)
            if found is not None:
                token, value = found
                self._role(role, value, token.lineno, name, scope)
                if role.secret:
                    skipped.add(id(token))
        self._urls(name, args, scope, skipped)

    def _run(self, base: str, args: list[Any], scope: Scope, depth: int) -> bool:
        """A BuiltIn keyword that runs others (`Run Keyword If`, `Wait Until Keyword Succeeds`):
        the keywords it runs are read as calls of their own. False when `base` is not one."""
        if base == RUN_KEYWORDS:
            calls = _split(args, ("AND",)) if any(a.value == "AND" for a in args) else [[a] for a in args]
        elif base == RUN_KEYWORD_IF:  # condition, keyword, args [ELSE IF condition keyword args] [ELSE keyword args]
            parts = _split(args, ("ELSE IF", "ELSE"), keep=True)
            calls = [part[1:] if i == 0 or part[0].value == "ELSE" else part[2:] for i, part in enumerate(parts)]
        elif base in RUNNERS:
            calls = [args[RUNNERS[base]:]]
        else:
            return False
        if depth < MAX_RUN_DEPTH:
            for call in calls:
                if call and not is_lone_variable(call[0].value):
                    self._call(call[0], call[1:], scope, depth + 1)
        return True

    def _families(self, name: str) -> tuple[list[str], str, bool]:
        """The families to look `name` up in, its normalised name, and whether it named its library."""
        prefix, dot, rest = name.rpartition(".")
        if dot and prefix:
            known = self.context.prefixes.get(normalize(prefix))
            if known:
                return list(known), normalize(rest), True
        return self.context.families, normalize(name), False

    def _role(self, role: Role, raw: str, line: int, context: str, scope: Scope) -> None:
        if role.secret:  # never a value: only the name of the environment variable holding it
            match = search(raw)
            if match and match.identifier == "%" and not match.before and not match.after:
                self._add("credential", "%{" + match.base.split("=", 1)[0] + "}", self.file.rel, line, context)
            return
        value = scope.resolve(raw)
        if not value.strip() or value.upper() == "NONE" or is_lone_variable(value):
            return
        if role.kind == "url":
            value = redact_url(value)
        self._add(role.kind, value, self.file.rel, line, context)
        key = scalar_name(raw) if is_lone_variable(raw) else None
        definition = scope.lookup(key) if key is not None else None
        if definition is not None:
            self._add(role.kind, value, definition.file, definition.line, f"variable {definition.name}")

    def _urls(self, context: str, args: list[Any], scope: Scope, skipped: set[int]) -> None:
        """Arguments that are whole URLs, whatever keyword they are given to."""
        for token in args:
            if id(token) not in skipped:
                value = token.value
                named = NAMED.fullmatch(value)
                if named and URL.fullmatch(named.group(2)):
                    value = named.group(2)
                if URL.fullmatch(value):
                    self._add("url", redact_url(scope.resolve(value)), self.file.rel, token.lineno, context)

    def _add(self, kind: str, value: str, file: str, line: int, context: str) -> None:
        self.result.dependencies.append(Dependency(kind, value, file, line, TOOL, context))


def _argument(args: list[Any], role: Role) -> tuple[Any, str] | None:
    """The argument token that fills `role`, and its value: given by name (`locator=id:x`), else
    by position among the arguments before the first named one. `css=#id` is a locator, not a name."""
    positional: list[Any] = []
    named_seen = False
    for token in args:
        named = NAMED.fullmatch(token.value)
        if named and named.group(1) == role.parameter:
            return token, named.group(2)
        if named and named.group(1).lower() not in STRATEGIES:
            named_seen = True
        elif not named_seen:
            positional.append(token)
    if role.position < len(positional):
        token = positional[role.position]
        return token, token.value
    return None


def _split(args: list[Any], markers: tuple[str, ...], keep: bool = False) -> list[list[Any]]:
    """`args` cut at each marker (`AND`, `ELSE IF`, `ELSE`); with `keep`, a part after a marker starts with it."""
    parts: list[list[Any]] = [[]]
    for token in args:
        if token.value in markers:
            parts.append([token] if keep else [])
        else:
            parts[-1].append(token)
    return parts


def _step_name(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())
