"""Fault tests against real processes and PRIVATE servers (the shared PostgreSQL/Redis are never stopped).

- PostgreSQL restarted (`pg_ctl restart -m fast`, then stopped for two seconds and started) under concurrent
  writes and reads through a hub process: every write that got 201 is in the database afterwards, every failure
  was a 503 OperationOutcome with Retry-After (never a 500, never a dropped connection), and the hub writes again
  by itself, without a restart.
- Redis restarted empty under use (a hub API process in Celery mode, a Celery worker): the availability figures
  stay correct while it is down (read from the table) and the cache is rebuilt from the database; referrals made
  while Redis was down are routed and every notification is delivered; writes never fail because of Redis.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from production_stack import (
    FHIR_JSON,
    GP_ORG,
    EventStream,
    PrivatePostgres,
    PrivateRedis,
    Provider,
    Receiver,
    Schema,
    free_beds,
    headers,
    hub_env,
    load_region,
    migrate,
    query,
    referral,
    set_bed_status,
    start_api,
    start_worker,
    subscribe_gp,
    wait_ready,
    wait_until,
    wait_worker,
)

pytestmark = pytest.mark.slow
CLIENTS = 8
REDIS_OUTAGE = 3.0  # seconds Redis stays down: longer than Celery's publish retries (~1 s) ride out


# ------------------------------------------------------------------------------------------------ PostgreSQL
@dataclass
class Outcome:
    at: float
    kind: str
    status: int  # 0: transport error
    detail: str = ""


@dataclass
class WriteLoad:
    """CLIENTS concurrent clients: POST Location (mostly), GET by id and search, each recording what came back."""

    base: str
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> name of every 201
    running: bool = True

    async def client(self, n: int) -> None:
        auth = headers()
        async with httpx.AsyncClient(base_url=self.base, timeout=15) as http:
            i = 0
            while self.running:
                i += 1
                name = f"fault-{n}-{i}"
                try:
                    if i % 4 == 0 and self.acknowledged:
                        kind, r = "read", await http.get(f"/fhir/Location/{next(reversed(self.acknowledged))}",
                                                         headers=auth)
                    elif i % 7 == 0:
                        kind, r = "search", await http.get("/fhir/Location", params={"name": "fault-1"}, headers=auth)
                    else:
                        kind, r = "create", await http.post("/fhir/Location", headers=auth, json={
                            "resourceType": "Location", "status": "active", "name": name})
                except httpx.TransportError as exc:
                    self.outcomes.append(Outcome(time.monotonic(), "transport", 0, repr(exc)))
                    await asyncio.sleep(0.05)
                    continue
                self.outcomes.append(Outcome(time.monotonic(), kind, r.status_code, self._check(r)))
                if kind == "create" and r.status_code == 201:
                    self.acknowledged[r.json()["id"]] = name
                elif r.status_code == 503:
                    await asyncio.sleep(0.02)

    @staticmethod
    def _check(r: httpx.Response) -> str:
        """'' when the response is well-formed for its status, else what is wrong with it."""
        if r.status_code < 400:
            return ""
        body = r.json() if r.headers.get("content-type", "").startswith(FHIR_JSON) else None
        if not body or body.get("resourceType") != "OperationOutcome":
            return f"not an OperationOutcome: {r.headers.get('content-type')} {r.text[:200]}"
        if r.status_code == 503 and (body["issue"][0]["code"] != "transient" or not r.headers.get("retry-after")):
            return f"503 without transient code or Retry-After: {r.text[:200]}"
        return ""

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at < end]


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres.create()
    try:
        yield server
    finally:
        server.destroy()


async def test_postgres_restart_under_write_load_loses_no_acknowledged_write_and_answers_503_not_500(
        private_pg, tmp_path):
    await asyncio.to_thread(migrate, private_pg.url, None)
    api = start_api("api-pg", hub_env(private_pg.url, None, None, ""), tmp_path)
    try:
        await asyncio.to_thread(wait_ready, api)
        load = WriteLoad(api.base)
        clients = [asyncio.create_task(load.client(n)) for n in range(CLIENTS)]
        await until(lambda: len(load.acknowledged) >= 50, "writes before the restart")
        await asyncio.to_thread(private_pg.restart, "fast")  # the restart the issue names, mid-load
        await until(lambda: sum(o.status == 201 for o in load.outcomes[-20:]) >= 5, "writes after the fast restart")

        await asyncio.to_thread(private_pg.stop, "fast")  # then a visible outage: two seconds down
        down_from = time.monotonic()
        await asyncio.sleep(0.5)  # let requests already in flight finish one way or the other
        async with httpx.AsyncClient(base_url=api.base, timeout=5) as http:
            not_ready = await http.get("/ready")
        await asyncio.sleep(1.5)
        down_until = time.monotonic()
        await asyncio.to_thread(private_pg.start)
        up_at = time.monotonic()
        recovered = await until(lambda: next((o.at for o in load.between(up_at, 1e18) if o.status == 201), None),
                                "the first acknowledged write after PostgreSQL came back (no hub restart)")
        await until(lambda: len(load.between(recovered, 1e18)) >= 100, "load after recovery")
        load.running = False
        await asyncio.gather(*clients)
        async with httpx.AsyncClient(base_url=api.base, timeout=5) as http:
            after = [await http.post("/fhir/Location", headers=headers(), json={
                "resourceType": "Location", "status": "active", "name": f"after-{i}"}) for i in range(10)]
            ready_again = await http.get("/ready")
    finally:
        api.stop()

    statuses = collections.Counter((o.kind, o.status) for o in load.outcomes)
    assert not [o for o in load.outcomes if o.status not in (200, 201, 503)], (statuses, api.output())
    assert not [o.detail for o in load.outcomes if o.detail], [o.detail for o in load.outcomes if o.detail][:3]
    outage = load.between(down_from + 0.5, down_until)
    assert outage and {o.status for o in outage} == {503}, collections.Counter(o.status for o in outage)
    assert not_ready.status_code == 503 and "database" in not_ready.json()["issue"][0]["diagnostics"]
    assert recovered - up_at < 10
    assert [r.status_code for r in after] == [201] * 10 and ready_again.status_code == 200

    stored = {row.res_id: orjson.loads(row.content)["name"] for row in await asyncio.to_thread(
        query, private_pg.url, "SELECT res_id, content FROM resources WHERE res_type = 'Location'")}
    lost = {i: name for i, name in load.acknowledged.items() if stored.get(i) != name}
    assert not lost, f"{len(lost)} acknowledged writes are not in the database: {list(lost.items())[:5]}"
    assert len(load.acknowledged) >= 100 and statuses[("create", 503)] > 0


async def until(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------------ Redis
@pytest.fixture
def schema() -> Iterator[Schema]:
    created = Schema.create("t_fault")
    try:
        yield created
    finally:
        created.drop()


@contextlib.contextmanager
def celery_stack(schema: Schema, redis: PrivateRedis, log_dir: Path) -> Iterator[Any]:
    """One API process (rate limiting on, so it uses Redis per request) and one Celery worker."""
    env = hub_env(schema.url, schema.name, redis.url, "", HUB_RATE_LIMIT_PER_MINUTE="100000")
    api = start_api("api-redis", env, log_dir, app="fast_relay_asgi:app")
    worker = start_worker("wfault", env, log_dir)
    receiver = Receiver()
    try:
        wait_ready(api)
        wait_worker(worker)
        yield api, worker, receiver
    finally:
        api.stop()
        worker.stop()
        receiver.close()


def referral_state(schema: Schema, sr_id: str) -> str | None:
    rows = schema.query("SELECT state FROM referrals WHERE sr_id = :sr", sr=sr_id)
    return rows[0][0] if rows else None


def picture(http: httpx.Client) -> dict[str, Any]:
    r = http.get("/api/availability", headers=headers())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_redis_restarted_empty_cache_is_rebuilt_from_the_database_and_routing_and_notifications_resume(
        schema, tmp_path):
    redis = PrivateRedis.start_new(tmp_path)
    try:
        with celery_stack(schema, redis, tmp_path) as (api, _worker, receiver), api.client() as http:
            a, b = load_region(http, [Provider("73730001", "Noorderboog", "9401 AB", "UUUUUU"),
                                      Provider("73730002", "Icare", "9402 CD", "UUO")])
            subscribe_gp(http, receiver.url, "secret-shared-with-the-gp-system")
            first = post_referral(http)
            wait_until(lambda: referral_state(schema, first) == "offered", "the worker to route the first referral")
            wait_until(lambda: picture(http)["from_cache"] and free_beds(http, a.org_id) == 5,
                       "the first hold in the cached figures")

            redis.stop()
            down = [set_bed_status(http, b, b.bed_ids[2], "U"), http.post(
                "/fhir/ServiceRequest", json=referral(), headers=headers("gp", GP_ORG))]
            assert [r.status_code for r in down] == [200, 201], [r.text for r in down]
            while_down = picture(http)
            read = http.get(f"/fhir/Location/{a.bed_ids[0]}", headers=headers())
            assert http.get("/ready").status_code == 503
            time.sleep(REDIS_OUTAGE)
            redis.start()

            assert read.status_code == 200 and not while_down["from_cache"]  # the table, not a dead cache
            assert figures(while_down, a.org_id, b.org_id) == (5, 3)
            second = down[1].json()["id"]
            wait_until(lambda: referral_state(schema, second) == "offered",
                       "the referral made while Redis was down to be routed (outbox relay)", 30)
            third = post_referral(http)
            wait_until(lambda: referral_state(schema, third) == "offered", "a referral after the restart")
            rebuilt = wait_until(lambda: (p := picture(http))["from_cache"] and p, "the cache to be rebuilt")
            assert figures(rebuilt, a.org_id, b.org_id) == free_in_database(schema, a, b)
            assert sum(figures(rebuilt, a.org_id, b.org_id)) == 6  # 9 free beds (one freed while down), 3 held
            assert_no_bed_held_twice(schema, 3)
            deliveries = wait_until(lambda: all_delivered(schema), "every notification to be delivered", 30)
            received = {h["x-hub-delivery"] for h, _ in receiver.snapshot()}
            assert {str(d) for d in deliveries} <= received  # nothing lost (at-least-once)
    finally:
        redis.stop()


PENDING_LIVE_PY = ("needs the hub/availability/live.py change in the issue-8 report: a cache update that failed "
                   "while Redis was down must mark the cache cold once Redis answers again")
PENDING_BROADCAST_PY = ("needs the hub/availability/broadcast.py change in the issue-8 report: the pub/sub reader "
                        "re-subscribes after Redis comes back instead of stopping")


def test_writes_made_while_redis_was_down_do_not_leave_stale_figures_in_a_persistent_cache(schema, tmp_path):
    """Redis with an append-only file (as docker/compose.yaml runs it) comes back with its keys, including the
    cache's `loaded` marker: figures changed while it was down must not be served stale from it afterwards."""
    redis = PrivateRedis.start_new(tmp_path, persistent=True)
    try:
        with celery_stack(schema, redis, tmp_path) as (api, _worker, _receiver), api.client() as http:
            (a,) = load_region(http, [Provider("73730001", "Noorderboog", "9401 AB", "UUUU")])
            wait_until(lambda: picture(http)["from_cache"] and free_beds(http, a.org_id) == 4, "the cached figures")
            redis.stop()
            assert set_bed_status(http, a, a.bed_ids[0], "O").status_code == 200
            assert free_beds(http, a.org_id) == 3  # from the table while Redis is down
            redis.start()
            # Within a few seconds the cache must agree with the database again (and stay so).
            wait_until(lambda: picture(http)["from_cache"] and free_beds(http, a.org_id) == 3,
                       "the cache to show the change made while Redis was down", 8)
            assert free_beds(http, a.org_id) == 3
    finally:
        redis.stop()


def test_a_live_stream_opened_before_a_redis_restart_carries_the_changes_made_after_it(schema, tmp_path):
    redis = PrivateRedis.start_new(tmp_path)
    try:
        with celery_stack(schema, redis, tmp_path) as (api, _worker, _receiver), api.client() as http:
            (a,) = load_region(http, [Provider("73730001", "Noorderboog", "9401 AB", "UUUU")])
            stream = EventStream(api.base)
            try:
                redis.restart()
                wait_until(lambda: stream.named("resync"), "the stream to tell its client to re-read")
                deadline, status = time.monotonic() + 8, "U"
                while True:
                    status = "O" if status == "U" else "U"
                    seen = len(stream.events)
                    assert set_bed_status(http, a, a.bed_ids[0], status).status_code == 200
                    free = 3 if status == "O" else 4
                    try:
                        wait_until(lambda s=seen, f=free: carried(stream, s, a.org_id, f), "the change", 0.5)
                        break
                    except AssertionError:
                        # A change made while the reader re-subscribes is covered by the resync; change again
                        # until one arrives, or the deadline says the stream stays deaf.
                        assert time.monotonic() < deadline, f"no change after the restart reached it: {stream.events}"
            finally:
                stream.close()
    finally:
        redis.stop()


def carried(stream: EventStream, after: int, org_id: str, free: int) -> bool:
    return any(name == "availability" and data["org_id"] == org_id and data["free"] == free
               for name, data in stream.events[after:])


def free_in_database(schema: Schema, *providers: Provider) -> tuple[int, ...]:
    """The truth the figures must show: beds of each provider that are `U` and carry no reservation."""
    from hub.availability.vocabulary import BED_RESERVATION_EXT

    def is_free(content: bytes) -> bool:
        bed = orjson.loads(content)
        reserved = any(e.get("url") == BED_RESERVATION_EXT for e in bed.get("extension") or [])
        return bed["operationalStatus"]["code"] == "U" and not reserved

    rows = schema.query("SELECT res_id, content FROM resources WHERE res_type = 'Location' AND deleted = false")
    content = {r.res_id: r.content for r in rows}
    return tuple(sum(is_free(content[bed_id]) for bed_id in p.bed_ids) for p in providers)


def post_referral(http: httpx.Client) -> str:
    r = http.post("/fhir/ServiceRequest", json=referral(), headers=headers("gp", GP_ORG))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def figures(picture: dict[str, Any], *org_ids: str) -> tuple[int, ...]:
    return tuple(sum(r["free"] for r in picture["rows"] if r["org_id"] == org and r["product"] == "elv-hoog")
                 for org in org_ids)


def assert_no_bed_held_twice(schema: Schema, offers: int) -> None:
    rows = schema.query("SELECT offer_id, bed_id FROM referral_offers WHERE state = 'open'")
    assert len(rows) == offers and all(r.bed_id for r in rows), rows
    assert len({r.bed_id for r in rows}) == offers, rows


def all_delivered(schema: Schema) -> list[int] | None:
    rows = schema.query("SELECT id, status FROM referral_deliveries")
    return [r.id for r in rows] if rows and {r.status for r in rows} == {"delivered"} else None
