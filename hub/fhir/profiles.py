"""Reads profiles/ (the hub's own StructureDefinitions, CodeSystems, ValueSets, SearchParameters) at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def load_resources(directory: Path) -> list[dict[str, Any]]:
    """Every FHIR JSON resource under `directory` (Bundles are unpacked), in a stable order."""
    found: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.json")):
        parsed = orjson.loads(path.read_bytes())
        if parsed.get("resourceType") == "Bundle":
            found.extend(e["resource"] for e in parsed.get("entry", []) if "resource" in e)
        elif "resourceType" in parsed:
            found.append(parsed)
    return found


def search_parameters(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r.get("resourceType") == "SearchParameter"]
