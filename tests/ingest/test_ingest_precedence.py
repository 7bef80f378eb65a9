"""HL7 wins over the spreadsheet: counts for a provider x care product with a live HL7 bed feed are not applied."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from ingest_cases import COORDINATION_POINT, HUNZEHOF, HUNZEHOF_CONFIG, configure, hl7, ingest, sample, search
from sqlalchemy import update

from hub.ingest.tables import ingest_conflicts, ingest_hl7_beds

HOOG = "73730001/de-hunzehof/elv-hoog/2026-03-09"


async def _sheet(hub: Any) -> Any:
    body = sample("beddenoverzicht_drenthe_2026-03-09.csv")
    return await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)


async def _report_ids(hub: Any) -> set[str]:
    return {r["identifier"][0]["value"] for r in await search(hub, "MeasureReport", {"date": "2026-03-09"})}


async def test_spreadsheet_count_for_hl7_fed_beds_is_not_applied_and_the_conflict_is_logged(
    hunzehof: Any, caplog: Any
) -> None:
    hub = hunzehof
    assert (await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)).status_code == 201
    with caplog.at_level(logging.WARNING, logger="hub.ingest"):
        response = await _sheet(hub)
    assert response.status_code == 201, response.text
    conflicts = [i for i in response.json()["issue"] if i["code"] == "conflict"]
    assert len(conflicts) == 1 and conflicts[0]["severity"] == "warning"
    text = conflicts[0]["diagnostics"]
    assert HOOG in text and "1 beds: 1 occupied, 0 free" in text and "capacity 4, occupied 4, free 0" in text
    ids = await _report_ids(hub)
    assert HOOG not in ids and len(ids) == 7  # the other products and providers are applied
    services = await search(
        hub,
        "HealthcareService",
        {"identifier": f"https://zorgnet-hub.nl/fhir/NamingSystem/healthcareservice|{HOOG.rsplit('/', 1)[0]}"},
    )
    assert len(services) == 1  # directory data (phone, remarks) still stored
    assert (
        await hub.count(
            ingest_conflicts, ingest_conflicts.c.owner == "73730001", ingest_conflicts.c.care_product == "elv-hoog"
        )
        == 1
    )
    assert any("HL7 wins over spreadsheet" in r.getMessage() for r in caplog.records)


async def test_spreadsheet_applies_when_the_hl7_feed_has_been_silent_too_long(hunzehof: Any) -> None:
    hub = hunzehof
    a20 = await ingest(hub, "hl7v2", hl7("adt_a20_bedstatus.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert a20.status_code == 201
    async with hub.runtime.engine.begin() as conn:
        await conn.execute(update(ingest_hl7_beds).values(received=datetime(2026, 1, 1) - timedelta(days=30)))
    response = await _sheet(hub)
    assert response.status_code == 201
    assert not [i for i in response.json()["issue"] if i["code"] == "conflict"]
    assert HOOG in await _report_ids(hub)


async def test_beds_without_a_care_product_never_override_the_spreadsheet(hub: Any) -> None:
    unmapped = {**HUNZEHOF_CONFIG, "config": {}}
    assert (await configure(hub, HUNZEHOF, unmapped)).status_code == 200
    a01 = await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert a01.status_code == 201
    assert any("product" in i["diagnostics"] for i in a01.json()["issue"] if i["severity"] == "warning")
    assert (await _sheet(hub)).status_code == 201
    assert HOOG in await _report_ids(hub)
    assert await hub.count(ingest_conflicts) == 0
