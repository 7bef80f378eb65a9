"""No double booking: many referrals racing for few beds through concurrent HTTP calls on two hub instances
(two engines and connection pools on one database, as two processes would be), repeated several rounds."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import orjson
import pytest
from referral_factories import (
    GP_ORG,
    Provider,
    another_instance,
    load_region,
    params,
    provider_headers,
    referral,
    settle_all,
)
from sqlalchemy import select

from hub.referrals.reservations import reserved_for
from hub.referrals.tables import referral_offers, referrals
from hub.referrals.vocabulary import OFFER_SYSTEM, identifier_value
from hub.store.schema import resources

pytestmark = pytest.mark.slow
REFERRALS, ROUNDS = 20, 3
PROVIDERS = [Provider(f"7373010{n}", f"Huis {n} (test)", f"940{n} AB", {"elv-hoog": "UOO"}) for n in range(3)]


async def all_rows(hub: Any, table: Any) -> list[Any]:
    async with hub.runtime.engine.connect() as conn:
        return list((await conn.execute(select(table))).all())


async def stored(hub: Any, res_type: str) -> list[dict[str, Any]]:
    async with hub.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(resources.c.content).where(resources.c.res_type == res_type,
                                                                     resources.c.deleted.is_(False)))).all()
    return [orjson.loads(r.content) for r in rows]


async def test_many_concurrent_referrals_never_hold_a_bed_twice(hub):
    async with another_instance(hub.settings) as other:
        for _ in range(ROUNDS):
            await race_round(hub, other)
            await hub.clean()


async def race_round(hub: Any, other: Any) -> None:
    region = await load_region(hub, PROVIDERS)
    hubs = [hub, other]
    responses = await asyncio.gather(*[hubs[i % 2].client.post("/fhir/ServiceRequest", json=referral(),
                                                                headers=hub.headers("gp", GP_ORG))
                                       for i in range(REFERRALS)])
    assert {r.status_code for r in responses} == {201}
    posted = [r.json() for r in responses]
    await settle_all(hubs)
    rows = await all_rows(hub, referrals)
    assert len(rows) == REFERRALS and {r.sr_id for r in rows} == {p["id"] for p in posted}
    assert Counter(r.state for r in rows) == {"offered": 3, "needs-person": REFERRALS - 3}
    open_offers = [o for o in await all_rows(hub, referral_offers) if o.state == "open"]
    assert len(open_offers) == 3 and len({o.bed_id for o in open_offers}) == 3
    offer_tasks = [t for t in await stored(hub, "Task") if identifier_value(t, OFFER_SYSTEM)]
    assert len(offer_tasks) == 3  # no orphan offer from a transaction that lost its bed
    holders = Counter(reserved_for(b) for b in await stored(hub, "Location") if reserved_for(b))
    assert sorted(holders) == sorted(f"Task/{o.offer_id}" for o in open_offers)
    assert set(holders.values()) == {1}
    free_beds = {b for beds in region.beds.values() for b in beds}
    assert {o.bed_id for o in open_offers} <= free_beds

    by_provider = {f"Organization/{org}": agb for agb, org in region.orgs.items()}
    answers = await asyncio.gather(*[
        hubs[n % 2].client.post(f"/fhir/Task/{o.offer_id}/$accept", json=params(admission="2026-11-24"),
                                headers=provider_headers(hub, by_provider[o.provider]))
        for o in open_offers for n in range(2)])
    assert sorted(a.status_code for a in answers) == [200] * 3 + [409] * 3
    final = Counter(r.state for r in await all_rows(hub, referrals))
    assert final == {"accepted": 3, "needs-person": REFERRALS - 3}
