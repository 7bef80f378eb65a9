"""Create/read/vread/update/patch/delete/history over real HTTP (ASGI), on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from hub.store.schema import audit_log, resources

FHIR_JSON = "application/fhir+json"


async def test_create_returns_201_location_etag_and_stores(hub, location_factory):
    r = await hub.client.post("/fhir/Location", json=location_factory("Bed A"), headers=hub.headers())
    assert r.status_code == 201
    assert r.headers["content-type"].startswith(FHIR_JSON)
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"].startswith("http://hub.test/fhir/Location/")
    assert r.headers["location"].endswith("/_history/1")
    assert "last-modified" in r.headers
    body = r.json()
    assert body["meta"]["versionId"] == "1" and body["name"] == "Bed A"
    stored = await hub.scalar(select(resources.c.content).where(resources.c.res_id == body["id"]))
    assert orjson.loads(stored)["name"] == "Bed A"


async def test_read_serves_stored_bytes_and_unknown_is_404_outcome(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory(), headers=hub.headers())).json()
    r = await hub.client.get(f"/fhir/Location/{created['id']}", headers=hub.headers())
    assert r.status_code == 200 and r.json() == created
    missing = await hub.client.get("/fhir/Location/does-not-exist", headers=hub.headers())
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert missing.json()["issue"][0]["code"] == "not-found"


async def test_update_with_stale_if_match_is_412_and_changes_nothing(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory("v1"), headers=hub.headers())).json()
    rid = created["id"]
    ok = await hub.client.put(
        f"/fhir/Location/{rid}", json={**created, "name": "v2"}, headers=hub.headers(**{"If-Match": 'W/"1"'})
    )
    assert ok.status_code == 200 and ok.headers["etag"] == 'W/"2"'
    stale = await hub.client.put(
        f"/fhir/Location/{rid}", json={**created, "name": "v3"}, headers=hub.headers(**{"If-Match": 'W/"1"'})
    )
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    current = (await hub.client.get(f"/fhir/Location/{rid}", headers=hub.headers())).json()
    assert current["name"] == "v2" and current["meta"]["versionId"] == "2"


async def test_update_as_create_uses_client_id(hub, location_factory):
    r = await hub.client.put(
        "/fhir/Location/client-chosen-1", json={**location_factory(), "id": "client-chosen-1"}, headers=hub.headers()
    )
    assert r.status_code == 201
    assert (await hub.client.get("/fhir/Location/client-chosen-1", headers=hub.headers())).status_code == 200


async def test_update_id_mismatch_is_400(hub, location_factory):
    r = await hub.client.put("/fhir/Location/a", json={**location_factory(), "id": "b"}, headers=hub.headers())
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "invalid"


async def test_vread_and_history_keep_every_version(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory("v1"), headers=hub.headers())).json()
    rid = created["id"]
    await hub.client.put(f"/fhir/Location/{rid}", json={**created, "name": "v2"}, headers=hub.headers())
    v1 = await hub.client.get(f"/fhir/Location/{rid}/_history/1", headers=hub.headers())
    assert v1.status_code == 200 and v1.json()["name"] == "v1"
    history = (await hub.client.get(f"/fhir/Location/{rid}/_history", headers=hub.headers())).json()
    assert history["type"] == "history"
    assert [e["resource"]["name"] for e in history["entry"]] == ["v2", "v1"]
    assert history["entry"][1]["request"]["method"] == "POST"


async def test_delete_then_read_is_410_and_history_shows_deletion(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory(), headers=hub.headers())).json()
    rid = created["id"]
    assert (await hub.client.delete(f"/fhir/Location/{rid}", headers=hub.headers())).status_code == 204
    gone = await hub.client.get(f"/fhir/Location/{rid}", headers=hub.headers())
    assert gone.status_code == 410 and gone.json()["issue"][0]["code"] == "deleted"
    history = (await hub.client.get(f"/fhir/Location/{rid}/_history", headers=hub.headers())).json()
    assert history["entry"][0]["request"]["method"] == "DELETE" and "resource" not in history["entry"][0]
    search = (await hub.client.get(f"/fhir/Location?_id={rid}", headers=hub.headers())).json()
    assert search.get("total") == 0


async def test_json_patch_applies_and_validates(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory(), headers=hub.headers())).json()
    rid = created["id"]
    headers = {**hub.headers(), "Content-Type": "application/json-patch+json"}
    ok = await hub.client.patch(
        f"/fhir/Location/{rid}",
        content=orjson.dumps([{"op": "replace", "path": "/operationalStatus/code", "value": "O"}]),
        headers=headers,
    )
    assert ok.status_code == 200 and ok.json()["operationalStatus"]["code"] == "O"
    bad = await hub.client.patch(
        f"/fhir/Location/{rid}",
        content=orjson.dumps([{"op": "add", "path": "/status", "value": {"not": "a code"}}]),
        headers=headers,
    )
    assert bad.status_code == 422
    after = (await hub.client.get(f"/fhir/Location/{rid}", headers=hub.headers())).json()
    assert after["meta"]["versionId"] == "2"


async def test_conditional_create_returns_existing_match(hub):
    org = {
        "resourceType": "Organization",
        "name": "Zorg BV",
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/agb-z", "value": "73731234"}],
    }
    headers = hub.headers(**{"If-None-Exist": "identifier=http://fhir.nl/fhir/NamingSystem/agb-z|73731234"})
    first = await hub.client.post("/fhir/Organization", json=org, headers=headers)
    second = await hub.client.post("/fhir/Organization", json=org, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert await hub.count(resources, resources.c.res_type == "Organization", resources.c.rid > hub.baseline_rid) == 1


async def test_conditional_update_creates_then_updates_by_identifier(hub, location_factory):
    url = "/fhir/Location?identifier=https://zorgnet-hub.nl/fhir/NamingSystem/bed|X/1"
    body = location_factory(identifier=[{"system": "https://zorgnet-hub.nl/fhir/NamingSystem/bed", "value": "X/1"}])
    created = await hub.client.put(url, json=body, headers=hub.headers())
    assert created.status_code == 201
    updated = await hub.client.put(url, json={**body, "name": "renamed"}, headers=hub.headers())
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"


async def test_prefer_minimal_and_operation_outcome(hub, location_factory):
    minimal = await hub.client.post(
        "/fhir/Location", json=location_factory(), headers=hub.headers(Prefer="return=minimal")
    )
    assert minimal.status_code == 201 and minimal.content == b"" and "location" in minimal.headers
    oo = await hub.client.post(
        "/fhir/Location", json=location_factory(), headers=hub.headers(Prefer="return=OperationOutcome")
    )
    assert oo.json()["resourceType"] == "OperationOutcome"


async def test_invalid_resource_is_422_with_expression_and_nothing_stored(hub):
    before = await hub.count(resources)
    r = await hub.client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "birthDate": "23-11-1940"}, headers=hub.headers()
    )
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Patient.birthDate"]
    assert await hub.count(resources) == before


async def test_wrong_resource_type_for_endpoint_is_400(hub, location_factory):
    r = await hub.client.post("/fhir/Organization", json=location_factory(), headers=hub.headers())
    assert r.status_code == 400


async def test_wrong_content_type_is_415(hub):
    r = await hub.client.post(
        "/fhir/Location", content=b"<Location/>", headers={**hub.headers(), "Content-Type": "application/fhir+xml"}
    )
    assert r.status_code == 415 and r.json()["issue"][0]["code"] == "not-supported"


async def test_xml_format_is_406(hub):
    r = await hub.client.get("/fhir/metadata?_format=xml")
    assert r.status_code == 406 and r.json()["resourceType"] == "OperationOutcome"
    r = await hub.client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 406


async def test_malformed_json_is_400_outcome(hub):
    r = await hub.client.post("/fhir/Location", content=b"{not json", headers=hub.headers())
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


async def test_unknown_type_and_unknown_route_and_method_are_outcomes(hub):
    r = await hub.client.get("/fhir/Spaceship/1", headers=hub.headers())
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = await hub.client.get("/nowhere", headers=hub.headers())
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = await hub.client.request("TRACE", "/fhir/Location", headers=hub.headers())
    assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome"


async def test_missing_or_bad_token_is_401_outcome(hub):
    r = await hub.client.get("/fhir/Location")
    assert r.status_code == 401 and r.json()["issue"][0]["code"] == "login"
    r = await hub.client.get("/fhir/Location", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401


async def test_validate_operation_stores_nothing(hub, location_factory):
    before = await hub.count(resources)
    ok = await hub.client.post("/fhir/Location/$validate", json=location_factory(), headers=hub.headers())
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"
    bad = await hub.client.post(
        "/fhir/Location/$validate", json={"resourceType": "Location", "status": 7}, headers=hub.headers()
    )
    assert bad.status_code == 422 and bad.json()["issue"][0]["expression"] == ["Location.status"]
    assert await hub.count(resources) == before


async def test_reading_a_patient_writes_an_audit_event(hub):
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Jansen"}],
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990019"}],
    }
    created = (
        await hub.client.post(
            "/fhir/Patient", json=patient, headers=hub.headers("gp", "http://fhir.nl/fhir/NamingSystem/agb-z|01000001")
        )
    ).json()
    before = await hub.count(audit_log)
    r = await hub.client.get(
        f"/fhir/Patient/{created['id']}", headers=hub.headers("gp", "http://fhir.nl/fhir/NamingSystem/agb-z|01000001")
    )
    assert r.status_code == 200
    assert await hub.count(audit_log) == before + 1
    event = orjson.loads(await hub.scalar(select(audit_log.c.content).order_by(audit_log.c.seq.desc()).limit(1)))
    assert event["action"] == "R" and event["outcome"] == "0"
    assert {"reference": f"Patient/{created['id']}"} in [e.get("what") for e in event["entity"]]
    assert event["agent"][0]["who"]["identifier"]["value"] == "01000001"
