"""Group commit (hub/store/group_commit.py): concurrent single-resource writes share one transaction, and each
request still gets exactly the outcome it would have had alone."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from hub.errors import Unprocessable
from hub.fhir import interactions
from hub.security.context import AccessContext
from hub.store.group_commit import Together
from hub.store.schema import audit_log
from tests.conftest import AGB

SYSTEM = AccessContext.system("tests: group commit")
GP = f"{AGB}|01234567"


def location(name: str) -> dict[str, Any]:
    return {"resourceType": "Location", "status": "active", "name": name}


async def count_named(hub: Any, name: str) -> int:
    r = await hub.client.get(f"/fhir/Location?name:exact={name}&_summary=count", headers=hub.headers())
    return int(r.json()["total"])


async def test_concurrent_posts_share_transactions_and_every_one_lands_once(hub):
    writes = hub.runtime.writes
    batches = writes.batches
    headers = hub.headers()
    responses = await asyncio.gather(
        *(hub.client.post("/fhir/Location", json=location(f"GC {i:02d}"), headers=headers) for i in range(40))
    )
    assert [r.status_code for r in responses] == [201] * 40
    assert len({r.headers["Location"] for r in responses}) == 40
    assert writes.batches > batches, "concurrent writes were expected to share at least one transaction"
    for i in (0, 17, 39):
        assert await count_named(hub, f"GC {i:02d}") == 1
    body = responses[17].json()
    read = await hub.client.get(f"/fhir/Location/{body['id']}", headers=headers)
    assert read.json() == body and read.headers["ETag"] == responses[17].headers["ETag"]


async def test_a_failing_write_is_rolled_back_alone_and_the_others_are_written_once(hub):
    writes = hub.runtime.writes
    fallbacks = writes.fallbacks

    async def create(name: str) -> Any:
        return await writes.run(lambda uow: interactions.create(uow, SYSTEM, "Location", location(name)))

    async def doomed(uow: Any) -> Any:
        await interactions.create(uow, SYSTEM, "Location", location("GC doomed"))  # written, then the work fails
        raise Unprocessable("refused after writing")

    results = await asyncio.gather(create("GC first"), writes.run(doomed), create("GC last"), return_exceptions=True)
    assert isinstance(results[1], Unprocessable)
    assert results[0].created and results[2].created
    assert writes.fallbacks == fallbacks + 1
    assert await count_named(hub, "GC doomed") == 0
    assert await count_named(hub, "GC first") == 1 and await count_named(hub, "GC last") == 1


async def test_stale_if_match_among_concurrent_writes_gets_412_and_changes_nothing(hub):
    headers = hub.headers()
    bed = (await hub.client.post("/fhir/Location", json=location("GC target"), headers=headers)).json()
    stale = {**bed, "name": "GC overwritten"}
    creates = [hub.client.post("/fhir/Location", json=location(f"GC peer {i}"), headers=headers) for i in range(8)]
    put = hub.client.put(f"/fhir/Location/{bed['id']}", json=stale, headers={**headers, "If-Match": 'W/"7"'})
    *created, refused = await asyncio.gather(*creates, put)
    assert [r.status_code for r in created] == [201] * 8
    assert refused.status_code == 412 and refused.json()["resourceType"] == "OperationOutcome"
    after = (await hub.client.get(f"/fhir/Location/{bed['id']}", headers=headers)).json()
    assert after["meta"]["versionId"] == "1" and after["name"] == "GC target"


async def test_a_refused_write_in_a_shared_transaction_is_audited_exactly_once(hub):
    gp = hub.headers("gp", GP)
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
           "subject": {"reference": "Patient/p-gc"}}
    created = (await hub.client.post("/fhir/Observation", json=obs, headers=gp)).json()
    coordinator = hub.headers("coordinator", "http://fhir.nl/fhir/NamingSystem/ura|90000001")
    patch_headers = {**coordinator, "Content-Type": "application/json-patch+json"}
    ops = [{"op": "replace", "path": "/status", "value": "amended"}]

    async def refused_alone() -> int:
        before = await hub.count(audit_log, audit_log.c.outcome == "4")
        r = await hub.client.patch(f"/fhir/Observation/{created['id']}", json=ops, headers=patch_headers)
        assert r.status_code in (403, 404)
        return await hub.count(audit_log, audit_log.c.outcome == "4") - before

    alone = await refused_alone()
    assert alone >= 1, "a refused access to personal data is logged"
    before = await hub.count(audit_log, audit_log.c.outcome == "4")
    peers = [hub.client.post("/fhir/Location", json=location(f"GC audit {i}"), headers=hub.headers())
             for i in range(6)]
    refused = hub.client.patch(f"/fhir/Observation/{created['id']}", json=ops, headers=patch_headers)
    *ok, no = await asyncio.gather(*peers, refused)
    assert [r.status_code for r in ok] == [201] * 6 and no.status_code in (403, 404)
    assert await hub.count(audit_log, audit_log.c.outcome == "4") - before == alone
    gp_read = await hub.client.get(f"/fhir/Observation/{created['id']}", headers=gp)
    assert gp_read.json()["status"] == "final"


@pytest.mark.parametrize("hub_session", ["sqlite"], indirect=True)
async def test_batching_off_runs_each_write_in_its_own_transaction(hub):
    writes = hub.runtime.writes
    saved, writes.max_batch = writes.max_batch, 1
    try:
        batches = writes.batches
        responses = await asyncio.gather(
            *(hub.client.post("/fhir/Location", json=location(f"GC solo {i}"), headers=hub.headers())
              for i in range(10))
        )
        assert [r.status_code for r in responses] == [201] * 10
        assert writes.batches == batches
    finally:
        writes.max_batch = saved


async def test_a_shared_transaction_writes_creates_first_then_by_resource_in_arrival_order(hub):
    """Concurrent batches must take row locks in one order (no deadlock between them)."""
    writes = hub.runtime.writes
    order: list[str] = []

    def work(label: str) -> Any:
        async def run(uow: Any) -> str:
            order.append(label)
            return label
        return run

    arrivals = [("L/b#1", "Location/b"), ("create#1", None), ("L/a", "Location/a"), ("L/b#2", "Location/b"),
                ("create#2", None)]
    results = await asyncio.gather(*(writes.run(work(label), key=key) for label, key in arrivals))
    assert results == [label for label, _ in arrivals]  # each request still gets its own result
    assert order == ["create#1", "create#2", "L/a", "L/b#1", "L/b#2"]


class Gathering:
    """Set the group commit's gathering for one test and put it back afterwards."""

    def __init__(self, writes: Any, *, linger: float, expected: int, plain: bool = True) -> None:
        self.writes, self.settings = writes, (linger, expected, plain)

    def __enter__(self) -> Any:
        self.saved = (self.writes.linger, self.writes.expected, self.writes.gather_plain)
        self.writes.linger, self.writes.expected, self.writes.gather_plain = self.settings
        return self.writes

    def __exit__(self, *exc: object) -> None:
        self.writes.linger, self.writes.expected, self.writes.gather_plain = self.saved


def create(writes: Any, name: str) -> Any:
    return writes.run(lambda uow: interactions.create(uow, SYSTEM, "Location", location(name)))


async def test_a_write_at_light_load_is_never_held_for_company(hub):
    with Gathering(hub.runtime.writes, linger=60.0, expected=1) as writes:
        result = await asyncio.wait_for(create(writes, "GC light"), 10)  # a held write would wait 60 s
        assert result.created and writes.expected == 1


async def test_under_load_a_batch_waits_until_as_many_as_recent_batches_held_are_queued(hub):
    with Gathering(hub.runtime.writes, linger=60.0, expected=6) as writes:
        batches = writes.batches
        arriving = []
        for i in range(6):  # one by one, each in a later turn of the event loop, as requests reach the queue
            arriving.append(asyncio.ensure_future(create(writes, f"GC gathered {i}")))
            await asyncio.sleep(0.01)
        results = await asyncio.wait_for(asyncio.gather(*arriving), 10)
        assert all(r.created for r in results)
        assert writes.batches == batches + 1, "the six writes were expected in one shared transaction"
    for i in (0, 5):
        assert await count_named(hub, f"GC gathered {i}") == 1


async def test_a_wait_that_runs_out_writes_what_came_and_stops_waiting_at_lower_load(hub):
    with Gathering(hub.runtime.writes, linger=0.05, expected=8) as writes:
        alone = await asyncio.wait_for(create(writes, "GC waited"), 10)  # nobody else comes: written after 50 ms
        assert alone.created and writes.expected == 1
        writes.linger = 60.0
        again = await asyncio.wait_for(create(writes, "GC not waited"), 10)  # expectation lowered: not held
        assert again.created
    assert await count_named(hub, "GC waited") == 1 and await count_named(hub, "GC not waited") == 1


async def test_plain_writes_on_postgresql_do_not_wait_but_together_writes_do(hub):
    """On PostgreSQL a batch of creates is one round trip: alternating batches overlap with the database, so
    only `Together` writes (bed status) gather. SQLite gathers both (its batch costs are in the loop)."""
    assert hub.runtime.writes.gather_plain is (hub.backend == "sqlite")
    with Gathering(hub.runtime.writes, linger=60.0, expected=8, plain=False) as writes:
        result = await asyncio.wait_for(create(writes, "GC plain"), 10)  # would wait 60 s if it gathered
        assert result.created
        seen: list[list[str]] = []

        async def run_many(uow: Any, items: list[str]) -> list[str]:
            seen.append(items)
            return items

        writes.expected = 4
        arriving = []
        for i in range(4):
            arriving.append(asyncio.ensure_future(writes.run(Together(run_many, f"item {i}"))))
            await asyncio.sleep(0.01)
        assert await asyncio.wait_for(asyncio.gather(*arriving), 10) == [f"item {i}" for i in range(4)]
        assert seen == [[f"item {i}" for i in range(4)]]  # gathered: one call for all four


@pytest.mark.parametrize("queued, calls", [(16, [8, 8]), (40, [20, 20])])
async def test_together_writes_on_postgresql_run_as_two_batches_side_by_side(hub, queued, calls):
    """`Together` batches (bed status) on PostgreSQL: at most 8 each — or a fair half of what is queued when more
    is — and two in flight at once, so one batch's database time overlaps the other's HTTP work. SQLite (one
    writer) keeps one batch of up to `max_batch`."""
    writes = hub.runtime.writes
    in_flight, most, seen = 0, 0, []
    both = asyncio.Event()

    async def run_many(uow: Any, items: list[int]) -> list[int]:
        nonlocal in_flight, most
        seen.append(len(items))
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == writes.together_concurrency:
            both.set()
        if writes.together_concurrency > 1:  # each call waits for the other, so both are seen in flight at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 5)
        in_flight -= 1
        return items

    with Gathering(writes, linger=0.0, expected=1):
        results = await asyncio.wait_for(asyncio.gather(*(writes.run(Together(run_many, i))
                                                          for i in range(queued))), 10)
    assert results == list(range(queued))
    if hub.backend == "postgresql":
        assert sorted(seen) == calls and most == 2
    else:
        assert seen == [min(queued, writes.max_batch)] + ([queued - writes.max_batch] if queued > writes.max_batch
                                                           else []) and most == 1
