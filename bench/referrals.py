"""Referral routing benchmark (issue 6): request -> first offer, against bare Celery, and referrals/s sustained.

    python -m bench.referrals [--rounds 7] [--referrals 150] [--concurrency 2] [--quick]

Real processes on a private PostgreSQL schema (created, `python -m hub.cli migrate`, dropped at the end) and a private
redis-server: the hub API (`uvicorn hub.asgi:app`, HUB_TASK_MODE=celery) and one Celery worker
(`celery -A bench.referrals:probe_app worker`: the hub's Celery app plus one trivial task, `bench.probe`).
- first offer: POST /fhir/ServiceRequest (a complete acute referral) -> its offer exists (the `referral_offers` row,
  written in the offer Task's transaction), polled every 2 ms with a deadline. The path: API commit + outbox claim +
  send_task, the worker's matching/ranking/bed reservation/offer transaction.
- bare Celery: send_task("bench.probe") on the same broker, queue and worker -> the time.time() the task writes to
  Redis as its first action (enqueue -> start, no polling in the figure).
Interleaved rounds (alternating which goes first), after one warm-up of each; medians, and their ratio.
- sustained: many referrals posted (16 at a time) -> seconds until every one has an offer; referrals/s.
The last line is the figures as JSON (tests/referrals/test_referral_bench.py reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.core import PG_URL, _schema
from bench.harness import ROOT, Server, free_port, median, start, uvicorn_argv
from bench.scale import start_redis
from hub.config import Settings
from hub.referrals import vocabulary as v
from hub.security.tokens import issue_token

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
GP_ORG = f"{AGB}|01000001"
ADMIN_ORG = "http://fhir.nl/fhir/NamingSystem/ura|90000000"
QUEUE = "zorgnet"  # the hub's task_default_queue: the API publishes there, the probe goes there too
POLL = 0.002
DEADLINE = 30.0
BEDS_PER_PROVIDER = 4


# ------------------------------------------------------------------------------------------------ worker side
def _probe(key: str) -> None:
    """The trivial task: note when it started, in Redis."""
    started = time.time()
    import redis

    redis.Redis.from_url(os.environ["HUB_REDIS_URL"]).set(key, repr(started), ex=300)


def __getattr__(name: str) -> Any:
    """`celery -A bench.referrals:probe_app`: the hub's Celery app (HUB_* from the environment) plus `bench.probe`.
    Lazy, so importing this module to drive the benchmark does not build a Celery app."""
    if name == "probe_app":
        from hub.celery_app import app

        if "bench.probe" not in app.tasks:
            app.task(name="bench.probe")(_probe)
        return app
    raise AttributeError(name)


# ------------------------------------------------------------------------------------------------ region
def seed(base: str, token: str, providers: int) -> int:
    """`providers` Organizations, each with an elv-hoog HealthcareService and BEDS_PER_PROVIDER free beds."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    beds = 0
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        for first in range(0, providers, 25):
            entries: list[dict[str, Any]] = []
            for p in range(first, min(providers, first + 25)):
                org = f"bench-org-{p}"
                address = {"city": "Assen", "postalCode": f"94{p % 100:02d} AB", "country": "NL"}
                entries.append({"request": {"method": "PUT", "url": f"Organization/{org}"}, "resource": {
                    "resourceType": "Organization", "id": org, "name": f"Aanbieder {p}", "active": True,
                    "identifier": [{"system": AGB, "value": f"7390{p:04d}"}], "address": [address]}})
                entries.append({"request": {"method": "PUT", "url": f"HealthcareService/bench-hs-{p}"}, "resource": {
                    "resourceType": "HealthcareService", "id": f"bench-hs-{p}", "active": True,
                    "name": f"elv-hoog {p}", "providedBy": {"reference": f"Organization/{org}"},
                    "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": "elv-hoog"}]}]}})
                for n in range(BEDS_PER_PROVIDER):
                    bed = f"bench-bed-{p}-{n}"
                    entries.append({"request": {"method": "PUT", "url": f"Location/{bed}"}, "resource": {
                        "resourceType": "Location", "id": bed, "status": "active", "name": f"Bed {n} ({p})",
                        "operationalStatus": {"system": v.V2_0116, "code": "U"},
                        "physicalType": {"coding": [{"system": v.PHYSICAL_TYPE, "code": "bd"}]},
                        "extension": [{"url": v.CARE_PRODUCT_EXT,
                                       "valueCoding": {"system": v.CARE_PRODUCT, "code": "elv-hoog"}}],
                        "managingOrganization": {"reference": f"Organization/{org}"}, "address": address}})
                    beds += 1
            r = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
            r.raise_for_status()
    return beds


def referral() -> dict[str, Any]:
    """A complete acute bed referral (as tests/referrals/referral_factories.referral builds it)."""
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "urgent",
            "category": [{"coding": [{"system": v.SNOMED, "code": v.REFERRAL_CATEGORY}]}],
            "code": {"coding": [{"system": v.CARE_PRODUCT, "code": "elv-hoog"}]},
            "subject": {"reference": f"Patient/p-{uuid.uuid4().hex[:8]}"},
            "requester": {"identifier": {"system": AGB, "value": "01000001"}, "display": "Huisarts (bench)"},
            "extension": [{"url": v.POSTCODE_EXT, "valueString": "9401 ZZ"}]}


# ------------------------------------------------------------------------------------------------ measuring
class Probe:
    def __init__(self, api: httpx.AsyncClient, db: Any, broker: str, gp: dict[str, str]) -> None:
        import redis.asyncio as aioredis
        from celery import Celery

        self.api, self.db, self.gp = api, db, gp
        self.redis = aioredis.Redis.from_url(broker)
        self.celery = Celery("bench-referrals", broker=broker)
        self.celery.conf.task_default_queue = QUEUE

    async def celery_start(self) -> float:
        """Seconds from send_task to the probe task's first statement."""
        key = f"bench:probe:{uuid.uuid4().hex}"
        sent = time.time()
        await asyncio.to_thread(self.celery.send_task, "bench.probe", args=[key])
        deadline = time.monotonic() + DEADLINE
        while (value := await self.redis.get(key)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the probe task did not start")
            await asyncio.sleep(POLL)
        return float(value) - sent

    async def post(self) -> str:
        r = await self.api.post("/fhir/ServiceRequest", json=referral(), headers=self.gp)
        r.raise_for_status()
        return str(r.json()["id"])

    async def first_offer(self) -> float:
        """Seconds from POST ServiceRequest to its offer being visible in the database."""
        sent = time.time()
        sr_id = await self.post()
        deadline = time.monotonic() + DEADLINE
        while not await self.db.fetchval("SELECT 1 FROM referral_offers WHERE sr_id = $1", sr_id):
            if time.monotonic() > deadline:
                state = await self.db.fetchval("SELECT state FROM referrals WHERE sr_id = $1", sr_id)
                raise TimeoutError(f"no offer for ServiceRequest/{sr_id} (state {state})")
            await asyncio.sleep(POLL)
        return time.time() - sent

    async def sustained(self, count: int, parallel: int = 16) -> tuple[float, int]:
        """Post `count` referrals (`parallel` at a time); seconds until every one has an offer, and how many did."""
        gate = asyncio.Semaphore(parallel)

        async def one() -> str:
            async with gate:
                return await self.post()

        started = time.time()
        ids = await asyncio.gather(*[one() for _ in range(count)])
        deadline = time.monotonic() + DEADLINE + count * 0.5
        while True:
            settled = await self.db.fetchval("SELECT count(*) FROM referrals WHERE sr_id = ANY($1::text[]) "
                                             "AND state <> 'routing'", ids)
            if settled == count or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        elapsed = time.time() - started
        offered = await self.db.fetchval("SELECT count(DISTINCT sr_id) FROM referral_offers "
                                         "WHERE sr_id = ANY($1::text[])", ids)
        if settled != count:
            raise TimeoutError(f"only {settled} of {count} referrals settled")
        return elapsed, int(offered)


async def measure(base: str, schema: str, broker: str, rounds: int, count: int) -> dict[str, Any]:
    import asyncpg

    token = issue_token(Settings(), role="gp", org=GP_ORG, subject="bench-gp")
    gp = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    db = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), server_settings={"search_path": schema})
    async with httpx.AsyncClient(base_url=base, timeout=60) as api:
        probe = Probe(api, db, broker, gp)
        try:
            await probe.celery_start()  # warm-up: broker connections, the worker's pool, the API's and DB pools
            await probe.first_offer()
            celery_s, offer_s = [], []
            for r in range(rounds):
                if r % 2 == 0:
                    celery_s.append(await probe.celery_start())
                    offer_s.append(await probe.first_offer())
                else:
                    offer_s.append(await probe.first_offer())
                    celery_s.append(await probe.celery_start())
                print(f"  round {r + 1}: celery enqueue->start {celery_s[-1] * 1000:7.1f} ms, "
                      f"referral request->first offer {offer_s[-1] * 1000:7.1f} ms", flush=True)
            elapsed, offered = await probe.sustained(count)
        finally:
            await db.close()
            await probe.redis.aclose()
    celery_ms, offer_ms = median(celery_s) * 1000, median(offer_s) * 1000
    return {"celery_start_ms": celery_ms, "first_offer_ms": offer_ms, "ratio": offer_ms / celery_ms,
            "referrals": count, "offered": offered, "sustained_s": elapsed, "referrals_per_s": count / elapsed,
            "rounds": rounds}


# ------------------------------------------------------------------------------------------------ processes
def start_worker(env: dict[str, str], log: Path, concurrency: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "bench.referrals:probe_app", "worker", "-Q", QUEUE,
           "-c", str(concurrency), "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(rounds: int, count: int, concurrency: int) -> dict[str, Any]:
    schema = f"bench_referrals_{uuid.uuid4().hex[:8]}"
    asyncio.run(_schema(f'CREATE SCHEMA "{schema}"'))
    redis_proc, broker = start_redis()
    env = {"HUB_DATABASE_URL": PG_URL, "HUB_DATABASE_SCHEMA": schema, "HUB_REDIS_URL": broker,
           "HUB_TASK_MODE": "celery", "HUB_MAX_IN_FLIGHT": "512", "HUB_BASE_URL": "http://127.0.0.1/fhir",
           "HUB_LOG_LEVEL": "WARNING"}
    server: Server | None = None
    worker: subprocess.Popen[bytes] | None = None
    log = Path(tempfile.mkstemp(prefix="bench-referrals-worker-", suffix=".log")[1])
    try:
        subprocess.run([sys.executable, "-m", "hub.cli", "migrate"], env={**os.environ, **env}, check=True,
                       capture_output=True, cwd=ROOT)
        port = free_port()
        server, _ = start(uvicorn_argv("hub.asgi:app", port), env, "/ready", port)
        admin = issue_token(Settings(), role="admin", org=ADMIN_ORG, subject="bench")
        needed = 2 + rounds + count  # warm-up, rounds, sustained: one bed each
        beds = seed(server.base, admin, math.ceil(needed / BEDS_PER_PROVIDER) + 2)
        worker = start_worker(env, log, concurrency)
        print(f"  {beds} free beds; API pid {server.proc.pid}, worker pid {worker.pid} (-c {concurrency})",
              flush=True)
        return asyncio.run(measure(server.base, schema, broker, rounds, count))
    finally:
        if worker is not None:
            stop(worker)
        if server is not None:
            server.stop()
        redis_proc.terminate()
        redis_proc.wait(10)
        asyncio.run(_schema(f'DROP SCHEMA "{schema}" CASCADE'))
        log.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.referrals")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds (median, >= 3)")
    parser.add_argument("--referrals", type=int, default=150, help="referrals posted for the sustained rate")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 20 referrals (the test)")
    args = parser.parse_args(argv)
    rounds, count = (3, 20) if args.quick else (max(3, args.rounds), args.referrals)
    print(f"== referral routing benchmark: PostgreSQL + Redis, API + Celery worker, {os.cpu_count()} cores ==",
          flush=True)
    r = run(rounds, count, args.concurrency)
    print(f"  request -> first offer   median {r['first_offer_ms']:7.1f} ms  ({rounds} rounds)")
    print(f"  celery enqueue -> start  median {r['celery_start_ms']:7.1f} ms")
    print(f"  ratio first offer / bare Celery  {r['ratio']:.1f}x")
    print(f"  sustained: {count} referrals, {r['offered']} offered, in {r['sustained_s']:.2f} s = "
          f"{r['referrals_per_s']:.1f} referrals/s")
    print("json: " + json.dumps(r))


if __name__ == "__main__":
    main()
