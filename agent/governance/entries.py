"""Where each bot sits in the estate file: its lines and every string value with the line it is on.

The checks name `FILE:LINE` of what they find. The estate loader (botwatch.config.estate) indexes the
lines of keys, for its validation errors; the checks need the values themselves, at the line
where each value is written (a secret is where its text is), and the span of each bot's entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config.estate import LoadedEstate


@dataclass(frozen=True)
class EstateEntry:
    """A bot's entry in the estate file: its lines and every string value with its line."""

    file: str
    first: int  # 1-based, inclusive
    last: int
    strings: tuple[tuple[str, str, int], ...]  # (dotted key, value, line)
    lines: tuple[str, ...] = ()  # the whole estate file (shared by every entry)


def estate_entries(estate: LoadedEstate) -> dict[str, EstateEntry]:
    """bot name -> its entry, read from the estate file (empty when there is no file)."""
    if estate.path is None:
        return {}
    try:
        text = Path(estate.path).read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    all_lines = tuple(text.splitlines())
    bots = _child(root, "bots")
    out: dict[str, EstateEntry] = {}
    if not isinstance(bots, yaml.SequenceNode):
        return out
    for node in bots.value:
        name = _child(node, "name")
        if not isinstance(name, yaml.ScalarNode):
            continue
        strings: list[tuple[str, str, int]] = []
        _strings(node, "", strings)
        out[name.value] = EstateEntry(str(estate.path), node.start_mark.line + 1, _last_line(node), tuple(strings),
                                      all_lines)
    return out


def _last_line(node: yaml.Node) -> int:
    """The 1-based line where the node's last value ends (a block mapping's own end mark is the
    start of whatever follows it)."""
    if isinstance(node, yaml.ScalarNode):
        end = node.end_mark
        return max(node.start_mark.line + 1, end.line + (1 if end.column else 0))
    children = [v for kv in node.value for v in kv] if isinstance(node, yaml.MappingNode) else list(node.value)
    return max([node.start_mark.line + 1] + [_last_line(c) for c in children])


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                value: yaml.Node = v
                return value
    return None


def _strings(node: yaml.Node, path: str, out: list[tuple[str, str, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            _strings(v, f"{path}.{k.value}" if path else str(k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _strings(item, f"{path}[{i}]", out)
    elif isinstance(node, yaml.ScalarNode) and isinstance(node.value, str):
        out.append((path, node.value, node.start_mark.line + 1))
