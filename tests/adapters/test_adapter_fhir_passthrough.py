"""FHIR pass-through: resources and Bundles become transaction Bundles; the conformance examples all pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from adapter_cases import RECEIVED
from fhir.resources.R4B import get_fhir_model_class

from adapters import fhir_passthrough
from adapters.base import AdapterError, SourceMeta

META = SourceMeta(RECEIVED)
CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990019"}],
}


def run(document: Any) -> Any:
    return fhir_passthrough.translate(orjson.dumps(document), META)


def test_resource_without_id_is_posted_and_with_id_is_put() -> None:
    [posted] = run(PATIENT).bundle["entry"]
    assert posted["request"] == {"method": "POST", "url": "Patient"}
    assert posted["fullUrl"].startswith("urn:uuid:")
    [put] = run(PATIENT | {"id": "p1"}).bundle["entry"]
    assert put["request"] == {"method": "PUT", "url": "Patient/p1"}


def test_transaction_passes_through_and_batch_becomes_a_transaction() -> None:
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"value": "msg-1"},
        "timestamp": "2026-03-09T10:00:00+01:00",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b7c4a0c-1111-4111-8111-111111111111",
                "resource": PATIENT,
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    result = run(transaction)
    assert result.bundle == transaction
    assert result.message_id == "msg-1" and result.event_time is not None
    batch = run(transaction | {"type": "batch"})
    assert batch.bundle["type"] == "transaction"
    assert [p.severity for p in batch.problems] == ["information"]


def test_collection_entries_keep_their_full_urls() -> None:
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:0b7c4a0c-2222-4222-8222-222222222222", "resource": PATIENT},
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "o1",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:0b7c4a0c-2222-4222-8222-222222222222"},
                }
            },
        ],
    }
    entries = run(collection).bundle["entry"]
    assert entries[0]["fullUrl"] == "urn:uuid:0b7c4a0c-2222-4222-8222-222222222222"
    assert entries[0]["request"]["method"] == "POST"
    assert entries[1]["request"] == {"method": "PUT", "url": "Observation/o1"}


@pytest.mark.parametrize(
    "source",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": "x"}',
        orjson.dumps({"resourceType": "Bundle", "type": "document"}),
        orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": PATIENT}]}),
    ],
)
def test_non_fhir_or_unsupported_bundles_are_adapter_errors(source: bytes) -> None:
    with pytest.raises(AdapterError):
        fhir_passthrough.translate(source, META)


CONFORMANCE_FILES = sorted(CONFORMANCE.rglob("*.json"))


@pytest.mark.parametrize("path", CONFORMANCE_FILES, ids=lambda p: p.name)
def test_conformance_examples_pass_through_as_valid_transactions(path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    bundle = fhir_passthrough.translate(path.read_bytes(), META).bundle
    [entry] = bundle["entry"]
    assert entry["resource"] == resource
    get_fhir_model_class("Bundle").model_validate(bundle)
