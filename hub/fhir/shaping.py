"""_summary and _elements: shaping a resource for the response (only when asked; the default path is bytes)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from hub.fhir.validation import model_class

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS = ("resourceType", "id", "meta")


@lru_cache(maxsize=256)
def summary_elements(resource_type: str) -> frozenset[str]:
    """Elements the R4 definition marks as summary (isSummary), from the fhir.resources model metadata."""
    fields = model_class(resource_type).model_fields
    names = set()
    for name, info in fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("summary_element_property"):
            names.add(info.alias or name)
    return frozenset(names)


def _subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource


def shaper(summary: str | None, elements: list[str] | None) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    if elements:
        keep = set(elements)

        def by_elements(r: dict[str, Any]) -> dict[str, Any]:
            return _subsetted({k: v for k, v in r.items() if k in ALWAYS or k in keep or k.lstrip("_") in keep})

        return by_elements
    if summary == "data":
        return lambda r: _subsetted({k: v for k, v in r.items() if k != "text"})
    if summary == "text":
        return lambda r: _subsetted({k: v for k, v in r.items() if k in (*ALWAYS, "text")})
    if summary == "true":

        def by_summary(r: dict[str, Any]) -> dict[str, Any]:
            allowed = summary_elements(r["resourceType"])
            return _subsetted({k: v for k, v in r.items() if k in ALWAYS or k in allowed})

        return by_summary
    return None
