"""Every shared sample goes in through POST /ingest/{format} and reads back as the resources it describes."""

from __future__ import annotations

from typing import Any

import orjson
from ingest_cases import (
    AGB,
    ASSEN,
    COORDINATION_POINT,
    CSV,
    GP_MULDER,
    HUB,
    HUNZEHOF,
    bed,
    diagnostics,
    hl7,
    ingest,
    one,
    sample,
    search,
)
from sqlalchemy import select

from hub.store.schema import audit_log, resources

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"


async def test_get_ingest_lists_every_format_with_media_types(hub: Any) -> None:
    response = await hub.client.get("/ingest")
    assert response.status_code == 200
    formats = {f["name"]: f for f in response.json()["formats"]}
    assert set(formats) == {"hl7v2", "bed-csv", "bed-xlsx", "medvri", "iwmo", "fhir"}
    assert "application/hl7-v2" in formats["hl7v2"]["mediaTypes"]
    assert "text/csv" in formats["bed-csv"]["mediaTypes"]
    assert formats["iwmo"]["description"]


async def test_a01_stores_patient_encounter_and_occupied_bed_with_provenance(hunzehof: Any) -> None:
    hub = hunzehof
    response = await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert response.status_code == 201, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "ADT^A01 ZNZ-20260309-000512 stored" in outcome["issue"][0]["diagnostics"]
    patient = await one(hub, "Patient", f"{BSN}|999990019")
    assert patient["birthDate"] == "1938-04-12"
    location = await bed(hub)
    assert location["operationalStatus"]["code"] == "O"
    assert location["extension"][0]["valueCoding"]["code"] == "elv-hoog"  # from the sender's ward_products
    encounter = await one(hub, "Encounter", f"{HUB}/NamingSystem/visit-number|73730001/V2026-0000917")
    assert encounter["status"] == "in-progress"
    assert encounter["subject"]["reference"] == f"Patient/{patient['id']}"
    assert encounter["location"][0]["location"]["reference"] == f"Location/{location['id']}"
    provenances = await search(hub, "Provenance", {"target": f"Location/{location['id']}"})
    assert len(provenances) == 1
    prov = provenances[0]
    targets = {t["reference"].split("/_history/")[0] for t in prov["target"]}
    assert {f"Patient/{patient['id']}", f"Encounter/{encounter['id']}", f"Location/{location['id']}"} <= targets
    assert prov["agent"][0]["who"]["identifier"] == {"system": AGB, "value": "73730001"}
    assert prov["activity"]["coding"][0]["code"] == "A01"
    assert prov["entity"][0]["what"]["identifier"]["value"] == f"hl7v2|{HUNZEHOF}|ZNZ-20260309-000512"
    assert "sha256:" in prov["entity"][0]["what"]["display"]
    assert prov["occurredDateTime"].startswith("2026-03-09T14:25:00")
    rows = (await _owners(hub, "Encounter")) | (await _owners(hub, "Location"))
    assert rows == {HUNZEHOF}  # stored with the sender's own context
    async with hub.runtime.engine.connect() as conn:
        events = [orjson.loads(r.content) for r in await conn.execute(select(audit_log.c.content))]
    ingested = [e for e in events if any(s["code"] == "ingest-hl7v2-http" for s in e["subtype"])]
    assert len(ingested) == 1 and ingested[0]["action"] == "C"
    assert ingested[0]["agent"][0]["who"]["identifier"] == {"system": AGB, "value": "73730001"}
    assert {"reference": f"Patient/{patient['id']}"} in [e["what"] for e in ingested[0]["entity"]]


async def test_a20_sets_bed_to_housekeeping(hunzehof: Any) -> None:
    response = await ingest(hunzehof, "hl7v2", hl7("adt_a20_bedstatus.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert response.status_code == 201, response.text
    location = await bed(hunzehof)
    assert location["operationalStatus"] == {"system": V2_0116, "code": "H", "display": "Housekeeping"}


async def test_a03_after_a01_finishes_the_encounter_and_vacates_the_bed(hunzehof: Any) -> None:
    hub = hunzehof
    assert (await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)).status_code == 201
    response = await ingest(hub, "hl7v2", hl7("adt_a03_ontslag.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert response.status_code == 201, response.text
    encounter = await one(hub, "Encounter", f"{HUB}/NamingSystem/visit-number|73730001/V2026-0000917")
    assert encounter["status"] == "finished"
    assert encounter["period"]["end"].startswith("2026-03-22T11:00:00")
    assert encounter["meta"]["versionId"] == "2"
    assert (await bed(hub))["operationalStatus"]["code"] == "H"
    assert len(await search(hub, "Patient", {"identifier": f"{BSN}|999990019"})) == 1


async def test_bed_csv_from_the_coordination_point_stores_measure_reports(hub: Any) -> None:
    body = sample("beddenoverzicht_drenthe_2026-03-09.csv")
    response = await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)
    assert response.status_code == 201, response.text
    assert "total row skipped" in diagnostics(response.json())
    reports = await search(hub, "MeasureReport", {"date": "2026-03-09"})
    by_id = {r["identifier"][0]["value"]: r for r in reports}
    assert len(by_id) == 8
    hoog = by_id["73730001/de-hunzehof/elv-hoog/2026-03-09"]
    counts = {p["code"]["coding"][0]["code"]: p.get("count") for p in hoog["group"][0]["population"]}
    assert counts == {"numTotBeds": 4, "numTotBedsOcc": 4, "numTotBedsAvail": 0}
    respijt = by_id["73730002/esdorp/wmo-kv/2026-03-09"]
    unknown = {p["code"]["coding"][0]["code"]: p.get("count") for p in respijt["group"][0]["population"]}
    assert unknown["numTotBedsOcc"] is None  # empty cell = unknown, never 0
    services = await search(hub, "HealthcareService")
    assert len(services) == 8
    assert len(await search(hub, "Organization", {"identifier": f"{AGB}|73730003"})) == 1


async def test_medvri_and_zorgdomein_share_one_patient_by_bsn(hub: Any) -> None:
    medvri = await ingest(hub, "medvri", sample("gp", "medvri_verwijzing_elv.edi"), role="gp", org=GP_MULDER)
    assert medvri.status_code == 201, medvri.text
    zorgdomein = await ingest(hub, "hl7v2", sample("gp", "zorgdomein_oru_r01_elv.hl7"), role="gp", org=GP_MULDER)
    assert zorgdomein.status_code == 201, zorgdomein.text
    patients = await search(hub, "Patient", {"identifier": f"{BSN}|999990019"})
    assert len(patients) == 1
    requests = await search(hub, "ServiceRequest", {"subject": f"Patient/{patients[0]['id']}"})
    assert len(requests) == 2
    keys = {i["value"] for r in requests for i in r["identifier"] if i["system"].endswith("referral-match-key")}
    assert keys == {"999990019/2026-03-09/01054321"}  # the same referral twice: the hub can merge them
    postcodes = {e["valueString"] for r in requests for e in r.get("extension", []) if e["url"].endswith("postcode")}
    assert {p.replace(" ", "") for p in postcodes} == {"9401AB"}  # from the message or the patient address
    codes = {c["code"] for r in requests for c in r.get("code", {}).get("coding", [])}
    assert "elv-hoog" in codes
    documents = await search(hub, "DocumentReference", {"subject": f"Patient/{patients[0]['id']}"})
    kinds = sorted(d["content"][0]["attachment"]["contentType"].split(";")[0] for d in documents)
    assert kinds == ["application/pdf", "text/plain"]
    practitioners = await search(hub, "Practitioner", {"identifier": f"{AGB}|01054321"})
    assert len(practitioners) == 1


async def test_wmo315_is_social_domain_and_readable_by_the_municipality(hub: Any) -> None:
    body = sample("iwmo", "wmo315_verzoek_kortdurend_verblijf.xml")
    response = await ingest(hub, "iwmo", body, role="municipality", org=ASSEN)
    assert response.status_code == 201, response.text
    assert "Commentaar (free text) dropped" in diagnostics(response.json())
    reference = f"{HUB}/NamingSystem/iwmo-referentie-aanbieder|73730002/ESD-KV-2026-0042"
    request = await one(hub, "ServiceRequest", reference, role="municipality", org=ASSEN)
    assert {"system": f"{HUB}/CodeSystem/data-domain", "code": "social"} in request["meta"]["tag"]
    patient = await one(hub, "Patient", f"{BSN}|999990032", role="municipality", org=ASSEN)
    assert request["subject"]["reference"] == f"Patient/{patient['id']}"
    assert not any("mantelzorger" in n["text"] for n in request.get("note", []))  # Commentaar never copied
    provenance = await search(
        hub, "Provenance", {"target": f"ServiceRequest/{request['id']}"}, role="municipality", org=ASSEN
    )
    assert len(provenance) == 1  # not medical: the municipality may see where its data came from
    async with hub.runtime.engine.connect() as conn:
        medical = (
            await conn.execute(
                select(resources.c.res_type).where(resources.c.rid > hub.baseline_rid, resources.c.medical.is_(True))
            )
        ).all()
    assert medical == []


async def test_fhir_transaction_passes_through_with_provenance(hub: Any) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"value": "tx-1"},
        "timestamp": "2026-03-09T10:00:00+01:00",
        "entry": [
            {
                "fullUrl": "urn:uuid:8f0e6a4c-1c1d-4d5e-9f00-000000000001",
                "resource": {
                    "resourceType": "Organization",
                    "name": "Huisartsenpost Assen",
                    "identifier": [{"system": AGB, "value": "01099001"}],
                },
                "request": {"method": "PUT", "url": f"Organization?identifier={AGB}|01099001"},
            }
        ],
    }
    response = await ingest(hub, "fhir", orjson.dumps(bundle), role="coordinator", org=COORDINATION_POINT)
    assert response.status_code == 201, response.text
    org = await one(hub, "Organization", f"{AGB}|01099001")
    assert org["name"] == "Huisartsenpost Assen"
    assert len(await search(hub, "Provenance", {"target": f"Organization/{org['id']}"})) == 1


async def test_content_type_may_choose_the_format(hub: Any) -> None:
    headers = {"Authorization": f"Bearer {hub.token('coordinator', COORDINATION_POINT)}", "Content-Type": CSV}
    response = await hub.client.post(
        "/ingest", content=sample("beddenoverzicht_drenthe_2026-03-09.csv"), headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["issue"][0]["diagnostics"].startswith("bed-csv bed-overview")


async def _owners(hub: Any, res_type: str) -> set[str | None]:
    async with hub.runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(resources.c.owner_org).where(resources.c.rid > hub.baseline_rid, resources.c.res_type == res_type)
        )
        return {r.owner_org for r in rows}
