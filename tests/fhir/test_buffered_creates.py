"""PostgreSQL: creates after the first of a unit of work (in HTTP writes: all of them) are buffered and written as
one statement (hub/store/raw.py PgWrites). Nothing in the transaction may miss them, nothing may outlive a unit
that ends, and a unit whose only writes they are sends them without BEGIN/COMMIT."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.fhir import interactions
from hub.security.context import AccessContext
from hub.store import raw as raw_module
from hub.store.schema import idx_string, resources

pytestmark = pytest.mark.parametrize("hub_session", ["postgresql"], indirect=True)
SYSTEM = AccessContext.system("tests: buffered creates")


def location(name: str) -> dict[str, Any]:
    return {"resourceType": "Location", "status": "active", "name": name}


async def test_buffered_creates_are_seen_by_every_read_of_the_transaction_and_committed(hub):
    async with hub.runtime.uow() as uow:
        raw = await uow.raw()
        first = await interactions.create(uow, SYSTEM, "Location", location("BC first"))
        later = [await interactions.create(uow, SYSTEM, "Location", location(f"BC later {i}")) for i in range(20)]
        assert raw._buffer, "creates after the first are expected to be buffered"
        # a SQLAlchemy statement on the same connection flushes them first
        names = select(func.count()).select_from(idx_string).where(idx_string.c.value.like("bc later%"))
        assert (await uow.conn.execute(names)).scalar_one() == 20
        assert not raw._buffer
        more = await interactions.create(uow, SYSTEM, "Location", location("BC after flush"))
        # so does a driver-level read (a search through search_text.py)
        found = await interactions.search(uow, SYSTEM, "Location", [("name", "BC after")], strict=True)
        assert [m.res_id for m in found.result.matches] == [more.stored.res_id]
        rids = [first.stored.rid, *(w.stored.rid for w in later), more.stored.rid]
    assert len(set(rids)) == 22 and not raw_module._pg_writers
    async with hub.runtime.engine.connect() as conn:
        stored = (await conn.execute(select(resources.c.rid, resources.c.res_id)
                                     .where(resources.c.rid.in_(rids)))).all()
    assert {r.rid for r in stored} == set(rids)  # the rids handed out are the rows' own
    for w in later[:3]:
        read = await hub.client.get(f"/fhir/Location/{w.stored.res_id}", headers=hub.headers())
        assert read.status_code == 200 and read.content == w.stored.content


async def test_a_unit_that_fails_leaves_nothing_and_the_connection_carries_nothing_over(hub):
    with pytest.raises(RuntimeError):
        async with hub.runtime.uow() as uow:
            await interactions.create(uow, SYSTEM, "Location", location("BC doomed 0"))
            await interactions.create(uow, SYSTEM, "Location", location("BC doomed 1"))  # buffered
            raise RuntimeError("the request fails after writing")
    assert not raw_module._pg_writers  # no buffer outlives its unit (a later statement could flush it)
    async with hub.runtime.uow() as uow:  # the pool may hand out the same connection
        await interactions.create(uow, SYSTEM, "Location", location("BC survivor"))
        await uow.conn.execute(select(1))
    count = await hub.client.get("/fhir/Location?name=BC&_summary=count", headers=hub.headers())
    assert count.json()["total"] == 1


async def test_a_deferred_create_alone_goes_out_at_commit_without_a_transaction_and_fails_whole(hub):
    """HTTP writes (defer_creates): the first create is buffered too; a unit that ran nothing else sends it as its
    only statement at COMMIT (no BEGIN), and a failure there is the unit's failure, with nothing kept."""
    winner, loser = hub.runtime.uow(), hub.runtime.uow()
    winner.defer_creates = loser.defer_creates = True
    await loser.__aenter__()
    try:
        async with winner:
            made = await winner.resources.create(SYSTEM, location("BC winner"), res_id="bc-same", method="PUT")
            await loser.resources.create(SYSTEM, location("BC loser"), res_id="bc-same", method="PUT")
            await loser.resources.create(SYSTEM, location("BC loser's other"))
            raw = await winner.raw()
            assert raw._buffer and raw.adapted._transaction is None, "nothing was expected to reach the database"
            sent: list[str] = []
            raw.adapted._connection.add_query_logger(lambda record: sent.append(record.query))
        assert winner.committed and made.created
        for _ in range(3):
            await asyncio.sleep(0)  # (asyncpg calls query loggers soon after the query)
        ours = [q for q in sent if "typeinfo_tree" not in q and "'jit'" not in q]  # (asyncpg's type introspection)
        assert ours == [raw_module.PG_CREATE_MANY], f"expected the creates as the unit's one statement: {ours}"
    finally:
        with pytest.raises(IntegrityError):
            await loser.__aexit__(None, None, None)
    assert not loser.committed and not raw_module._pg_writers
    headers = hub.headers()
    read = await hub.client.get("/fhir/Location/bc-same", headers=headers)
    assert read.json()["name"] == "BC winner"
    count = await hub.client.get("/fhir/Location?name=BC loser&_summary=count", headers=headers)
    assert count.json()["total"] == 0


async def test_http_creates_share_the_rid_pool_and_read_back(hub):
    headers = hub.headers()
    created = [await hub.client.post("/fhir/Location", json=location(f"BC pooled {i}"), headers=headers)
               for i in range(3)]
    assert [r.status_code for r in created] == [201] * 3
    pool = raw_module._rid_pools[hub.runtime.engine.sync_engine]
    assert 0 < len(pool.rids) < raw_module.RidPool.BLOCK
    for response in created:
        read = await hub.client.get(response.headers["Location"].split("/_history")[0], headers=headers)
        assert read.status_code == 200 and read.json()["name"] == response.json()["name"]
