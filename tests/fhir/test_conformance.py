"""The shared conformance corpus loads in dependency order, reads back unchanged (apart from meta), is searchable;
and the CapabilityStatement tells the truth about what is wired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.fhir.searchparams import INDEXED_TYPES

CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance"
ORDER = [
    "Organization",
    "Location",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Device",
    "Questionnaire",
    "Encounter",
    "Procedure",
    "Consent",
    "Observation",
    "Goal",
    "DeviceUseStatement",
    "Communication",
    "QuestionnaireResponse",
    "MeasureReport",
]


def corpus() -> list[dict]:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"shared/conformance not found at {CONFORMANCE}")
    found = [
        json.loads(p.read_text()) for p in sorted(CONFORMANCE.rglob("*.json")) if "unresolved-references" not in p.parts
    ]
    return sorted(found, key=lambda r: ORDER.index(r["resourceType"]) if r["resourceType"] in ORDER else 99)


def strip_meta(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k != "meta"}


async def test_conformance_examples_load_and_read_back_unchanged(hub):
    examples = corpus()
    assert len(examples) >= 150
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in examples
        ],
    }
    r = await hub.client.post("/fhir", json=bundle, headers=hub.headers())
    assert r.status_code == 200, r.text[:2000]
    for example in examples:
        got = await hub.client.get(f"/fhir/{example['resourceType']}/{example['id']}", headers=hub.headers())
        assert got.status_code == 200
        assert strip_meta(got.json()) == strip_meta(example), example["id"]
    # their documented searches return them
    hendrik = "F1-ACP-Patient-HendrikHartman"
    consents = (
        await hub.client.get(f"/fhir/Consent?patient=Patient/{hendrik}&scope=treatment", headers=hub.headers())
    ).json()
    ids = {e["resource"]["id"] for e in consents["entry"]}
    assert "F1-ACP-TreatmentDirective-89666000" in ids
    procs = (
        await hub.client.get(
            f"/fhir/Procedure?patient={hendrik}&code=http://snomed.info/sct|713603004&_include=Procedure:encounter",
            headers=hub.headers(),
        )
    ).json()
    assert {e["resource"]["resourceType"] for e in procs["entry"]} == {"Procedure", "Encounter"}
    saner = (await hub.client.get("/fhir/Location?organization=Organization/X140008", headers=hub.headers())).json()
    assert saner["total"] >= 1


async def test_capability_statement_is_truthful(hub):
    r = await hub.client.get("/fhir/metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    by_type = {res["type"]: res for res in cs["rest"][0]["resource"]}
    location = by_type["Location"]
    declared = {p["name"] for p in location["searchParam"]}
    assert {"name", "identifier", "organization", "operational-status", "_id", "_lastUpdated"} <= declared
    registry = hub.runtime.registry
    for rt, res in by_type.items():
        for p in res.get("searchParam", []):
            if p["name"] in ("_id", "_lastUpdated"):
                continue
            param = registry.get(rt, p["name"])
            assert param is not None and param.type in INDEXED_TYPES, (rt, p["name"])
    # every declared search parameter is accepted under strict handling
    for p in location["searchParam"]:
        value = "2020" if p["type"] == "date" else ("1" if p["type"] in ("number", "quantity") else "x")
        q = await hub.client.get(f"/fhir/Location?{p['name']}={value}", headers=hub.headers(Prefer="handling=strict"))
        assert q.status_code == 200, (p["name"], q.text)
    # and an undeclared type is refused
    assert "Spaceship" not in by_type
    assert any(op["name"] == "validate" for op in location.get("operation", []))


def test_models_and_migrations_agree():
    """Alembic's autogenerate finds no difference between the tables in code and `upgrade head`."""
    import asyncio
    import tempfile

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from hub import domains
    from hub.store.migrate import upgrade
    from hub.store.schema import metadata

    domains.import_tables()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/m.db"
        upgrade(url)
        engine = create_engine(f"sqlite:///{tmp}/m.db")
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
    assert diff == []
    assert asyncio.iscoroutinefunction(upgrade) is False


async def test_every_hub_operation_in_the_capability_statement_is_served_as_operation_definition(hub):
    cs = (await hub.client.get("/fhir/metadata")).json()
    hub_ops = {op["definition"] for res in cs["rest"][0]["resource"] for op in res.get("operation", [])
               if op["definition"].startswith("https://zorgnet-hub.nl/")}
    assert hub_ops, "the domain operations are registered"
    for url in sorted(hub_ops):
        found = (await hub.client.get(f"/fhir/OperationDefinition?url={url}", headers=hub.headers())).json()
        assert found.get("total") == 1, url
        definition = found["entry"][0]["resource"]
        assert url.endswith(f"{definition['resource'][0]}-{definition['code']}")
