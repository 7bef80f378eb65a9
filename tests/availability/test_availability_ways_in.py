"""Both ways in (bed statuses, count MeasureReports) and how each bed or count lands in the aggregate."""

from __future__ import annotations

from availability_factories import (
    add_provider,
    assert_matches_recount,
    bed,
    count_report,
    picture,
    row,
    service,
    set_status,
)
from sqlalchemy import select

from hub.availability import vocabulary as v
from hub.availability.tables import availability_rows, availability_sources


async def test_bed_statuses_count_as_free_occupied_reserved_or_unavailable(hub):
    provider = await add_provider(hub, "73000001", "Zorg Noord", {"elv-hoog": "UUOCHKI"})
    reserved = bed("73000001/elv-hoog/res", status="U", org=provider.ref, reserved_for="Task/offer-1")
    extra = bed("73000001/elv-hoog/extra", org=provider.ref,
                operationalStatus={"system": v.BED_STATUS_EXTRA, "code": "reserved"})
    for resource in (reserved, extra):
        r = await hub.client.post("/fhir/Location", json=resource, headers=provider.headers)
        assert r.status_code == 201, r.text
    figures = await row(hub, provider, "elv-hoog")
    assert figures is not None
    assert (figures["total"], figures["free"], figures["occupied"], figures["reserved"], figures["unavailable"]) == (
        9, 2, 1, 2, 4)
    assert figures["region"] == "Drenthe" and figures["postcode"] == "9401 AB" and figures["name"] == "Zorg Noord"
    totals = {(t["region"], t["product"]): t for t in (await picture(hub))["totals"]}
    assert totals[("Drenthe", "elv-hoog")]["free"] == 2
    await assert_matches_recount(hub)


async def test_set_status_moves_one_bed_and_refreshes_freshness(hub):
    provider = await add_provider(hub, "73000002", "Zorg Oost", {"elv-laag": "UU"})
    before = await row(hub, provider, "elv-laag")
    bed_id = provider.beds["73000002/elv-laag/1"]
    r = await set_status(hub, provider, bed_id, "O")
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    assert r.json()["operationalStatus"]["code"] == "O"
    after = await row(hub, provider, "elv-laag")
    assert before is not None and after is not None
    assert (before["free"], after["free"], after["occupied"]) == (2, 1, 1)
    assert after["seq"] > before["seq"] and after["last_update"] >= before["last_update"]
    status = await hub.scalar(select(availability_sources.c.status)
                              .where(availability_sources.c.source == f"Location/{bed_id}"))
    assert status == "O"
    await assert_matches_recount(hub)


async def test_same_status_again_is_a_confirmation_that_only_refreshes_freshness(hub):
    provider = await add_provider(hub, "73000003", "Zorg West", {"grz": "U"})
    bed_id = provider.beds["73000003/grz/1"]
    first = await row(hub, provider, "grz")
    again = await set_status(hub, provider, bed_id, "U")
    assert again.status_code == 200 and again.headers["etag"] == 'W/"1"'  # no new version
    second = await row(hub, provider, "grz")
    assert first is not None and second is not None
    assert second["free"] == first["free"] == 1
    assert second["seq"] > first["seq"] and second["last_update"] >= first["last_update"]


async def test_bed_without_extension_takes_the_product_of_its_ward_service_and_follows_it(hub):
    provider = await add_provider(hub, "73000004", "Zorg Zuid", {"elv-hoog": "U"})
    ward = (await hub.client.post("/fhir/Location", headers=provider.headers, json={
        "resourceType": "Location", "status": "active", "name": "Afdeling Linde",
        "managingOrganization": {"reference": provider.ref}})).json()
    plain = bed("73000004/ward/1", product=None, status="U", org=provider.ref, parent=f"Location/{ward['id']}")
    plain_id = (await hub.client.post("/fhir/Location", json=plain, headers=provider.headers)).json()["id"]
    assert await row(hub, provider, "grz") is None  # no service lists the ward yet: known, not counted
    counted = await hub.scalar(select(availability_sources.c.counted)
                               .where(availability_sources.c.source == f"Location/{plain_id}"))
    assert counted is False
    svc = (await hub.client.post("/fhir/HealthcareService", headers=provider.headers,
                                 json=service("grz", provider.ref, locations=(f"Location/{ward['id']}",)))).json()
    grz = await row(hub, provider, "grz")
    assert grz is not None and (grz["total"], grz["free"]) == (1, 1)
    await hub.client.put(f"/fhir/HealthcareService/{svc['id']}", headers=provider.headers,
                         json={**svc, "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": "wlz-crisis"}]}]})
    moved = await row(hub, provider, "wlz-crisis")
    left = await row(hub, provider, "grz")
    assert moved is not None and moved["free"] == 1
    assert left is not None and (left["total"], left["free"]) == (0, 0)
    await assert_matches_recount(hub)


async def test_deleted_or_inactive_beds_leave_the_count(hub):
    provider = await add_provider(hub, "73000005", "Zorg Midden", {"wmo-kv": "UUU"})
    ids = list(provider.beds.values())
    assert (await hub.client.delete(f"/fhir/Location/{ids[0]}", headers=provider.headers)).status_code == 204
    current = (await hub.client.get(f"/fhir/Location/{ids[1]}", headers=provider.headers)).json()
    r = await hub.client.put(f"/fhir/Location/{ids[1]}", json={**current, "status": "inactive"},
                             headers=provider.headers)
    assert r.status_code == 200
    figures = await row(hub, provider, "wmo-kv")
    assert figures is not None and (figures["total"], figures["free"]) == (1, 1)
    await assert_matches_recount(hub)


async def test_bed_without_address_is_placed_by_its_organization_and_moves_with_it(hub):
    provider = await add_provider(hub, "73000006", "Zorg Emmen", {}, postcode="7811 CD", city="Emmen",
                                  org_address=True)
    r = await hub.client.post("/fhir/Location", headers=provider.headers,
                              json=bed("73000006/1", product="elv-pall", org=provider.ref, postcode=None, city=None))
    assert r.status_code == 201
    figures = await row(hub, provider, "elv-pall")
    assert figures is not None and (figures["region"], figures["postcode"]) == ("Drenthe", "7811 CD")
    org = (await hub.client.get(f"/fhir/Organization/{provider.org_id}", headers=provider.headers)).json()
    moved = {**org, "name": "Zorg Zwolle", "address": [{"postalCode": "8011 AA", "city": "Zwolle"}]}
    assert (await hub.client.put(f"/fhir/Organization/{provider.org_id}", json=moved,
                                 headers=provider.headers)).status_code == 200
    rows = (await picture(hub, organization=provider.ref))["rows"]
    live = [r for r in rows if r["total"]]
    assert [(r["region"], r["postcode"], r["name"]) for r in live] == [("Overijssel", "8011 AA", "Zorg Zwolle")]
    await assert_matches_recount(hub)
    deleted = await hub.client.delete(f"/fhir/Organization/{provider.org_id}", headers=provider.headers)
    assert deleted.status_code == 204
    rows = [r for r in (await picture(hub, organization=provider.ref))["rows"] if r["total"]]
    assert [r["region"] for r in rows] == ["Onbekend"]
    await assert_matches_recount(hub)


async def test_count_reports_latest_wins_older_is_ignored_deleting_the_latest_falls_back(hub):
    provider = await add_provider(hub, "73000007", "Zorg Telt", {}, count_products=("wlz-crisis",))
    svc = f"HealthcareService/{provider.services['wlz-crisis']}"

    async def report(date: str, total: int, occupied: int, free: int) -> str:
        r = await hub.client.post("/fhir/MeasureReport", headers=provider.headers,
                                  json=count_report(svc, provider.ref, total=total, occupied=occupied, free=free,
                                                    date=date))
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    await report("2026-11-23T08:00:00Z", 10, 6, 3)
    first = await row(hub, provider, "wlz-crisis")
    assert first is not None and (first["total"], first["occupied"], first["free"], first["unavailable"]) == (
        10, 6, 3, 1)
    latest = await report("2026-11-23T12:00:00Z", 10, 9, 1)
    await report("2026-11-22T08:00:00Z", 10, 0, 10)  # an older report arriving late changes nothing
    now = await row(hub, provider, "wlz-crisis")
    assert now is not None and (now["occupied"], now["free"]) == (9, 1)
    assert (await hub.client.delete(f"/fhir/MeasureReport/{latest}", headers=provider.headers)).status_code == 204
    back = await row(hub, provider, "wlz-crisis")
    assert back is not None and (back["occupied"], back["free"]) == (6, 3)
    await assert_matches_recount(hub)


async def test_unknown_count_is_derived_from_the_other_two(hub):
    provider = await add_provider(hub, "73000008", "Zorg Half", {}, count_products=("grz",))
    svc = f"HealthcareService/{provider.services['grz']}"
    r = await hub.client.post("/fhir/MeasureReport", headers=provider.headers,
                              json=count_report(svc, provider.ref, total=8, occupied=5, free=None))
    assert r.status_code == 201
    figures = await row(hub, provider, "grz")
    assert figures is not None and (figures["total"], figures["occupied"], figures["free"]) == (8, 5, 3)


async def test_rows_keep_their_counts_in_the_table_not_only_in_the_cache(hub):
    provider = await add_provider(hub, "73000009", "Zorg Tabel", {"elv-hoog": "UO"})
    stored = (await hub.scalar(select(availability_rows.c.free).where(availability_rows.c.org_id == provider.org_id)))
    assert stored == 1
    await hub.runtime.extras["availability"].reset()  # a cold cache: the read falls back to the table
    cold = await picture(hub, organization=provider.ref)
    assert cold["from_cache"] is False and cold["rows"][0]["free"] == 1


async def test_rebuild_from_resources_reproduces_the_incremental_aggregate(hub):
    """What start-up does for a database that has beds but no aggregate yet (a hub upgraded to this package)."""
    from hub.availability.recount import rebuild, table_figures, without_empty

    provider = await add_provider(hub, "73000010", "Zorg Herbouw", {"elv-hoog": "UOC", "grz": "U"},
                                  count_products=("wmo-kv",))
    await hub.client.post("/fhir/MeasureReport", headers=provider.headers, json=count_report(
        f"HealthcareService/{provider.services['wmo-kv']}", provider.ref, total=6, occupied=2, free=4))
    async with hub.runtime.engine.connect() as conn:
        incremental = await table_figures(conn)
    async with hub.runtime.engine.begin() as conn:
        assert await rebuild(conn) == 5  # four beds and one reporting service
    async with hub.runtime.engine.connect() as conn:
        rebuilt = await table_figures(conn)
    assert [without_empty(x) for x in rebuilt] == [without_empty(x) for x in incremental]
    await hub.runtime.extras["availability"].reset()
    await assert_matches_recount(hub)


async def test_start_up_rebuilds_a_missing_aggregate_and_reloads_the_cache(hub):
    from sqlalchemy import delete

    from hub.availability import hooks
    from hub.availability.tables import availability_providers, availability_totals

    provider = await add_provider(hub, "73000011", "Zorg Opstart", {"grz": "UUO"})
    async with hub.runtime.engine.begin() as conn:  # as if the package were new to this database
        for table in (availability_sources, availability_rows, availability_totals, availability_providers):
            await conn.execute(delete(table))
    await hooks.on_startup(hub.runtime)
    figures = await row(hub, provider, "grz")
    assert figures is not None and (figures["total"], figures["free"], figures["name"]) == (3, 2, "Zorg Opstart")
    await assert_matches_recount(hub)
