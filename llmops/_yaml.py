"""Safe YAML for every file llmops reads (suites, prompt front matter, labels).

``yaml.safe_load`` never runs code, but it still lets a small file cost a lot: aliases expand
by reference ("billion laughs": a 1 KB file that is 10^9 nodes to anything that walks it, e.g.
JSON-encoding the params for a cache key), deep nesting overflows the recursion limit, and some
scalars raise plain ``ValueError`` (``2001-02-30``, a 5000-digit integer). Here the text is
composed to a node tree first, checked against a node and depth budget, and only then
constructed; every problem is a :class:`YAMLProblem` with the 1-based line when known.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError

MAX_NODES = 2_000_000
MAX_DEPTH = 200


class YAMLProblem(Exception):
    """Why a YAML text was refused, and where (callers wrap it in their own error class)."""

    def __init__(self, message: str, line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.key = key


class _SafeConstructorMixin:
    """Turn the plain ``ValueError`` of some scalars into a constructor error with a line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)  # type: ignore[misc]
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(None, None, f"invalid value: {exc}", node.start_mark) from None


class SafeLoader(_SafeConstructorMixin, yaml.SafeLoader):
    """``yaml.SafeLoader`` (YAML 1.1 scalars: ``yes`` is a boolean) with line-aware value errors."""


class StrictLoader(SafeLoader):
    """Safe loader with YAML 1.2 booleans: only true/false, so ``expected: yes`` stays a string."""


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                   re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _check_budget(node: yaml.Node, max_nodes: int) -> None:
    """Walk the tree as a consumer would (aliases expanded), iteratively; raise on excess."""
    budget = max_nodes
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise YAMLProblem(f"YAML is too large or too deep (more than {max_nodes} nodes after "
                              "expanding aliases); aliases may be recursive")
        if depth > MAX_DEPTH:
            raise YAMLProblem(f"YAML is too large or too deep (nesting deeper than {MAX_DEPTH} levels)",
                              line=current.start_mark.line + 1)
        if isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _check_duplicate_keys(node: yaml.Node) -> None:
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    seen_nodes: set[int] = set()
    while stack:
        current, depth = stack.pop()
        if id(current) in seen_nodes or depth > MAX_DEPTH:
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise YAMLProblem(f"duplicate key '{key.value}'", line=key.start_mark.line + 1,
                                          key=key.value)
                    keys.add(key.value)
                stack.append((value, depth + 1))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in current.value)


def load_yaml(text: str, *, loader: type[SafeLoader] = StrictLoader, max_nodes: int = MAX_NODES,
              duplicate_keys: bool = True) -> tuple[Any, yaml.Node | None]:
    """Parse one YAML document safely; returns ``(data, root node)`` (``(None, None)`` if empty).

    Raises:
        YAMLProblem: invalid YAML, an unsafe tag, a value that cannot be constructed, too many
            nodes after alias expansion, nesting deeper than ``MAX_DEPTH``, or (with
            ``duplicate_keys``) a key given twice in one mapping.
    """
    try:
        node = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", line=_line(exc)) from None
    except RecursionError:
        raise YAMLProblem(f"YAML is too large or too deep (nesting deeper than {MAX_DEPTH} levels)") from None
    if node is None:
        return None, None
    _check_budget(node, max_nodes)
    if duplicate_keys:
        _check_duplicate_keys(node)
    constructor = loader("")
    try:
        data = constructor.construct_document(node)
    except yaml.YAMLError as exc:
        raise YAMLProblem(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", line=_line(exc)) from None
    except RecursionError:
        raise YAMLProblem(f"YAML is too large or too deep (nesting deeper than {MAX_DEPTH} levels)") from None
    return data, node


def line_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest node along ``loc`` in a composed YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
