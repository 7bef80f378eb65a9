"""Who may see the ACP summary: every role, the treatment relationship, a stated purpose of use, emergency access
(allowed, flagged), the patient's objection — and every refusal leaves an AuditEvent (outcome 4)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from acp_examples import (
    COORDINATOR_ORG,
    F1,
    GEMEENTE,
    GP_ORG,
    HAP_ORG,
    OTHER_GP_ORG,
    P2,
    PRIVACY_ORG,
    VVT_ORG,
    purpose,
    transaction,
)
from sqlalchemy import select

from hub.acp import codes
from hub.store.schema import audit_log

SUMMARY = f"/fhir/Patient/{P2}/$acp-summary"


async def last_event(hub: Any) -> dict[str, Any]:
    content = await hub.scalar(select(audit_log.c.content).order_by(audit_log.c.seq.desc()).limit(1))
    event: dict[str, Any] = orjson.loads(content)
    return event


def policies(event: dict[str, Any]) -> list[str]:
    return [p.removeprefix(f"{codes.ACCESS_POLICY}#") for p in event["agent"][0]["policy"][1:]]


async def test_gp_with_treatment_relationship_sees_everything_and_is_audited(pzp):
    before = await pzp.count(audit_log)
    r = await pzp.client.get(SUMMARY, headers=pzp.headers("gp", GP_ORG))
    assert r.status_code == 200
    assert await pzp.count(audit_log) == before + 1
    event = await last_event(pzp)
    assert event["outcome"] == "0" and event["action"] == "E"
    assert policies(event) == ["treatment-relationship", "consent-regional-opt-in"]
    assert event["agent"][0]["who"]["identifier"] == {"system": GP_ORG.split("|")[0], "value": "01000001"}
    assert event["agent"][0]["role"][0]["coding"][0]["code"] == "gp"
    entities = [e.get("what", {}).get("reference", "") for e in event["entity"]]
    assert entities[0] == f"Patient/{P2}"
    assert "Consent/P2-ACP-TreatmentDirective-89666000/_history/1" in entities  # what was shown, by version
    assert {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/audit-subtype", "code": "acp-summary"} in event["subtype"]


async def test_gp_without_relationship_is_refused_unless_a_purpose_is_stated(pzp):
    r = await pzp.client.get(SUMMARY, headers=pzp.headers("gp", OTHER_GP_ORG))
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    assert "X-Purpose-Of-Use" in r.json()["issue"][0]["diagnostics"]
    refusal = await last_event(pzp)
    assert refusal["outcome"] == "4" and refusal["entity"][0]["what"] == {"reference": f"Patient/{P2}"}
    ok = await pzp.client.get(SUMMARY, headers=pzp.headers("gp", OTHER_GP_ORG, **purpose("TREAT")))
    assert ok.status_code == 200
    assert policies(await last_event(pzp))[0] == "purpose-of-use"


async def test_hap_doctor_acts_for_the_gp_under_a_stated_purpose(pzp):
    refused = await pzp.client.get(SUMMARY, headers=pzp.headers("hap-doctor", HAP_ORG))
    assert refused.status_code == 403
    r = await pzp.client.get(SUMMARY, headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("TREAT")))
    assert r.status_code == 200
    event = await last_event(pzp)
    assert event["agent"][0]["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    responsible = event["agent"][1]
    assert responsible["requestor"] is False and responsible["who"] == {"reference": "Organization/gp-de-brink"}


async def test_emergency_access_is_allowed_and_flagged(pzp):
    r = await pzp.client.get(f"/fhir/Patient/{F1}/$acp-summary",
                             headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("ETREAT")))
    assert r.status_code == 200
    assert "Noodtoegang" in r.json()["entry"][0]["resource"]["text"]["div"]
    event = await last_event(pzp)
    assert {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/audit-subtype", "code": "break-the-glass",
            "display": "noodtoegang (ETREAT)"} in event["subtype"]
    assert event["outcomeDesc"] == "noodtoegang (ETREAT)"
    assert policies(event)[0] == "emergency"


async def test_municipality_is_refused_as_if_the_patient_did_not_exist_and_the_refusal_is_logged(pzp):
    muni = pzp.headers("municipality", GEMEENTE)
    for url in (SUMMARY, f"/fhir/Patient/$acp-summary?identifier={codes.BSN}|999998298"):
        before = await pzp.count(audit_log, audit_log.c.outcome == "4")
        r = await pzp.client.get(url, headers=muni)
        assert r.status_code == 404 and r.json()["issue"][0]["code"] == "not-found"
        assert "Reanimatie" not in r.text
        assert await pzp.count(audit_log, audit_log.c.outcome == "4") == before + 1
        refusal = await last_event(pzp)
        assert refusal["outcome"] == "4" and refusal["agent"][0]["role"][0]["coding"][0]["code"] == "municipality"
        assert refusal["entity"][0]["what"] == {"reference": f"Patient/{P2}"}
        assert "may not see advance care planning" in refusal["outcomeDesc"]
    via_rest = await pzp.client.get(f"/fhir/Consent?patient={P2}", headers=muni)
    assert via_rest.json()["total"] == 0


async def test_coordinator_sees_contacts_but_not_the_medical_content(pzp):
    r = await pzp.client.get(SUMMARY, headers=pzp.headers("coordinator", COORDINATOR_ORG))
    assert r.status_code == 200
    bundle = r.json()
    types = {e["resource"]["resourceType"] for e in bundle["entry"][1:]}
    assert types <= {"Patient", "RelatedPerson", "Organization", "Practitioner", "PractitionerRole"}
    assert "RelatedPerson" in types
    sections = {s["code"]["coding"][0]["code"]: s for s in bundle["entry"][0]["resource"]["section"]}
    assert sections["treatment-limits"]["emptyReason"]["coding"][0]["code"] == "withheld"
    assert "entry" in sections["contacts"]
    assert "Nee" not in bundle["entry"][0]["resource"]["text"]["div"]
    assert policies(await last_event(pzp))[0] == "role-non-medical"


@pytest.mark.parametrize("role", ["vvt-provider", "admin", "privacy-officer"])
async def test_other_roles_do_not_get_the_summary(pzp, role):
    org = {"vvt-provider": VVT_ORG, "admin": PRIVACY_ORG, "privacy-officer": PRIVACY_ORG}[role]
    r = await pzp.client.get(SUMMARY, headers=pzp.headers(role, org))
    assert r.status_code == 404
    assert (await last_event(pzp))["outcome"] == "4"


def privacy_consent(kind: str, consent_id: str, **provision: Any) -> dict[str, Any]:
    return {"resourceType": "Consent", "id": consent_id, "status": "active", "dateTime": "2026-01-15",
            "scope": {"coding": [{"system": codes.CONSENT_SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{P2}"}, "policyRule": {"text": "Zorgnet regionale uitwisseling"},
            "provision": {"type": kind, **provision}}


async def test_patient_objection_is_honoured_even_in_an_emergency(pzp):
    await pzp.client.post("/fhir", json=transaction([privacy_consent("deny", "p2-bezwaar")]), headers=pzp.headers())
    for headers in (pzp.headers("gp", GP_ORG), pzp.headers("hap-doctor", HAP_ORG, **purpose("ETREAT")),
                    pzp.headers("coordinator", COORDINATOR_ORG)):
        r = await pzp.client.get(SUMMARY, headers=headers)
        assert r.status_code == 403 and "bezwaar" in r.json()["issue"][0]["diagnostics"]
        refusal = await last_event(pzp)
        assert refusal["outcome"] == "4"
        assert {"reference": "Consent/p2-bezwaar"} in [e.get("what") for e in refusal["entity"]]
    assert (await pzp.client.get(f"/fhir/Patient/{F1}/$acp-summary", headers=pzp.headers("gp", GP_ORG))).status_code \
        == 200


async def test_objection_aimed_at_one_organisation_and_a_newer_consent(pzp):
    only_hap = privacy_consent("deny", "p2-not-the-hap", actor=[{
        "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PROV"}]},
        "reference": {"identifier": {"system": HAP_ORG.split("|")[0], "value": HAP_ORG.split("|")[1]}}}])
    await pzp.client.post("/fhir", json=transaction([only_hap]), headers=pzp.headers())
    assert (await pzp.client.get(SUMMARY, headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("TREAT")))
            ).status_code == 403
    assert (await pzp.client.get(SUMMARY, headers=pzp.headers("gp", GP_ORG))).status_code == 200
    permit = {**privacy_consent("permit", "p2-toestemming"), "dateTime": "2026-02-01"}
    await pzp.client.post("/fhir", json=transaction([permit]), headers=pzp.headers())
    r = await pzp.client.get(SUMMARY, headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("TREAT")))
    assert r.status_code == 200  # the newer consent decides
    event = await last_event(pzp)
    assert policies(event) == ["purpose-of-use", "consent-recorded-consent"]
    consent = next(e for e in event["entity"] if e.get("role", {}).get("code") == "13")
    assert consent["what"] == {"reference": "Consent/p2-toestemming"}


async def test_hap_doctor_reads_medical_resources_over_rest_only_with_a_purpose(pzp):
    url = "/fhir/Consent/P2-ACP-TreatmentDirective-89666000"
    assert (await pzp.client.get(url, headers=pzp.headers("hap-doctor", HAP_ORG))).status_code == 404
    assert (await pzp.client.get(url, headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("TREAT")))).status_code \
        == 200
    search = await pzp.client.get(f"/fhir/Consent?patient={P2}", headers=pzp.headers("hap-doctor", HAP_ORG))
    assert search.json()["total"] == 0
    patient = await pzp.client.get(f"/fhir/Patient/{P2}", headers=pzp.headers("hap-doctor", HAP_ORG))
    assert patient.status_code == 200  # demographics need no purpose
