"""The aggregate under a randomized concurrent workload from many providers equals a from-scratch recount.

Many HTTP writes run at once through the app (each its own unit of work and database connection): bed statuses,
reservations, product changes, new and deleted beds, count reports arriving out of order. Lost races must answer
409/412 and write nothing; everything that committed must add up exactly. PostgreSQL runs the full workload;
SQLite (writers serialised by BEGIN IMMEDIATE) a smaller one.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from availability_factories import (
    Provider,
    add_provider,
    assert_matches_recount,
    bed,
    count_report,
    set_status,
)

from hub.availability import vocabulary as v

PRODUCTS = ("elv-laag", "elv-hoog", "elv-pall", "grz", "wlz-crisis", "wmo-kv")
POSTCODES = ("9401 AB", "7811 CD", "7941 EF", "8011 AA", "1012 AB")
DATES = ("2026-11-23T06:00:00Z", "2026-11-23T07:00:00Z", "2026-11-23T08:00:00Z", "2026-11-23T09:00:00Z")


async def build(hub: Any, rng: random.Random, providers: int) -> list[Provider]:
    built = []
    for n in range(providers):
        products = rng.sample(PRODUCTS, 2)
        built.append(await add_provider(hub, f"7350{n:04d}", f"Zorg {n}", {p: "UUO" for p in products},
                                        postcode=rng.choice(POSTCODES), count_products=(rng.choice(PRODUCTS),)))
    return built


async def random_write(hub: Any, rng: random.Random, provider: Provider) -> int:
    """One random write by the provider itself; returns the HTTP status."""
    bed_ids = list(provider.beds.values())
    choice = rng.random()
    if choice < 0.55:
        r = await set_status(hub, provider, rng.choice(bed_ids), rng.choice("UUOOCHKI"))
        return r.status_code
    if choice < 0.85:
        bed_id = rng.choice(bed_ids)
        current = await hub.client.get(f"/fhir/Location/{bed_id}", headers=provider.headers)
        if current.status_code != 200:
            return current.status_code
        resource = current.json()
        extensions = [e for e in resource.get("extension") or [] if e["url"] != v.BED_RESERVATION_EXT]
        if choice < 0.7:  # reserve or release
            if not any(e["url"] == v.BED_RESERVATION_EXT for e in resource.get("extension") or []):
                extensions.append({"url": v.BED_RESERVATION_EXT, "extension": [
                    {"url": "reserved-for", "valueReference": {"reference": "Task/x"}},
                    {"url": "until", "valueDateTime": "2030-01-01T00:00:00Z"}]})
        else:  # the bed moves to another product
            extensions = [e for e in extensions if e["url"] != v.CARE_PRODUCT_EXT] + [
                {"url": v.CARE_PRODUCT_EXT, "valueCoding": {"system": v.CARE_PRODUCT, "code": rng.choice(PRODUCTS)}}]
        headers = {**provider.headers, "If-Match": current.headers["etag"]} if rng.random() < 0.5 else provider.headers
        r = await hub.client.put(f"/fhir/Location/{bed_id}", json={**resource, "extension": extensions},
                                 headers=headers)
        return r.status_code
    if choice < 0.93:
        service_id = next(iter(provider.services.values()))
        total = rng.randint(0, 12)
        occupied = rng.randint(0, total)
        report = count_report(f"HealthcareService/{service_id}", provider.ref, total=total, occupied=occupied,
                              free=rng.randint(0, total - occupied), date=rng.choice(DATES))
        r = await hub.client.post("/fhir/MeasureReport", json=report, headers=provider.headers)
        return r.status_code
    if choice < 0.97:
        r = await hub.client.post("/fhir/Location", headers=provider.headers,
                                  json=bed(f"{provider.agb}/new/{rng.random()}", product=rng.choice(PRODUCTS),
                                           status=rng.choice("UO"), org=provider.ref))
        if r.status_code == 201:
            provider.beds[r.json()["name"]] = r.json()["id"]
        return r.status_code
    r = await hub.client.delete(f"/fhir/Location/{rng.choice(bed_ids)}", headers=provider.headers)
    return r.status_code


async def test_aggregate_equals_recount_after_concurrent_random_workload(hub):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    heavy = hub.backend == "postgresql"
    providers = await build(hub, rng, 12 if heavy else 4)
    writes, parallel = (400, 32) if heavy else (60, 4)
    gate = asyncio.Semaphore(parallel)
    plan = [(random.Random(rng.random()), rng.choice(providers)) for _ in range(writes)]

    async def one(write_rng: random.Random, provider: Provider) -> int:
        async with gate:
            return await random_write(hub, write_rng, provider)

    statuses = Counter(await asyncio.gather(*(one(r, p) for r, p in plan)))
    assert set(statuses) <= {200, 201, 204, 404, 409, 410, 412}, (seed, statuses)
    assert statuses[200] + statuses[201] + statuses[204] > writes * 0.6, (seed, statuses)
    await assert_matches_recount(hub)
