"""Parsing FHIR search parameters (search.html) into a SearchQuery; unknown parameters are reported, not ignored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hub.errors import Invalid, NotSupported
from hub.fhir.searchparams import SearchParam, SearchRegistry

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_total",
    "_elements",
    "_format",
    "_pretty",
    "_getpages",
    "_getpagesoffset",
    "_contained",
    "_containedType",
}
MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "missing", "in", "not-in", "text"},
    "reference": {"missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"missing", "below", "above"},
}


@dataclass(frozen=True)
class Chain:
    """`organization.name=x`: reference parameter + target type -> a clause on the target."""

    reference: SearchParam
    target_type: str
    inner: Clause


@dataclass(frozen=True)
class Clause:
    param: SearchParam | None  # None for the built-ins _id / _lastUpdated
    code: str
    modifier: str | None
    values: tuple[str, ...]  # comma-separated alternatives (OR)
    chain: Chain | None = None


@dataclass(frozen=True)
class Include:
    source_type: str
    param: SearchParam
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchQuery:
    resource_type: str
    clauses: list[Clause] = field(default_factory=list)
    count: int = 20
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    includes: list[Include] = field(default_factory=list)
    summary: str | None = None
    total: str | None = None
    elements: list[str] | None = None
    unknown: list[str] = field(default_factory=list)
    canonical: str = ""  # normalized query string (self link)

    def split_prefix(self, value: str) -> tuple[str, str]:
        return split_prefix(value)


def split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] == "-"):
        return value[:2], value[2:]
    return "eq", value


def split_values(raw: str) -> tuple[str, ...]:
    """Split on commas not escaped with a backslash; unescape \\, \\| \\$."""
    parts = re.split(r"(?<!\\),", raw)
    return tuple(p.replace("\\,", ",").replace("\\$", "$").replace("\\|", "|") for p in parts)


def parse(
    registry: SearchRegistry,
    resource_type: str,
    items: list[tuple[str, str]],
    *,
    default_count: int,
    max_count: int,
    strict: bool,
) -> SearchQuery:
    """Build a SearchQuery; with `strict` (Prefer: handling=strict) unknown parameters are a 400."""
    query = SearchQuery(resource_type, count=default_count)
    for key, raw in items:
        if key.split(":")[0] in RESULT_PARAMS:
            _result_param(registry, query, key, raw, max_count)
            continue
        try:
            query.clauses.append(_clause(registry, resource_type, key, raw))
        except UnknownParameter as exc:
            if strict:
                raise Invalid(str(exc), expression=[key]) from None
            query.unknown.append(str(exc))
    query.canonical = "&".join(f"{k}={v}" for k, v in items if k not in ("_getpages", "_getpagesoffset"))
    return query


class UnknownParameter(Exception):
    pass


def _clause(registry: SearchRegistry, resource_type: str, key: str, raw: str) -> Clause:
    name, _, modifier = key.partition(":")
    if "." in name or ("." in modifier and ":" in key):
        return _chained(registry, resource_type, key, raw)
    if name in ("_id", "_lastUpdated"):
        if modifier and modifier != "missing":
            raise UnknownParameter(f"Modifier :{modifier} is not supported on {name}")
        return Clause(None, name, modifier or None, split_values(raw))
    param = registry.get(resource_type, name)
    if param is None:
        raise UnknownParameter(f"Unknown search parameter '{name}' for resource type {resource_type}")
    if (
        modifier
        and modifier not in MODIFIERS[param.type]
        and not (param.type == "reference" and modifier[:1].isupper())
    ):
        raise UnknownParameter(f"Modifier :{modifier} is not supported on {param.type} parameter '{name}'")
    return Clause(param, name, modifier or None, split_values(raw))


def _chained(registry: SearchRegistry, resource_type: str, key: str, raw: str) -> Clause:
    head, _, rest = key.partition(".")
    ref_name, _, type_modifier = head.partition(":")
    ref = registry.get(resource_type, ref_name)
    if ref is None or ref.type != "reference":
        raise UnknownParameter(f"'{ref_name}' is not a reference parameter of {resource_type}; cannot chain")
    if "." in rest:
        raise NotSupported("Chains deeper than one level are not supported", expression=[key])
    targets = [type_modifier] if type_modifier else list(ref.targets)
    inner_name = rest.partition(":")[0]
    candidates = [t for t in targets if registry.get(t, inner_name) is not None or inner_name in ("_id",)]
    if not candidates:
        raise UnknownParameter(f"Chained parameter '{key}': no target type of '{ref_name}' has '{inner_name}'")
    if len(candidates) > 1:
        raise Invalid(f"Chained parameter '{key}' is ambiguous; add a type modifier, e.g. {ref_name}:{candidates[0]}")
    target = candidates[0]
    inner = _clause(registry, target, rest, raw)
    return Clause(ref, ref_name, None, (), chain=Chain(ref, target, inner))


def _result_param(registry: SearchRegistry, query: SearchQuery, key: str, raw: str, max_count: int) -> None:
    if key == "_count":
        if not raw.isdigit():
            raise Invalid(f"_count must be a non-negative integer, not '{raw}'", expression=["_count"])
        count = int(raw)
        if count > max_count:
            raise Invalid(f"_count {count} exceeds the server maximum of {max_count}", expression=["_count"])
        query.count = count
    elif key == "_sort":
        for item in raw.split(","):
            desc = item.startswith("-")
            code = item.lstrip("-")
            if code not in ("_id", "_lastUpdated") and registry.get(query.resource_type, code) is None:
                raise Invalid(f"Cannot sort on unknown parameter '{code}'", expression=["_sort"])
            query.sort.append((code, desc))
    elif key.split(":")[0] in ("_include", "_revinclude"):
        query.includes.append(_include(registry, query.resource_type, key, raw))
    elif key == "_summary":
        if raw not in ("count", "true", "false", "data", "text"):
            raise Invalid(f"_summary={raw} is not valid", expression=["_summary"])
        query.summary = None if raw == "false" else raw
    elif key == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise Invalid(f"_total={raw} is not valid", expression=["_total"])
        query.total = raw
    elif key == "_elements":
        query.elements = [e.strip() for e in raw.split(",") if e.strip()]
    elif key in ("_contained", "_containedType"):
        raise NotSupported(f"{key} is not supported", expression=[key])


def _include(registry: SearchRegistry, base_type: str, key: str, raw: str) -> Include:
    iterate = key.endswith((":iterate", ":recurse"))
    parts = raw.split(":")
    if raw == "*":
        raise NotSupported("_include=* is not supported; name the parameter", expression=[key])
    if len(parts) < 2:
        raise Invalid(f"{key}={raw}: expected SourceType:parameter[:TargetType]", expression=[key])
    source_type, code = parts[0], parts[1]
    target_type = parts[2] if len(parts) > 2 else None
    param = registry.get(source_type, code)
    if param is None or param.type != "reference":
        raise Invalid(f"{key}={raw}: '{code}' is not a reference parameter of {source_type}", expression=[key])
    reverse = key.startswith("_revinclude")
    if not reverse and source_type != base_type and not iterate:
        raise Invalid(f"_include source type {source_type} must be the searched type {base_type}", expression=[key])
    return Include(source_type, param, target_type, iterate, reverse)
