"""Re-delivery changes nothing; out-of-order HL7 events are applied by event time, not arrival."""

from __future__ import annotations

import asyncio
from typing import Any

from ingest_cases import (
    COORDINATION_POINT,
    HUB,
    HUNZEHOF,
    bed,
    hl7,
    ingest,
    one,
    sample,
    search,
    variant,
)
from sqlalchemy import func, select

from hub.store.schema import idempotency, resource_versions

VISIT = f"{HUB}/NamingSystem/visit-number|73730001/V2026-0000917"


async def _versions(hub: Any) -> int:
    return int(
        await hub.scalar(
            select(func.count()).select_from(resource_versions).where(resource_versions.c.rid > hub.baseline_rid)
        )
    )


async def test_same_hl7_message_twice_changes_nothing_the_second_time(hunzehof: Any) -> None:
    hub = hunzehof
    first = await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert first.status_code == 201
    versions = await _versions(hub)
    second = await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert second.status_code == 200
    issues = second.json()["issue"]
    assert issues[0]["code"] == "duplicate"
    assert "hl7v2|" in issues[0]["diagnostics"]
    assert issues[1:] == first.json()["issue"]  # the first answer, repeated
    assert await _versions(hub) == versions
    assert await hub.count(idempotency) == 1
    assert len(await search(hub, "Provenance")) == 1


async def test_same_spreadsheet_twice_is_recognised_by_its_content_hash(hub: Any) -> None:
    body = sample("beddenoverzicht_drenthe_2026-03-09.csv")
    assert (await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)).status_code == 201
    versions = await _versions(hub)
    again = await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)
    assert again.status_code == 200
    assert "sha256:" in again.json()["issue"][0]["diagnostics"]
    assert await _versions(hub) == versions


async def test_reused_message_id_with_other_content_is_not_applied(hunzehof: Any) -> None:
    hub = hunzehof
    a20 = hl7("adt_a20_bedstatus.hl7")
    assert (await ingest(hub, "hl7v2", a20, role="vvt-provider", org=HUNZEHOF)).status_code == 201
    reused = variant(a20, bed_status="U")  # same MSH-10, other content
    response = await ingest(hub, "hl7v2", reused, role="vvt-provider", org=HUNZEHOF)
    assert response.status_code == 200
    assert [i["severity"] for i in response.json()["issue"][:2]] == ["information", "warning"]
    assert (await bed(hub))["operationalStatus"]["code"] == "H"


async def test_a20_events_delivered_newest_first_keep_the_newest_status(hunzehof: Any) -> None:
    hub = hunzehof
    a20 = hl7("adt_a20_bedstatus.hl7")
    newest = variant(a20, control_id="A20-3", event_time="20260309120000+0100", bed_status="U")
    middle = variant(a20, control_id="A20-2", event_time="20260309100000+0100", bed_status="C")
    oldest = variant(a20, control_id="A20-1", event_time="20260309081500+0100", bed_status="H")
    assert (await ingest(hub, "hl7v2", newest, role="vvt-provider", org=HUNZEHOF)).status_code == 201
    versions = await _versions(hub)
    for older in (middle, oldest):
        response = await ingest(hub, "hl7v2", older, role="vvt-provider", org=HUNZEHOF)
        assert response.status_code == 200, response.text
        stale = [i for i in response.json()["issue"] if i["code"] == "conflict"]
        assert len(stale) == 1
        assert "73730001/ELV-ZW/K12-1" in stale[0]["diagnostics"]
        assert "2026-03-09T11:00:00.000Z" in stale[0]["diagnostics"]  # the event that stands (12:00 +01:00)
    location = await bed(hub)
    assert location["operationalStatus"]["code"] == "U"
    assert location["meta"]["versionId"] == "1"
    assert await _versions(hub) == versions
    later = variant(a20, control_id="A20-4", event_time="20260309130000+0100", bed_status="O")
    assert (await ingest(hub, "hl7v2", later, role="vvt-provider", org=HUNZEHOF)).status_code == 201
    assert (await bed(hub))["operationalStatus"]["code"] == "O"


async def test_discharge_arriving_before_the_admission_keeps_the_encounter_finished(hunzehof: Any) -> None:
    hub = hunzehof
    discharge = await ingest(hub, "hl7v2", hl7("adt_a03_ontslag.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert discharge.status_code == 201
    late = await ingest(hub, "hl7v2", hl7("adt_a01_opname.hl7"), role="vvt-provider", org=HUNZEHOF)
    assert late.status_code in (200, 201), late.text  # 201: the GP practice it names is new
    conflicts = [i["diagnostics"] for i in late.json()["issue"] if i["code"] == "conflict"]
    assert sorted(c.split("?")[0] for c in conflicts) == ["Encounter", "Location"]
    assert any("/bed|73730001/ELV-ZW/K12-1" in c for c in conflicts)
    encounter = await one(hub, "Encounter", VISIT)
    assert encounter["status"] == "finished"
    assert encounter["meta"]["versionId"] == "1"
    assert (await bed(hub))["operationalStatus"]["code"] == "H"


async def test_concurrent_deliveries_of_one_message_store_it_once(hunzehof: Any) -> None:
    hub = hunzehof
    message = hl7("adt_a01_opname.hl7")
    responses = await asyncio.gather(
        *(ingest(hub, "hl7v2", message, role="vvt-provider", org=HUNZEHOF) for _ in range(3))
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 201], [r.text for r in responses]
    assert len(await search(hub, "Encounter")) == 1
    assert len(await search(hub, "Provenance")) == 1
