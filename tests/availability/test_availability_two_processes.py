"""Two API processes on one database (each its own bed memo, one Redis cache): bed status changes and other writes
of the same beds arrive through either at random and at once. Whatever one process remembers of a bed, a write
through the other must not be lost or mis-counted: every request answers as a lone one would (no 500), each bed's
availability source row follows its bed, and the aggregate equals a from-scratch recount in both processes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest_asyncio
from availability_factories import Provider, add_provider, assert_matches_recount, set_status
from sqlalchemy import select

from hub.availability import vocabulary as v
from hub.availability.bed_memo import memo_of
from hub.availability.live import live_of
from hub.availability.tables import availability_sources
from hub.store.schema import resources
from tests.conftest import Hub, make_settings, start_hub

PRODUCTS = ("elv-laag", "elv-hoog", "grz")


@pytest_asyncio.fixture
async def two(redis_url: str, pg_schema: str, tmp_path: Any) -> AsyncIterator[tuple[Hub, Hub]]:
    settings = make_settings("postgresql", tmp_path, pg_schema, redis_url=redis_url, task_mode="inprocess")
    async with AsyncExitStack() as stack:
        hubs = []
        for _ in range(2):
            generator = start_hub("postgresql", settings)
            hubs.append(await generator.__anext__())
            stack.push_async_callback(generator.aclose)
        first, second = hubs
        try:
            yield first, second
        finally:
            for hub in hubs:
                await hub.runtime.dispatcher.drain(10)  # type: ignore[attr-defined]
            await first.clean()
            for hub in hubs:
                await live_of(hub.runtime).close()


async def random_write(hubs: tuple[Hub, Hub], rng: random.Random, provider: Provider) -> int:
    hub = rng.choice(hubs)
    bed_id = rng.choice(list(provider.beds.values()))
    choice = rng.random()
    if choice < 0.75:
        return int((await set_status(hub, provider, bed_id, rng.choice("UUOOCH"))).status_code)
    current = await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)
    if current.status_code != 200:
        return int(current.status_code)
    resource = current.json()
    if choice < 0.9:  # the bed moves to another product
        extensions = [e for e in resource.get("extension") or [] if e["url"] != v.CARE_PRODUCT_EXT]
        resource["extension"] = [*extensions, {"url": v.CARE_PRODUCT_EXT, "valueCoding": {
            "system": v.CARE_PRODUCT, "code": rng.choice(PRODUCTS)}}]
    else:  # renamed only: a new version, the same figures
        resource["name"] = f"{resource['name']} *"
    headers = {**provider.headers, "If-Match": current.headers["etag"]}
    return int((await hub.client.put(f"/fhir/Location/{bed_id}", json=resource, headers=headers)).status_code)


async def test_writes_through_two_processes_keep_every_bed_and_the_aggregate_exact(two):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    first, _ = two
    providers = [await add_provider(first, f"7360{n:04d}", f"Zorg {n}", {p: "UUOU" for p in PRODUCTS})
                 for n in range(3)]
    gate = asyncio.Semaphore(24)
    plan = [(random.Random(rng.random()), rng.choice(providers)) for _ in range(360)]

    async def one(write_rng: random.Random, provider: Provider) -> int:
        async with gate:
            return await random_write(two, write_rng, provider)

    statuses = Counter(await asyncio.gather(*(one(r, p) for r, p in plan)))
    assert set(statuses) <= {200, 409, 412}, (seed, statuses)
    assert statuses[200] > len(plan) * 0.7, (seed, statuses)
    async with first.runtime.engine.connect() as conn:  # each source row took its bed's last status
        beds = dict((await conn.execute(select(resources.c.res_id, resources.c.content).where(
            resources.c.res_id.in_([b for p in providers for b in p.beds.values()])))).all())
        stored = dict((await conn.execute(select(availability_sources.c.source, availability_sources.c.status)
                                          .where(availability_sources.c.kind == "bed"))).all())
    for bed_id, content in beds.items():
        assert stored[f"Location/{bed_id}"] == orjson.loads(content)["operationalStatus"]["code"], (seed, bed_id)
    for hub in two:
        assert len(memo_of(hub.runtime)) > 0  # both decided batches on beds they remembered
        await assert_matches_recount(hub)
