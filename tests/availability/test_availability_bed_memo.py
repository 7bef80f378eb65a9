"""Bed status changes decided on the beds as this process remembers them (hub/availability/bed_memo.py): the memo
is only a hint — whatever changed a bed, its source row or its provider since, the change is decided on the rows
as they are now — and a unit of work that writes more than the status changes never commits them early."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
import respx
from availability_factories import URA, add_provider, assert_matches_recount, row
from sqlalchemy import select, update

from hub.availability import bed_status, sources
from hub.availability.bed_memo import memo_of
from hub.availability.bed_status import StatusChange
from hub.availability.tables import availability_sources
from hub.errors import Conflict
from hub.security.context import AccessContext
from hub.store.repository import WriteResult


def set_status(hub: Any, provider: Any, bed_id: str, code: str, **headers: str) -> Any:
    body = {"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": code}]}
    return hub.client.post(f"/fhir/Location/{bed_id}/$set-status", json=body, headers={**provider.headers, **headers})


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The bed ids of every locked read a status batch makes from now on."""
    reads: list[list[str]] = []
    read = bed_status.read_beds

    async def counted(uow: Any, bed_ids: list[str]) -> Any:
        reads.append(list(bed_ids))
        return await read(uow, bed_ids)

    monkeypatch.setattr(bed_status, "read_beds", counted)
    return reads


async def test_a_remembered_bed_is_changed_without_reading_it_and_the_write_is_complete(hub, monkeypatch):
    provider = await add_provider(hub, "73200001", "Zorg Esch", {"elv-hoog": "UU"})
    bed_id = next(iter(provider.beds.values()))
    assert (await set_status(hub, provider, bed_id, "O")).status_code == 200
    reads = count_reads(monkeypatch)
    answer = await set_status(hub, provider, bed_id, "C")
    assert answer.status_code == 200 and answer.json()["meta"]["versionId"] == "3"
    # PostgreSQL decides on the remembered bed (no read); SQLite writes in-process and always reads
    assert reads == ([] if hub.backend == "postgresql" else [[bed_id]])
    headers = hub.headers("coordinator")
    read_back = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=headers)).json()
    assert read_back["operationalStatus"]["code"] == "C" and read_back["meta"]["versionId"] == "3"
    found = await hub.client.get(f"/fhir/Location?operational-status=C&_id={bed_id}&_summary=count", headers=headers)
    assert found.json()["total"] == 1
    figures = await row(hub, provider, "elv-hoog")
    assert figures is not None and (figures["free"], figures["unavailable"]) == (1, 1)
    await assert_matches_recount(hub)


async def test_a_bed_written_elsewhere_after_it_was_remembered_keeps_that_write(hub, monkeypatch):
    """Another writer (a PUT here; another API process alike) moved the bed on: the remembered version no longer
    holds, the statement writes nothing, and the change is decided again on the bed as it is now."""
    provider = await add_provider(hub, "73200002", "Zorg Dalen", {"elv-laag": "UU"})
    bed_id = next(iter(provider.beds.values()))
    assert (await set_status(hub, provider, bed_id, "O")).status_code == 200
    if hub.backend == "postgresql":
        assert memo_of(hub.runtime).recall([bed_id]) is not None
    current = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)).json()
    renamed = {**current, "name": "Kamer 12, raamzijde"}
    assert (await hub.client.put(f"/fhir/Location/{bed_id}", json=renamed, headers=provider.headers)).status_code == 200
    reads = count_reads(monkeypatch)
    answer = await set_status(hub, provider, bed_id, "U")
    assert answer.status_code == 200, answer.text
    written = answer.json()
    assert written["name"] == "Kamer 12, raamzijde" and written["operationalStatus"]["code"] == "U"
    assert written["meta"]["versionId"] == "4"
    assert reads == [[bed_id]]  # read again after the remembered version failed (or, SQLite, as always)
    await assert_matches_recount(hub)


async def test_a_source_row_moved_after_it_was_remembered_is_read_again(hub, monkeypatch):
    provider = await add_provider(hub, "73200003", "Zorg Vries", {"grz": "UUU"})
    beds = sorted(provider.beds.values())
    for bed_id in beds:
        assert (await set_status(hub, provider, bed_id, "O")).status_code == 200
    s = availability_sources
    async with hub.runtime.engine.begin() as conn:  # as a write of another process would leave it
        await conn.execute(update(s).where(s.c.source == f"Location/{beds[1]}").values(version=s.c.version + 1))
    reads = count_reads(monkeypatch)
    ctx = AccessContext(subject="tests", org=provider.org, role="vvt-provider")
    outcomes = await asyncio.gather(*(hub.runtime.writes.run(bed_status.together(StatusChange(ctx, b, "U", None)),
                                                             key=f"Location/{b}") for b in beds))
    assert [o.stored.version for o in outcomes] == [3, 3, 3]
    assert sum(len(r) for r in reads) == 3  # the batch as a whole was read again
    async with hub.runtime.engine.connect() as conn:  # every source row took its bed's change
        stored = (await conn.execute(select(s.c.source, s.c.status).where(
            s.c.source.in_([f"Location/{b}" for b in beds])))).all()
    assert sorted(stored) == sorted((f"Location/{b}", "U") for b in beds)
    figures = await row(hub, provider, "grz")
    assert figures is not None and (figures["free"], figures["occupied"]) == (3, 0)
    await assert_matches_recount(hub)


async def test_a_provider_that_lost_its_identifier_is_refused_although_its_bed_was_remembered(hub):
    provider = await add_provider(hub, "73200004", "Zorg Roden", {"elv-hoog": "UU"})
    bed_id = next(iter(provider.beds.values()))
    assert (await set_status(hub, provider, bed_id, "O")).status_code == 200
    admin = hub.headers("admin")
    org = (await hub.client.get(f"/fhir/Organization/{provider.org_id}", headers=admin)).json()
    org["identifier"] = [{"system": URA, "value": "90000099"}]  # the AGB code the provider's token names is gone
    assert (await hub.client.put(f"/fhir/Organization/{provider.org_id}", json=org, headers=admin)).status_code == 200
    answer = await set_status(hub, provider, bed_id, "U")
    assert answer.status_code == 403, answer.text
    read_back = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=admin)).json()
    assert read_back["operationalStatus"]["code"] == "O" and read_back["meta"]["versionId"] == "2"


async def test_status_changes_batched_with_other_work_are_not_committed_before_it(hub):
    """A group-commit batch that holds more than status changes commits them together with the rest: when the
    other work fails, the batch is rolled back and each request runs again alone — a change sent with If-Match
    then still finds the version it named (had it been committed early, its rerun would answer 412)."""
    provider = await add_provider(hub, "73200005", "Zorg Norg", {"elv-laag": "UU"})
    bed_id = next(iter(provider.beds.values()))
    assert (await set_status(hub, provider, bed_id, "O")).status_code == 200  # remembered at version 2
    ctx = AccessContext(subject="tests", org=provider.org, role="vvt-provider")

    async def failing(uow: Any) -> None:
        raise Conflict("this request fails; its batch is rolled back")

    writes = hub.runtime.writes
    fallbacks = writes.fallbacks
    change, other = await asyncio.gather(
        writes.run(bed_status.together(StatusChange(ctx, bed_id, "U", 2)), key=f"Location/{bed_id}"),
        writes.run(failing, key="~after/the-beds"), return_exceptions=True)
    assert writes.fallbacks == fallbacks + 1, "expected one shared batch that failed and ran again alone"
    assert isinstance(other, Conflict)
    assert isinstance(change, WriteResult) and change.stored.version == 3
    read_back = (await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)).json()
    assert read_back["operationalStatus"]["code"] == "U" and read_back["meta"]["versionId"] == "3"
    await assert_matches_recount(hub)


async def test_a_change_a_subscription_hears_of_commits_with_its_delivery(hub, monkeypatch):
    """A delivery is an outbox row written in the change's transaction: a status change that a Subscription
    selects never commits on its own statement ahead of that row, one it does not select may."""
    from hub.store import raw
    from hub.store.schema import outbox

    provider = await add_provider(hub, "73200007", "Zorg Tynaarlo", {"elv-hoog": "UU", "grz": "UU"})
    heard, unheard = provider.beds["73200007/elv-hoog/1"], provider.beds["73200007/grz/1"]
    for bed_id in (heard, unheard):  # remembered from here on
        assert (await set_status(hub, provider, bed_id, "O")).status_code == 200
    subscription = {"resourceType": "Subscription", "status": "requested", "reason": "partner dashboard",
                    "criteria": "HealthcareService/$availability?product=elv-hoog",
                    "channel": {"type": "rest-hook", "endpoint": "https://partner.example/hook"}}
    created = await hub.client.post("/fhir/Subscription", json=subscription, headers=hub.headers("coordinator"))
    assert created.status_code == 201, created.text
    alone: list[bool] = []  # one entry per statement sent outside a transaction
    run = raw.PgWrites._run

    async def recorded(self: Any, method: str, sql: str, *args: Any, **kw: Any) -> Any:
        if kw.get("alone"):
            alone.append(True)
        return await run(self, method, sql, *args, **kw)

    monkeypatch.setattr(raw.PgWrites, "_run", recorded)
    with respx.mock(assert_all_called=False) as mock:  # the partner's receiver (third party)
        mock.post("https://partner.example/hook").respond(200)
        queued = await hub.count(outbox, outbox.c.task == "availability.deliver_change")
        assert (await set_status(hub, provider, heard, "U")).status_code == 200
        assert alone == [] and await hub.count(outbox, outbox.c.task == "availability.deliver_change") == queued + 1
        assert (await set_status(hub, provider, unheard, "U")).status_code == 200
        assert alone == ([True] if hub.backend == "postgresql" else [])
        await hub.runtime.dispatcher.drain(5)


async def test_a_unit_of_work_is_freed_once_it_ends(hub, monkeypatch):
    """The per-unit directory (sources.directory_for) is registered weakly by its unit of work; it must not hold
    that unit alive in turn (it did: every writing unit of work of the process stayed in memory, and each full
    garbage collection walked them all)."""
    provider = await add_provider(hub, "73200006", "Zorg Peize", {"elv-hoog": "UU"})
    bed_id = next(iter(provider.beds.values()))
    units: list[weakref.ref[Any]] = []
    directory_for = sources.directory_for

    def recorded(uow: Any) -> Any:
        units.append(weakref.ref(uow))
        return directory_for(uow)

    monkeypatch.setattr(bed_status, "directory_for", recorded)
    for code in ("O", "U", "C"):
        assert (await set_status(hub, provider, bed_id, code)).status_code == 200
    gc.collect()
    assert units and all(unit() is None for unit in units)


def test_the_memo_keeps_the_newest_version_and_forgets_the_least_recently_used():
    from datetime import datetime

    from hub.availability.bed_memo import BedMemo, Remembered
    from hub.store.repository import StoredResource

    def entry(bed_id: str, version: int, source: Any = "source row") -> Remembered:
        stored = StoredResource("Location", bed_id, version, datetime(2026, 11, 23), b"{}", rid=1)
        return Remembered(stored, source, None)

    memo = BedMemo(capacity=2)
    memo.put({"a": entry("a", 3), "b": entry("b", 1)})
    memo.put({"a": entry("a", 2)})  # committed earlier, put later (two batches side by side): ignored
    found = memo.recall(["a"])
    assert found is not None and found["a"].bed.version == 3
    assert memo.recall(["a", "x"]) is None  # all or nothing
    memo.put({"c": entry("c", 1, source=None)})  # "b" was used least recently: it goes
    assert len(memo) == 2 and memo.recall(["b"]) is None
    assert memo.recall(["c"]) is None  # no source row (never counted): the batch must read it
    memo.forget(["a"])
    assert memo.recall(["a"]) is None


async def test_a_bed_that_took_the_write_hook_is_remembered_and_changed_again_and_again(hub):
    """A bed whose stored source row no longer matched it takes the general write hook, which leaves its source row
    as a database row (not the batch's own row type): changes after that, decided on the remembered rows, must
    still write and remember it."""
    provider = await add_provider(hub, "73200008", "Zorg Eelde", {"elv-laag": "UU"})
    bed_id = next(iter(provider.beds.values()))
    s = availability_sources
    async with hub.runtime.engine.begin() as conn:  # the source row drifted from its bed
        await conn.execute(update(s).where(s.c.source == f"Location/{bed_id}").values(status="C"))
    for code in ("O", "U", "O", "C"):
        answer = await set_status(hub, provider, bed_id, code)
        assert answer.status_code == 200, answer.text
        assert answer.json()["operationalStatus"]["code"] == code
    await assert_matches_recount(hub)
