"""Every resource any adapter produces validates as FHIR R4 (fhir.resources.R4B), and so does each Bundle."""

from __future__ import annotations

from typing import Any

import pytest
from adapter_cases import CASES, Case, resources, translate_case
from fhir.resources.R4B import get_fhir_model_class


def validate(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_produced_resource_validates_as_r4(case: Case) -> None:
    bundle = translate_case(case).bundle
    assert bundle["type"] == "transaction"
    produced = resources(bundle)
    assert produced, "the sample produced nothing"
    for resource in produced:
        validate(resource)
    validate(bundle)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_entries_are_idempotent_transaction_requests(case: Case) -> None:
    """Only conditional creates and conditional updates, and every reference points at an entry of the Bundle."""
    bundle = translate_case(case).bundle
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    for entry in bundle["entry"]:
        request = entry["request"]
        assert entry["fullUrl"].startswith("urn:uuid:")
        if request["method"] == "POST":
            assert request["ifNoneExist"].startswith("identifier=")
        else:
            assert request["method"] == "PUT" and "?identifier=" in request["url"]
    for reference in _references(bundle):
        assert reference in full_urls, reference


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_empty_elements(case: Case) -> None:
    """FHIR JSON forbids empty strings, arrays and objects (null is allowed only inside primitive-extension arrays)."""
    assert _empty_paths(translate_case(case).bundle, "Bundle") == []


def _empty_paths(node: Any, path: str) -> list[str]:
    if node is None or node in ("", [], {}):
        return [path]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _empty_paths(v, f"{path}.{k}")]
    if isinstance(node, list):
        primitive_extensions = path.rsplit(".", 1)[-1].startswith("_")  # "_given": [null, {...}] is valid
        return [
            p
            for i, v in enumerate(node)
            if not (primitive_extensions and v is None)
            for p in _empty_paths(v, f"{path}[{i}]")
        ]
    return []


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for k, v in node.items() if k != "request" for r in _references(v)]
    if isinstance(node, list):
        return [r for item in node for r in _references(item)]
    return []
