"""Search over index tables: parameter types, modifiers, chaining, includes, paging, result parameters."""

from __future__ import annotations

import pytest

BED_SYS = "https://zorgnet-hub.nl/fhir/NamingSystem/bed"


async def make_org(hub, name: str, agb: str, postcode: str = "9401 AB") -> dict:
    body = {
        "resourceType": "Organization",
        "name": name,
        "active": True,
        "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/agb-z", "value": agb}],
        "address": [{"city": "Assen", "postalCode": postcode}],
    }
    r = await hub.client.post("/fhir/Organization", json=body, headers=hub.headers())
    assert r.status_code == 201
    return r.json()


async def make_loc(hub, location_factory, name: str, org_id: str | None = None, **kw) -> dict:
    body = location_factory(name, org_ref=f"Organization/{org_id}" if org_id else None, **kw)
    r = await hub.client.post("/fhir/Location", json=body, headers=hub.headers())
    assert r.status_code == 201, r.text
    return r.json()


async def search(hub, url: str, **headers) -> dict:
    r = await hub.client.get(url, headers=hub.headers(**headers))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return body


def names(bundle: dict, mode: str = "match") -> list[str]:
    return sorted(
        e["resource"].get("name", "") for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode
    )


async def test_string_default_is_prefix_case_and_accent_insensitive(hub, location_factory):
    await make_loc(hub, location_factory, "Zoë Verpleeghuis")
    await make_loc(hub, location_factory, "Het Anker")
    assert names(await search(hub, "/fhir/Location?name=zoe")) == ["Zoë Verpleeghuis"]
    assert names(await search(hub, "/fhir/Location?name=ANK")) == []
    assert names(await search(hub, "/fhir/Location?name:contains=ANK")) == ["Het Anker"]
    assert names(await search(hub, "/fhir/Location?name:exact=Het Anker")) == ["Het Anker"]
    assert names(await search(hub, "/fhir/Location?name:exact=het anker")) == []


async def test_token_forms_and_not(hub, location_factory):
    await make_loc(hub, location_factory, "Free", status="U")
    await make_loc(hub, location_factory, "Busy", status="O")
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0116"
    assert names(await search(hub, f"/fhir/Location?operational-status={v2}|U")) == ["Free"]
    assert names(await search(hub, "/fhir/Location?operational-status=O")) == ["Busy"]
    assert names(await search(hub, f"/fhir/Location?operational-status={v2}|")) == ["Busy", "Free"]
    assert names(await search(hub, "/fhir/Location?operational-status=|U")) == []
    assert names(await search(hub, "/fhir/Location?operational-status:not=U")) == ["Busy"]
    assert names(await search(hub, "/fhir/Location?operational-status=U,O")) == ["Busy", "Free"]


async def test_identifier_token_and_id(hub, location_factory):
    loc = await make_loc(hub, location_factory, "Bed X", identifier=[{"system": BED_SYS, "value": "A/1"}])
    assert names(await search(hub, f"/fhir/Location?identifier={BED_SYS}|A/1")) == ["Bed X"]
    assert names(await search(hub, f"/fhir/Location?_id={loc['id']}")) == ["Bed X"]


async def test_reference_and_one_level_chain(hub, location_factory):
    org_a = await make_org(hub, "Zorggroep Noord", "73730101")
    org_b = await make_org(hub, "Zorggroep Zuid", "73730102")
    await make_loc(hub, location_factory, "North bed", org_a["id"])
    await make_loc(hub, location_factory, "South bed", org_b["id"])
    assert names(await search(hub, f"/fhir/Location?organization=Organization/{org_a['id']}")) == ["North bed"]
    assert names(await search(hub, f"/fhir/Location?organization={org_b['id']}")) == ["South bed"]
    assert names(await search(hub, "/fhir/Location?organization.name=Zorggroep Zuid")) == ["South bed"]
    agb = "http://fhir.nl/fhir/NamingSystem/agb-z|73730101"
    assert names(await search(hub, f"/fhir/Location?organization.identifier={agb}")) == ["North bed"]


async def test_include_and_revinclude(hub, location_factory):
    org = await make_org(hub, "Zorggroep Inc", "73730103")
    await make_loc(hub, location_factory, "Inc bed 1", org["id"])
    await make_loc(hub, location_factory, "Inc bed 2", org["id"])
    bundle = await search(hub, "/fhir/Location?name=Inc&_include=Location:organization")
    assert names(bundle) == ["Inc bed 1", "Inc bed 2"]
    assert names(bundle, "include") == ["Zorggroep Inc"]  # included once
    rev = await search(hub, f"/fhir/Organization?_id={org['id']}&_revinclude=Location:organization")
    assert names(rev) == ["Zorggroep Inc"] and names(rev, "include") == ["Inc bed 1", "Inc bed 2"]


async def test_include_iterate_follows_partof(hub, location_factory):
    org = await make_org(hub, "Zorggroep Iter", "73730104")
    site = await make_loc(hub, location_factory, "Site", org["id"])
    ward = await make_loc(hub, location_factory, "Ward", org["id"], partOf={"reference": f"Location/{site['id']}"})
    await make_loc(hub, location_factory, "Bed", org["id"], partOf={"reference": f"Location/{ward['id']}"})
    bundle = await search(hub, "/fhir/Location?name:exact=Bed&_include:iterate=Location:partof")
    assert names(bundle, "include") == ["Site", "Ward"]


async def test_date_prefixes_on_last_updated(hub, location_factory):
    await make_loc(hub, location_factory, "Dated")
    assert names(await search(hub, "/fhir/Location?name=Dated&_lastUpdated=gt2020-01-01")) == ["Dated"]
    assert names(await search(hub, "/fhir/Location?name=Dated&_lastUpdated=lt2020-01-01")) == []
    assert names(await search(hub, "/fhir/Location?name=Dated&_lastUpdated=ge2020")) == ["Dated"]


async def test_date_param_on_patient_birthdate(hub):
    for n, born in enumerate(["1930-05-01", "1941-12-24", "1950"]):
        body = {"resourceType": "Patient", "name": [{"family": f"Born{n}"}], "birthDate": born}
        assert (await hub.client.post("/fhir/Patient", json=body, headers=hub.headers())).status_code == 201

    def families(b: dict) -> list[str]:
        return sorted(e["resource"]["name"][0]["family"] for e in b.get("entry", []))

    assert families(await search(hub, "/fhir/Patient?birthdate=1941")) == ["Born1"]
    assert families(await search(hub, "/fhir/Patient?birthdate=lt1941-01-01")) == ["Born0"]
    assert families(await search(hub, "/fhir/Patient?birthdate=ge1941-12-24")) == ["Born1", "Born2"]
    assert families(await search(hub, "/fhir/Patient?birthdate=1930-05-01")) == ["Born0"]


async def test_sort_count_and_stable_paging_under_concurrent_writes(hub, location_factory):
    for i in range(7):
        await make_loc(hub, location_factory, f"Page {i}")
    first = await search(hub, "/fhir/Location?name=Page&_sort=-name&_count=3")
    assert names(first) == ["Page 4", "Page 5", "Page 6"]
    assert first["total"] == 7
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    # a concurrent write that would sort first must not shift the pages of this search
    await make_loc(hub, location_factory, "Page 9")
    second = await search(hub, next_url.replace("http://hub.test", ""))
    assert names(second) == ["Page 1", "Page 2", "Page 3"]
    third_url = next(link["url"] for link in second["link"] if link["relation"] == "next")
    third = await search(hub, third_url.replace("http://hub.test", ""))
    assert names(third) == ["Page 0"]
    assert not any(link["relation"] == "next" for link in third["link"])
    prev_url = next(link["url"] for link in third["link"] if link["relation"] == "previous")
    assert names(await search(hub, prev_url.replace("http://hub.test", ""))) == ["Page 1", "Page 2", "Page 3"]


async def test_paging_snapshot_is_private_to_the_requester(hub, location_factory):
    for i in range(3):
        await make_loc(hub, location_factory, f"Priv {i}")
    first = await search(hub, "/fhir/Location?name=Priv&_count=1")
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next").replace("http://hub.test", "")
    other = await hub.client.get(next_url, headers=hub.headers("coordinator", "http://fhir.nl/fhir/NamingSystem/ura|1"))
    assert other.status_code == 404


async def test_oversize_count_is_400(hub):
    r = await hub.client.get("/fhir/Location?_count=100000", headers=hub.headers())
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["_count"]


async def test_unknown_parameter_lenient_warns_strict_fails(hub, location_factory):
    await make_loc(hub, location_factory, "Lenient")
    lenient = await search(hub, "/fhir/Location?name=Lenient&colour=blue")
    assert names(lenient) == ["Lenient"]
    outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    strict = await hub.client.get(
        "/fhir/Location?name=Lenient&colour=blue", headers=hub.headers(Prefer="handling=strict")
    )
    assert strict.status_code == 400 and strict.json()["issue"][0]["expression"] == ["colour"]


async def test_summary_count_total_and_elements(hub, location_factory):
    for i in range(3):
        await make_loc(hub, location_factory, f"Sum {i}", description="long text")
    count = await search(hub, "/fhir/Location?name=Sum&_summary=count")
    assert count["total"] == 3 and "entry" not in count
    none = await search(hub, "/fhir/Location?name=Sum&_total=none")
    assert "total" not in none
    elements = await search(hub, "/fhir/Location?name=Sum&_elements=name")
    res = elements["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "name"}
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])


async def test_post_search_equals_get(hub, location_factory):
    await make_loc(hub, location_factory, "Posted")
    r = await hub.client.post(
        "/fhir/Location/_search",
        content=b"name=Posted",
        headers={**hub.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and names(r.json()) == ["Posted"]


async def test_type_history_since_returns_changes_in_order(hub, location_factory):
    a = await make_loc(hub, location_factory, "Sync A")
    await make_loc(hub, location_factory, "Sync B")
    await hub.client.put(f"/fhir/Location/{a['id']}", json={**a, "name": "Sync A2"}, headers=hub.headers())
    since = a["meta"]["lastUpdated"]
    history = (await hub.client.get(f"/fhir/Location/_history?_since={since}", headers=hub.headers())).json()
    assert [e["resource"]["name"] for e in history["entry"]][:3] == ["Sync A2", "Sync B", "Sync A"]


@pytest.mark.parametrize(
    "query", ["_count=abc", "_sort=colour", "_include=Location:nothing", "_summary=maybe", "_lastUpdated=notadate"]
)
async def test_bad_result_parameters_are_400(hub, query):
    r = await hub.client.get(f"/fhir/Location?{query}", headers=hub.headers())
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"


async def test_deceased_token_covers_deceased_datetime(hub):
    died = {"resourceType": "Patient", "name": [{"family": "Overleden"}], "deceasedDateTime": "2026-01-02T10:00:00Z"}
    alive = {"resourceType": "Patient", "name": [{"family": "Levend"}], "deceasedBoolean": False}
    for body in (died, alive):
        assert (await hub.client.post("/fhir/Patient", json=body, headers=hub.headers())).status_code == 201
    result = await search(hub, "/fhir/Patient?deceased=true")
    assert [e["resource"]["name"][0]["family"] for e in result["entry"]] == ["Overleden"]


async def test_system_history_and_conditional_delete(hub, location_factory):
    await make_loc(hub, location_factory, "Hist A", identifier=[{"system": BED_SYS, "value": "H/1"}])
    history = (await hub.client.get("/fhir/_history?_count=5", headers=hub.headers())).json()
    assert history["type"] == "history" and history["entry"][0]["resource"]["name"] == "Hist A"
    r = await hub.client.delete(f"/fhir/Location?identifier={BED_SYS}|H/1", headers=hub.headers())
    assert r.status_code == 204
    assert (await search(hub, f"/fhir/Location?identifier={BED_SYS}|H/1")).get("total") == 0


async def test_if_none_match_gives_304(hub, location_factory):
    loc = await make_loc(hub, location_factory, "Cached")
    r = await hub.client.get(f"/fhir/Location/{loc['id']}", headers=hub.headers(**{"If-None-Match": 'W/"1"'}))
    assert r.status_code == 304
