"""One module of a Python bot, call by call: its Selenium and Playwright locators and URLs, the
screens and selectors of its botwatch calls, the credentials it reads (by name) and its steps.

Calls are read in the order Python evaluates them (the receiver, the arguments, then the call),
so the steps of a function come in source order. What a call is comes from its method's name and
what it is called on, as the source shows them: nothing is run and no type is inferred.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from . import python_locators as loc
from ..core.redact import redact_url
from .model import Dependency, Problem, Step
from .python_scope import PARAM, External, Index, Module, Text, Value, Where, added

# -- Selenium ---------------------------------------------------------------------------------
FIND = frozenset({"find_element", "find_elements"})
OLD_FIND = ("find_element_by_", "find_elements_by_")
URL_CONDITIONS = frozenset({"url_to_be"})  # expected_conditions taking a whole URL

# -- Playwright -------------------------------------------------------------------------------
# calls that make a locator (from a page, a frame or another locator)
LOCATOR_MAKERS = frozenset({"locator", "get_by_role", "get_by_test_id", "frame_locator", "nth", "filter",
                            *loc.TEXT_FINDERS})
MODIFIERS = frozenset({"nth", "filter"})  # refine a locator: they never start one
POSITIONS = {"first": "nth=0", "last": "nth=-1"}  # locator properties
# page and frame methods whose first argument is a selector, with how many positional arguments
# their page form has at least (a locator's own method of the name takes one fewer: no selector)
SELECTOR_ACTIONS = {
    "click": 1, "dblclick": 1, "tap": 1, "hover": 1, "focus": 1, "check": 1, "uncheck": 1, "text_content": 1,
    "inner_text": 1, "inner_html": 1, "input_value": 1, "is_visible": 1, "is_hidden": 1, "is_enabled": 1,
    "is_disabled": 1, "is_editable": 1, "is_checked": 1, "wait_for_selector": 1, "query_selector": 1,
    "query_selector_all": 1, "fill": 2, "type": 2, "press": 2, "set_checked": 2, "select_option": 2,
    "set_input_files": 2, "get_attribute": 2, "dispatch_event": 2, "eval_on_selector": 2,
    "eval_on_selector_all": 2, "drag_and_drop": 2,
}
# these take a selector whatever they are called on (no other library has them)
PLAYWRIGHT_ONLY = frozenset({"wait_for_selector", "query_selector", "query_selector_all", "eval_on_selector",
                             "eval_on_selector_all"})
NOT_A_PAGE = frozenset({"keyboard", "mouse", "touchscreen"})  # their press/type take keys and text
BASE_URL_CALLS = frozenset({"new_context", "new_page", "launch_persistent_context"})
URL_WAITS = frozenset({"wait_for_url", "to_have_url"})

# -- botwatch ---------------------------------------------------------------------------------
SDK_MODULES = frozenset({"botwatch", "botwatch.sdk", "botwatch.client.sdk"})
HELPER_MODULES = {"botwatch.integrations.selenium": "selenium", "botwatch.integrations.playwright": "playwright"}

# -- credentials ------------------------------------------------------------------------------
ENV_READS = frozenset({"os.getenv", "os.environ.get", "os.environ.setdefault"})
KEYRING_READS = frozenset({"keyring.get_password", "keyring.get_credential"})

# -- steps ------------------------------------------------------------------------------------
# method names that are a browser step whatever they are called on
STEP_ALWAYS = frozenset({*FIND, *LOCATOR_MAKERS, *PLAYWRIGHT_ONLY, "goto", "send_keys", "execute_script",
                         "execute_async_script", "implicitly_wait", "wait_for_url", "wait_for_load_state"})
# method names that are a step when called on a driver, page, element, locator or the like
STEP_ON_BROWSER = frozenset({
    *SELECTOR_ACTIONS, "get", "clear", "submit", "press_sequentially", "drag_to", "screenshot", "save_screenshot",
    "get_screenshot_as_png", "get_screenshot_as_file", "reload", "refresh", "back", "forward", "go_back",
    "go_forward", "quit", "close", "until", "until_not", "wait_for", "wait_for_timeout", "evaluate", "is_displayed",
    "is_selected", "frame", "window", "default_content", "parent_frame", "accept", "dismiss", "new_page",
    "new_context", "launch", "maximize_window", "set_window_size", "select_by_visible_text", "select_by_value",
    "select_by_index", "perform", "move_to_element", "context_click", "double_click", "all_text_contents",
    "all_inner_texts", "count", "scroll_into_view_if_needed", "blur", "add_cookie", "delete_all_cookies",
})
BROWSER_WORDS = ("driver", "browser", "page", "frame", "element", "locator", "context", "wait", "handle",
                 "keyboard", "mouse", "switch_to", "alert")
BROWSER_MAKERS = frozenset({*STEP_ALWAYS, "until", "until_not", "WebDriverWait", "Select", "ActionChains", "expect", "new_page",
                            "new_context", "launch", "Chrome", "Firefox", "Edge", "Safari", "Remote"})


def last_name(expr: ast.expr) -> str:
    """The last identifier of an expression (`self.driver` -> driver, `f()` -> f), lower-cased."""
    while isinstance(expr, (ast.Call, ast.Await, ast.Subscript)):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    if isinstance(expr, ast.Attribute):
        return expr.attr.lower()
    if isinstance(expr, ast.Name):
        return expr.id.lower()
    return ""


def method_name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Attribute):
        return expr.attr
    if isinstance(expr, ast.Name):
        return expr.id
    return None


@dataclass
class Segment:
    parts: list[str]
    line: int
    file: str
    method: str
    selects: bool  # names elements (a locator, a role...), not only a position among them


@dataclass
class Sink:
    """What the walk finds over all modules: dependencies once each, problems, steps."""

    dependencies: dict[tuple[str, str, str, int, str], Dependency] = field(default_factory=dict)
    problems: dict[Problem, None] = field(default_factory=dict)  # each once, in the order found
    steps: list[Step] = field(default_factory=list)
    consumed: set[int] = field(default_factory=set)  # locator tuples already read from a call

    def add(self, dep: Dependency) -> None:
        key = (dep.kind, dep.value, dep.file, dep.line, dep.tool)
        self.dependencies.setdefault(key, dep)


class Walker(ast.NodeVisitor):
    def __init__(self, index: Index, module: Module, sink: Sink, tool: str) -> None:
        self.index = index
        self.module = module
        self.sink = sink
        self.tool = tool  # what a credential read in this module is tagged with
        self.where = Where(module)
        self.line = 0
        self.libraries = {dotted.split(".")[0] for dotted, _ in module.imports.values()}
        self.playwright = bool(self.libraries & {"playwright", "pytest_playwright"})
        self.selenium = "selenium" in self.libraries

    def walk(self) -> None:
        self.visit(self.module.tree)

    def read_unused_locators(self) -> None:
        """`(By.ID, "x")` tuples (and `{By.ID: "x"}`) that no call read: a page object's
        constants, or locators handed to code outside the bot. Read where they are written."""
        for node in ast.walk(self.module.tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Dict)):
                where = self._where_of(node)
                pairs = ([(node.elts[0], node.elts[1], node)] if not isinstance(node, ast.Dict) and len(node.elts) == 2
                         else [(k, v, k) for k, v in zip(node.keys, node.values) if k is not None]
                         if isinstance(node, ast.Dict) else [])
                for by, value, owner in pairs:
                    strategy = self._strategy(by, where, follow=False)
                    if strategy is not None and id(owner) not in self.sink.consumed:
                        self.sink.consumed.add(id(owner))
                        read_locator(self.index, self.sink, where, strategy, value, "")

    def _where_of(self, node: ast.AST) -> Where:
        """The class and function a node is written in."""
        func: ast.AST | None = None
        cls = None
        current = self.module.parents.get(id(node))
        while current is not None:
            if func is None and isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                func = current
            elif isinstance(current, ast.ClassDef):
                cls = self.module.class_of.get(id(current))
                break
            current = self.module.parents.get(id(current))
        return Where(self.module, cls, self.index.function_scope(func) if func is not None else None)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self.line = node.lineno  # where reading stopped, should the nesting be too deep
        super().visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add):  # a long concatenation, operand by operand: no recursion
            for operand in added(node):
                self.visit(operand)
        else:
            self.generic_visit(node)

    # -- scopes --------------------------------------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        saved = self.where
        self.where = Where(self.module, self.module.class_of.get(id(node)))
        for stmt in node.body:
            self.visit(stmt)
        self.where = saved

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            for expr in node.decorator_list:
                self.visit(expr)
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]:
            self.visit(default)
        saved = self.where
        self.where = Where(self.module, saved.cls, self.index.function_scope(node))
        for stmt in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(stmt)
        self.where = saved

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    # -- reading -------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)  # the receiver and the arguments come first
        name = method_name(node.func)
        if name is None:
            return
        qualified = self.index.qualified(node.func, self.where) if isinstance(node.func, (ast.Name, ast.Attribute)) else None
        if qualified:
            self._botwatch(node, qualified)
            self._credential(node, qualified)
        self._selenium(node, name, qualified)
        self._playwright(node, name)
        self._step(node, name, qualified)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        if node.attr in POSITIONS and self._chain_end(node):
            self._emit_chain(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.generic_visit(node)
        if (isinstance(node.value, (ast.Name, ast.Attribute))
                and self.index.qualified(node.value, self.where) == "os.environ"):
            self._env_name(node.slice, "os.environ")

    # -- dependencies out ----------------------------------------------------------------------

    def _add(self, kind: str, text: Text, tool: str, context: str, screen: str = "") -> None:
        value = redact_url(text.value) if kind == "url" else text.value
        if kind == "selector" and not value.strip():
            return
        self.sink.add(Dependency(kind, value, text.file, text.line, tool, context, screen))

    def _problem(self, node: ast.AST, message: str) -> None:
        self.sink.problems.setdefault(Problem(self.module.file, getattr(node, "lineno", 0), message))

    def _read(self, expr: ast.expr, what: str, context: str) -> Text | None:
        """The literal text of `expr`; a problem when it is computed (not when it is a parameter
        of the function around: the call sites write it)."""
        text = self.index.text(expr, self.where)
        if isinstance(text, Text):
            return text
        if text is not PARAM and not isinstance(expr, ast.Constant):  # None, a number: not this kind of value
            self._problem(expr, f"{context}: the {what} is computed at run time and was not read")
        return None

    # -- Selenium ------------------------------------------------------------------------------

    def _selenium(self, node: ast.Call, name: str, qualified: str | None) -> None:
        args, keywords = node.args, {k.arg: k.value for k in node.keywords if k.arg}
        if name in FIND or (args and not isinstance(args[0], ast.Starred) and self._strategy(args[0], self.where)):
            self._find(node, name, args, keywords)
        elif name.startswith(OLD_FIND):
            strategy = loc.BY_SUFFIXES.get(name.split("_by_", 1)[1])
            if strategy and args:
                self._selenium_value(strategy, args[0], name)
        elif name == "get" and isinstance(node.func, ast.Attribute) and len(args) == 1 and not keywords:
            self._navigation(node.func.value, args[0])
        elif name == "Remote" and (self.selenium or (qualified or "").startswith("selenium")):
            url = keywords.get("command_executor") or (args[0] if args else None)
            text = self.index.text(url, self.where) if url is not None else None
            if isinstance(text, Text) and "://" in text.value:
                self._add("url", text, "selenium", name)
        elif name in URL_CONDITIONS and args:
            text = self.index.text(args[0], self.where)
            if isinstance(text, Text) and "://" in text.value:
                self._add("url", text, "selenium", name)
        # locator tuples handed to any call: expected conditions, relative locators, the bot's helpers
        for arg in args[1:] if name in FIND else args:
            self._locator_expr(arg.value if isinstance(arg, ast.Starred) else arg, name)

    def _find(self, node: ast.Call, name: str, args: list[ast.expr], keywords: dict[str, ast.expr]) -> None:
        if args and isinstance(args[0], ast.Starred):
            target = args[0].value
            if not self._locator_expr(target, name) and not self._is_param(target):
                self._problem(node, f"{name}: the locator is computed at run time and was not read")
            return
        by = args[0] if args else keywords.get("by")
        value = args[1] if len(args) > 1 else keywords.get("value")
        if value is None:
            return
        strategy = self._strategy(by, self.where, strings=True) if by is not None else "id"
        if strategy is None:
            if not self._is_param(by):
                self._problem(node, f"{name}: the locator strategy is computed at run time; the locator was not read")
            return
        self._selenium_value(strategy, value, name)

    def _is_param(self, expr: ast.expr | None) -> bool:
        if expr is None:
            return False
        node, where = self.index.value(expr, self.where)
        return isinstance(node, ast.Name) and self.index.resolve(node, where) is PARAM

    def _selenium_value(self, strategy: str, expr: ast.expr, context: str) -> None:
        text = self._read(expr, "locator", context)
        if text is not None:
            self._add("selector", Text(loc.selenium_locator(strategy, text.value), text.line, text.file), "selenium",
                      context)

    def _strategy(self, expr: ast.expr | None, where: Where, strings: bool = False, follow: bool = True) -> str | None:
        """The locator strategy `expr` names (`By.ID`, or "id" where a string is allowed);
        `follow`: also through a name bound to one."""
        if expr is None:
            return None
        node, node_where = self.index.value(expr, where) if follow else (expr, where)
        if isinstance(node, ast.Attribute) and node.attr in loc.BY_ATTRIBUTES:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id == "By":
                return loc.BY_ATTRIBUTES[node.attr]
            dotted = self.index.qualified(owner, node_where) if isinstance(owner, (ast.Name, ast.Attribute)) else None
            if dotted and dotted.rsplit(".", 1)[-1] == "By":
                return loc.BY_ATTRIBUTES[node.attr]
        if strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
            return loc.BY_VALUES.get(node.value)
        return None

    def _locator_expr(self, expr: ast.expr, context: str) -> bool:
        """Read a `(By.ID, "x")` locator (or a `{By.ID: "x"}` of relative locators) that `expr`
        is or names, wherever it is written; whether it was one."""
        node, where = self.index.value(expr, self.where)
        pairs: list[tuple[ast.expr, ast.expr, ast.AST]] = []
        if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == 2:
            pairs = [(node.elts[0], node.elts[1], node)]
        elif isinstance(node, ast.Dict):
            pairs = [(k, v, k) for k, v in zip(node.keys, node.values) if k is not None]
        found = False
        for by, value, owner in pairs:
            strategy = self._strategy(by, where)
            if strategy is None:
                continue
            found = True
            if id(owner) not in self.sink.consumed:
                self.sink.consumed.add(id(owner))
                read_locator(self.index, self.sink, where, strategy, value, context)
        return found

    def _navigation(self, receiver: ast.expr, url: ast.expr) -> None:
        """`driver.get(url)`: a driver by its name, or any get(URL) in a module using Selenium
        that is not a module's function (requests.get)."""
        if "driver" in last_name(receiver) or "browser" in last_name(receiver):
            text = self._read(url, "URL", "get")
        elif self.selenium and not self._is_module(receiver):
            found = self.index.text(url, self.where)
            text = found if isinstance(found, Text) and "://" in found.value else None
        else:
            return
        if text is not None:
            self._add("url", text, "selenium", "get")

    def _is_module(self, expr: ast.expr) -> bool:
        return isinstance(expr, (ast.Name, ast.Attribute)) and isinstance(self.index.resolve(expr, self.where), External)

    # -- Playwright ----------------------------------------------------------------------------

    def _playwright(self, node: ast.Call, name: str) -> None:
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        receiver = func.value
        if name in LOCATOR_MAKERS:
            if self._chain_end(node):
                self._emit_chain(node)
        elif name in SELECTOR_ACTIONS and self._page_like(receiver, name):
            self._selector_action(node, name, receiver)
        elif name == "goto" and node.args and not self._is_module(receiver):
            if self.playwright or "page" in last_name(receiver) or "frame" in last_name(receiver):
                text = self._read(node.args[0], "URL", "goto")
            else:
                found = self.index.text(node.args[0], self.where)
                text = found if isinstance(found, Text) else None
            if text is not None:
                self._add("url", text, "playwright", "goto")
        elif name in BASE_URL_CALLS:
            for keyword in node.keywords:
                if keyword.arg == "base_url":
                    base = self.index.text(keyword.value, self.where)
                    if isinstance(base, Text):
                        self._add("url", base, "playwright", name)
        elif name in URL_WAITS and node.args:
            awaited = self.index.text(node.args[0], self.where)
            if isinstance(awaited, Text) and "://" in awaited.value:
                self._add("url", awaited, "playwright", name)

    def _page_like(self, receiver: ast.expr, name: str) -> bool:
        """Whether `receiver.name(selector, ...)` is a page's (or frame's) selector method."""
        if last_name(receiver) in NOT_A_PAGE or self._is_module(receiver) or self._is_chain(receiver):
            return False
        return name in PLAYWRIGHT_ONLY or self.playwright or any(w in last_name(receiver) for w in ("page", "frame"))

    def _selector_action(self, node: ast.Call, name: str, receiver: ast.expr) -> None:
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        selectors: list[ast.expr] = []
        if name == "drag_and_drop":  # page.drag_and_drop(source, target): two selectors
            positional = [a for a in node.args[:2] if not isinstance(a, ast.Starred)]
            named = [keywords[k] for k in ("source", "target")[len(positional):] if k in keywords]
            selectors = positional + named
            if len(selectors) < 2:
                return
        elif "selector" in keywords:
            selectors = [keywords["selector"]]
        elif len(node.args) >= SELECTOR_ACTIONS[name] and not isinstance(node.args[0], ast.Starred):
            selectors = [node.args[0]]
        for expr in selectors:
            text = self._read(expr, "selector", name)
            if text is not None:
                self._add("selector", text, "playwright", name)

    def _chain_end(self, node: ast.expr) -> bool:
        """Whether a locator expression is not itself refined further (`.locator(...)`, `.first`)."""
        parent = self.module.parents.get(id(node))
        return not (isinstance(parent, ast.Attribute) and (parent.attr in LOCATOR_MAKERS or parent.attr in POSITIONS))

    def _is_chain(self, expr: ast.expr, depth: int = 0) -> bool:
        """Whether an expression makes a locator (without reading it)."""
        if depth > 100:
            return False
        if isinstance(expr, ast.Attribute) and expr.attr in POSITIONS:
            return self._is_chain(expr.value, depth + 1)
        if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)
                and expr.func.attr in LOCATOR_MAKERS):
            return False
        if expr.func.attr in MODIFIERS:
            return self._is_chain(expr.func.value, depth + 1)
        return not self._is_module(expr.func.value)

    def _chain(self, expr: ast.expr, depth: int = 0) -> list[list[Segment]] | None:
        """The locator an expression makes, as runs of segments (a part that is computed ends a
        run: what follows is relative to something unknown); None when it makes no locator."""
        if depth > 100:
            return None
        if isinstance(expr, ast.Attribute) and expr.attr in POSITIONS:
            inner = self._chain(expr.value, depth + 1)
            if inner is not None:
                inner[-1].append(Segment([POSITIONS[expr.attr]], expr.lineno, self.module.file, expr.attr, False))
            return inner
        if not (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute)
                and expr.func.attr in LOCATOR_MAKERS):
            return None
        method, receiver = expr.func.attr, expr.func.value
        parent = self._chain(receiver, depth + 1)
        if parent is None:
            if method in MODIFIERS or self._is_module(receiver):
                return None
            parent = [[]]
        segment = self._segment(method, expr)
        if segment is None:
            parent.append([])
        else:
            run = parent[-1]
            if run and run[-1].method == "frame_locator" and segment.selects:
                segment.parts.insert(0, loc.ENTER_FRAME)
            run.append(segment)
        return parent

    def _emit_chain(self, end: ast.expr) -> None:
        runs = self._chain(end)
        if runs is None:
            return
        context = self._chain_context(end)
        for number, run in enumerate(runs):
            selecting = [s for s in run if s.selects]
            if not selecting:
                continue
            value = loc.chain([part for segment in run for part in segment.parts])
            last = selecting[-1]
            self._add("selector", Text(value, last.line, last.file), "playwright",
                      context if number == len(runs) - 1 and context else last.method)

    def _chain_context(self, end: ast.expr) -> str:
        """What is done with a locator: the action called on it, or `expect`."""
        parent = self.module.parents.get(id(end))
        if isinstance(parent, ast.Attribute):
            return parent.attr
        if isinstance(parent, ast.Call) and end in parent.args and method_name(parent.func) == "expect":
            return "expect"
        return ""

    def _segment(self, method: str, call: ast.Call) -> Segment | None:
        """One call of a locator chain as selector parts; None (after a problem, unless it is a
        parameter) when its selector is computed. Options that are computed are left out."""
        args, keywords = call.args, {k.arg: k.value for k in call.keywords if k.arg}
        line, file = call.lineno, self.module.file
        if method in ("locator", "frame_locator", "get_by_test_id"):
            main = args[0] if args else keywords.get("selector" if method != "get_by_test_id" else "test_id")
            if main is None:
                return None
            if method == "get_by_test_id":
                text = self._pattern(main, exact=True, attribute=True)
                if text is None:
                    self._read(main, "test id", method)
                    return None
                return Segment([f"internal:testid=[data-testid={text.value}]"], text.line, text.file, method, True)
            found = self._read(main, "selector", method)
            if found is None:
                return None
            parts = [found.value]
            if method == "locator":
                parts += self._filters(keywords)
            return Segment(parts, found.line, found.file, method, True)
        if method == "get_by_role":
            role = self._read(args[0], "role", method) if args else None
            if role is None:
                return None
            exact = self.index.constant(keywords["exact"], self.where) is True if "exact" in keywords else False
            props: list[tuple[str, str]] = []
            for option in loc.ROLE_OPTIONS:
                if option not in keywords:
                    continue
                if option in ("name", "description"):
                    text = self._pattern(keywords[option], exact, attribute=True)
                    if text is not None:
                        props.append((option, text.value))
                    continue
                value = self.index.constant(keywords[option], self.where)
                if isinstance(value, bool):
                    props.append((option.replace("_", "-"), "true" if value else "false"))
                elif isinstance(value, int) and option == "level":
                    props.append((option, str(value)))
            return Segment([loc.role_selector(role.value, props)], role.line, role.file, method, True)
        if method in loc.TEXT_FINDERS:
            main = args[0] if args else keywords.get("text")
            if main is None:
                return None
            exact = self.index.constant(keywords["exact"], self.where) is True if "exact" in keywords else False
            text = self._pattern(main, exact, attribute=method not in ("get_by_text", "get_by_label"))
            if text is None:
                self._read(main, "text", method)
                return None
            return Segment([loc.TEXT_FINDERS[method](text.value)], text.line, text.file, method, True)
        if method == "nth":
            index = self.index.constant(args[0], self.where) if args else None
            parts = [f"nth={index}"] if isinstance(index, int) and not isinstance(index, bool) else []
            return Segment(parts, line, file, method, False)
        # filter(): only refines
        return Segment(self._filters(keywords), line, file, method, False)

    def _filters(self, keywords: dict[str, ast.expr]) -> list[str]:
        parts: list[str] = []
        for option, engine in (("has_text", "internal:has-text="), ("has_not_text", "internal:has-not-text=")):
            if option in keywords:
                text = self._pattern(keywords[option], exact=False, attribute=False)
                if text is not None:
                    parts.append(engine + text.value)
        for option, make in (("has", loc.has_selector), ("has_not", loc.has_not_selector)):
            if option in keywords:
                inner = self._chain(keywords[option])
                if inner is not None and len(inner) == 1 and inner[0]:
                    parts.append(make(loc.chain([p for segment in inner[0] for p in segment.parts])))
        if "visible" in keywords:
            visible = self.index.constant(keywords["visible"], self.where)
            if isinstance(visible, bool):
                parts.append(f"visible={'true' if visible else 'false'}")
        return parts

    def _pattern(self, expr: ast.expr, exact: bool, attribute: bool) -> Text | None:
        """A text or `re.compile(...)` argument quoted as Playwright quotes it in a selector."""
        text = self.index.text(expr, self.where)
        if isinstance(text, Text):
            quoted = loc.attribute_selector(text.value, exact) if attribute else loc.text_selector(text.value, exact)
            return Text(quoted, text.line, text.file)
        node, where = self.index.value(expr, self.where)
        if (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))
                and self.index.qualified(node.func, where) == "re.compile" and node.args):
            pattern = self.index.text(node.args[0], where)
            flags = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "flags"), None)
            flag_name = self.index.qualified(flags, where) if isinstance(flags, (ast.Name, ast.Attribute)) else None
            if isinstance(pattern, Text) and (flags is None or flag_name in ("re.I", "re.IGNORECASE")):
                return Text(loc.regex_selector(pattern.value, flags is not None), pattern.line, pattern.file)
        return None

    # -- botwatch ------------------------------------------------------------------------------

    def _botwatch(self, node: ast.Call, qualified: str) -> None:
        module, _, function = qualified.rpartition(".")
        args, keywords = node.args, {k.arg: k.value for k in node.keywords if k.arg}

        def argument(position: int, keyword: str) -> ast.expr | None:
            if len(args) > position and not any(isinstance(a, ast.Starred) for a in args[:position + 1]):
                return args[position]
            return keywords.get(keyword)

        if module in SDK_MODULES and function in ("ui_lookup", "snapshot"):
            screen = self._screen(argument(0, "screen"), function)
            if function == "ui_lookup":
                selector = argument(1, "selector")
                text = self._read(selector, "selector", function) if selector is not None else None
                if text is not None:
                    self._add("selector", text, "botwatch", function, screen=screen)
        elif module in HELPER_MODULES and function in ("find", "snapshot"):
            screen = self._screen(argument(1, "screen"), function)
            if function == "find":
                for expr in args[2:]:
                    if isinstance(expr, ast.Starred):
                        self._problem(expr, "find: the locators are computed at run time and were not read")
                    elif not self._botwatch_tuple(expr, screen):
                        text = self._read(expr, "locator", function)
                        if text is not None:
                            tool = "playwright" if HELPER_MODULES[module] == "playwright" else "botwatch"
                            self._add("selector", text, tool, function, screen=screen)

    def _screen(self, expr: ast.expr | None, context: str) -> str:
        text = self._read(expr, "screen", context) if expr is not None else None
        if text is None:
            return ""
        self._add("screen", text, "botwatch", context)
        return text.value

    def _botwatch_tuple(self, expr: ast.expr, screen: str) -> bool:
        """A `(By.ID, "x")` locator given to the Selenium helper's find: a Selenium locator on `screen`."""
        node, where = self.index.value(expr, self.where)
        if not (isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == 2):
            return False
        strategy = self._strategy(node.elts[0], where, strings=True)
        if strategy is None:
            return False
        self.sink.consumed.add(id(node))
        text = self.index.text(node.elts[1], where)
        if isinstance(text, Text):
            self.sink.add(Dependency("selector", loc.selenium_locator(strategy, text.value), text.file, text.line,
                                     "selenium", "find", screen))
        return True

    # -- credentials ---------------------------------------------------------------------------

    def _credential(self, node: ast.Call, qualified: str) -> None:
        if qualified in ENV_READS and node.args:
            self._env_name(node.args[0], qualified)
        elif qualified in KEYRING_READS and node.args:
            text = self.index.text(node.args[0], self.where)
            if isinstance(text, Text):
                self._add("credential", text, self.tool, qualified)

    def _env_name(self, expr: ast.expr, context: str) -> None:
        text = self.index.text(expr, self.where)
        if isinstance(text, Text) and loc.names_a_secret(text.value):
            self._add("credential", text, self.tool, context)

    # -- steps ---------------------------------------------------------------------------------

    def _step(self, node: ast.Call, name: str, qualified: str | None) -> None:
        func = node.func
        if qualified and ".expected_conditions." in qualified:
            self.sink.steps.append(Step(self.module.file, node.lineno, name))
            return
        if not isinstance(func, ast.Attribute) or self._is_module(func.value):
            return
        if name in STEP_ALWAYS or name.startswith(OLD_FIND):
            pass
        elif name.startswith("to_") and self._is_expect(func.value):
            pass
        elif not (name in STEP_ON_BROWSER and self._browser_like(func.value)):
            return
        step = "find_elements" if name.startswith("find_elements_by_") else (
            "find_element" if name.startswith("find_element_by_") else name)
        owner = last_name(func.value)
        if owner in NOT_A_PAGE or owner == "switch_to":
            step = f"{owner}.{step}"
        self.sink.steps.append(Step(self.module.file, node.lineno, step))

    def _is_expect(self, expr: ast.expr) -> bool:
        return isinstance(expr, ast.Call) and method_name(expr.func) == "expect"

    def _browser_like(self, expr: ast.expr) -> bool:
        """A driver, page, element, locator or the like, as far as names tell."""
        if isinstance(expr, ast.Await):
            expr = expr.value
        if isinstance(expr, ast.Call):
            return method_name(expr.func) in BROWSER_MAKERS or (method_name(expr.func) or "").startswith(OLD_FIND)
        if any(word in last_name(expr) for word in BROWSER_WORDS):
            return True
        if isinstance(expr, ast.Name):
            ref = self.index.resolve(expr, self.where)
            if isinstance(ref, Value) and ref.node is not expr:
                value = ref.node.value if isinstance(ref.node, ast.Await) else ref.node
                return isinstance(value, ast.Call) and self._browser_like(value)
        return isinstance(expr, ast.Attribute) and expr.attr in POSITIONS


def read_locator(index: Index, sink: Sink, where: Where, strategy: str, value: ast.expr, context: str) -> None:
    """A Selenium locator's value, where it is written (its own module): a dependency, or a
    problem when it is computed (not when it is a parameter)."""
    text = index.text(value, where)
    if isinstance(text, Text):
        sink.add(Dependency("selector", loc.selenium_locator(strategy, text.value), text.file, text.line, "selenium",
                            context))
    elif text is not PARAM:
        sink.problems.setdefault(Problem(where.module.file, getattr(value, "lineno", 0),
                                         f"{context or 'locator'}: the locator is computed at run time and was not read"))

