"""Bed status changes written together (hub/availability/bed_status.py): one group-commit batch of mixed
changes gives every request the outcome it would have had alone, writes every change (versions, history, search
index, aggregate), and a lost race keeps nothing of the batch."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from availability_factories import add_provider, assert_matches_recount, row
from sqlalchemy import func, select

from hub.availability import bed_status
from hub.availability.bed_status import StatusChange
from hub.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from hub.security.context import AccessContext
from hub.store.repository import WriteResult
from hub.store.schema import resource_versions


def provider_ctx(provider: Any) -> AccessContext:
    return AccessContext(subject="tests", org=provider.org, role="vvt-provider")


async def history_count(hub: Any, bed_id: str) -> int:
    async with hub.runtime.engine.connect() as conn:
        stmt = select(func.count()).select_from(resource_versions).where(
            resource_versions.c.res_type == "Location", resource_versions.c.res_id == bed_id)
        return int((await conn.execute(stmt)).scalar_one())


async def test_one_batch_of_mixed_changes_gives_each_request_its_own_outcome(hub):
    north = await add_provider(hub, "73100001", "Zorg Noord", {"elv-hoog": "UUUU", "grz": "OO"})
    south = await add_provider(hub, "73100002", "Zorg Zuid", {"elv-hoog": "UU"})
    beds = list(north.beds.values())
    mine, theirs = provider_ctx(north), provider_ctx(south)
    twice = beds[0]
    changes = [
        StatusChange(mine, twice, "O", None),  # written, then written again in a second round
        StatusChange(mine, beds[1], "O", 1),  # If-Match current
        StatusChange(mine, beds[2], "O", 7),  # stale If-Match: 412
        StatusChange(mine, beds[3], "U", None),  # the same status again: a confirmation
        StatusChange(theirs, beds[4], "U", None),  # another provider's bed: 403
        StatusChange(mine, "no-such-bed", "O", None),  # 404
        StatusChange(mine, twice, "C", None),
        StatusChange(mine, beds[5], "U", None),  # grz bed freed
    ]
    writes = hub.runtime.writes
    batches, fallbacks = writes.batches, writes.fallbacks
    outcomes = await asyncio.gather(*(writes.run(bed_status.together(c), key=f"Location/{c.location_id}")
                                      for c in changes), return_exceptions=True)
    assert writes.batches == batches + 1 and writes.fallbacks == fallbacks, "expected one shared batch, kept"
    first, if_match, stale, same, foreign, unknown, again, freed = outcomes
    assert isinstance(stale, PreconditionFailed) and isinstance(foreign, Forbidden)
    assert isinstance(unknown, NotFound)
    assert isinstance(first, WriteResult) and first.stored.version == 2
    assert isinstance(again, WriteResult) and again.stored.version == 3
    assert isinstance(if_match, WriteResult) and if_match.stored.version == 2
    assert isinstance(same, WriteResult) and same.unchanged and same.stored.version == 1
    assert isinstance(freed, WriteResult) and freed.stored.version == 2

    headers = hub.headers("coordinator")
    read = (await hub.client.get(f"/fhir/Location/{twice}", headers=headers)).json()
    assert read["operationalStatus"]["code"] == "C" and read["meta"]["versionId"] == "3"
    v2 = (await hub.client.get(f"/fhir/Location/{twice}/_history/2", headers=headers)).json()
    assert v2["operationalStatus"]["code"] == "O"
    assert await history_count(hub, twice) == 3 and await history_count(hub, beds[2]) == 1
    found = await hub.client.get("/fhir/Location?operational-status=C&_summary=count", headers=headers)
    assert found.json()["total"] == 1  # the index follows the last round
    untouched = (await hub.client.get(f"/fhir/Location/{beds[2]}", headers=headers)).json()
    assert untouched["operationalStatus"]["code"] == "U" and untouched["meta"]["versionId"] == "1"

    hoog = await row(hub, north, "elv-hoog")
    grz = await row(hub, north, "grz")
    assert hoog is not None and grz is not None
    assert (hoog["free"], hoog["occupied"], hoog["unavailable"]) == (2, 1, 1)
    assert (grz["free"], grz["occupied"]) == (1, 1)
    await assert_matches_recount(hub)


async def test_a_version_that_moved_fails_the_whole_set_and_keeps_nothing(hub):
    provider = await add_provider(hub, "73100003", "Zorg West", {"elv-laag": "UU"})
    first, second = provider.beds.values()
    ctx = provider_ctx(provider)
    with pytest.raises(Conflict):
        async with hub.runtime.uow() as uow:
            current = await uow.resources.current_many("Location", [first, second])
            prepared = []
            for bed_id in (first, second):
                stored = current[bed_id]
                bed = {**orjson.loads(stored.content), "operationalStatus": {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "O"}}
                prepared.append(uow.resources.prepare_update(ctx, bed, stored, method="PATCH"))
            # Another writer moved the second bed on meanwhile (same transaction here: its compare-and-set is
            # what the batch's would lose against).
            moved = {**orjson.loads(current[second].content), "name": "renamed"}
            await uow.resources.update(ctx, moved, if_match=1)
            await uow.resources.update_many(prepared)
    headers = hub.headers("coordinator")
    for bed_id in (first, second):
        read = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=headers)).json()
        assert read["meta"]["versionId"] == "1" and read["operationalStatus"]["code"] == "U"
    await assert_matches_recount(hub)


async def test_concurrent_set_status_over_http_is_batched_and_matches_a_recount(hub):
    provider = await add_provider(hub, "73100004", "Zorg Midden", {"elv-hoog": "UUUUUU", "wlz-crisis": "UUUU"})
    beds = list(provider.beds.values())
    writes = hub.runtime.writes
    batches = writes.batches
    codes = ("O", "C", "U", "H")
    for lap in range(3):
        responses = await asyncio.gather(*(
            hub.client.post(f"/fhir/Location/{bed_id}/$set-status", headers=provider.headers, json={
                "resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": codes[(n + lap) % 4]}]})
            for n, bed_id in enumerate(beds)))
        assert [r.status_code for r in responses] == [200] * len(beds), [r.text for r in responses]
        assert [r.json()["operationalStatus"]["code"] for r in responses] == [
            codes[(n + lap) % 4] for n in range(len(beds))]
    assert writes.batches > batches
    await assert_matches_recount(hub)
