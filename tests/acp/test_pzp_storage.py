"""PZP resources are stored as they come (the IKNL examples load and read back unchanged), and the PZP profiles'
key rules refuse what the $acp-summary could not rely on, with a 422 that points at the element."""

from __future__ import annotations

import copy
from typing import Any

from acp_examples import P2, SNOMED, examples, load_examples, transaction
from sqlalchemy import select

from hub.store.schema import resources


def _without_meta_stamps(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in resource.items() if k != "meta"}, **({"meta": meta} if meta else {})}


async def test_every_conformance_example_loads_and_reads_back_unchanged_apart_from_meta(hub):
    response = await load_examples(hub, with_gp=False)
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * len(examples())
    for original in examples():
        r = await hub.client.get(f"/fhir/{original['resourceType']}/{original['id']}", headers=hub.headers("admin"))
        assert r.status_code == 200, original["id"]
        assert _without_meta_stamps(r.json()) == _without_meta_stamps(original), original["id"]
        assert r.json()["meta"]["versionId"] == "1"


async def test_loading_the_examples_twice_changes_nothing(hub):
    await load_examples(hub, with_gp=False)
    again = await load_examples(hub, with_gp=False)
    assert {e["response"]["etag"] for e in again["entry"]} == {'W/"1"'}


async def test_documents_are_stored_as_documentreference_plus_binary(hub):
    await load_examples(hub, with_gp=False)
    admin = hub.headers("admin")
    pdf = {"resourceType": "Binary", "id": "wilsverklaring-p2", "contentType": "application/pdf",
           "data": "JVBERi0xLjcKJcOkw7zDtsOfCg=="}
    doc = {"resourceType": "DocumentReference", "id": "wilsverklaring-p2", "status": "current",
           "type": {"coding": [{"system": "http://loinc.org", "code": "42348-3"}]},
           "subject": {"reference": f"Patient/{P2}"}, "date": "2025-06-28T10:00:00Z",
           "description": "Schriftelijke wilsverklaring",
           "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/wilsverklaring-p2",
                                       "title": "wilsverklaring.pdf"}}]}
    r = await hub.client.post("/fhir", json=transaction([pdf, doc]), headers=admin)
    assert r.status_code == 200, r.text
    found = (await hub.client.get(f"/fhir/DocumentReference?patient={P2}", headers=admin)).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["wilsverklaring-p2"]
    assert (await hub.client.get("/fhir/Binary/wilsverklaring-p2", headers=admin)).json()["data"] == pdf["data"]
    no_type = copy.deepcopy(doc) | {"id": "no-type"}
    del no_type["content"][0]["attachment"]["contentType"]
    bad = await hub.client.put("/fhir/DocumentReference/no-type", json=no_type, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["issue"][0]["expression"] == ["DocumentReference.content[0].attachment.contentType"]


def _directive(**changes: Any) -> dict[str, Any]:
    base = next(r for r in examples() if r["id"] == "P2-ACP-TreatmentDirective-89666000")
    return {**copy.deepcopy(base), "id": "rule-check", **changes}


async def test_treatment_directive_rules_answer_422_with_the_element_and_store_nothing(hub):
    await load_examples(hub, with_gp=False)
    admin = hub.headers("admin")
    cases = {
        "Consent.scope": _directive(scope={"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                                       "code": "research"}]}),
        "Consent.patient": _directive(patient={"reference": "Group/g1"}),
        "Consent.provision.code[0]": _directive(provision={
            **_directive()["provision"], "code": [{"coding": [{"system": SNOMED, "code": "12345"}]}]}),
        "Consent.provision.code": _directive(provision={
            k: v for k, v in _directive()["provision"].items() if k != "code"}),
    }
    for expression, resource in cases.items():
        r = await hub.client.put("/fhir/Consent/rule-check", json=resource, headers=admin)
        assert r.status_code == 422, (expression, r.text)
        assert r.json()["issue"][0]["code"] == "processing"
        assert expression in [e for i in r.json()["issue"] for e in i.get("expression", [])], r.text
    assert await hub.count(resources, resources.c.res_id == "rule-check") == 0
    ok = await hub.client.put("/fhir/Consent/rule-check", json=_directive(), headers=admin)
    assert ok.status_code == 201


async def test_pzp_value_set_and_bsn_rules(hub):
    admin = hub.headers("admin")
    goal = next(copy.deepcopy(r) for r in examples() if r["resourceType"] == "Goal")
    goal["description"] = {"coding": [{"system": "http://snomed.info/sct", "code": "182840001"}]}
    r = await hub.client.put(f"/fhir/Goal/{goal['id']}", json=goal, headers=admin)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Goal.description"]
    place = next(copy.deepcopy(r) for r in examples() if r["id"] == "P2-ACP-PreferredPlaceOfDeath-20250807")
    place["valueCodeableConcept"] = {"coding": [{"system": "http://snomed.info/sct", "code": "1111"}]}
    r = await hub.client.put(f"/fhir/Observation/{place['id']}", json=place, headers=admin)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Observation.valueCodeableConcept"]
    patient = next(copy.deepcopy(r) for r in examples() if r["id"] == P2)
    patient["identifier"][0]["value"] = "999998299"  # fails the elfproef
    r = await hub.client.put(f"/fhir/Patient/{P2}", json=patient, headers=admin)
    assert r.status_code == 422 and "11-proof" in r.json()["issue"][0]["diagnostics"]
    stored = await hub.scalar(select(resources.c.rid).where(resources.c.res_id == P2))
    assert stored is None


async def test_privacy_consent_must_say_permit_or_deny(hub):
    objection = {"resourceType": "Consent", "status": "active",
                 "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                       "code": "patient-privacy"}]},
                 "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                 "patient": {"reference": f"Patient/{P2}"}, "policyRule": {"text": "regionale opt-in"},
                 "provision": {}}
    r = await hub.client.post("/fhir/Consent", json=objection, headers=hub.headers("admin"))
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Consent.provision.type"]
