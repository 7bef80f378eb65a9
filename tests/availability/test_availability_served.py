"""The picture served: $availability (FHIR), /api/availability (JSON), staleness, history, access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from availability_factories import AGB, add_provider, picture, set_status

from hub.availability import aggregate, history
from hub.availability import vocabulary as v
from hub.fhir.validation import validate
from hub.store.sql import utcnow
from hub.worker import PERIODIC


def populations(report: dict) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]}


async def test_availability_operation_returns_valid_measure_reports_filtered_by_product(hub):
    north = await add_provider(hub, "73200001", "Zorg Noord", {"elv-hoog": "UUO", "grz": "O"})
    r = await hub.client.get("/fhir/HealthcareService/$availability", params={"product": "elv-hoog"},
                             headers=hub.headers("gp", f"{AGB}|01000001"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    bundle = r.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset" and bundle["total"] == 1
    report = bundle["entry"][0]["resource"]
    validate(report)  # a valid R4 MeasureReport (fhir.resources), contained service included
    assert report["meta"]["profile"] == [v.REPORT_PROFILE]
    assert populations(report) == {"numTotBeds": 3, "numTotBedsOcc": 1, "numTotBedsAvail": 2}
    assert report["reporter"]["reference"] == north.ref
    assert report["subject"]["reference"] == "#service"
    contained = report["contained"][0]
    assert contained["type"][0]["coding"][0] == {"system": v.CARE_PRODUCT, "code": "elv-hoog",
                                                 "display": "ELV hoog complex"}
    assert contained["providedBy"]["reference"] == north.ref
    assert {"url": v.STALE_EXT, "valueBoolean": False} in report["extension"]
    assert report["date"] == report["meta"]["lastUpdated"]


async def test_availability_operation_filters_by_organization_and_ranks_near_postcode(hub):
    assen = await add_provider(hub, "73200002", "Zorg Assen", {"elv-laag": "U"}, postcode="9401 AB", city="Assen")
    emmen = await add_provider(hub, "73200003", "Zorg Emmen", {"elv-laag": "U"}, postcode="7811 CD", city="Emmen")
    meppel = await add_provider(hub, "73200004", "Zorg Meppel", {"elv-laag": "U"}, postcode="7941 EF", city="Meppel")
    headers = hub.headers("coordinator")

    async def reporters(**params: str) -> list[str]:
        r = await hub.client.get("/fhir/HealthcareService/$availability", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [e["resource"]["reporter"]["reference"] for e in r.json()["entry"]]

    assert await reporters(organization=emmen.ref) == [emmen.ref]
    assert await reporters(organization=f"{AGB}|73200004") == [meppel.ref]
    assert await reporters(organization=f"{AGB}|99999999") == []
    assert await reporters(product="elv-laag", near="7812") == [emmen.ref, meppel.ref, assen.ref]
    assert await reporters(product="elv-laag", near="9402 XY") == [assen.ref, meppel.ref, emmen.ref]


async def test_availability_operation_refuses_bad_parameters_and_xml_and_needs_a_token(hub):
    headers = hub.headers("coordinator")
    unknown = await hub.client.get("/fhir/HealthcareService/$availability?product=wijkverpleging", headers=headers)
    assert unknown.status_code == 400 and unknown.json()["issue"][0]["expression"] == ["product"]
    bad_near = await hub.client.get("/fhir/HealthcareService/$availability?near=Assen", headers=headers)
    assert bad_near.status_code == 400
    xml = await hub.client.get("/fhir/HealthcareService/$availability?_format=xml", headers=headers)
    assert xml.status_code == 406 and xml.json()["issue"][0]["code"] == "not-supported"
    as_json = await hub.client.get("/fhir/HealthcareService/$availability?_format=json", headers=headers)
    assert as_json.status_code == 200
    for url in ("/fhir/HealthcareService/$availability", "/api/availability", "/api/availability/stream",
                "/api/availability/history"):
        anonymous = await hub.client.get(url)
        assert anonymous.status_code == 401 and anonymous.json()["issue"][0]["code"] == "login"


async def test_capability_statement_lists_the_operations(hub):
    statement = (await hub.client.get("/fhir/metadata")).json()
    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"name": "availability",
            "definition": f"{v.HUB}/OperationDefinition/HealthcareService-availability"} in by_type[
        "HealthcareService"]["operation"]
    assert "set-status" in {o["name"] for o in by_type["Location"]["operation"]}


async def test_dashboard_json_has_rows_providers_and_regional_totals(hub):
    one = await add_provider(hub, "73200005", "Zorg Een", {"elv-hoog": "UO", "wmo-kv": "U"})
    two = await add_provider(hub, "73200006", "Zorg Twee", {"elv-hoog": "UU"}, postcode="8011 AA", city="Zwolle")
    body = await picture(hub)
    assert body["stale_after_minutes"] == hub.settings.stale_after_minutes
    assert {p["code"] for p in body["products"]} >= {"elv-laag", "elv-hoog", "grz", "wmo-kv"}
    totals = {(t["region"], t["product"]): (t["free"], t["total"]) for t in body["totals"]}
    assert totals == {("Drenthe", "elv-hoog"): (1, 2), ("Drenthe", "wmo-kv"): (1, 1),
                      ("Overijssel", "elv-hoog"): (2, 2)}
    providers = {p["org_id"]: p for p in body["providers"]}
    assert (providers[one.org_id]["free"], providers[one.org_id]["total"]) == (2, 3)
    assert providers[two.org_id]["region"] == "Overijssel" and providers[two.org_id]["stale"] is False
    filtered = await picture(hub, product="elv-hoog", region="Overijssel")
    assert [(r["org_id"], r["free"]) for r in filtered["rows"]] == [(two.org_id, 2)]
    assert [(t["region"], t["product"]) for t in filtered["totals"]] == [("Overijssel", "elv-hoog")]


async def test_a_provider_silent_longer_than_the_period_is_stale_in_every_view(hub, monkeypatch):
    long_ago = utcnow() - timedelta(minutes=hub.settings.stale_after_minutes + 5)
    monkeypatch.setattr(aggregate, "utcnow", lambda: long_ago)  # these writes happened a day ago
    silent = await add_provider(hub, "73200007", "Zorg Stil", {"grz": "UU"})
    monkeypatch.undo()
    fresh = await add_provider(hub, "73200008", "Zorg Vers", {"grz": "U"})
    body = await picture(hub, product="grz")
    stale = {r["org_id"]: r["stale"] for r in body["rows"]}
    assert stale == {silent.org_id: True, fresh.org_id: False}
    assert {p["org_id"]: p["stale"] for p in body["providers"]} == stale
    bundle = (await hub.client.get("/fhir/HealthcareService/$availability?product=grz",
                                   headers=hub.headers("coordinator"))).json()
    flags = {e["resource"]["reporter"]["reference"]: e["resource"]["extension"][0]["valueBoolean"]
             for e in bundle["entry"]}
    assert flags == {silent.ref: True, fresh.ref: False}
    page = await hub.client.get("/overzicht?product=grz", cookies={"zorgnet_token": hub.token("coordinator")})
    silent_row = page.text.split(f'data-row="{silent.org_id}|Drenthe"')[1].split("</tr>")[0]
    fresh_row = page.text.split(f'data-row="{fresh.org_id}|Drenthe"')[1].split("</tr>")[0]
    assert "verouderd-label" in silent_row and "verouderd-label" not in fresh_row
    await set_status(hub, silent, silent.beds["73200007/grz/1"], "O")  # a new figure: fresh again
    assert {r["org_id"]: r["stale"] for r in (await picture(hub, product="grz"))["rows"]}[silent.org_id] is False


async def test_history_reports_occupancy_per_bucket_from_snapshots(hub, monkeypatch):
    monkeypatch.delitem(PERIODIC, "availability.take_snapshots")  # this test takes the snapshots itself
    provider = await add_provider(hub, "73200009", "Zorg Historie", {"elv-laag": "UUUU"})
    start = utcnow()
    assert await history.take_snapshots(hub.runtime, start - timedelta(hours=2)) == 1
    assert await history.take_snapshots(hub.runtime, start - timedelta(hours=2)) == 0  # nothing changed since
    for name in ("73200009/elv-laag/1", "73200009/elv-laag/2", "73200009/elv-laag/3"):
        await set_status(hub, provider, provider.beds[name], "O")
    assert await history.take_snapshots(hub.runtime, start) == 1
    since = (start - timedelta(hours=3)).isoformat(timespec="seconds") + "Z"
    r = await hub.client.get("/api/availability/history", headers=hub.headers("municipality", "x|0106"),
                             params={"product": "elv-laag", "organization": provider.ref, "since": since,
                                     "bucket": "hour"})
    assert r.status_code == 200, r.text
    series = r.json()["series"]
    assert len(series) == 1 and series[0]["organization"] == provider.ref
    points = series[0]["points"]
    assert points[0]["occupancy"] == 0.0 and points[-1]["occupancy"] == 0.75
    assert points[-1]["free"] == 1 and points[-1]["total"] == 4
    bad = await hub.client.get("/api/availability/history?bucket=week", headers=hub.headers())
    assert bad.status_code == 400


@pytest.mark.parametrize("role", ["gp", "municipality", "vvt-provider", "hap-doctor", "privacy-officer"])
async def test_every_authenticated_role_may_read_availability(hub, role):
    r = await hub.client.get("/api/availability", headers=hub.headers(role, f"{AGB}|73200010"))
    assert r.status_code == 200
