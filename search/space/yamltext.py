"""YAML as users write it: no key twice in a mapping, `1e-3` a number; bounded (its size,
its nesting, what its aliases expand to); and the line of a key in a document."""

from __future__ import annotations

import re
from typing import Any

import yaml


class Loader(yaml.SafeLoader):
    """YAML as users write it: no key twice in a mapping, `1e-3` read as a number."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(key, line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        self.key, self.line, self.first = key, line, first


# YAML 1.1 (PyYAML) reads 1e-3 and 1E5 as strings: they need a dot there. YAML 1.2 and
# every user read them as numbers; so does this loader.
Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# A space file is a few KiB of some hundred values; these bounds leave room for a hundred
# times that and refuse, in milliseconds, what would take gigabytes ("billion laughs").
MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_VALUES = 100_000


class TooLarge(Exception):
    def __init__(self, reason: str, line: int | None) -> None:
        self.reason, self.line = reason, line


def compose_bounded(text: str) -> yaml.Node | None:
    """The document's node graph, refused (TooLarge) when the text is over MAX_BYTES, nests
    deeper than MAX_DEPTH or its aliases expand it to over MAX_VALUES values."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise TooLarge(f"{size:,} bytes, over the {MAX_BYTES:,} a space file may hold", None)
    depth = 0
    for event in yaml.parse(text, Loader=Loader):  # events: no recursion, no expansion
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise TooLarge(
                    f"nested deeper than {MAX_DEPTH} levels", mark.line + 1 if mark else None
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    root = yaml.compose(text, Loader=Loader)
    if root is not None:
        _expanded(root, {}, set())
    return root


def _expanded(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values `node` stands for once every alias is copied out; an alias shares
    its anchor's node, so each node is counted once and the count stays fast."""
    if id(node) in sizes:
        return sizes[id(node)]
    line = node.start_mark.line + 1 if node.start_mark else None
    if id(node) in open_:
        raise TooLarge("an alias refers to a node that holds it", line)
    open_.add(id(node))
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = node.value if isinstance(node, yaml.SequenceNode) else []
    total = 1 + sum(_expanded(child, sizes, open_) for child in children)
    if total > MAX_VALUES:
        raise TooLarge(
            f"its aliases expand to over {MAX_VALUES:,} values (a space file has hundreds)",
            line,
        )
    open_.discard(id(node))
    sizes[id(node)] = total
    return total


def line_of(root: yaml.Node | None, loc: list[str]) -> int | None:
    node, line = root, None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == part:
                node, line = value_node, key_node.start_mark.line + 1
                break
        else:
            break
    return line
