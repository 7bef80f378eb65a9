"""FHIR terminology operations over the hub's own resources: $lookup, $validate-code, $expand, and
care-product alias resolution for adapters. Inputs and outputs are plain FHIR JSON dicts."""

from __future__ import annotations

from typing import Any

from hub.terminology import concepts
from hub.terminology.errors import TerminologyError, TerminologyRequestInvalid
from hub.terminology.expansion import Entry, entries
from hub.terminology.loader import ProfileSet

CARE_PRODUCT = "https://zorgnet-hub.nl/fhir/CodeSystem/care-product"
DESIGNATION_USE = "https://zorgnet-hub.nl/fhir/CodeSystem/designation-use"

Parameters = dict[str, Any]


def lookup(profiles: ProfileSet, system: str, code: str, version: str | None = None) -> Parameters:
    """CodeSystem/$lookup: name, version, display, designations and properties of one code."""
    code_system = _code_system(profiles, system, version)
    found = concepts.find(code_system, code)
    if found is None:
        raise TerminologyError(f"Code '{code}' is not in CodeSystem {system}")
    concept, parent = found
    params: list[dict[str, Any]] = [{"name": "name", "valueString": code_system.get("name", system)}]
    if code_system.get("version"):
        params.append({"name": "version", "valueString": code_system["version"]})
    params.append({"name": "display", "valueString": concept.get("display", concept["code"])})
    if concept.get("definition"):
        params.append(_property("definition", {"valueString": concept["definition"]}))
    for des in concept.get("designation", []):
        parts = [{"name": "language", "valueCode": des["language"]}] if des.get("language") else []
        parts += [{"name": "use", "valueCoding": des["use"]}] if des.get("use") else []
        parts.append({"name": "value", "valueString": des["value"]})
        params.append({"name": "designation", "part": parts})
    for prop in concept.get("property", []):
        params.append(_property(prop["code"], {k: v for k, v in prop.items() if k.startswith("value")}))
    if parent is not None:
        params.append(_property("parent", {"valueCode": parent}))
    for child in concept.get("concept", []):
        params.append(_property("child", {"valueCode": child["code"]}))
    return {"resourceType": "Parameters", "parameter": params}


def validate_code(
    profiles: ProfileSet,
    *,
    url: str | None = None,
    system: str | None = None,
    code: str,
    display: str | None = None,
) -> Parameters:
    """$validate-code against a ValueSet (`url`) or, without one, a CodeSystem (`system`)."""
    if url:
        candidates = [e for e in entries(profiles, url) if system is None or e.system == system]
        match = next((e for e in candidates if e.code == code), None)
        where = f"ValueSet {url}"
    elif system:
        code_system = _code_system(profiles, system, None)
        found = concepts.find(code_system, code)
        match = Entry.of(system, found[0]) if found else None
        where = f"CodeSystem {system}"
    else:
        raise TerminologyRequestInvalid("$validate-code needs a ValueSet url or a code system")
    if match is None:
        shown = f"{system}|{code}" if system else code
        return _validation(False, f"Code '{shown}' is not in {where}", None)
    if display is not None and not _display_ok(match, display):
        return _validation(
            False,
            f"Display '{display}' is not valid for code '{code}'; expected '{match.display}'",
            match.display,
        )
    return _validation(True, None, match.display)


def expand(
    profiles: ProfileSet,
    url: str,
    *,
    filter: str | None = None,
    count: int | None = None,
    offset: int = 0,
    timestamp: str | None = None,
    include_designations: bool = False,
) -> dict[str, Any]:
    """ValueSet/$expand: the ValueSet with an expansion (total, paging, optional text filter).

    R4 requires expansion.timestamp; the caller passes the clock's value (this module reads no clock).
    """
    value_set = profiles.value_set(url)
    if value_set is None:
        raise TerminologyError(f"ValueSet {url} is not known to this server")
    if (count is not None and count < 0) or offset < 0:
        raise TerminologyRequestInvalid("count and offset must not be negative")
    matched = entries(profiles, url)
    if filter:
        words = concepts.fold(filter).split()
        matched = [e for e in matched if all(w in e.search_text() for w in words)]
    page = matched[offset:] if count is None else matched[offset : offset + count]
    expansion: dict[str, Any] = {}
    if timestamp:
        expansion["timestamp"] = timestamp
    expansion["total"] = len(matched)
    expansion["offset"] = offset
    echo = [("filter", "valueString", filter), ("count", "valueInteger", count)]
    echo.append(("offset", "valueInteger", offset))
    expansion["parameter"] = [{"name": n, key: v} for n, key, v in echo if v is not None and v != ""]
    expansion["contains"] = [e.as_contains(include_designations=include_designations) for e in page]
    if not expansion["contains"]:
        del expansion["contains"]
    head: dict[str, Any] = {
        k: value_set[k] for k in ("id", "url", "version", "name", "title", "status") if k in value_set
    }
    return {"resourceType": "ValueSet", **head, "expansion": expansion}


def expand_codes(profiles: ProfileSet, url: str) -> frozenset[tuple[str, str]]:
    """(system, code) pairs of a ValueSet, for the search `:in` / `:not-in` modifiers."""
    return frozenset((e.system, e.code) for e in entries(profiles, url))


def resolve_alias(
    profiles: ProfileSet, text: str, *, payer: str | None = None, system: str = CARE_PRODUCT
) -> str | None:
    """Care-product code for a spreadsheet spelling ('ELV-HC ' -> 'elv-hoog'); None if unknown or ambiguous.

    Matches code, display and `alias` designations, ignoring case, accents, spaces and punctuation.
    Spellings shared between payers ('respijt', 'logeeropvang') resolve only with `payer` (Zvw/Wlz/Wmo),
    as domain README 1.3 asks: never guess the payer.
    """
    code_system = profiles.code_system(system)
    if code_system is None:
        raise TerminologyError(f"CodeSystem {system} is not known to this server")
    key = concepts.compact(text)
    if not key:
        return None
    plain: set[str] = set()
    needs_payer: set[str] = set()
    for concept, _ in concepts.walk(code_system):
        code = concept["code"]
        if key in (concepts.compact(code), concepts.compact(concept.get("display", ""))):
            plain.add(code)
        for des in concept.get("designation", []):
            if concepts.compact(des.get("value", "")) != key:
                continue
            use = des.get("use", {})
            if use.get("system") == DESIGNATION_USE and use.get("code") == "alias-needs-payer":
                needs_payer.add(code)
            else:
                plain.add(code)
    candidates = plain or needs_payer
    if payer is not None:
        candidates = {c for c in candidates if _payer_of(code_system, c) == payer.casefold()}
    elif not plain:
        return None
    return next(iter(candidates)) if len(candidates) == 1 else None


def _code_system(profiles: ProfileSet, system: str, version: str | None) -> dict[str, Any]:
    code_system = profiles.code_system(f"{system}|{version}" if version else system)
    if code_system is None:
        shown = f"{system} version {version}" if version else system
        raise TerminologyError(f"CodeSystem {shown} is not known to this server")
    return code_system


def _payer_of(code_system: dict[str, Any], code: str) -> str | None:
    found = concepts.find(code_system, code)
    value = concepts.property_value(found[0], "payer") if found else None
    return value.casefold() if isinstance(value, str) else None


def _display_ok(entry: Entry, display: str) -> bool:
    wanted = concepts.fold(display)
    shown = [entry.display or "", *(d.get("value", "") for d in entry.designation)]
    return any(concepts.fold(s) == wanted for s in shown if s)


def _property(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"name": "property", "part": [{"name": "code", "valueCode": code}, {"name": "value", **value}]}


def _validation(result: bool, message: str | None, display: str | None) -> Parameters:
    params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": result}]
    if message:
        params.append({"name": "message", "valueString": message})
    if display:
        params.append({"name": "display", "valueString": display})
    return {"resourceType": "Parameters", "parameter": params}
