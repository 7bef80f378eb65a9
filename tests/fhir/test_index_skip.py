"""The indexer skips a search parameter path whose first element is absent from the resource (a write's index
costs half as much); skipping must never change the rows. Checked over every resource the hub ships or must
accept: the shared conformance corpus and the profiles/ resources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.config import Settings
from hub.fhir import profiles as profile_files
from hub.fhir.searchparams import build_registry, top_level_names

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT.parent / "shared" / "conformance"


def corpus() -> list[dict[str, Any]]:
    resources = profile_files.load_resources(Settings().profiles_dir)
    for path in sorted(CONFORMANCE.rglob("*.json")):
        data = orjson.loads(path.read_bytes())
        entries = [e.get("resource") for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" else []
        resources += [data, *[e for e in entries if isinstance(e, dict)]]
    return [r for r in resources if isinstance(r, dict) and r.get("resourceType")]


def test_skipping_absent_elements_never_changes_the_values() -> None:
    resources = corpus()
    if len(resources) < 50:
        pytest.fail(f"expected the conformance corpus and profiles, found {len(resources)} resources")
    registry = build_registry(profile_files.search_parameters(profile_files.load_resources(Settings().profiles_dir)))
    compared = skipped = 0
    for resource in resources:
        present = top_level_names(resource)
        for param in registry.params_for(resource["resourceType"]).values():
            assert param.values(resource, present) == param.values(resource), (resource["resourceType"], param.code)
            compared += 1
            skipped += sum(1 for p in param.paths if p.root is not None and p.root not in present)
    assert compared > 1000 and skipped > compared / 4  # the shortcut is taken, and often


def test_choice_prefixes_are_present() -> None:
    names = top_level_names({"resourceType": "Observation", "valueQuantity": {}, "effectiveDateTime": "2026"})
    assert {"value", "valueQuantity", "effective", "effectiveDateTime", "resourceType"} <= names


def test_index_rows_by_plan_equal_every_parameter_evaluated_in_full() -> None:
    """index_rows walks only the paths rooted at elements the resource has (SearchRegistry.index_plan); the rows
    must be exactly those of evaluating every path of every parameter."""
    from hub.fhir.indexing import _emit, index_rows

    registry = build_registry(profile_files.search_parameters(profile_files.load_resources(Settings().profiles_dir)))
    compared = 0
    for resource in corpus():
        full: dict[str, list[dict[str, Any]]] = {k: [] for k in ("string", "token", "reference", "date", "number",
                                                                 "uri")}
        for param in registry.params_for(resource["resourceType"]).values():
            for value in param.values(resource):
                _emit(full, param, value)
        planned = index_rows(registry, resource)
        for kind, rows in full.items():
            assert sorted(map(repr, planned[kind])) == sorted(map(repr, rows)), (resource["resourceType"], kind)
            compared += len(rows)
    assert compared > 1000
