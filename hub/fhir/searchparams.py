"""SearchParameter registry: definitions loaded from profiles/, compiled once, used to index every write.

The registry is the single source for what can be searched: the indexer, the query parser and the
CapabilityStatement all read it, so the statement cannot claim a parameter the index does not hold.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hub.fhir.fhirpath import CompiledPath, compile_expression

INDEXED_TYPES = ("string", "token", "reference", "date", "number", "quantity", "uri")


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    url: str
    resource_type: str
    paths: tuple[CompiledPath, ...]
    targets: tuple[str, ...] = ()
    description: str = ""

    @property
    def kind(self) -> str:
        """The index table its rows live in (quantities share the number table)."""
        return "number" if self.type == "quantity" else self.type

    def values(self, resource: dict[str, Any], present: set[str] | None = None) -> list[Any]:
        """The values the expression selects; `present` (top_level_names of the resource) lets paths whose
        first element is absent be skipped unevaluated."""
        out: list[Any] = []
        for path in self.paths:
            if present is not None and path.root is not None and path.root not in present:
                continue
            out.extend(path.evaluate(resource))
        return out


def top_level_names(resource: dict[str, Any]) -> set[str]:
    """The resource's element names plus the choice prefixes they carry (`valueQuantity` -> `value`)."""
    names = set(resource)
    for key in resource:
        prefix = _choice_prefix.get(key)
        if prefix is None:
            prefix = _prefix_of(key)
            if len(_choice_prefix) < 10_000:  # bounded: element names are few, but keys come from clients
                _choice_prefix[key] = prefix
        if prefix:
            names.add(prefix)
    return names


_choice_prefix: dict[str, str] = {}  # element name -> its choice prefix ("" if none)


def _prefix_of(key: str) -> str:
    for i in range(1, len(key)):
        if key[i].isupper():
            return key[:i]
    return ""


@dataclass(frozen=True)
class IndexPlan:
    rooted: dict[str, list[tuple[SearchParam, CompiledPath]]]
    unrooted: tuple[tuple[SearchParam, CompiledPath], ...]


@dataclass
class SearchRegistry:
    """Search parameters per resource type (plus those on Resource that apply to every type)."""

    by_type: dict[str, dict[str, SearchParam]] = field(default_factory=lambda: defaultdict(dict))
    common: dict[str, SearchParam] = field(default_factory=dict)
    definitions: list[dict[str, Any]] = field(default_factory=list)
    _merged: dict[str, dict[str, SearchParam]] = field(default_factory=dict, repr=False)
    _plans: dict[str, IndexPlan] = field(default_factory=dict, repr=False)
    _reading: dict[tuple[str, frozenset[str]], frozenset[str]] = field(default_factory=dict, repr=False)
    _paths_of: dict[tuple[str, frozenset[str]], tuple[tuple[SearchParam, CompiledPath], ...]] = field(
        default_factory=dict, repr=False)
    _kinds_of: dict[tuple[str, frozenset[str]], frozenset[str]] = field(default_factory=dict, repr=False)

    def add_definition(self, sp: dict[str, Any]) -> None:
        """Register a SearchParameter resource; unsupported types (composite, special) are kept out."""
        if sp.get("type") not in INDEXED_TYPES or not sp.get("expression"):
            return
        compiled = compile_expression(sp["expression"])
        for cache in (self._merged, self._plans, self._reading, self._paths_of, self._kinds_of):
            cache.clear()
        bases = sp.get("base", [])
        self.definitions.append(sp)
        for base in bases:
            paths = tuple(p for p in compiled if p.resource_type in (base, "Resource", "DomainResource"))
            if not paths:
                continue
            param = SearchParam(
                code=sp["code"],
                type=sp["type"],
                url=sp.get("url", ""),
                resource_type=base,
                paths=paths,
                targets=tuple(sp.get("target", [])),
                description=sp.get("description", ""),
            )
            if base == "Resource":
                self.common[param.code] = param
            else:
                self.by_type[base][param.code] = param

    def params_for(self, resource_type: str) -> dict[str, SearchParam]:
        """Every parameter of a type (its own and Resource's); built once per type, on every write's path."""
        cached = self._merged.get(resource_type)
        if cached is None:
            cached = {
                code: SearchParam(p.code, p.type, p.url, resource_type, p.paths, p.targets, p.description)
                for code, p in self.common.items()
            }
            cached.update(self.by_type.get(resource_type, {}))
            self._merged[resource_type] = cached
        return cached

    def index_plan(self, resource_type: str) -> IndexPlan:
        """Every (parameter, path) of a type, keyed by the top-level element the path starts at: a write evaluates
        only the paths whose first element the resource has (a Location has ~6 of the ~40 its parameters name)."""
        plan = self._plans.get(resource_type)
        if plan is None:
            rooted: dict[str, list[tuple[SearchParam, CompiledPath]]] = defaultdict(list)
            unrooted: list[tuple[SearchParam, CompiledPath]] = []
            for param in self.params_for(resource_type).values():
                for path in param.paths:
                    (rooted[path.root] if path.root is not None else unrooted).append((param, path))
            plan = self._plans[resource_type] = IndexPlan(dict(rooted), tuple(unrooted))
        return plan

    def params_reading(self, resource_type: str, elements: frozenset[str]) -> frozenset[str]:
        """The codes of the parameters whose values can change when only these top-level elements change: those
        with a path starting at one of them, and every parameter with a path that starts elsewhere (unrooted
        paths may read anything)."""
        key = (resource_type, elements)
        found = self._reading.get(key)
        if found is None:
            plan = self.index_plan(resource_type)
            codes = {param.code for name in elements for param, _ in plan.rooted.get(name, ())}
            codes |= {param.code for param, _ in plan.unrooted}
            found = self._reading[key] = frozenset(codes)
        return found

    def paths_of(self, resource_type: str, codes: frozenset[str]) -> tuple[tuple[SearchParam, CompiledPath], ...]:
        """Every (parameter, path) of these parameters of a type (a partial reindex evaluates just these)."""
        key = (resource_type, codes)
        found = self._paths_of.get(key)
        if found is None:
            plan = self.index_plan(resource_type)
            pairs = [pair for pairs in plan.rooted.values() for pair in pairs] + list(plan.unrooted)
            found = self._paths_of[key] = tuple((param, path) for param, path in pairs if param.code in codes)
        return found

    def kinds_of(self, resource_type: str, codes: frozenset[str]) -> frozenset[str]:
        """The index tables (kinds: string, token, ...) the rows of these parameters of a type live in: an update
        that replaces only their rows need not visit the other tables."""
        key = (resource_type, codes)
        found = self._kinds_of.get(key)
        if found is None:
            params = self.params_for(resource_type)
            found = self._kinds_of[key] = frozenset(params[code].kind for code in codes if code in params)
        return found

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        found = self.by_type.get(resource_type, {}).get(code)
        return found if found is not None else self.common.get(code)


def build_registry(search_parameters: list[dict[str, Any]]) -> SearchRegistry:
    registry = SearchRegistry()
    for sp in search_parameters:
        registry.add_definition(sp)
    return registry
