"""What keeps a test module from being imported on Windows: a POSIX-only name used while the
module is imported, outside a platform check.

Import time is the module's own code, class bodies, decorators and default values; a function's
body runs only when the test does, where a `posix_only` mark can skip it. A platform check is an
`if`, a conditional expression or an `and`/`or` that looks at `sys.platform`, `os.name`,
`platform.system()`, a `hasattr(...)` or a module-level flag made from one of these; a `try` whose
handlers catch ImportError or AttributeError guards its body too."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Modules of the standard library that Windows' Python does not have.
POSIX_ONLY_MODULES = frozenset({"fcntl", "resource", "termios", "pwd", "grp", "pty", "tty", "posix", "syslog",
                                "crypt", "spwd", "curses", "readline"})

# Everything Windows' `signal` module has; any other name in it is POSIX-only (SIGKILL, SIGALRM,
# SIGHUP, SIGUSR1, setitimer, alarm, ...).
WINDOWS_SIGNAL_NAMES = frozenset({
    "SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV", "SIGTERM", "SIGBREAK", "CTRL_C_EVENT", "CTRL_BREAK_EVENT",
    "SIG_DFL", "SIG_IGN", "NSIG", "Signals", "Handlers", "signal", "getsignal", "default_int_handler",
    "set_wakeup_fd", "raise_signal", "strsignal", "valid_signals",
})

# Names of `os` that Windows' Python does not have and that tests reach for.
POSIX_ONLY_OS_NAMES = frozenset({
    "setsid", "getsid", "killpg", "getpgid", "setpgid", "getpgrp", "setpgrp", "fork", "forkpty", "openpty",
    "getuid", "geteuid", "getgid", "getegid", "getgroups", "setuid", "seteuid", "setgid", "setegid",
    "getresuid", "getresgid", "initgroups", "chown", "lchown", "fchown", "mkfifo", "mknod", "uname",
    "sysconf", "confstr", "pathconf", "statvfs", "fstatvfs", "getloadavg", "nice", "getpriority", "setpriority",
    "wait3", "wait4", "WNOHANG", "WIFSIGNALED", "WIFEXITED", "WIFSTOPPED", "WTERMSIG", "WEXITSTATUS", "WSTOPSIG",
    "WCOREDUMP", "sync", "ttyname", "ctermid", "sched_getaffinity", "sched_setaffinity", "posix_spawn",
    "posix_spawnp", "pipe2", "register_at_fork", "O_NOFOLLOW", "O_CLOEXEC", "O_NONBLOCK", "O_DIRECTORY",
})

POSIX_ONLY_NAMES = {"signal": lambda name: name not in WINDOWS_SIGNAL_NAMES,
                    "os": lambda name: name in POSIX_ONLY_OS_NAMES}
PLATFORM_ATTRIBUTES = {("sys", "platform"), ("os", "name"), ("platform", "system")}
GUARDING_ERRORS = {"ImportError", "ModuleNotFoundError", "AttributeError", "Exception", "BaseException"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} at import time, outside a platform check"


class ImportTimeVisitor(ast.NodeVisitor):
    """Visits only what runs when the module is imported and records POSIX-only names there."""

    def __init__(self, path: str):
        self.path = path
        self.findings: list[Finding] = []
        self.modules: dict[str, str] = {}  # local name -> `signal` or `os`
        self.platform_flags: set[str] = set()  # module-level names holding a platform check

    def flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), what))

    # -- platform checks ----------------------------------------------------------------------

    def is_platform_check(self, node: ast.AST) -> bool:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) \
                    and (sub.value.id, sub.attr) in PLATFORM_ATTRIBUTES:
                return True
            if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id == "hasattr":
                return True
            if isinstance(sub, ast.Name) and sub.id in self.platform_flags:
                return True
        return False

    # -- imports ------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in POSIX_ONLY_MODULES:
                self.flag(node, f"import {alias.name}")
            elif alias.name in POSIX_ONLY_NAMES:
                self.modules[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and module.split(".")[0] in POSIX_ONLY_MODULES:
            self.flag(node, f"from {module} import ...")
        elif node.level == 0 and module in POSIX_ONLY_NAMES:
            for alias in node.names:
                if POSIX_ONLY_NAMES[module](alias.name):
                    self.flag(node, f"from {module} import {alias.name}")

    # -- names read ---------------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = node.value
        if isinstance(base, ast.Attribute) and base.attr == "Signals" and isinstance(base.value, ast.Name) \
                and self.modules.get(base.value.id) == "signal":
            if POSIX_ONLY_NAMES["signal"](node.attr):
                self.flag(node, f"{base.value.id}.Signals.{node.attr}")
            return
        if isinstance(base, ast.Name) and base.id in self.modules:
            if POSIX_ONLY_NAMES[self.modules[base.id]](node.attr):
                self.flag(node, f"{base.id}.{node.attr}")
            return
        self.generic_visit(node)

    # -- what runs later ----------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit_defaults(node.args)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit_defaults(node.args)

    def visit_defaults(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)

    # -- guards -------------------------------------------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        if self.is_platform_check(node.value):
            self.platform_flags.update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if self.is_platform_check(node.test):
            return  # each branch is meant for its own platforms
        if is_main_check(node.test):
            for statement in node.orelse:  # the body runs only as a script
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        if not self.is_platform_check(node.test):
            self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for value in node.values:  # what follows a platform check runs only where it allows
            if self.is_platform_check(value):
                return
            self.visit(value)

    def visit_Try(self, node: ast.Try) -> None:
        caught = {name for handler in node.handlers for name in handler_names(handler)}
        if not caught & GUARDING_ERRORS and not any(h.type is None for h in node.handlers):
            for statement in node.body:
                self.visit(statement)
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    visit_TryStar = visit_Try


def handler_names(handler: ast.ExceptHandler) -> list[str]:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else "" for t in types if t]


def is_main_check(test: ast.expr) -> bool:
    return isinstance(test, ast.Compare) and any(isinstance(n, ast.Name) and n.id == "__name__"
                                                 for n in ast.walk(test))


def findings_in_source(source: str, path: str = "<source>") -> list[Finding]:
    visitor = ImportTimeVisitor(path)
    visitor.visit(ast.parse(source, filename=path))
    return visitor.findings


def findings_in_tree(root: Path) -> list[Finding]:
    """Every finding in the Python files under `root`, with paths relative to it; not the bots of
    `corpus/` (data that extractors read, never imported by the suite, some in other encodings)."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        if "corpus" in path.relative_to(root).parts:
            continue
        found += findings_in_source(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
    return found
