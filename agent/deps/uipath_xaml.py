"""What one UiPath workflow (.xaml) says it depends on, and its activities in order.

Read from the parsed element tree (xmltree.py), every element in document order:

- UI targets. Classic activities hold a `ui:Target` whose `Selector` is the element's selector;
  modern ones a `uix:TargetAnchorable` with `FullSelectorArgument` (else `FuzzySelectorArgument`)
  and the window or page in `ScopeSelectorArgument`. `Use Application/Browser` and the Object
  Repository's screens hold a `uix:TargetApp` (`Selector`, `Url`, `FilePath`); classic containers
  (Attach Browser, Attach Window, Open Application) a `Selector` of their own. A selector whose
  top names the application gives an `application` and a `screen`; a partial one takes its
  screen and application from the nearest container around it.
- activity properties, literal values only (uipath_values.py): `QueueType`/`QueueName` (queue),
  `AssetName` (asset, or credential in Get Credential activities), `WorkflowFileName` (workflow),
  `WorkbookPath`/`FileName`/`FilePath`/`Path` (file), `Url`/`EndPoint` (url), `ProcessName` (a
  workflow for Invoke Process and Start Job, an application for Kill Process); for mail
  activities `Account`/`Email` and `MailFolder` (mailbox) and `Server` (url).
- arguments: a workflow argument's literal default, and a literal passed to an invoked
  workflow's argument, when it is an http(s) URL (url), a workflow file (`.xaml`: workflow) or
  a file of a kind bots read or start (`.xlsx`, `.csv`, `.json`, `.pdf`, `.exe`...: file).

Only these properties are read: a password, a secure string, a message's recipients or body
never leave the file. Values are passed through the agent's redaction all the same (a URL with
a password in it keeps its host and loses the password).
"""

from __future__ import annotations

import re

from ..core.redact import redact, redact_url
from .model import Dependency, Problem, Step
from .uipath_values import Top, literal, selector_top, string_literal
from .xmltree import Node

__all__ = ["WF_NS", "is_workflow", "read_workflow", "read_descriptor", "MAX_VALUE"]

WF_NS = "http://schemas.microsoft.com/netfx/2009/xaml/activities"
_UIPATH_NS = "http://schemas.uipath.com/workflow/activities"
_IDREF = "}WorkflowViewState.IdRef"  # Studio's designer id: every activity it saves has one
MAX_VALUE = 8192  # a longer value is no selector, path or name anyone wrote: skipped, reported

# Elements that carry values or structure, not steps of the bot (Studio gives some an IdRef)
NOT_ACTIVITIES = frozenset({
    "Activity", "Catch", "FlowStep", "Transition", "State", "AssignOperation",
    "CSharpValue", "CSharpReference", "VisualBasicValue", "VisualBasicReference", "Literal",
    "InArgument", "OutArgument", "InOutArgument", "Variable", "DelegateInArgument", "DelegateOutArgument",
    "ActivityAction", "ActivityFunc", "Target", "TargetAnchorable", "TargetApp",
    "VerifyExecutionOptions", "VerifyExecutionTypeIntoOptions",
})
_PROPERTY_KINDS = {
    "QueueType": "queue", "QueueName": "queue", "WorkflowFileName": "workflow",
    "WorkbookPath": "file", "FileName": "file", "FilePath": "file", "Path": "file",
    "Url": "url", "EndPoint": "url",
}
_PROCESS_KINDS = {"InvokeProcess": "workflow", "StartJob": "workflow", "RunJob": "workflow",
                  "KillProcess": "application"}
_MAIL_ACTIVITY = re.compile(r"mail|outlook|exchange|imap|pop3|smtp", re.I)
_HTTP_URL = re.compile(r"https?://\S+", re.I)
_FILE = re.compile(r"[^<>|\"*?\r\n]*\.(xlsx|xlsm|xlsb|xls|csv|txt|json|xml|pdf|docx|doc|pptx|exe|bat|"
                   r"cmd|ps1|vbs|config|ini|yaml|yml|mdb|accdb|db|sqlite)", re.I)

Value = tuple[str | None, int]  # a property's literal (None: an expression or none) and its line


def is_workflow(root: Node) -> bool:
    return root.ns == WF_NS and root.name == "Activity"


def read_workflow(root: Node, file: str) -> tuple[list[Dependency], list[Step], list[Problem]]:
    """The dependencies and steps of a workflow whose root is `root`."""
    reader = _Reader(file, root)
    reader.run()
    reader.argument_defaults()
    return reader.deps, reader.steps, reader.problems


def read_descriptor(root: Node, file: str, context: str, screen: Top | None) -> tuple[list[Dependency], list[Problem]]:
    """The dependencies of an Object Repository descriptor (a screen's TargetApp, an element's
    TargetAnchorable); `screen` is the top of the screen it belongs to, when known."""
    reader = _Reader(file, root, context, screen)
    reader.run()
    return reader.deps, reader.problems


class _Reader:
    def __init__(self, file: str, root: Node, context: str = "", screen: Top | None = None) -> None:
        self.file = file
        self.root = root
        self.base_context = context
        self.base_screen = screen
        self.deps: list[Dependency] = []
        self.steps: list[Step] = []
        self.problems: list[Problem] = []
        self.idrefs = any(k.endswith(_IDREF) for n in root.iter() for k in n.attrs)

    # -- the walk ------------------------------------------------------------------------------
    def run(self) -> None:
        context: dict[int, str] = {}  # id(node) -> the activity it is in (or is)
        scope: dict[int, Top | None] = {}  # id(node) -> the window/page around it
        for node in self.root.iter():
            parent = node.parent
            inherited_context = context[id(parent)] if parent is not None else self.base_context
            inherited_scope = scope[id(parent)] if parent is not None else self.base_screen
            activity = self.is_activity(node)
            context[id(node)] = node.name if activity else inherited_context
            scope[id(node)] = self.own_scope(node) or inherited_scope
            if activity:
                self.steps.append(Step(self.file, node.line, node.name))
                self.activity(node, inherited_scope)
            elif node.name == "TargetAnchorable":
                self.target_anchorable(node, inherited_context, inherited_scope)
            elif node.name == "TargetApp":
                self.target_app(node, inherited_context)
            elif node.name == "Target":
                self.classic_target(node, inherited_context, inherited_scope)

    def is_activity(self, node: Node) -> bool:
        if node.parent is None or "." in node.name or node.name in NOT_ACTIVITIES:
            return False
        if self.idrefs:
            return any(k.endswith(_IDREF) for k in node.attrs)
        return node.ns == WF_NS or node.ns.startswith(_UIPATH_NS) or (
            node.ns.startswith("clr-namespace:") and "Activities" in node.ns)

    def own_scope(self, node: Node) -> Top | None:
        """The window or page an element opens for what is inside it: a container's own
        selector, or the TargetApp of Use Application/Browser."""
        if node.name in ("Target", "TargetAnchorable", "TargetApp") or "." in node.name:
            return None
        props = properties(node)
        selector = props.get("Selector", (None, 0))[0]
        if selector and (top := selector_top(selector)):
            return top
        for child in node.children:
            if child.name == f"{node.name}.TargetApp":
                for app in child.children:
                    if app.name == "TargetApp":
                        selector = properties(app).get("Selector", (None, 0))[0]
                        if selector and (top := selector_top(selector)):
                            return top
        return None

    # -- what each kind of element gives ---------------------------------------------------------
    def target_anchorable(self, node: Node, context: str, scope: Top | None) -> None:
        props = properties(node)
        scope_selector, line = props.get("ScopeSelectorArgument", (None, node.line))
        top = selector_top(scope_selector) if scope_selector else None
        if top:
            self.top(top, line, context)
        for name in ("FullSelectorArgument", "FuzzySelectorArgument"):
            selector, line = props.get(name, (None, node.line))
            if selector:
                self.selector(selector, line, context, top or scope)
                break

    def target_app(self, node: Node, context: str) -> None:
        props = properties(node)
        selector, line = props.get("Selector", (None, node.line))
        top = selector_top(selector) if selector else None
        if top:
            self.top(top, line, context)
        url, line = props.get("Url", (None, node.line))
        if url:
            self.add("url", url, line, context)
        path, line = props.get("FilePath", (None, node.line))
        if path:
            self.add("file", path, line, context)

    def classic_target(self, node: Node, context: str, scope: Top | None) -> None:
        selector, line = properties(node).get("Selector", (None, node.line))
        if selector:
            top = selector_top(selector)
            if top:
                self.top(top, line, context)
            self.selector(selector, line, context, top or scope)

    def activity(self, node: Node, scope: Top | None) -> None:
        name = node.name
        props = properties(node)
        selector, line = props.get("Selector", (None, node.line))
        if selector:  # a classic container's window or page (Attach Browser, Attach Window...)
            top = selector_top(selector)
            if top:
                self.top(top, line, name)
            else:
                self.selector(selector, line, name, scope)
        for prop, kind in _PROPERTY_KINDS.items():
            value, line = props.get(prop, (None, node.line))
            if value:
                if kind == "workflow":
                    value = _workflow_path(value)
                self.add(kind, value, line, name)
        asset, line = props.get("AssetName", (None, node.line))
        if asset:
            self.add("credential" if "credential" in name.lower() else "asset", asset, line, name)
        process, line = props.get("ProcessName", (None, node.line))
        if process and name in _PROCESS_KINDS:
            self.add(_PROCESS_KINDS[name], process, line, name)
        if _MAIL_ACTIVITY.search(name):
            self.mailbox(props, node, name)
        for child in node.children:
            if child.name == f"{name}.Arguments":
                for argument in child.children:
                    value, line = _element_value(argument)
                    if value:
                        self.argument(value, line, name)

    def argument(self, value: str, line: int, context: str) -> None:
        """A literal argument value that names a URL, a workflow or a file."""
        value = value.strip()
        if _HTTP_URL.fullmatch(value):
            self.add("url", value, line, context)
        elif value.lower().endswith(".xaml"):
            self.add("workflow", _workflow_path(value), line, context)
        elif _FILE.fullmatch(value):
            self.add("file", value, line, context)

    def mailbox(self, props: dict[str, Value], node: Node, name: str) -> None:
        """A mail activity's mailbox: its account (or login address) and folder; its server. The
        recipients of a message sent (To, Cc, Bcc) are its data, not a dependency."""
        account, line = props.get("Account", (None, node.line))
        if not account:
            account, line = props.get("Email", (None, node.line))
        folder, folder_line = props.get("MailFolder", (None, node.line))
        box = "/".join(part for part in (account, folder) if part)
        if box:
            self.add("mailbox", box, line if account else folder_line, name)
        server, line = props.get("Server", (None, node.line))
        if server:
            self.add("url", server, line, name)

    def argument_defaults(self) -> None:
        """The workflow's arguments whose default value is a literal URL, workflow or file (an
        Orchestrator's address, the configuration workbook, set where the workflow is written).
        They are attributes of the root: `this:InitAllSettings.in_ConfigFile="Data\\Config.xlsx"`."""
        for key, raw in self.root.attrs.items():
            _, _, local = key.rpartition("}")
            if "}" not in key or "." not in local:
                continue
            value = literal(raw)
            if value:
                self.argument(value, self.root.line, f"argument {local.partition('.')[2]}")

    # -- emitting --------------------------------------------------------------------------------
    def top(self, top: Top, line: int, context: str) -> None:
        self.add("application", top.app, line, context)
        if top.screen:
            self.add("screen", top.screen, line, context, top)

    def selector(self, selector: str, line: int, context: str, top: Top | None) -> None:
        self.add("selector", selector, line, context, top)

    def add(self, kind: str, value: str, line: int, context: str, top: Top | None = None) -> None:
        value = redact_url(value) if kind == "url" else redact(value)
        if len(value) > MAX_VALUE:
            self.problems.append(Problem(self.file, line, f"a {kind} of {len(value)} characters: skipped"))
            return
        # the model's fields: a selector's screen and application, a screen's application
        screen = top.screen if top and kind == "selector" else ""
        app = top.app if top and kind in ("selector", "screen") else ""
        self.deps.append(Dependency(kind, value, self.file, line, "uipath", context, screen, app))


def properties(node: Node) -> dict[str, Value]:
    """An element's properties: its unqualified attributes and its property elements
    (`<ui:GetRobotAsset.AssetName>`), each as (literal or None, line)."""
    props: dict[str, Value] = {k: (literal(v), node.line) for k, v in node.attrs.items() if "}" not in k}
    prefix = node.name + "."
    for child in node.children:
        if child.name.startswith(prefix):
            props[child.name[len(prefix):]] = _element_value(child)
    return props


def _element_value(prop: Node) -> Value:
    """The literal a property element holds: text, an InArgument's text, a C# or Visual Basic
    expression, a Literal; None for an OutArgument or anything else."""
    node = prop
    for _ in range(3):  # property element > InArgument > CSharpValue, at most
        if node.name in ("OutArgument", "InOutArgument"):
            return None, node.line
        if node.name == "CSharpValue":
            return string_literal(node.text, "csharp"), node.line
        if node.name == "VisualBasicValue":
            return string_literal(node.attrs.get("ExpressionText", node.text)), node.line
        if node.name == "Literal":
            value = node.attrs.get("Value")
            return (literal(value) if value is not None else node.text), node.line
        if not node.children:
            text = node.text.strip()
            return (literal(text) if text else None), node.line
        if len(node.children) != 1:
            return None, node.line
        node = node.children[0]
    return None, node.line


def _workflow_path(value: str) -> str:
    """A workflow file as a project-relative path with forward slashes (`Framework\\Process.xaml`
    and `Framework/Process.xaml` are one file)."""
    return re.sub(r"[\\/]+", "/", value.strip())

