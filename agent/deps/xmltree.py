"""A small element tree with line numbers, for XML the extractors read (UiPath workflows, the
Object Repository's descriptors).

The standard library's expat parser builds it: ElementTree keeps no line numbers, and lxml is an
optional extra. A DOCTYPE is refused (agent/core/safexml.py), so no entity is ever expanded. The
tree is built and walked without recursion: a document nested thousands of levels deep costs
memory in proportion to its size, never the interpreter's stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NoReturn
from xml.parsers import expat

from ..core.safexml import refuse_doctypes

__all__ = ["Node", "XmlError", "parse", "decode"]

_SEP = "}"  # expat's namespace separator: names come as "uri}local" (a local name has no "}")


class XmlError(ValueError):
    """The text is not XML this reader takes; `line` is where it stopped (0: before any line)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


@dataclass(eq=False)
class Node:
    ns: str  # namespace URI, "" for none
    name: str  # local name, e.g. "NClick" or the property element "NClick.Target"
    attrs: dict[str, str]  # unqualified attributes by name; qualified ones as "uri}local"
    line: int  # where its start tag begins (1-based)
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Its own character data (not its children's)."""
        return "".join(self.text_parts)

    def iter(self) -> Iterator[Node]:
        """This node and every node under it, in document order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))


def decode(data: bytes) -> str:
    """The text of a file Studio writes (XML, JSON): UTF-8 or UTF-16 by its byte order mark,
    else UTF-8. An XML declaration's encoding is not trusted: the Object Repository writes UTF-8
    that says utf-16. XmlError, with the line of the first byte that is not text, otherwise."""
    body, codec = data, "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        body = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        line = body[:exc.start].decode(codec, "replace").count("\n") + 1
        raise XmlError(f"not {codec.upper()} text ({exc.reason})", line) from None


def parse(text: str) -> Node:
    """The root node of `text`; XmlError (with the line) when it is not well-formed XML or has a
    DOCTYPE."""
    parser = expat.ParserCreate(namespace_separator=_SEP)
    parser.buffer_text = True
    root: list[Node] = []
    stack: list[Node] = []

    def split(qname: str) -> tuple[str, str]:
        uri, sep, local = qname.rpartition(_SEP)
        return (uri, local) if sep else ("", qname)

    def start(qname: str, attrs: dict[str, str]) -> None:
        uri, local = split(qname)
        node = Node(uri, local, attrs, parser.CurrentLineNumber, stack[-1] if stack else None)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(_qname: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text_parts.append(data)

    def refuse(*_args: object) -> NoReturn:
        raise XmlError("has a DOCTYPE: refused (entity declarations can expand without bound or read "
                       "other files)", parser.CurrentLineNumber)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    refuse_doctypes(parser, refuse)
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        raise XmlError(f"not well-formed XML: {expat.errors.messages[exc.code]}", exc.lineno) from None
    if not root:
        raise XmlError("no element")
    return root[0]
