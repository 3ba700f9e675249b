"""What a name in a bot's Python source stands for, as far as reading (never running) the source
can tell: the literal a constant was given, the class or module an import names.

A name resolves when it is bound exactly once in its scope by a plain assignment: a module's
constant, a class attribute (also through `self.`, `cls.` or the class's name, and from a base
class of the bot's own), an instance attribute set once (`self.url = "..."` in `__init__`), or a
local of the function. Imports between the bot's own modules are followed (`from pages.locators
import LoginLocators`, relative ones too). Anything bound twice, computed or unknown stays unknown.
A function's parameter is told apart: its value is written where the function is called.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Iterator, Union

MAX_DEPTH = 40
# top-level packages that are never one of the bot's own modules (a bot's file named selenium.py
# must not take the place of Selenium)
LIBRARIES = frozenset({"selenium", "playwright", "botwatch", "os", "keyring", "pytest", "re", "asyncio"})  # names that refer to names: a cycle or a long chain stops here

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]


@dataclass
class ClassInfo:
    node: ast.ClassDef
    module: Module
    attrs: dict[str, ast.expr] = field(default_factory=dict)  # class body: bound once
    instance: dict[str, tuple[ast.expr, ast.AST]] = field(default_factory=dict)  # self.X = ... once, in which method
    classes: dict[str, ClassInfo] = field(default_factory=dict)  # nested classes


@dataclass
class Module:
    file: str  # relative to the source root, forward slashes
    name: str  # dotted, from the file's path
    tree: ast.Module
    consts: dict[str, ast.expr] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    imports: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> (module, attribute)
    class_of: dict[int, ClassInfo] = field(default_factory=dict)  # id(ClassDef) -> its info
    parents: dict[int, ast.AST] = field(default_factory=dict)  # id(node) -> the node that holds it


@dataclass
class FunctionScope:
    node: ast.AST
    params: frozenset[str]
    locals: dict[str, ast.expr]


@dataclass(frozen=True)
class Where:
    """Where an expression is read: its module, the class and function around it."""

    module: Module
    cls: ClassInfo | None = None
    func: FunctionScope | None = None


# what a name or attribute resolves to
@dataclass(frozen=True)
class Value:
    node: ast.expr
    where: Where


@dataclass(frozen=True)
class ClassRef:
    cls: ClassInfo


@dataclass(frozen=True)
class External:
    """A name imported from outside the bot's own modules, by its dotted path."""

    dotted: str


class _Param:
    def __repr__(self) -> str:
        return "PARAM"


PARAM = _Param()  # a parameter of the function around: its value comes from the call sites
Ref = Union[Value, ClassRef, External, _Param, None]


@dataclass(frozen=True)
class Text:
    value: str
    line: int
    file: str  # where it is written: a constant may be in another of the bot's modules


def scope_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of a scope's body, not entering nested functions, classes, lambdas or
    comprehensions (their own scopes); the def statements themselves are given."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # decorators and defaults belong to the enclosing scope
            stack.extend(reversed(node.decorator_list))
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _target_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            yield from _target_names(elt)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def single_bindings(body: list[ast.stmt]) -> dict[str, ast.expr]:
    """Names bound exactly once in the scope, by `name = value` (or `name: T = value`): name -> value."""
    counts: dict[str, int] = {}
    values: dict[str, ast.expr] = {}

    def bound(name: str, value: ast.expr | None = None) -> None:
        counts[name] = counts.get(name, 0) + 1
        if value is not None:
            values[name] = value

    for node in scope_nodes(body):
        if isinstance(node, ast.Assign):
            simple = len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            for target in node.targets:
                for name in _target_names(target):
                    bound(name, node.value if simple else None)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            for name in _target_names(node.target):
                bound(name, node.value)
        elif isinstance(node, ast.AugAssign):
            for name in _target_names(node.target):
                bound(name)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            for name in _target_names(node.target):
                bound(name)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            for name in _target_names(node.optional_vars):
                bound(name)
        elif isinstance(node, ast.NamedExpr):
            bound(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bound(name)
                bound(name)  # bound elsewhere: never resolved here
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                for name in _target_names(target):
                    bound(name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound(node.name)
    return {name: value for name, value in values.items() if counts[name] == 1}


def added(expr: ast.BinOp) -> list[ast.expr]:
    """The operands of `a + b + c` in order, without recursion (a long concatenation is deep)."""
    operands: list[ast.expr] = []
    node: ast.expr = expr
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        operands.append(node.right)
        node = node.left
    operands.append(node)
    return operands[::-1]


def module_name(file: str) -> str:
    parts = file[:-3].split("/") if file.endswith(".py") else file.split("/")
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.Module, name: str, is_package: bool) -> dict[str, tuple[str, str | None]]:
    out: dict[str, tuple[str, str | None]] = {}
    package = name if is_package else name.rpartition(".")[0]
    for node in scope_nodes(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    out[alias.asname] = (alias.name, None)
                else:
                    head = alias.name.split(".")[0]
                    out[head] = (head, None)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[:len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                if alias.name != "*":
                    out[alias.asname or alias.name] = (base, alias.name)
    return out


def _class_info(node: ast.ClassDef, module: Module) -> ClassInfo:
    info = ClassInfo(node, module, attrs=single_bindings(node.body))
    module.class_of[id(node)] = info
    for stmt in node.body:
        if isinstance(stmt, ast.ClassDef):
            info.classes[stmt.name] = _class_info(stmt, module)
    counts: dict[str, int] = {}
    for stmt in node.body:
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) or not stmt.args.args:
            continue
        me = stmt.args.args[0].arg
        for sub in scope_nodes(stmt.body):
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(sub, ast.Assign):
                targets, value = sub.targets, sub.value if len(sub.targets) == 1 else None
            elif isinstance(sub, (ast.AnnAssign, ast.AugAssign)):
                targets, value = [sub.target], sub.value if isinstance(sub, ast.AnnAssign) else None
            for target in targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == me:
                    counts[target.attr] = counts.get(target.attr, 0) + 1
                    if value is not None:
                        info.instance[target.attr] = (value, stmt)
    for attr, count in counts.items():
        if count != 1 or attr in info.attrs:
            info.instance.pop(attr, None)
    return info


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    parents: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
    return parents


def build_module(file: str, tree: ast.Module) -> Module:
    name = module_name(file)
    module = Module(file, name, tree, consts=single_bindings(tree.body))
    module.imports = _imports(tree, name, file.endswith("__init__.py"))
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            module.classes[stmt.name] = _class_info(stmt, module)
    for node in ast.walk(tree):  # classes defined inside functions or blocks
        if isinstance(node, ast.ClassDef) and id(node) not in module.class_of:
            _class_info(node, module)
    module.parents = _parents(tree)
    return module


class Index:
    """The bot's modules, to follow names from one to another."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self._by_name: dict[str, Module] = {m.name: m for m in modules}
        self._scopes: dict[int, FunctionScope] = {}

    def module(self, dotted: str) -> Module | None:
        """The bot's module of that dotted name: exactly, else the one module whose name ends
        with it (the source's folder may sit above the bot's import root)."""
        if dotted in self._by_name:
            return self._by_name[dotted]
        if dotted.split(".")[0] in LIBRARIES:
            return None
        found = [m for m in self.modules if m.name.endswith("." + dotted)]
        return found[0] if len(found) == 1 else None

    def function_scope(self, node: ast.AST) -> FunctionScope:
        scope = self._scopes.get(id(node))
        if scope is None:
            assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            args = node.args
            params = frozenset(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                               *([args.vararg] if args.vararg else []),
                                               *([args.kwarg] if args.kwarg else [])])
            body = node.body if isinstance(node.body, list) else []
            local = {k: v for k, v in single_bindings(body).items() if k not in params}
            scope = self._scopes[id(node)] = FunctionScope(node, params, local)
        return scope

    # -- resolution ----------------------------------------------------------------------------

    def resolve(self, expr: ast.expr, where: Where, depth: int = 0) -> Ref:
        """What a name or attribute stands for; None when it cannot be told."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(expr, ast.Name):
            return self._resolve_name(expr.id, where, depth)
        if isinstance(expr, ast.Attribute):
            base = expr.value
            if (isinstance(base, ast.Name) and where.cls is not None and where.func is not None
                    and self._is_self(base.id, where)):
                return self._class_attr(where.cls, expr.attr, depth, instance=True)
            owner = self.resolve(base, where, depth + 1)
            if isinstance(owner, ClassRef):
                return self._class_attr(owner.cls, expr.attr, depth, instance=False)
            if isinstance(owner, External):
                return self._external(owner.dotted + "." + expr.attr)
            return None
        return None

    def _is_self(self, name: str, where: Where) -> bool:
        node = where.func.node if where.func else None
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.args.args:
            return False
        return node.args.args[0].arg == name and name in ("self", "cls")

    def _resolve_name(self, name: str, where: Where, depth: int) -> Ref:
        if where.func is not None:
            if name in where.func.params:
                return PARAM
            if name in where.func.locals:
                return Value(where.func.locals[name], where)
        module = where.module
        if name in module.consts:
            return Value(module.consts[name], Where(module))
        if name in module.classes:
            return ClassRef(module.classes[name])
        if name in module.imports:
            dotted, attr = module.imports[name]
            return self._imported(dotted, attr, depth)
        return None

    def _imported(self, dotted: str, attr: str | None, depth: int) -> Ref:
        if attr is None:
            return self._external(dotted)
        target = self.module(dotted)
        if target is None:
            return self._external(dotted + "." + attr)
        return self._module_attr(target, attr, depth)

    def _external(self, dotted: str) -> Ref:
        """A dotted path: one of the bot's modules (or something in one), else outside it. A
        module of the bot is given as External too: attributes are looked up inside it."""
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            target = self.module(".".join(parts[:cut]))
            if target is None:
                continue
            if cut == len(parts):
                return External(target.name)
            ref: Ref = self._module_attr(target, parts[cut], 0)
            for part in parts[cut + 1:]:
                ref = self._class_attr(ref.cls, part, 0, instance=False) if isinstance(ref, ClassRef) else None
            return ref
        return External(dotted)

    def _module_attr(self, module: Module, attr: str, depth: int) -> Ref:
        if attr in module.consts:
            return Value(module.consts[attr], Where(module))
        if attr in module.classes:
            return ClassRef(module.classes[attr])
        if attr in module.imports and depth < MAX_DEPTH:
            dotted, name = module.imports[attr]
            return self._imported(dotted, name, depth + 1)
        return None

    def _class_attr(self, cls: ClassInfo, attr: str, depth: int, instance: bool, seen: int = 0) -> Ref:
        if depth > MAX_DEPTH or seen > 20:
            return None
        if attr in cls.attrs:
            return Value(cls.attrs[attr], Where(cls.module, cls))
        if attr in cls.classes:
            return ClassRef(cls.classes[attr])
        if instance and attr in cls.instance:
            value, method = cls.instance[attr]
            return Value(value, Where(cls.module, cls, self.function_scope(method)))
        for base in cls.node.bases:
            ref = self.resolve(base, Where(cls.module), depth + 1)
            if isinstance(ref, ClassRef) and ref.cls is not cls:
                found = self._class_attr(ref.cls, attr, depth + 1, instance, seen + 1)
                if found is not None:
                    return found
        return None

    def qualified(self, expr: ast.expr, where: Where) -> str | None:
        """The dotted path of an imported name (`EC.visibility_of` ->
        `selenium.webdriver.support.expected_conditions.visibility_of`), else None."""
        ref = self.resolve(expr, where)
        return ref.dotted if isinstance(ref, External) else None

    # -- values --------------------------------------------------------------------------------

    def text(self, expr: ast.expr, where: Where, depth: int = 0) -> Text | _Param | None:
        """The string an expression is, when the source writes it: a literal, an f-string whose
        parts are such strings, a `+` of them, or a name bound to one (its line is the
        literal's). PARAM for a parameter; None for anything computed."""
        if depth > MAX_DEPTH:
            return None
        if isinstance(expr, ast.Constant):
            return Text(expr.value, expr.lineno, where.module.file) if isinstance(expr.value, str) else None
        if isinstance(expr, (ast.Name, ast.Attribute)):
            ref = self.resolve(expr, where, depth)
            if ref is PARAM:
                return PARAM
            if isinstance(ref, Value):
                return self.text(ref.node, ref.where, depth + 1)
            return None
        if isinstance(expr, ast.JoinedStr):
            pieces = []
            for part in expr.values:
                if isinstance(part, ast.FormattedValue):
                    if part.conversion != -1 or part.format_spec is not None:
                        return None
                    part_text = self.text(part.value, where, depth + 1)
                else:
                    part_text = self.text(part, where, depth + 1)
                if not isinstance(part_text, Text):
                    return None
                pieces.append(part_text.value)
            return Text("".join(pieces), expr.lineno, where.module.file)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            pieces = []
            for operand in added(expr):
                operand_text = self.text(operand, where, depth + 1)
                if not isinstance(operand_text, Text):
                    return None
                pieces.append(operand_text.value)
            return Text("".join(pieces), expr.lineno, where.module.file)
        return None

    def value(self, expr: ast.expr, where: Where, depth: int = 0) -> tuple[ast.expr, Where]:
        """The expression a name stands for (the name itself when it stands for nothing known)."""
        while depth <= MAX_DEPTH and isinstance(expr, (ast.Name, ast.Attribute)):
            ref = self.resolve(expr, where, depth)
            if not isinstance(ref, Value):
                break
            expr, where, depth = ref.node, ref.where, depth + 1
        return expr, where

    def constant(self, expr: ast.expr, where: Where) -> object:
        """A bool or int literal (get_by_role's checked=, nth's index), else None."""
        node, _ = self.value(expr, where)
        if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int)):
            return node.value
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
                and type(node.operand.value) is int):
            return -node.operand.value
        return None
