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


async def index_rows_of(hub: Any, bed_id: str, *, physical: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """The bed's index rows per table, without rid (sorted, comparable); `physical`: each row's storage address
    instead (SQLite rowid, PostgreSQL ctid), which changes when a row is deleted and inserted again."""
    from sqlalchemy import literal_column

    from hub.store.schema import INDEX_TABLES, resources

    address = literal_column("rowid" if hub.backend == "sqlite" else "ctid::text")
    async with hub.runtime.engine.connect() as conn:
        rid = (await conn.execute(select(resources.c.rid).where(resources.c.res_type == "Location",
                                                                resources.c.res_id == bed_id))).scalar_one()
        found = {}
        for kind, table in INDEX_TABLES.items():
            columns = [address] if physical else list(table.c)
            rows = (await conn.execute(select(*columns).where(table.c.rid == rid))).all()
            found[kind] = sorted(tuple(str(v) for v in r[0 if physical else 1:]) for r in rows)
        return found


async def test_a_status_change_rewrites_only_the_status_index_rows_and_equals_a_full_reindex(hub):
    from hub.fhir.indexing import index_rows

    provider = await add_provider(hub, "73100005", "Zorg Oost", {"elv-hoog": "UUU"})
    beds = list(provider.beds.values())
    before = {b: await index_rows_of(hub, b) for b in beds}
    stored_at = {b: await index_rows_of(hub, b, physical=True) for b in beds}
    assert all(rows["string"] and rows["reference"] for rows in before.values())  # name, address, partof, ...
    responses = await asyncio.gather(*(
        hub.client.post(f"/fhir/Location/{b}/$set-status", headers=provider.headers, json={
            "resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "O"}]}) for b in beds))
    assert [r.status_code for r in responses] == [200] * 3
    for b, response in zip(beds, responses, strict=True):
        after = await index_rows_of(hub, b)
        for kind in ("string", "reference", "date", "number", "uri"):
            assert after[kind] == before[b][kind], f"{kind} rows of Location/{b} changed"
            assert (await index_rows_of(hub, b, physical=True))[kind] == stored_at[b][kind], \
                f"{kind} rows of Location/{b} were deleted and inserted again"
        changed = [r for r in after["token"] if r not in before[b]["token"]]
        gone = [r for r in before[b]["token"] if r not in after["token"]]
        assert [r[1] for r in changed] == ["operational-status"] and [r[1] for r in gone] == ["operational-status"]
        # what is stored equals a from-scratch index of the new version
        full = index_rows(hub.runtime.registry, response.json())
        for kind, rows in full.items():
            expected = sorted(tuple(str(r.get(c)) for c in ("res_type", *after_columns(kind)))
                              for r in ({**x, "res_type": "Location"} for x in rows))
            assert after[kind] == expected, kind
    headers = hub.headers("coordinator")
    first_name = next(iter(provider.beds))
    for query in (f"name:exact={first_name}", "operational-status=O", f"organization={provider.org_id}&_id={beds[1]}",
                  f"identifier={first_name}&_id={beds[0]}"):
        found = await hub.client.get(f"/fhir/Location?{query}&_summary=count", headers=headers)
        assert found.status_code == 200 and found.json()["total"] >= 1, query
    stale = await hub.client.get(f"/fhir/Location?operational-status=U&_id={','.join(beds)}&_summary=count",
                                 headers=headers)
    assert stale.json()["total"] == 0
    await assert_matches_recount(hub)


def after_columns(kind: str) -> tuple[str, ...]:
    from hub.store.raw import INDEX_COLUMNS

    return INDEX_COLUMNS[kind]


async def test_the_one_statement_read_of_a_batch_equals_the_separate_reads(hub):
    """bed_rows.read_beds (beds + source rows + providers, one driver statement) returns what Core returns."""
    from hub.availability import aggregate
    from hub.availability.bed_rows import read_beds
    from hub.availability.tables import availability_providers

    provider = await add_provider(hub, "73100006", "Zorg Centrum", {"elv-hoog": "UO", "grz": "C"})
    beds = sorted(provider.beds.values())
    async with hub.runtime.uow() as uow:
        found = await read_beds(uow, [*beds, "no-such-bed", beds[0]])
        current = await uow.resources.current_many("Location", beds)
        sources = await aggregate.stored_sources(uow.conn, [f"Location/{b}" for b in beds])
        providers = (await uow.conn.execute(select(availability_providers).where(
            availability_providers.c.org_id == provider.org_id))).all()
    assert found.beds == current and sorted(found.beds) == beds
    assert {k: r._asdict() for k, r in found.sources.items()} == {k: r._asdict() for k, r in sources.items()}
    assert len(found.sources) == 3 and all(r.counted is True for r in found.sources.values())
    assert len(found.providers) == 1 and found.providers[0]._asdict() == providers[0]._asdict()


async def test_a_source_row_that_moved_before_the_write_fails_the_whole_set_and_keeps_nothing(hub, monkeypatch):
    """The source rows' compare-and-set goes in the beds' own update statement (PostgreSQL): a source row that
    another writer moved between the batch's read and its write (a ward or service write re-placing the bed)
    fails the whole set — no bed, version, index row or figure of it is kept."""
    from sqlalchemy import update

    from hub.availability.errors import SourceChanged
    from hub.availability.tables import availability_sources as s

    provider = await add_provider(hub, "73100007", "Zorg Haven", {"elv-laag": "UU", "grz": "U"})
    beds = sorted(provider.beds.values())
    read = bed_status.read_beds

    async def read_then_move(uow: Any, bed_ids: list[str]) -> Any:
        found = await read(uow, bed_ids)
        await uow.conn.execute(update(s).where(s.c.source == f"Location/{beds[1]}").values(version=s.c.version + 1))
        return found

    monkeypatch.setattr(bed_status, "read_beds", read_then_move)
    ctx = provider_ctx(provider)
    with pytest.raises(SourceChanged):
        async with hub.runtime.uow() as uow:
            await bed_status.set_many(uow, [StatusChange(ctx, b, "O", None) for b in beds])
    monkeypatch.undo()
    headers = hub.headers("coordinator")
    for bed_id in beds:
        read_back = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=headers)).json()
        assert read_back["meta"]["versionId"] == "1" and read_back["operationalStatus"]["code"] == "U"
        assert await history_count(hub, bed_id) == 1
    found = await hub.client.get(f"/fhir/Location?operational-status=O&_id={','.join(beds)}&_summary=count",
                                 headers=headers)
    assert found.json()["total"] == 0
    await assert_matches_recount(hub)
    # and the same batch, unhindered, writes all three
    async with hub.runtime.uow() as uow:
        outcomes = await bed_status.set_many(uow, [StatusChange(ctx, b, "O", None) for b in beds])
    assert [o.stored.version for o in outcomes] == [2, 2, 2]
    assert (await row(hub, provider, "elv-laag"))["occupied"] == 2
    await assert_matches_recount(hub)
