"""What a bot depends on, as read from its own source: the shared shape of every extractor.

A dependency is one thing outside the bot that a change can break: an application, a screen
(a window or page), a selector or locator on it, a URL, a work queue, an asset or credential (by
name only: never its value), a file, a mailbox, a workflow or library it calls. Each comes with
the file and line it was read from. A problem is content that could not be read (a file that is
not XML, a Python syntax error): reported with its place and skipped, never fatal.

Steps are the bot's activities or keywords in order, normalised (activity type, keyword name),
for comparing bots with each other (duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# the kinds of dependency, in the order reports list them
KINDS = ("application", "screen", "selector", "url", "queue", "asset", "credential", "file", "mailbox",
         "workflow", "library")
# the tools a selector or locator is written for: how to read and match it
TOOLS = ("uipath", "robotframework", "selenium", "playwright", "botwatch")


@dataclass(frozen=True, order=True)
class Dependency:
    kind: str  # one of KINDS
    value: str  # as the source names it: an app name, a window title, a selector, a URL, a queue name...
    file: str  # relative to the source root, with forward slashes
    line: int  # 1-based; 0 when the format has no lines to give
    tool: str  # one of TOOLS: what the value is written for
    context: str = ""  # the activity or keyword it appears in (e.g. "Click", "Input Text")
    screen: str = ""  # for a selector: the screen (window/page) it belongs to, when known
    app: str = ""  # for a screen or selector: the application, when known

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown dependency kind {self.kind!r}")
        if self.tool not in TOOLS:
            raise ValueError(f"unknown tool {self.tool!r}")


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 0 when unknown
    message: str


@dataclass(frozen=True)
class Step:
    file: str
    line: int
    name: str  # normalised: an activity's type ("Click", "TypeInto") or a keyword's name, lower-cased


@dataclass
class Extraction:
    dependencies: list[Dependency] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    files_read: int = 0

    def merge(self, other: Extraction) -> None:
        self.dependencies += other.dependencies
        self.problems += other.problems
        self.steps += other.steps
        self.files_read += other.files_read

    def of_kind(self, kind: str) -> list[Dependency]:
        return sorted(d for d in self.dependencies if d.kind == kind)
