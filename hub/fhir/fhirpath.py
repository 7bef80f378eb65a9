"""A deliberately small FHIRPath subset: enough for SearchParameter.expression as the hub indexes them.

Supported: `A | B`, paths `Type.a.b`, choice types via `as Type` / `.as(Type)` / `.ofType(Type)`,
`.where(resolve() is Type)`, `.where(field='literal')`, `.extension('url')`. Anything else is rejected when
the SearchParameter is loaded, so an unsupported definition fails loudly at start-up, not silently at search.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Step = Callable[[list[Any]], list[Any]]


class UnsupportedExpression(ValueError):
    """The expression uses FHIRPath beyond the subset the indexer evaluates."""


@dataclass(frozen=True)
class CompiledPath:
    """One alternative of an expression: the resource type it applies to and its steps."""

    resource_type: str
    steps: tuple[Step, ...]
    # The top-level element the path starts from (`name`, or `valueQuantity` for a typed choice), so the indexer
    # can skip a path whose element is absent without evaluating it; None: always evaluate.
    root: str | None = None
    root_is_choice: bool = False  # a bare `value` also matches `valueString`, `valueQuantity`, ...

    def evaluate(self, resource: dict[str, Any]) -> list[Any]:
        nodes: list[Any] = [resource]
        for step in self.steps:
            nodes = step(nodes)
            if not nodes:
                break
        return nodes


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def compile_expression(expression: str) -> list[CompiledPath]:
    """Compile a SearchParameter expression into one CompiledPath per `|` alternative."""
    return [_compile_alternative(alt) for alt in split_top(expression, "|") if alt]


def _strip_parens(text: str) -> str:
    while text.startswith("(") and text.endswith(")"):
        inner = text[1:-1]
        depth = 0
        balanced = True
        for ch in inner:
            depth += ch == "("
            depth -= ch == ")"
            if depth < 0:
                balanced = False
                break
        if not balanced:
            break
        text = inner.strip()
    return text


_AS_SUFFIX = re.compile(r"^(?P<path>.+?)\s+as\s+(?P<type>[A-Za-z]+)$")


def _compile_alternative(text: str) -> CompiledPath:
    text = _strip_parens(text)
    as_type: str | None = None
    match = _AS_SUFFIX.match(text)
    if match:
        text, as_type = _strip_parens(match["path"]), match["type"]
    segments = split_top(text, ".")
    if not segments or not re.fullmatch(r"[A-Z][A-Za-z]+", segments[0]):
        raise UnsupportedExpression(f"expression must start with a resource type: {text!r}")
    steps: list[Step] = []
    names = segments[1:]
    root, root_is_choice = _root_of(names, as_type)
    i = 0
    while i < len(names):
        seg = names[i]
        nxt = names[i + 1] if i + 1 < len(names) else None
        choice = _type_arg(nxt) if nxt else None
        if choice is None and nxt is None and as_type:
            choice = as_type
        if re.fullmatch(r"[a-z][A-Za-z0-9]*", seg):
            steps.append(_child(seg, choice))
            i += 2 if (nxt and _type_arg(nxt)) else 1
            continue
        steps.append(_function(seg))
        i += 1
    return CompiledPath(segments[0], tuple(steps), root, root_is_choice)


def _root_of(names: list[str], as_type: str | None) -> tuple[str | None, bool]:
    """(first element name, may it be a choice[x] prefix?) for the skip-if-absent check of the indexer."""
    if not names:
        return None, False
    first = names[0]
    if re.fullmatch(r"[a-z][A-Za-z0-9]*", first):
        choice = _type_arg(names[1]) if len(names) > 1 else (as_type if len(names) == 1 else None)
        if choice:
            return first + choice[0].upper() + choice[1:], False
        return first, True
    if first.startswith("extension("):
        return "extension", False
    return None, False


def _type_arg(segment: str) -> str | None:
    m = re.fullmatch(r"(?:as|ofType)\(([A-Za-z]+)\)", segment)
    return m.group(1) if m else None


def _child(name: str, choice: str | None) -> Step:
    if choice:
        key = name + choice[0].upper() + choice[1:]
        return lambda nodes: _flatten(n.get(key) for n in nodes if isinstance(n, dict))

    def step(nodes: list[Any]) -> list[Any]:
        found: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            if name in node:
                found.extend(_flatten([node[name]]))
            else:  # polymorphic element value[x] without a type filter: all variants
                found.extend(
                    _flatten(
                        v for k, v in node.items() if k.startswith(name) and k[len(name) : len(name) + 1].isupper()
                    )
                )
        return found

    return step


def _function(segment: str) -> Step:
    m = re.fullmatch(r"where\(resolve\(\)\s+is\s+([A-Za-z]+)\)", segment)
    if m:
        target = m.group(1)
        return lambda nodes: [n for n in nodes if reference_type(n) == target]
    m = re.fullmatch(r"where\(([a-zA-Z]+)\s*=\s*'([^']*)'\)", segment)
    if m:
        field, literal = m.group(1), m.group(2)
        return lambda nodes: [n for n in nodes if isinstance(n, dict) and n.get(field) == literal]
    m = re.fullmatch(r"extension\('([^']+)'\)", segment)
    if m:
        url = m.group(1)
        return lambda nodes: [
            e for n in nodes if isinstance(n, dict) for e in n.get("extension", []) if e.get("url") == url
        ]
    raise UnsupportedExpression(f"unsupported FHIRPath step {segment!r}")


def reference_type(node: Any) -> str | None:
    """Type named in a Reference (`Patient/1`, `http://x/fhir/Patient/1`, or `type`), else None."""
    if not isinstance(node, dict):
        return None
    ref = node.get("reference")
    if isinstance(ref, str) and "/" in ref:
        parts = ref.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2:
            return parts[-2]
    typ = node.get("type")
    return typ if isinstance(typ, str) else None


def _flatten(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, list):
            out.extend(x for x in v if x is not None)
        else:
            out.append(v)
    return out
