"""Expand a ValueSet's compose from the hub's own resources: explicit concepts, whole hub CodeSystems,
simple property / hierarchy filters, nested ValueSets, and excludes. No terminology server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.terminology import concepts
from hub.terminology.errors import TerminologyError, TerminologyRequestInvalid
from hub.terminology.loader import ProfileSet


@dataclass(frozen=True)
class Entry:
    """One code in an expansion."""

    system: str
    code: str
    display: str | None = None
    version: str | None = None
    designation: tuple[dict[str, Any], ...] = field(default=())

    @classmethod
    def of(cls, system: str, concept: dict[str, Any], version: str | None = None) -> Entry:
        """Entry for a CodeSystem concept or a contains/compose item (same field names)."""
        designation = tuple(concept.get("designation", []))
        return cls(system, concept["code"], concept.get("display"), version, designation)

    def as_contains(self, *, include_designations: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"system": self.system}
        if self.version:
            item["version"] = self.version
        item["code"] = self.code
        if self.display:
            item["display"] = self.display
        if include_designations and self.designation:
            item["designation"] = list(self.designation)
        return item

    def search_text(self) -> str:
        parts = [self.code, self.display or "", *(d.get("value", "") for d in self.designation)]
        return concepts.fold(" ".join(parts))


def entries(profiles: ProfileSet, url: str, _seen: frozenset[str] = frozenset()) -> list[Entry]:
    """All codes of the ValueSet at `url`, in compose order, without duplicates."""
    value_set = profiles.value_set(url)
    if value_set is None:
        raise TerminologyError(f"ValueSet {url} is not known to this server")
    if url in _seen:
        raise TerminologyRequestInvalid(f"ValueSet {url} includes itself")
    seen = _seen | {url}
    compose = value_set.get("compose")
    if compose is None:  # a stored expansion is all we have
        stored = _flat_contains(value_set.get("expansion", {}).get("contains", []))
        return [Entry.of(c["system"], c, c.get("version")) for c in stored]
    included: dict[tuple[str, str], Entry] = {}
    for rule in compose.get("include", []):
        for entry in _rule(profiles, rule, seen):
            included.setdefault((entry.system, entry.code), entry)
    excluded = {
        (e.system, e.code) for rule in compose.get("exclude", []) for e in _rule(profiles, rule, seen)
    }
    return [e for key, e in included.items() if key not in excluded]


def _rule(profiles: ProfileSet, rule: dict[str, Any], seen: frozenset[str]) -> list[Entry]:
    """One include/exclude: (system part) intersected with every referenced ValueSet."""
    result: list[Entry] | None = None
    if rule.get("system"):
        result = _system_part(profiles, rule)
    for vs_url in rule.get("valueSet", []):
        nested = entries(profiles, vs_url, seen)
        if result is None:
            result = nested
        else:
            keys = {(e.system, e.code) for e in nested}
            result = [e for e in result if (e.system, e.code) in keys]
    return result or []


def _system_part(profiles: ProfileSet, rule: dict[str, Any]) -> list[Entry]:
    system: str = rule["system"]
    code_system = profiles.code_system(system)
    version = rule.get("version") or (code_system or {}).get("version")
    if rule.get("concept"):
        return [_listed(system, version, code_system, c) for c in rule["concept"]]
    if code_system is None:
        raise TerminologyError(f"CodeSystem {system} is not known to this server, so it cannot be expanded")
    allowed = _filtered(code_system, rule.get("filter", []))
    return [
        Entry.of(system, c, version)
        for c, _ in concepts.walk(code_system)
        if (allowed is None or c["code"] in allowed) and not _not_selectable(c)
    ]


def _listed(
    system: str, version: str | None, code_system: dict[str, Any] | None, item: dict[str, Any]
) -> Entry:
    """An explicitly listed concept; display and designations fall back to the hub's CodeSystem, if any."""
    found = concepts.find(code_system, item["code"]) if code_system else None
    source = found[0] if found else {}
    display = item.get("display") or source.get("display")
    designation = item.get("designation") or source.get("designation", [])
    return Entry(system, item["code"], display, version, tuple(designation))


def _filtered(code_system: dict[str, Any], filters: list[dict[str, Any]]) -> set[str] | None:
    """Codes passing every filter (None: no filter). Supports property `=`/`in`, `is-a`, `descendent-of`."""
    if not filters:
        return None
    allowed = {c["code"] for c, _ in concepts.walk(code_system)}
    for flt in filters:
        prop, op, value = flt.get("property"), flt.get("op"), str(flt.get("value", ""))
        if op in ("is-a", "descendent-of") and prop == "concept":
            below = concepts.descendants(code_system, value)
            allowed &= (below | {value}) if op == "is-a" else below
        elif op in ("=", "in") and prop:
            wanted = set(value.split(",")) if op == "in" else {value}
            allowed &= {
                c["code"]
                for c, _ in concepts.walk(code_system)
                if str(concepts.property_value(c, prop)) in wanted
            }
        else:
            raise TerminologyRequestInvalid(f"ValueSet filter '{prop} {op} {value}' is not supported here")
    return allowed


def _not_selectable(concept: dict[str, Any]) -> bool:
    return concepts.property_value(concept, "notSelectable") is True


def _flat_contains(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("code") and item.get("system"):
            out.append(item)
        out.extend(_flat_contains(item.get("contains", [])))
    return out
