"""HTML pages and accessibility trees as element fingerprints.

A snapshot is parsed into an lxml element tree (for the declared selectors) and a fingerprint:
one record per element, in document order, of what identifies it and where it sits:

    tag      the element name (an accessibility node: its role, lower case)
    id       the id attribute
    name     the name attribute (an accessibility node: its accessible name)
    cls      the class names, sorted
    text     the element's own text, whitespace collapsed, at most 80 characters
             (an accessibility node: its value, else its description)
    attrs    the attributes automation tools select by: type, role, aria-label, data-testid,
             data-test, data-qa, placeholder, title, alt, for
    parent   the index of its parent element (-1 for the root); the tag path from the root
             follows from it

Runs of digits in text and attributes count as one `#`, so that a date, a counter or an
invoice number changing is not a change of the page. What a bot cannot act on is left out: the
<head> (styles, scripts, meta tags), <script>, <style>, <noscript>, <template>, comments.

Accepted accessibility trees: Playwright's `page.accessibility.snapshot()` (nested
`{role, name, value, description, children}`) and Chrome DevTools' `Accessibility.getFullAXTree`
(`{"nodes": [...]}` or the bare list of AX nodes with `nodeId`, `role`, `name`, `childIds`,
`ignored`; ignored nodes are left out, their children kept).

Bounds: at most MAX_ELEMENTS elements and MAX_DEPTH levels (the root is level 1); a snapshot
beyond either is refused with a SnapshotError naming the limit, never cut, since a cut page
would drift for no reason. libxml2's HTML parser stops reading at 256 levels, so a page nested
deeper could not be read whole anyway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from . import SnapshotError

SKIP = frozenset({"head", "script", "style", "noscript", "template", "meta", "link", "base"})
KEY_ATTRS = ("type", "role", "aria-label", "data-testid", "data-test", "data-qa", "placeholder", "title", "alt",
             "for")
_KEY_SET = frozenset(KEY_ATTRS)
MAX_ELEMENTS = 100_000
MAX_DEPTH = 250
MAX_TEXT = 80
_DIGITS = re.compile(r"\d+")
_ANY_DIGIT = re.compile(r"\d").search
_BAD_TAG = re.compile(r"[^a-z0-9_.-]+")


@dataclass
class Fingerprint:
    """The elements of one snapshot (parallel lists, index = document order)."""

    kind: str
    tag: list[str] = field(default_factory=list)
    id: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    cls: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    attrs: list[str] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tag)

    def tail(self, i: int, n: int = 3) -> str:
        """The last `n` tags of element `i`'s path from the root (`…/form/div/input`)."""
        tags = []
        while i >= 0 and len(tags) <= n:
            tags.append(self.tag[i])
            i = self.parent[i]
        more = len(tags) > n
        return ("…/" if more else "") + "/".join(reversed(tags[:n]))

    def to_json(self) -> dict:
        return {"kind": self.kind, "tag": self.tag, "id": self.id, "name": self.name, "cls": self.cls,
                "text": self.text, "attrs": self.attrs, "parent": self.parent}

    @classmethod
    def from_json(cls, d: dict) -> "Fingerprint":
        return cls(d["kind"], d["tag"], d["id"], d["name"], d["cls"], d["text"], d["attrs"], d["parent"])

    def describe(self, i: int) -> str:
        """A short name for element `i`: `<button#send.primary name=x "Send">`."""
        out = self.tag[i]
        if self.id[i]:
            out += f"#{self.id[i]}"
        if self.cls[i]:
            out += "." + ".".join(self.cls[i].split()[:2])
        if self.name[i]:
            out += f" name={_short(self.name[i], 30)!r}" if self.kind == "html" else f" {_short(self.name[i], 30)!r}"
        if self.text[i] and self.kind == "html":
            out += f" {_short(self.text[i], 30)!r}"
        return f"<{out}>"


def path_ids(*fingerprints: Fingerprint) -> list[list[int]]:
    """Each element's tag path from the root as a number, equal for equal paths across the
    fingerprints given. Paths are never built as strings: on a deep tree they would take the
    square of its depth."""
    table: dict[tuple[int, str], int] = {}
    out = []
    for fp in fingerprints:
        ids: list[int] = []
        for tag, p in zip(fp.tag, fp.parent):
            key = (ids[p] if p >= 0 else -1, tag)
            got = table.get(key)
            if got is None:
                got = table[key] = len(table)
            ids.append(got)
        out.append(ids)
    return out


def _too_deep() -> SnapshotError:
    return SnapshotError(f"nested too deeply (more than {MAX_DEPTH} levels)")


def _too_many(what: str = "elements") -> SnapshotError:
    return SnapshotError(f"too many {what} (more than {MAX_ELEMENTS:,})")


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _norm(value: str | None) -> str:
    if not value:
        return ""
    value = " ".join(value.split())
    if len(value) > MAX_TEXT:
        value = value[:MAX_TEXT]
    return _DIGITS.sub("#", value) if _ANY_DIGIT(value) else value


def fingerprint(root, kind: str) -> tuple[Fingerprint, dict]:
    """The fingerprint of an lxml tree, and {element: index} for mapping selector matches."""
    fp = Fingerprint(kind)
    tags, ids, names, clss, texts, attrss, parents = fp.tag, fp.id, fp.name, fp.cls, fp.text, fp.attrs, fp.parent
    index: dict = {}
    depths: list[int] = []
    n = 0
    skip, key_attrs, key_set, norm = SKIP, KEY_ATTRS, _KEY_SET, _norm
    from lxml import etree

    for el in root.iter(etree.Element):  # elements only: no comments, processing instructions
        tag = el.tag
        if not isinstance(tag, str):
            continue
        p = el.getparent()
        if p is None:
            pi = -1
        else:
            pi = index.get(p, -2)
            if pi == -2:
                continue  # inside a part left out
        if tag in skip:
            continue
        if n >= MAX_ELEMENTS:
            raise _too_many()
        depth = depths[pi] + 1 if pi >= 0 else 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        depths.append(depth)
        keys = el.keys()
        if keys:
            get = el.get
            c = get("class")
            ids.append(get("id") or "")
            names.append(norm(get("name")))
            clss.append(" ".join(sorted(c.split())) if c else "")
            attrss.append("".join(f"{k}={norm(get(k))};" for k in key_attrs if k in keys)
                          if not key_set.isdisjoint(keys) else "")
        else:
            ids.append("")
            names.append("")
            clss.append("")
            attrss.append("")
        tags.append(tag)
        t = el.text
        texts.append(norm(t) if t else "")
        parents.append(pi)
        index[el] = n
        n += 1
    return fp, index


# -- HTML ----------------------------------------------------------------------------------------

def parse_html(data: bytes):
    """An HTML page as an lxml tree; SnapshotError when it is not one."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    head = data[:512].lstrip()
    if not head:
        raise SnapshotError("empty snapshot: no HTML")
    if head.startswith(b"\x89PNG"):
        raise SnapshotError("this is a PNG image, not HTML (send it as image/png or kind=png)")
    if head.startswith((b"{", b"[")):
        raise SnapshotError("this looks like JSON, not HTML (an accessibility tree is application/json or kind=a11y)")
    if b"<" not in data:
        raise SnapshotError("not HTML: no tag found")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SnapshotError("not HTML: binary data")
    from lxml import etree

    try:
        root = etree.fromstring(data, etree.HTMLParser())
    except (etree.ParserError, etree.XMLSyntaxError, ValueError) as exc:
        raise SnapshotError(f"not HTML: {exc}") from None
    if root is None or len(root) == 0 and not (root.text or "").strip():
        raise SnapshotError("not HTML: no element found")
    return root


# -- accessibility trees -------------------------------------------------------------------------

def _value(v) -> str | None:
    """A Chrome AX value (`{"type": ..., "value": ...}`) or a plain value, as text."""
    if isinstance(v, dict):
        v = v.get("value")
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _tag(role: str | None) -> str:
    if not isinstance(role, str):
        role = _value(role)  # a Playwright tree from elsewhere may hold `"role": 5` or `{"value": ...}`
    t = _BAD_TAG.sub("-", (role or "node").strip().lower()).strip("-.") or "node"
    return t if t[0].isalpha() else f"role-{t}"


def _element(role, name, value, description, extra: dict | None = None):
    from lxml import etree

    el = etree.Element(_tag(role))
    if name:
        el.set("name", _clean(name))
    if value:
        el.set("value", _clean(value))
    if description:
        el.set("description", _clean(description))
    for k, v in (extra or {}).items():
        if isinstance(k, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", k, re.ASCII) and k.lower() not in ("name", "value",
                                                                                         "description"):
            s = _value(v)
            if s is not None:
                el.set(k.lower(), _clean(s))
    el.text = _clean(value or description or "") or None
    return el


def _clean(s: str) -> str:
    """Text lxml accepts in an attribute (no control characters, lone surrogates, U+FFFE or U+FFFF)."""
    return "".join(c for c in s if c in "\t\n\r" or (ord(c) >= 32 and not 0xD800 <= ord(c) <= 0xDFFF
                                                       and c not in "\ufffe\uffff"))[:2000]


def parse_a11y(data: bytes):
    """An accessibility tree (JSON) as an lxml tree; SnapshotError when it is not one."""
    if isinstance(data, (bytes, bytearray)):
        if not data.strip():
            raise SnapshotError("empty snapshot: no accessibility tree")
        if data[:8].startswith(b"\x89PNG"):
            raise SnapshotError("this is a PNG image, not an accessibility tree (send it as image/png or kind=png)")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"not an accessibility tree: the JSON does not parse ({exc})") from None
        except RecursionError:
            raise SnapshotError("not an accessibility tree: the JSON is nested too deeply") from None
    else:
        doc = data
    if isinstance(doc, dict) and isinstance(doc.get("nodes"), list):
        return _from_ax_nodes(doc["nodes"])
    if isinstance(doc, list) and doc and all(isinstance(n, dict) and "nodeId" in n for n in doc):
        return _from_ax_nodes(doc)
    if isinstance(doc, dict) and "role" in doc:
        return _from_playwright(doc)
    raise SnapshotError("not an accessibility tree: expected Playwright's page.accessibility.snapshot() "
                        "({role, name, children}) or Chrome DevTools' AX nodes ({nodes: [...]})")


_PW_OWN = ("role", "name", "value", "description", "children")


def _from_playwright(doc: dict):
    root = _element(doc.get("role"), _value(doc.get("name")), _value(doc.get("value")),
                    _value(doc.get("description")), {k: v for k, v in doc.items() if k not in _PW_OWN})
    stack = [(doc, root, 1)]
    count = 1
    while stack:
        node, el, depth = stack.pop()
        children = node.get("children") or []
        if not isinstance(children, list):
            raise SnapshotError("not an accessibility tree: `children` must be a list")
        if children and depth >= MAX_DEPTH:
            raise _too_deep()
        for child in children:
            if not isinstance(child, dict):
                raise SnapshotError("not an accessibility tree: a child is not an object")
            count += 1
            if count > MAX_ELEMENTS:
                raise _too_many("nodes")
            c = _element(child.get("role"), _value(child.get("name")), _value(child.get("value")),
                         _value(child.get("description")), {k: v for k, v in child.items() if k not in _PW_OWN})
            el.append(c)
            stack.append((child, c, depth + 1))
    return root


def _from_ax_nodes(nodes: list):
    if not nodes:
        raise SnapshotError("not an accessibility tree: no nodes")
    if len(nodes) > MAX_ELEMENTS:
        raise _too_many("nodes")
    by_id: dict[str, dict] = {}
    for n in nodes:
        if not isinstance(n, dict) or "nodeId" not in n:
            raise SnapshotError("not an accessibility tree: every AX node needs a nodeId")
        by_id[str(n["nodeId"])] = n
    children_of = {k: [str(c) for c in (n.get("childIds") if isinstance(n.get("childIds"), list) else [])
                       if str(c) in by_id] for k, n in by_id.items()}
    referenced = {c for cs in children_of.values() for c in cs}
    roots = [k for k, n in by_id.items() if k not in referenced and (n.get("parentId") is None
                                                                       or str(n.get("parentId")) not in by_id)]
    if not roots:
        raise SnapshotError("not an accessibility tree: no root node (every node is some node's child)")
    from lxml import etree

    top = etree.Element("axtree")
    seen: set[str] = set()

    def make(n: dict):
        props = {}
        for p in n.get("properties") if isinstance(n.get("properties"), list) else []:
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                props[p["name"]] = p.get("value")
        return _element(_value(n.get("role")), _value(n.get("name")), _value(n.get("value")),
                        _value(n.get("description")), props)

    for r in roots:
        # (node id, element its children go under, that element's level below `top`)
        stack: list[tuple[str, object, int]] = [(r, top, 0)]
        while stack:
            k, parent_el, depth = stack.pop()
            if k in seen:
                continue  # a cycle or a node listed twice
            seen.add(k)
            n = by_id[k]
            if n.get("ignored"):
                el = parent_el
            else:
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep()
                el = make(n)
                parent_el.append(el)
            for c in reversed(children_of[k]):
                stack.append((c, el, depth))
    if len(top) == 0:
        raise SnapshotError("not an accessibility tree: every node is ignored")
    if len(top) == 1:
        import copy

        return copy.deepcopy(top[0])  # a document of its own: absolute XPaths start at it
    return top
