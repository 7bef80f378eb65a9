"""$acp-summary content: one Bundle, a Composition first, the right directives (newest valid first, superseded
ones marked), "Niet besproken" where nothing was recorded, contacts with the legal representative first, the
HTML page in Dutch — on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

from acp_examples import BSN_F1, BSN_P2, F1, GP_ORG, P2, examples, transaction
from fhir.resources.R4B.bundle import Bundle

from hub.acp import codes, service

STATUS, REPLACED = codes.EXT_STATUS, codes.EXT_SUPERSEDED_BY


async def summary(hub: Any, patient: str = F1, **query: str) -> dict[str, Any]:
    r = await hub.client.get(f"/fhir/Patient/{patient}/$acp-summary", params=query, headers=hub.headers("gp", GP_ORG))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    result: dict[str, Any] = r.json()
    return result


def entry_marks(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """'Type/id' -> {status, replaced_by} from the hub's marks on the Bundle entries."""
    out = {}
    for e in bundle["entry"][1:]:
        ext = {x["url"]: x.get("valueCode") or x.get("valueReference", {}).get("reference")
               for x in e.get("extension", [])}
        out[f"{e['resource']['resourceType']}/{e['resource']['id']}"] = ext
    return out


def limits(bundle: dict[str, Any]) -> dict[str, tuple[str, list[str], str | None]]:
    """Treatment limit title -> (its narrative line, its entries, its emptyReason code)."""
    section = next(s for s in bundle["entry"][0]["resource"]["section"] if s["code"]["coding"][0]["code"] ==
                   "treatment-limits")
    return {s["title"]: (s["text"]["div"], [e["reference"] for e in s.get("entry", [])],
                         s.get("emptyReason", {}).get("coding", [{}])[0].get("code")) for s in section["section"]}


async def test_summary_is_one_bundle_composition_first_valid_r4_and_holds_the_whole_record(pzp):
    bundle = await summary(pzp)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    composition = bundle["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["subject"] == {"reference": f"Patient/{F1}", "display": "Hendrik Hartman"}
    assert 'xmlns="http://www.w3.org/1999/xhtml"' in composition["text"]["div"]
    assert "Reanimatie" in composition["text"]["div"] and "BSN ******120" in composition["text"]["div"]
    held = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"][1:]}
    f1_examples = {f"{r['resourceType']}/{r['id']}" for r in examples() if r["id"].startswith("F")}
    assert f1_examples <= held  # every F1 statement, its encounter, device, who recorded it
    assert not any("P2-" in ref for ref in held)
    assert bundle["entry"][1]["resource"]["id"] == F1


async def test_newest_valid_directive_first_and_the_superseded_one_marked(pzp):
    bundle = await summary(pzp)
    ic = limits(bundle)["IC-opname"]
    assert ic[1] == ["Consent/F2-ACP-TreatmentDirective-305351004"]  # 2022-11-08 beats 2020-10-01
    assert "2022-11-08" in ic[0]
    marks = entry_marks(bundle)
    assert marks["Consent/F2-ACP-TreatmentDirective-305351004"] == {STATUS: "current"}
    assert marks["Consent/F1-ACP-TreatmentDirective-305351004"] == {
        STATUS: "superseded", REPLACED: "Consent/F2-ACP-TreatmentDirective-305351004"}
    history = next(s for s in bundle["entry"][0]["resource"]["section"] if s["code"]["coding"][0]["code"] ==
                   "superseded")
    assert history["entry"] == [{"reference": "Consent/F1-ACP-TreatmentDirective-305351004"}]
    assert "[vervallen]" in history["text"]["div"]
    refs = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert refs.index("Consent/F2-ACP-TreatmentDirective-305351004") < refs.index(
        "Consent/F1-ACP-TreatmentDirective-305351004")


async def test_all_seven_limits_listed_with_niet_besproken_when_absent(pzp):
    p2 = limits(await summary(pzp, P2))
    assert list(p2) == ["Reanimatie", "IC-opname", "Beademing", "Ziekenhuisopname", "Antibiotica", "Bloedproducten",
                        "ICD uitzetten"]
    assert p2["Bloedproducten"][1:] == ([], "notasked") and "Niet besproken" in p2["Bloedproducten"][0]
    assert "Reanimatie: Nee" in p2["Reanimatie"][0] and "Beademing: Nee" in p2["Beademing"][0]
    assert "Ziekenhuisopname: Ja, met beperkingen" in p2["Ziekenhuisopname"][0]
    assert "Alleen als de patiënt" in p2["Ziekenhuisopname"][0]
    assert "ICD uitzetten: Onbekend" in p2["ICD uitzetten"][0]
    f1 = limits(await summary(pzp))
    assert "ICD uitzetten: Niet besproken" in f1["ICD uitzetten"][0]  # recorded explicitly as not discussed
    assert f1["ICD uitzetten"][1] == ["Consent/F1-ACP-TreatmentDirective-400231000146108"]


async def test_wishes_goal_place_of_death_contacts_and_documents(pzp):
    bundle = await summary(pzp, P2)
    sections = {s["code"]["coding"][0]["code"]: s for s in bundle["entry"][0]["resource"]["section"]}
    assert "voorkomen en behandelen van symptomen" in sections["goal"]["text"]["div"]
    assert "Thuis" in sections["place-of-death"]["text"]["div"]
    assert "Wenst geen euthanasie" in sections["wishes"]["text"]["div"]
    assert sections["advance-directives"]["entry"] == [{"reference": "Consent/P2-ACP-AdvanceDirective"}]
    assert [e["reference"] for e in sections["contacts"]["entry"]] == [
        "RelatedPerson/P2-ACP-ContactPerson-GertJanDeJong", "RelatedPerson/P2-ACP-ContactPerson-MayaVanDerSluijsMulder"]
    assert "Wettelijk vertegenwoordiger" in sections["contacts"]["text"]["div"]
    assert "0611111111" in sections["contacts"]["text"]["div"]
    assert sections["devices"]["entry"] == [{"reference": "DeviceUseStatement/P2-ACP-MedicalDevice-ICD"}]
    assert sections["documents"]["emptyReason"]["coding"][0]["code"] == "nilknown"


async def test_legal_representative_first_even_when_listed_last(pzp):
    sister = next(copy.deepcopy(r) for r in examples() if r["id"] == "P2-ACP-ContactPerson-MayaVanDerSluijsMulder")
    sister["id"] = "P2-a-first-friend"
    r = await pzp.client.post("/fhir", json=transaction([sister]), headers=pzp.headers())
    assert r.status_code == 200
    contacts = next(s for s in (await summary(pzp, P2))["entry"][0]["resource"]["section"]
                    if s["code"]["coding"][0]["code"] == "contacts")
    assert contacts["entry"][0] == {"reference": "RelatedPerson/P2-ACP-ContactPerson-GertJanDeJong"}


async def test_same_day_disagreement_is_shown_as_conflict_and_withdrawn_directive_is_not_current(pzp):
    base = next(r for r in examples() if r["id"] == "P2-ACP-TreatmentDirective-281789004")
    other_source = {**copy.deepcopy(base), "id": "P2-antibiotics-elsewhere",
                    "provision": {**base["provision"], "type": "deny"}}
    newer_but_withdrawn = {**copy.deepcopy(base), "id": "P2-cpr-withdrawn", "dateTime": "2025-09-01",
                           "status": "inactive", "provision": {**base["provision"], "type": "permit", "code": [
                               {"coding": [{"system": "http://snomed.info/sct", "code": "89666000"}]}]}}
    r = await pzp.client.post("/fhir", json=transaction([other_source, newer_but_withdrawn]), headers=pzp.headers())
    assert r.status_code == 200, r.text
    bundle = await summary(pzp, P2)
    marks = entry_marks(bundle)
    assert {marks["Consent/P2-ACP-TreatmentDirective-281789004"][STATUS],
            marks["Consent/P2-antibiotics-elsewhere"][STATUS]} == {"conflict"}
    assert "[tegenstrijdig]" in limits(bundle)["Antibiotica"][0]
    assert limits(bundle)["Reanimatie"][1] == ["Consent/P2-ACP-TreatmentDirective-89666000"]  # still Nee
    assert marks["Consent/P2-cpr-withdrawn"] == {STATUS: "inactive",
                                                 REPLACED: "Consent/P2-ACP-TreatmentDirective-89666000"}


async def test_summary_by_bsn_and_its_errors(pzp):
    gp = pzp.headers("gp", GP_ORG)
    by_bsn = await pzp.client.get(f"/fhir/Patient/$acp-summary?identifier={codes.BSN}|{BSN_P2}", headers=gp)
    assert by_bsn.status_code == 200 and by_bsn.json()["entry"][1]["resource"]["id"] == P2
    unknown = await pzp.client.get(f"/fhir/Patient/$acp-summary?identifier={codes.BSN}|999990019", headers=gp)
    assert unknown.status_code == 404 and unknown.json()["issue"][0]["code"] == "not-found"
    bad = await pzp.client.get(f"/fhir/Patient/$acp-summary?identifier={BSN_F1}", headers=gp)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["identifier"]
    twin = {**next(copy.deepcopy(r) for r in examples() if r["id"] == F1), "id": "F1-duplicate"}
    await pzp.client.post("/fhir", json=transaction([twin]), headers=pzp.headers())
    twice = await pzp.client.get(f"/fhir/Patient/$acp-summary?identifier={codes.BSN}|{BSN_F1}", headers=gp)
    assert twice.status_code == 409 and twice.json()["issue"][0]["code"] == "conflict"
    missing = await pzp.client.get("/fhir/Patient/nobody/$acp-summary", headers=gp)
    assert missing.status_code == 404


async def test_html_view_for_the_hap_doctor_is_dutch_and_escaped(pzp):
    hostile = next(copy.deepcopy(r) for r in examples() if r["id"] == "P2-ACP-OtherImportantInformation-20250807")
    hostile["valueString"] = "<script>alert(1)</script> houdt van wandelen"
    await pzp.client.post("/fhir", json=transaction([hostile]), headers=pzp.headers())
    r = await pzp.client.get(f"/fhir/Patient/{P2}/$acp-summary?_format=html", headers=pzp.headers("gp", GP_ORG))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="nl">' in page and "Samira van der Sluijs" in page
    for text in ("Behandelafspraken", "Reanimatie", "Niet besproken", "Voorkeursplek van overlijden", "Thuis",
                 "Gert-Jan de Jong", "Wettelijk vertegenwoordiger", "Niet reanimeren verklaring"):
        assert text in page, text
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    browser = await pzp.client.get(f"/fhir/Patient/{P2}/$acp-summary",
                                   headers=pzp.headers("gp", GP_ORG, Accept="text/html,application/xhtml+xml"))
    assert browser.headers["content-type"].startswith("text/html")


async def test_operation_is_listed_in_the_capability_statement(hub):
    statement = (await hub.client.get("/fhir/metadata")).json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "acp-summary", "definition": service.OPERATION.definition} in patient["operation"]
