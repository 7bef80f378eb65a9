"""Concepts inside a CodeSystem resource: find one, walk all, and the text form used for matching."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

Concept = dict[str, Any]


def walk(code_system: dict[str, Any]) -> Iterator[tuple[Concept, str | None]]:
    """Every concept of a CodeSystem, nested ones included, with its parent code (None at the top)."""
    stack: list[tuple[Concept, str | None]] = [(c, None) for c in reversed(code_system.get("concept", []))]
    while stack:
        concept, parent = stack.pop()
        yield concept, parent
        stack.extend((c, concept["code"]) for c in reversed(concept.get("concept", [])))


def find(code_system: dict[str, Any], code: str) -> tuple[Concept, str | None] | None:
    """The concept with `code` and its parent code; case-insensitive when the CodeSystem says so."""
    sensitive = code_system.get("caseSensitive", True)
    wanted = code if sensitive else code.casefold()
    for concept, parent in walk(code_system):
        have = concept["code"] if sensitive else concept["code"].casefold()
        if have == wanted:
            return concept, parent
    return None


def descendants(code_system: dict[str, Any], code: str) -> set[str]:
    """Codes below `code` in the CodeSystem's concept tree (not `code` itself)."""
    children: dict[str, list[str]] = {}
    for concept, parent in walk(code_system):
        if parent is not None:
            children.setdefault(parent, []).append(concept["code"])
    found: set[str] = set()
    todo = list(children.get(code, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo.extend(children.get(child, []))
    return found


def property_value(concept: Concept, name: str) -> Any:
    """The first value of a concept property (valueCode, valueString, ...), or None."""
    for prop in concept.get("property", []):
        if prop.get("code") == name:
            for key, value in prop.items():
                if key.startswith("value"):
                    return value
    return None


def fold(text: str) -> str:
    """Case-, accent- and whitespace-insensitive form: 'Zoë  Hoog' -> 'zoe hoog'."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def compact(text: str) -> str:
    """fold() without spaces or punctuation, so 'ELV-HC ', 'elv hc' and 'ELVHC' are one key."""
    return re.sub(r"[^0-9a-z]", "", fold(text))
