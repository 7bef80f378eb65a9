"""Issue 6, "Done when": 50 concurrent referrals racing for 10 free beds on PostgreSQL with real Redis (the
availability cache and its pub/sub shared by two hub instances, i.e. two engines and pools on one database, as two
processes would be) -> exactly 10 accepted offers, no bed held twice, every referral in a defined state.

Repeated HUB_RACE_ROUNDS times (default 5); each round loads a fresh region on a cleaned schema."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis
from referral_factories import AGB, GP_ORG, Provider, another_instance, load_region, params, referral, settle_all
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.config import Settings
from hub.referrals.reservations import reserved_for
from hub.referrals.tables import referral_offers, referrals
from hub.referrals.vocabulary import OFFER_SYSTEM, identifier_value
from hub.security.tokens import issue_token
from hub.store.migrate import upgrade
from hub.store.schema import metadata, resources

pytestmark = pytest.mark.slow
PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REFERRALS, BEDS = 50, 10
ROUNDS = int(os.environ.get("HUB_RACE_ROUNDS", "5"))
# 5 providers x 2 free beds (plus occupied ones that must never be offered) = 10 free beds
PROVIDERS = [Provider(f"7373020{n}", f"Race {n} (test)", f"94{n}1 AB", {"elv-hoog": "UOUO"}) for n in range(5)]
# states a referral may be in once routing has settled (README "State machine"); "routing" is not among them
DEFINED = {"offered", "accepted", "needs-person", "cancelled"}


@pytest.fixture
async def two_hubs(redis_url: str) -> AsyncIterator[tuple[Any, Any, Settings, int]]:
    """Two hub instances (in-process routing) on a private PostgreSQL schema and a real Redis cache/pub-sub."""
    schema = f"t_race_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await asyncio.to_thread(upgrade, PG_URL, "head", schema)
    broker = redis_url.rsplit("/", 1)[0] + "/14"
    settings = Settings(database_url=PG_URL, database_schema=schema, redis_url=broker, task_mode="inprocess",
                        base_url="http://hub.test")
    try:
        async with another_instance(settings) as one, another_instance(settings) as two:
            async with one.runtime.engine.connect() as conn:
                baseline = (await conn.execute(select(func.max(resources.c.rid)))).scalar() or 0
            yield one, two, settings, baseline
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
        client = redis.Redis.from_url(broker)
        keys = [k for k in client.scan_iter(match=f"*{schema}*", count=1000)]
        if keys:
            client.delete(*keys)


async def test_fifty_referrals_race_for_ten_beds(two_hubs):
    one, two, settings, baseline = two_hubs
    assert one.runtime.settings.redis_url and not one.runtime.settings.uses_celery
    for n in range(ROUNDS):
        await race_round(one, two, settings)
        await clean([one, two], baseline)
        print(f"round {n + 1}/{ROUNDS}: 10 accepted, 40 needs-person, no bed held twice")


def headers(settings: Settings, role: str, org: str) -> dict[str, str]:
    token = issue_token(settings, role=role, org=org, subject=f"test-{role}")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}


async def race_round(one: Any, two: Any, settings: Settings) -> None:
    region = await load_region(one, PROVIDERS)
    free_beds = {b for agb, beds in region.beds.items() for b, s in zip(beds, "UOUO", strict=True) if s == "U"}
    occupied = {b for beds in region.beds.values() for b in beds} - free_beds
    assert len(free_beds) == BEDS
    hubs = [one, two]
    gp = headers(settings, "gp", GP_ORG)
    responses = await asyncio.gather(*[hubs[i % 2].client.post("/fhir/ServiceRequest", json=referral(), headers=gp)
                                       for i in range(REFERRALS)])
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses if r.status_code != 201][:1]
    posted = {r.json()["id"] for r in responses}
    await settle_all(hubs)

    rows = await all_rows(one, referrals)
    assert {r.sr_id for r in rows} == posted  # every referral has its row: none lost
    assert Counter(r.state for r in rows) == {"offered": BEDS, "needs-person": REFERRALS - BEDS}
    open_offers = [o for o in await all_rows(one, referral_offers) if o.state == "open"]
    assert len(open_offers) == BEDS and len({o.bed_id for o in open_offers}) == BEDS
    assert {o.bed_id for o in open_offers} == free_beds  # each free bed offered once, no occupied bed offered
    assert len({o.sr_id for o in open_offers}) == BEDS  # one offer per referral
    offer_tasks = [t for t in await stored(one, "Task") if identifier_value(t, OFFER_SYSTEM)]
    assert len(offer_tasks) == BEDS  # no orphan offer Task from a transaction that lost its bed
    holders = Counter(reserved_for(b) for b in await stored(one, "Location") if reserved_for(b))
    assert sorted(holders) == sorted(f"Task/{o.offer_id}" for o in open_offers)
    assert set(holders.values()) == {1}

    # every provider accepts every offer, twice, through both instances at once: one 200 and one 409 per offer
    by_provider = {f"Organization/{org}": agb for agb, org in region.orgs.items()}
    answers = await asyncio.gather(*[
        hubs[n % 2].client.post(f"/fhir/Task/{o.offer_id}/$accept", json=params(admission="2026-11-24"),
                                headers=headers(settings, "vvt-provider", f"{AGB}|{by_provider[o.provider]}"))
        for o in open_offers for n in range(2)])
    assert sorted(a.status_code for a in answers) == [200] * BEDS + [409] * BEDS
    await settle_all(hubs)

    rows = await all_rows(one, referrals)
    assert {r.state for r in rows} <= DEFINED
    assert Counter(r.state for r in rows) == {"accepted": BEDS, "needs-person": REFERRALS - BEDS}
    offers = await all_rows(one, referral_offers)
    assert Counter(o.state for o in offers) == {"accepted": BEDS}
    tasks = await stored(one, "Task")
    accepted = [t for t in tasks if identifier_value(t, OFFER_SYSTEM) and t["status"] == "accepted"]
    assert len(accepted) == BEDS and len({t["focus"]["reference"] for t in accepted}) == BEDS
    beds = {b["id"]: b for b in await stored(one, "Location")}
    holders = Counter(reserved_for(beds[b]) for b in free_beds)
    assert sorted(holders) == sorted(f"Task/{t['id']}" for t in accepted) and set(holders.values()) == {1}
    assert not any(reserved_for(beds[b]) for b in occupied)


async def clean(hubs: list[Any], baseline: int) -> None:
    """Delete what a round wrote (as tests/conftest.py's Hub.clean does) and reset both instances' caches."""
    async with hubs[0].runtime.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name in ("resources", "resource_versions") or table.name.startswith("idx_"):
                continue
            await conn.execute(delete(table))
        for name in [t.name for t in metadata.sorted_tables if t.name.startswith("idx_")] + ["resource_versions"]:
            table = metadata.tables[name]
            await conn.execute(delete(table).where(table.c.rid > baseline))
        await conn.execute(delete(resources).where(resources.c.rid > baseline))
    for hub in hubs:
        for reset in hub.runtime.extras.get("test_resets", []):
            await reset()


async def all_rows(hub: Any, table: Any) -> list[Any]:
    async with hub.runtime.engine.connect() as conn:
        return list((await conn.execute(select(table))).all())


async def stored(hub: Any, res_type: str) -> list[dict[str, Any]]:
    async with hub.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(resources.c.content).where(resources.c.res_type == res_type,
                                                                     resources.c.deleted.is_(False)))).all()
    return [orjson.loads(r.content) for r in rows]
