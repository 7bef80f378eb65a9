"""Availability benchmark (issue 4), production mode (PostgreSQL + Redis), ratios from one interleaved run.

    python -m bench.availability [--rounds 5] [--seconds 3] [--providers 500] [--quick]

1. Query latency, in-process: `availability.service.query` for one provider (`organization=`, the path of
   `$availability?organization=` and the provider view) against the p50 of one Redis HGETALL of that provider's
   hash, with the same client library in the same loop; and the same query when the region has 500 providers
   × 6 products against 5 providers × 6 products (two hubs, two schemas, seeded through the hub's own write
   path: transaction Bundles with Organizations, HealthcareServices, count MeasureReports and beds).
2. Bed-status update throughput: `POST /fhir/Location/{id}/$set-status` on a uvicorn hub process against the
   minimal FastAPI POST of bench/baseline_app.py (the baseline the core benchmark uses), both driven by wrk with
   16 connections, rounds interleaved. Printed beside it, for reading the figure: a minimal FastAPI POST that
   writes the status with one UPDATE into the same PostgreSQL.

Each figure is the median of the rounds' ratios (p50 per round for latencies).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import free_port, median, need_wrk, start, uvicorn_argv

PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
PRODUCTS = ("elv-laag", "elv-hoog", "elv-pall", "wlz-crisis", "wmo-kv", "grz")
CARE_PRODUCT = "https://zorgnet-hub.nl/fhir/CodeSystem/care-product"
CARE_PRODUCT_EXT = "https://zorgnet-hub.nl/fhir/StructureDefinition/care-product"
V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
PHYSICAL = "http://terminology.hl7.org/CodeSystem/location-physical-type"
SANER = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues"
WARDS = 64


# ------------------------------------------------------------------------------------------------ seeding
def provider_entries(n: int, *, beds_per_product: int) -> list[dict[str, Any]]:
    """One provider: Organization, a HealthcareService per product, and beds (or else a count report) each."""
    agb, org = f"7{n:07d}", f"urn:uuid:org-{n}"
    postcode = f"{9401 - (n % 900)} AB"
    organization = {"resourceType": "Organization", "name": f"Zorgaanbieder {n}",
                    "identifier": [{"system": AGB, "value": agb}],
                    "address": [{"postalCode": postcode, "city": "Plaats"}]}
    entries: list[dict[str, Any]] = [
        {"fullUrl": org, "request": {"method": "POST", "url": "Organization"}, "resource": organization}]
    for product in PRODUCTS:
        service = f"urn:uuid:svc-{n}-{product}"
        entries.append({"fullUrl": service, "request": {"method": "POST", "url": "HealthcareService"}, "resource": {
            "resourceType": "HealthcareService", "name": f"{product} {n}", "providedBy": {"reference": org},
            "type": [{"coding": [{"system": CARE_PRODUCT, "code": product}]}]}})
        if beds_per_product == 0:
            entries.append({"request": {"method": "POST", "url": "MeasureReport"}, "resource": {
                "resourceType": "MeasureReport", "status": "complete", "type": "summary",
                "measure": "https://zorgnet-hub.nl/fhir/Measure/bed-availability", "subject": {"reference": service},
                "date": "2026-11-23T08:00:00Z", "reporter": {"reference": org},
                "period": {"start": "2026-11-23", "end": "2026-11-23"},
                "group": [{"population": [
                    {"code": {"coding": [{"system": SANER, "code": code}]}, "count": count}
                    for code, count in (("numTotBeds", 10), ("numTotBedsOcc", 7), ("numTotBedsAvail", 3))]}]}})
        for b in range(beds_per_product):
            entries.append({"request": {"method": "POST", "url": "Location"}, "resource": {
                "resourceType": "Location", "status": "active", "name": f"bed {n}/{product}/{b}",
                "physicalType": {"coding": [{"system": PHYSICAL, "code": "bd"}]},
                "operationalStatus": {"system": V2_0116, "code": "U"}, "managingOrganization": {"reference": org},
                "extension": [{"url": CARE_PRODUCT_EXT, "valueCoding": {"system": CARE_PRODUCT, "code": product}}],
                "address": {"postalCode": postcode}}})
    return entries


async def seed(runtime: Any, providers: int, *, beds_per_product: int, chunk: int = 20) -> None:
    """Write the region through the hub's own transaction path (so the write hook builds the aggregate)."""
    from hub.fhir import bundles
    from hub.security.context import AccessContext

    ctx = AccessContext.system("bench: seed the region")
    for first in range(0, providers, chunk):
        entries = [e for n in range(first, min(providers, first + chunk))
                   for e in provider_entries(n, beds_per_product=beds_per_product)]
        async with runtime.uow() as uow:
            await bundles.process(uow, ctx, {"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                  f"{runtime.settings.base_url}/fhir", prefer_return="minimal")


# ------------------------------------------------------------------------------------------------ query latency
async def p50_ms(fn: Callable[[], Awaitable[Any]], samples: int) -> float:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        await fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


async def org_ids(runtime: Any) -> list[str]:
    from sqlalchemy import select

    from hub.availability.tables import availability_providers

    async with runtime.engine.connect() as conn:
        return list((await conn.execute(select(availability_providers.c.org_id))).scalars())


async def query_rounds(small: Any, large: Any, rounds: int, samples: int) -> dict[str, list[float]]:
    import redis.asyncio as aioredis

    from hub.availability import service
    from hub.availability.live import live_of

    results: dict[str, list[float]] = {k: [] for k in ("hgetall", "small", "large", "small_http", "small_product",
                                                       "large_product")}
    small_orgs, large_orgs = await org_ids(small.runtime), await org_ids(large.runtime)
    prefix = live_of(small.runtime).cache.prefix  # type: ignore[attr-defined]
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    rng = random.Random(4)

    def one(runtime: Any, orgs: list[str]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            q = service.AvailabilityQuery(organization=f"Organization/{rng.choice(orgs)}")
            picture = await service.query(runtime, q, with_totals=False)
            assert picture.from_cache and picture.rows, "the query must be answered from the cache"
            return picture
        return run

    def product(runtime: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: service.query(runtime, service.AvailabilityQuery(products=("elv-hoog",)), with_totals=False)

    async def hgetall() -> Any:
        return await client.hgetall(f"{prefix}:org:{rng.choice(small_orgs)}")

    async def http() -> Any:
        org = rng.choice(small_orgs)
        r = await small.client.get(f"/fhir/HealthcareService/$availability?organization=Organization/{org}",
                                   headers=small.headers)
        assert r.status_code == 200
        return r

    for fn in (hgetall, one(small.runtime, small_orgs), one(large.runtime, large_orgs)):
        await p50_ms(fn, 50)  # warm-up
    for _ in range(rounds):
        results["hgetall"].append(await p50_ms(hgetall, samples))
        results["small"].append(await p50_ms(one(small.runtime, small_orgs), samples))
        results["large"].append(await p50_ms(one(large.runtime, large_orgs), samples))
        results["small_http"].append(await p50_ms(http, samples // 4))
        results["small_product"].append(await p50_ms(product(small.runtime), samples // 4))
        results["large_product"].append(await p50_ms(product(large.runtime), samples // 4))
    await client.aclose()
    return results


# ------------------------------------------------------------------------------------------------ throughput
# Round-robin over every bed of the 5 providers, each request with its provider's own token; a bed's status
# alternates O/U per lap, so every request really changes one bed.
_SET_STATUS_LUA = """
local beds = {%(beds)s}
local n = 0
request = function()
  n = n + 1
  local bed = beds[(n %% #beds) + 1]
  local code = (math.floor(n / #beds) %% 2 == 0) and "O" or "U"
  local headers = {["Content-Type"] = "application/fhir+json", ["Authorization"] = "Bearer " .. bed[2]}
  local body = '{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"' .. code .. '"}]}'
  return wrk.format("POST", "/fhir/Location/" .. bed[1] .. "/$set-status", headers, body)
end
"""

# The core's own update path on the same hub, for comparison: PUT of plain (not bed) Locations, no availability work.
_CORE_PUT_LUA = """
local n = 0
local headers = {["Content-Type"] = "application/fhir+json", ["Authorization"] = "Bearer %(token)s",
                 ["Prefer"] = "return=minimal"}
request = function()
  n = n + 1
  local id = "bench-ward-" .. (n %% %(wards)d)
  local body = '{"resourceType":"Location","id":"' .. id .. '","status":"active","name":"Afdeling ' .. id ..
               '","description":"versie ' .. n .. '"}'
  return wrk.format("PUT", "/fhir/Location/" .. id, headers, body)
end
"""

_MINIMAL_DB_LUA = """
local n = 0
request = function()
  n = n + 1
  local code = (n %% 2 == 0) and "O" or "U"
  return wrk.format("POST", "/beds/" .. ((n %% %(beds)d) + 1) .. "/status", {["Content-Type"] = "application/json"},
                    '{"status":"' .. code .. '"}')
end
"""

_MINIMAL_LUA = """
wrk.method = "POST"
wrk.body = '{"status":"O"}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_rps(url: str, script: str, seconds: float, connections: int = 16) -> tuple[float, int]:
    """Requests/s and non-2xx count of one wrk run."""
    import re

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run([need_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", handle.name,
                              url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(handle.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def make_minimal_db_app() -> Any:
    """`uvicorn --factory bench.availability:make_minimal_db_app`: the least a bed-status POST can do with a
    database — parse JSON, one UPDATE in its own transaction (same engine settings as the hub)."""
    from fastapi import FastAPI, Request
    from sqlalchemy import text

    from hub.config import Settings
    from hub.store.engine import make_engine

    engine = make_engine(Settings(database_url=PG_URL, database_schema=os.environ["BENCH_SCHEMA"]))
    app = FastAPI()

    @app.post("/beds/{bed_id}/status")
    async def set_bed(bed_id: int, request: Request) -> dict[str, str]:
        body = await request.json()
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE bench_beds SET status = :s WHERE id = :i"), {"s": body["status"],
                                                                                         "i": bed_id})
        return {"status": body["status"]}

    @app.get("/beds")
    async def probe() -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def beds_with_tokens(runtime: Any) -> list[tuple[str, str]]:
    """(bed id, bearer token of the provider that owns it) for every bed."""
    from sqlalchemy import select

    from hub.availability.tables import availability_providers as p
    from hub.availability.tables import availability_sources as s
    from hub.security.tokens import issue_token

    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(s.c.source, p.c.identifiers).join(p, p.c.org_id == s.c.org_id)
                                   .where(s.c.kind == "bed").order_by(s.c.source))).all()
    tokens: dict[str, str] = {}
    for _, identifiers in rows:
        org = next(i for i in identifiers.split("\n") if i)
        tokens.setdefault(identifiers, issue_token(runtime.settings, role="vvt-provider", org=org,
                                                   subject=f"bench {org}", ttl=3600))
    return [(source.split("/", 1)[1], tokens[identifiers]) for source, identifiers in rows]


def throughput_rounds(env: dict[str, str], schema: str, beds: list[tuple[str, str]], rounds: int,
                      seconds: float) -> dict[str, list[float]]:
    from concurrent.futures import ThreadPoolExecutor

    from hub.config import Settings
    from hub.security.tokens import issue_token

    hub_port, base_port, db_port = free_port(), free_port(), free_port()
    with ThreadPoolExecutor(3) as pool:  # the three servers start side by side
        starting = [
            pool.submit(start, uvicorn_argv("hub.asgi:app", hub_port),
                        {**env, "HUB_BASE_URL": f"http://127.0.0.1:{hub_port}"}, "/fhir/metadata", hub_port),
            pool.submit(start, uvicorn_argv("bench.baseline_app:app", base_port), {}, "/item", base_port),
            pool.submit(start, [*uvicorn_argv("bench.availability:make_minimal_db_app", db_port), "--factory"],
                        {"BENCH_SCHEMA": schema}, "/beds", db_port)]
        (hub, _), (baseline, _), (minimal_db, _) = (f.result() for f in starting)
    results: dict[str, list[float]] = {"hub": [], "minimal": [], "minimal_db": [], "core_put": []}
    script = _SET_STATUS_LUA % {"beds": ", ".join(f'{{"{bed}", "{token}"}}' for bed, token in beds)}
    admin = issue_token(Settings(), role="admin", org=f"{AGB}|1", subject="bench-admin", ttl=3600)
    core_put = _CORE_PUT_LUA % {"token": admin, "wards": WARDS}
    try:
        wrk_rps(hub.base, script, 1)  # warm-up (and the wards exist before the timed PUTs)
        wrk_rps(hub.base, core_put, 1)
        for _ in range(rounds):
            hub_rps, hub_bad = wrk_rps(hub.base, script, seconds)
            base_rps, _ = wrk_rps(f"{baseline.base}/item", _MINIMAL_LUA, seconds)
            db_rps, _ = wrk_rps(minimal_db.base, _MINIMAL_DB_LUA % {"beds": 64}, seconds)
            put_rps, put_bad = wrk_rps(hub.base, core_put, seconds)
            assert hub_bad == put_bad == 0, f"hub answered {hub_bad} + {put_bad} non-2xx responses"
            for name, value in (("hub", hub_rps), ("minimal", base_rps), ("minimal_db", db_rps),
                                ("core_put", put_rps)):
                results[name].append(value)
            print(f"  round: $set-status {hub_rps:.0f} req/s, minimal POST {base_rps:.0f}, "
                  f"minimal POST + UPDATE {db_rps:.0f}, core PUT Location {put_rps:.0f}", flush=True)
    finally:
        for server in (hub, baseline, minimal_db):
            server.stop()
    return results


# ------------------------------------------------------------------------------------------------ the run
class InProcessHub:
    """A hub app with its lifespan running in this process (queries), plus an ASGI client."""

    def __init__(self, schema: str) -> None:
        from hub.config import Settings

        self.settings = Settings(database_url=PG_URL, database_schema=schema, redis_url=REDIS_URL,
                                 task_mode="inprocess", base_url="http://bench")
        self._stack: Any = None

    async def __aenter__(self) -> InProcessHub:
        import contextlib

        import httpx

        from hub.app import create_app
        from hub.security.tokens import issue_token

        self._stack = contextlib.AsyncExitStack()
        app = create_app(self.settings)
        await self._stack.enter_async_context(app.router.lifespan_context(app))
        self.runtime = app.state.runtime
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench"))
        self.headers = {"Authorization": "Bearer " + issue_token(self.settings, role="coordinator", org=None,
                                                                 subject="bench")}
        return self

    async def __aexit__(self, *exc: object) -> None:
        from hub.availability.live import live_of

        await live_of(self.runtime).cache.clear()
        await live_of(self.runtime).close()
        await self._stack.aclose()


async def _setting(name: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.connect() as conn:
        value = str((await conn.execute(text(f"SHOW {name}"))).scalar())
    await engine.dispose()
    return value


async def _sql(statements: list[str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def measure_queries(small_schema: str, large_schema: str, providers: int, rounds: int,
                          samples: int) -> tuple[dict[str, list[float]], list[tuple[str, str]]]:
    async with InProcessHub(small_schema) as small, InProcessHub(large_schema) as large:
        started = time.perf_counter()
        await seed(small.runtime, 5, beds_per_product=4)
        await seed(large.runtime, providers, beds_per_product=0)
        print(f"  seeded 5 and {providers} providers × {len(PRODUCTS)} products in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        results = await query_rounds(small, large, rounds, samples)
        return results, await beds_with_tokens(small.runtime)


def run(rounds: int, seconds: float, providers: int, samples: int) -> dict[str, float]:
    from hub.store.migrate import upgrade

    small_schema, large_schema = f"bench_av_{uuid.uuid4().hex[:8]}", f"bench_av_{uuid.uuid4().hex[:8]}"
    asyncio.run(_sql([f'CREATE SCHEMA "{small_schema}"', f'CREATE SCHEMA "{large_schema}"']))
    try:
        for schema in (small_schema, large_schema):
            upgrade(PG_URL, "head", schema)
        queries, beds = asyncio.run(measure_queries(small_schema, large_schema, providers, rounds, samples))
        asyncio.run(_sql([f'CREATE TABLE "{small_schema}".bench_beds (id int primary key, status varchar(4))',
                          f'INSERT INTO "{small_schema}".bench_beds SELECT g, \'U\' FROM generate_series(1, 64) g']))
        env = {"HUB_DATABASE_URL": PG_URL, "HUB_DATABASE_SCHEMA": small_schema, "HUB_REDIS_URL": REDIS_URL,
               "HUB_TASK_MODE": "inprocess", "HUB_MAX_IN_FLIGHT": "512"}
        updates = throughput_rounds(env, small_schema, beds, rounds, seconds)
    finally:
        asyncio.run(_sql([f'DROP SCHEMA IF EXISTS "{small_schema}" CASCADE',
                          f'DROP SCHEMA IF EXISTS "{large_schema}" CASCADE']))
    ratio = lambda a, b: median([x / y for x, y in zip(a, b, strict=True)])  # noqa: E731
    return {
        "query": median(queries["small"]), "hgetall": median(queries["hgetall"]),
        "query_vs_hgetall": ratio(queries["small"], queries["hgetall"]),
        "large": median(queries["large"]), "large_vs_small": ratio(queries["large"], queries["small"]),
        "http": median(queries["small_http"]), "small_product": median(queries["small_product"]),
        "large_product": median(queries["large_product"]),
        "hub_rps": median(updates["hub"]), "minimal_rps": median(updates["minimal"]),
        "minimal_db_rps": median(updates["minimal_db"]),
        "update_ratio": ratio(updates["hub"], updates["minimal"]),
        "update_vs_db": ratio(updates["hub"], updates["minimal_db"]),
        "core_put_rps": median(updates["core_put"]), "update_vs_core": ratio(updates["hub"], updates["core_put"]),
    }


def report(r: dict[str, float], providers: int, rounds: int) -> None:
    rows = [
        (f"query p50, 1 provider (5 providers × 6 products): {r['query']:.3f} ms; Redis HGETALL p50: "
         f"{r['hgetall']:.3f} ms — query / HGETALL", r["query_vs_hgetall"], "<=", 3.0),
        (f"same query with {providers} providers × 6 products: {r['large']:.3f} ms — {providers} / 5 providers",
         r["large_vs_small"], "<=", 1.5),
        (f"bed-status updates: $set-status {r['hub_rps']:.0f} req/s, minimal FastAPI POST {r['minimal_rps']:.0f} "
         "req/s — ratio", r["update_ratio"], ">=", 0.35),
    ]
    print(f"\n== availability benchmark (PostgreSQL + Redis; median of {rounds} interleaved rounds) ==")
    for label, value, op, target in rows:
        ok = value <= target if op == "<=" else value >= target
        print(f"  {label}: {value:.2f}  (target {op} {target})  {'PASS' if ok else 'FAIL'}")
    print("  for reading the figures (no targets):")
    print(f"    $availability?organization= over HTTP (in-process ASGI): p50 {r['http']:.3f} ms")
    print(f"    product query (all providers of one product): p50 {r['small_product']:.3f} ms with 5 providers, "
          f"{r['large_product']:.3f} ms with {providers} (grows with the answer)")
    print(f"    minimal FastAPI POST + one UPDATE in the same PostgreSQL: {r['minimal_db_rps']:.0f} req/s — "
          f"$set-status / that = {r['update_vs_db']:.2f}")
    print(f"    the core's own update path (PUT of a plain Location, same hub): {r['core_put_rps']:.0f} req/s — "
          f"$set-status / that = {r['update_vs_core']:.2f}")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.availability")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--providers", type=int, default=500)
    parser.add_argument("--samples", type=int, default=400, help="query timings per round and case")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the bench runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.providers, args.samples = 3, 1.0, 6, 20
    results = run(args.rounds, args.seconds, args.providers, args.samples)
    report(results, args.providers, args.rounds)
    autovacuum = asyncio.run(_setting("autovacuum"))
    if autovacuum != "on":  # the update figures degrade as dead rows pile up (docs/scaling.md)
        print(f"  note: this PostgreSQL runs with autovacuum = {autovacuum}; nothing clears dead rows during the run")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
