"""batch and transaction Bundles: atomicity, urn:uuid resolution, processing order, conditional entries."""

from __future__ import annotations

from hub.store.schema import resources

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"


def tx(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def org_entry(urn: str, agb: str, name: str = "Org") -> dict:
    return {
        "fullUrl": urn,
        "request": {"method": "POST", "url": "Organization", "ifNoneExist": f"identifier={AGB}|{agb}"},
        "resource": {"resourceType": "Organization", "name": name, "identifier": [{"system": AGB, "value": agb}]},
    }


def loc_entry(name: str, org_urn: str) -> dict:
    return {
        "fullUrl": f"urn:uuid:loc-{name}",
        "request": {"method": "POST", "url": "Location"},
        "resource": {"resourceType": "Location", "name": name, "managingOrganization": {"reference": org_urn}},
    }


async def test_transaction_resolves_urn_uuid_references(hub):
    bundle = tx(loc_entry("bed-1", "urn:uuid:org-1"), org_entry("urn:uuid:org-1", "73739001"))
    r = await hub.client.post("/fhir", json=bundle, headers=hub.headers())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    org_loc = body["entry"][1]["response"]["location"]
    loc = (
        await hub.client.get(
            body["entry"][0]["response"]["location"].replace("http://hub.test", ""), headers=hub.headers()
        )
    ).json()
    org_id = org_loc.split("/Organization/")[1].split("/")[0]
    assert loc["managingOrganization"]["reference"] == f"Organization/{org_id}"


async def test_transaction_with_one_bad_entry_stores_nothing(hub):
    before = await hub.count(resources)
    bad = {
        "request": {"method": "POST", "url": "Patient"},
        "resource": {"resourceType": "Patient", "birthDate": "not-a-date"},
    }
    r = await hub.client.post("/fhir", json=tx(org_entry("urn:uuid:o", "73739002"), bad), headers=hub.headers())
    assert r.status_code == 422
    issue = r.json()["issue"][0]
    assert issue["expression"][0] == "Bundle.entry[1]"
    assert await hub.count(resources) == before


async def test_transaction_conditional_create_reuses_existing(hub):
    await hub.client.post("/fhir", json=tx(org_entry("urn:uuid:o", "73739003", "First")), headers=hub.headers())
    r = await hub.client.post(
        "/fhir",
        json=tx(org_entry("urn:uuid:o", "73739003", "Second"), loc_entry("bed", "urn:uuid:o")),
        headers=hub.headers(),
    )
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "201 Created"]
    orgs = (await hub.client.get(f"/fhir/Organization?identifier={AGB}|73739003", headers=hub.headers())).json()
    assert orgs["total"] == 1 and orgs["entry"][0]["resource"]["name"] == "First"


async def test_transaction_order_delete_before_create_and_get_last(hub):
    created = (
        await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": "old"}, headers=hub.headers())
    ).json()
    bundle = tx(
        {"request": {"method": "GET", "url": "Location?name=new"}},
        {
            "fullUrl": "urn:uuid:n",
            "request": {"method": "POST", "url": "Location"},
            "resource": {"resourceType": "Location", "name": "new"},
        },
        {"request": {"method": "DELETE", "url": f"Location/{created['id']}"}},
    )
    r = await hub.client.post("/fhir", json=bundle, headers=hub.headers(Prefer="return=representation"))
    assert r.status_code == 200
    entries = r.json()["entry"]
    assert entries[0]["resource"]["total"] == 1  # the GET ran after the POST
    assert entries[2]["response"]["status"] == "204 No Content"
    gone = await hub.client.get(f"/fhir/Location/{created['id']}", headers=hub.headers())
    assert gone.status_code == 410


async def test_transaction_stale_if_match_rolls_back_all(hub):
    created = (
        await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": "v1"}, headers=hub.headers())
    ).json()
    before = await hub.count(resources)
    bundle = tx(
        {
            "fullUrl": "urn:uuid:x",
            "request": {"method": "POST", "url": "Location"},
            "resource": {"resourceType": "Location", "name": "extra"},
        },
        {
            "request": {"method": "PUT", "url": f"Location/{created['id']}", "ifMatch": 'W/"7"'},
            "resource": {**created, "name": "v2"},
        },
    )
    r = await hub.client.post("/fhir", json=bundle, headers=hub.headers())
    assert r.status_code == 412
    assert await hub.count(resources) == before
    assert (await hub.client.get(f"/fhir/Location/{created['id']}", headers=hub.headers())).json()["name"] == "v1"


async def test_batch_entries_are_independent(hub):
    bundle = tx(
        {"request": {"method": "POST", "url": "Location"}, "resource": {"resourceType": "Location", "name": "ok"}},
        {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient", "gender": 3}},
        kind="batch",
    )
    r = await hub.client.post("/fhir", json=bundle, headers=hub.headers())
    assert r.status_code == 200
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "422"
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert (await hub.client.get("/fhir/Location?name:exact=ok", headers=hub.headers())).json()["total"] == 1


async def test_bundle_entry_limit_and_wrong_type(hub):
    r = await hub.client.post("/fhir", json={"resourceType": "Bundle", "type": "collection"}, headers=hub.headers())
    assert r.status_code == 400
    many = tx(*[{"request": {"method": "GET", "url": "Location/x"}}] * (hub.settings.max_bundle_entries + 1))
    r = await hub.client.post("/fhir", json=many, headers=hub.headers())
    assert r.status_code == 413 and r.json()["issue"][0]["code"] == "too-costly"
