"""Bad input: every refusal is an OperationOutcome and leaves the resources and the aggregate as they were."""

from __future__ import annotations

from typing import Any

from availability_factories import AGB, add_provider, assert_matches_recount, bed, count_report, row, set_status
from sqlalchemy import func, select

from hub.availability import vocabulary as v
from hub.availability.tables import availability_rows, availability_sources
from hub.demo import load_demo_region
from hub.store.schema import resources


async def aggregate_state(hub: Any) -> list[tuple[Any, ...]]:
    async with hub.runtime.engine.connect() as conn:
        t = availability_rows
        columns = [c for c in t.c if c.name != "snapshot_seq"]  # the periodic snapshot task may run meanwhile
        rows = (await conn.execute(select(*columns).order_by(t.c.org_id, t.c.product))).all()
        sources = (await conn.execute(select(availability_sources.c.source, availability_sources.c.version,
                                             availability_sources.c.status))).all()
    return [tuple(r) for r in rows] + sorted(tuple(s) for s in sources)


def outcome_code(response: Any) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["code"])


async def test_status_for_unknown_location_is_404_and_changes_nothing(hub):
    provider = await add_provider(hub, "73100001", "Zorg A", {"elv-hoog": "UU"})
    before = await aggregate_state(hub)
    r = await set_status(hub, provider, "no-such-bed", "O")
    assert r.status_code == 404 and outcome_code(r) == "not-found"
    assert await aggregate_state(hub) == before


async def test_status_for_a_bed_of_another_organisation_is_403_and_changes_nothing(hub):
    owner = await add_provider(hub, "73100002", "Zorg Eigenaar", {"elv-hoog": "UU"})
    other = await add_provider(hub, "73100003", "Zorg Ander", {"elv-laag": "U"})
    bed_id = owner.beds["73100002/elv-hoog/1"]
    current = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=owner.headers)).json()
    before = await aggregate_state(hub)
    via_operation = await set_status(hub, other, bed_id, "O")
    via_put = await hub.client.put(f"/fhir/Location/{bed_id}", headers=other.headers,
                                   json={**current, "operationalStatus": {"system": v.V2_0116, "code": "O"}})
    for response in (via_operation, via_put):
        assert response.status_code == 403 and outcome_code(response) == "forbidden"
    assert await aggregate_state(hub) == before
    unchanged = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=owner.headers)).json()
    assert unchanged["meta"]["versionId"] == "1" and unchanged["operationalStatus"]["code"] == "U"


async def test_provider_may_not_touch_a_system_loaded_bed_of_another_provider(hub):
    """Demo beds are written by the hub itself (no owner row), so only the availability rule stops this."""
    await load_demo_region(hub.runtime)
    icare = hub.headers("vvt-provider", f"{AGB}|73730002")
    search = await hub.client.get("/fhir/Location", headers=icare,
                                  params={"identifier": "https://zorgnet-hub.nl/fhir/NamingSystem/bed|73730001/elv-laag/1"})
    noorderboog_bed = search.json()["entry"][0]["resource"]
    before = await aggregate_state(hub)
    r = await hub.client.post(f"/fhir/Location/{noorderboog_bed['id']}/$set-status", headers=icare,
                              json={"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "C"}]})
    assert r.status_code == 403 and outcome_code(r) == "forbidden"
    patch = await hub.client.patch(f"/fhir/Location/{noorderboog_bed['id']}",
                                   headers={**icare, "Content-Type": "application/json-patch+json"},
                                   json=[{"op": "replace", "path": "/operationalStatus/code", "value": "C"}])
    assert patch.status_code == 403 and outcome_code(patch) == "forbidden"
    assert await aggregate_state(hub) == before
    own = await hub.client.get("/fhir/Location", headers=icare,
                               params={"identifier": "https://zorgnet-hub.nl/fhir/NamingSystem/bed|73730002/grz/4"})
    own_bed = own.json()["entry"][0]["resource"]
    ok = await hub.client.post(f"/fhir/Location/{own_bed['id']}/$set-status", headers=icare,
                               json={"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "O"}]})
    assert ok.status_code == 200
    await assert_matches_recount(hub)


async def test_new_bed_for_another_organisation_is_403(hub):
    owner = await add_provider(hub, "73100004", "Zorg Een", {"grz": "U"})
    other = await add_provider(hub, "73100005", "Zorg Twee", {"grz": "U"})
    r = await hub.client.post("/fhir/Location", headers=other.headers, json=bed("sneaky", org=owner.ref))
    assert r.status_code == 403 and outcome_code(r) == "forbidden"
    assert await hub.count(resources, resources.c.res_type == "Location", resources.c.rid > hub.baseline_rid) == 2


async def test_counts_that_do_not_add_up_are_422_and_nothing_is_stored(hub):
    provider = await add_provider(hub, "73100006", "Zorg Telling", {}, count_products=("elv-laag",))
    svc = f"HealthcareService/{provider.services['elv-laag']}"
    cases = [dict(total=5, occupied=6, free=0), dict(total=5, occupied=-1, free=2), dict(total=5, occupied=3, free=3),
             dict(total=4, occupied=None, free=7)]
    for counts in cases:
        r = await hub.client.post("/fhir/MeasureReport", headers=provider.headers,
                                  json=count_report(svc, provider.ref, **counts))
        assert r.status_code == 422, (counts, r.text)
        assert outcome_code(r) == "processing"
        assert r.json()["issue"][0]["expression"] == ["MeasureReport.group.population.count"]
    assert await hub.count(resources, resources.c.res_type == "MeasureReport") == 0
    assert await row(hub, provider, "elv-laag") is None


async def test_count_for_unknown_service_or_foreign_service_is_rejected(hub):
    provider = await add_provider(hub, "73100007", "Zorg Drie", {}, count_products=("grz",))
    other = await add_provider(hub, "73100008", "Zorg Vier", {}, count_products=("grz",))
    unknown = await hub.client.post("/fhir/MeasureReport", headers=provider.headers,
                                    json=count_report("HealthcareService/nope", provider.ref, total=3, occupied=1,
                                                      free=2))
    assert unknown.status_code == 422 and outcome_code(unknown) == "business-rule"
    foreign_service = await hub.client.post(
        "/fhir/MeasureReport", headers=provider.headers,
        json=count_report(f"HealthcareService/{other.services['grz']}", provider.ref, total=3, occupied=1, free=2))
    assert foreign_service.status_code == 422 and outcome_code(foreign_service) == "business-rule"
    as_other = await hub.client.post(
        "/fhir/MeasureReport", headers=provider.headers,
        json=count_report(f"HealthcareService/{other.services['grz']}", other.ref, total=3, occupied=1, free=2))
    assert as_other.status_code == 403 and outcome_code(as_other) == "forbidden"
    assert await hub.count(resources, resources.c.res_type == "MeasureReport") == 0


async def test_stale_if_match_is_412_and_changes_nothing(hub):
    provider = await add_provider(hub, "73100009", "Zorg Vijf", {"elv-pall": "UU"})
    bed_id = provider.beds["73100009/elv-pall/1"]
    assert (await set_status(hub, provider, bed_id, "O", **{"If-Match": 'W/"1"'})).status_code == 200
    before = await aggregate_state(hub)
    stale_op = await set_status(hub, provider, bed_id, "C", **{"If-Match": 'W/"1"'})
    current = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)).json()
    stale_put = await hub.client.put(f"/fhir/Location/{bed_id}", headers={**provider.headers, "If-Match": 'W/"1"'},
                                     json={**current, "operationalStatus": {"system": v.V2_0116, "code": "U"}})
    for response in (stale_op, stale_put):
        assert response.status_code == 412 and outcome_code(response) == "conflict"
    assert await aggregate_state(hub) == before
    assert current["meta"]["versionId"] == "2" and current["operationalStatus"]["code"] == "O"


async def test_bad_status_codes_and_non_beds_are_refused(hub):
    provider = await add_provider(hub, "73100010", "Zorg Zes", {"wmo-kv": "U"})
    bed_id = provider.beds["73100010/wmo-kv/1"]
    unknown_code = await set_status(hub, provider, bed_id, "X")
    assert unknown_code.status_code == 400 and outcome_code(unknown_code) == "invalid"
    no_parameter = await hub.client.post(f"/fhir/Location/{bed_id}/$set-status", headers=provider.headers,
                                         json={"resourceType": "Parameters"})
    assert no_parameter.status_code == 400
    ward = (await hub.client.post("/fhir/Location", headers=provider.headers, json={
        "resourceType": "Location", "name": "Afdeling", "managingOrganization": {"reference": provider.ref}})).json()
    not_a_bed = await set_status(hub, provider, ward["id"], "U")
    assert not_a_bed.status_code == 422 and outcome_code(not_a_bed) == "business-rule"
    current = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)).json()
    bad_put = await hub.client.put(f"/fhir/Location/{bed_id}", headers=provider.headers,
                                   json={**current, "operationalStatus": {"system": v.V2_0116, "code": "Z"}})
    assert bad_put.status_code == 422 and bad_put.json()["issue"][0]["expression"] == ["Location.operationalStatus"]
    figures = await row(hub, provider, "wmo-kv")
    assert figures is not None and figures["free"] == 1
    versions = await hub.scalar(select(func.max(resources.c.version)).where(resources.c.res_id == bed_id))
    assert versions == 1
