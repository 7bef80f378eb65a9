"""Routing in a real Celery worker process (PostgreSQL + Redis): the API only enqueues, the worker routes; a
worker SIGKILLed mid-routing leaves its message unacknowledged (acks_late) and the next worker finishes the
referral exactly once: one offer, one bed held."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from referral_factories import GP_ORG, Provider, another_instance, load_region, referral
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from hub.config import Settings
from hub.referrals.reservations import reserved_for
from hub.referrals.tables import referral_offers, referrals
from hub.security.tokens import issue_token
from hub.store.migrate import upgrade
from hub.store.schema import outbox, resources

pytestmark = pytest.mark.slow
PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WAIT = 25.0


@pytest.fixture
async def celery_hub(redis_url: str) -> AsyncIterator[tuple[Any, Settings, dict[str, str]]]:
    """A hub in Celery mode on its own PostgreSQL schema, Redis database and queue (no other test sees them)."""
    schema, queue = f"t_celery_{uuid.uuid4().hex[:10]}", f"referrals-test-{uuid.uuid4().hex[:8]}"
    broker = redis_url.rsplit("/", 1)[0] + "/13"
    admin = create_async_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await asyncio.to_thread(upgrade, PG_URL, "head", schema)
    settings = Settings(database_url=PG_URL, database_schema=schema, redis_url=broker, task_mode="celery",
                        base_url="http://hub.test")
    env = {**os.environ, "HUB_DATABASE_URL": PG_URL, "HUB_DATABASE_SCHEMA": schema, "HUB_REDIS_URL": broker,
           "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "QUEUE": queue}
    try:
        async with another_instance(settings) as api:
            api.runtime.dispatcher.app.conf.task_default_queue = queue
            yield api, settings, env
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
        redis.Redis.from_url(broker).delete(queue, "zorgnet")


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "celery_fast_restore", "worker", "-P", "solo", "-Q", env["QUEUE"],
           "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + WAIT
    while b"ready." not in log.read_bytes():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    return worker


async def wait_for(check: Any, what: str) -> Any:
    """Poll a condition another process brings about (bounded)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def state(api: Any, sr_id: str) -> str | None:
    async with api.runtime.engine.connect() as conn:
        return (await conn.execute(select(referrals.c.state).where(referrals.c.sr_id == sr_id))).scalar()


async def test_worker_routes_and_a_sigkilled_worker_leads_to_one_retry_not_a_duplicate(celery_hub, tmp_path):
    api, settings, env = celery_hub
    region = await load_region(api, [Provider("73730001", "Noorderboog (test)", "9401 AB", {"elv-hoog": "UUU"})])
    headers = {"Authorization": f"Bearer {issue_token(settings, role='gp', org=GP_ORG, subject='gp')}"}
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        first = (await api.client.post("/fhir/ServiceRequest", json=referral(), headers=headers)).json()
        assert await wait_for(lambda: _is(api, first["id"], "offered"), "the worker to route the first referral")
        await wait_for(lambda: _logged(log, f"ServiceRequest/{first['id']} routed: offered"), "the worker's log line")

        async with api.runtime.engine.connect() as blocker:  # hold every bed row: routing will wait on it
            await blocker.execute(text("UPDATE resources SET version = version WHERE res_type = 'Location'"))
            second = (await api.client.post("/fhir/ServiceRequest", json=referral(), headers=headers)).json()
            await wait_for(lambda: _waiting_on_lock(api), "the worker to block mid-routing")
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            assert redis.Redis.from_url(env["HUB_REDIS_URL"]).hlen("unacked") >= 1  # acks_late: not acknowledged
            await blocker.rollback()
        assert await state(api, second["id"]) == "routing"

        worker = start_worker(env, log)
        assert await wait_for(lambda: _is(api, second["id"], "offered"), "the next worker to retry the routing")
        await wait_for(lambda: _routes_completed(api), "the retried task to mark its outbox row completed")
    finally:
        worker.kill()
        worker.wait(10)
    async with api.runtime.engine.connect() as conn:
        offers = (await conn.execute(select(referral_offers).where(referral_offers.c.sr_id == second["id"]))).all()
        beds = [await _json(conn, b) for b in region.beds["73730001"]]
    assert len(offers) == 1
    holders = [reserved_for(b) for b in beds if reserved_for(b)]
    assert len(holders) == 2 and len(set(holders)) == 2 and f"Task/{offers[0].offer_id}" in holders


async def _routes_completed(api: Any) -> bool:
    async with api.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(outbox.c.completed).where(outbox.c.task == "referrals.route_referral"))).all()
    return len(rows) == 2 and all(r.completed is not None for r in rows)


async def _logged(log: Path, line: str) -> bool:
    return line in log.read_text()


async def _is(api: Any, sr_id: str, wanted: str) -> bool:
    return await state(api, sr_id) == wanted


async def _waiting_on_lock(api: Any) -> bool:
    """A backend blocked on a row lock in `UPDATE resources` — plain, or the repository's one-statement update
    (`WITH r AS (UPDATE resources ...`) — seen on a fresh connection (pg_stat_activity is a per-transaction
    snapshot)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                 "AND (query LIKE 'UPDATE resources%' OR query LIKE 'WITH r AS (UPDATE resources%')")
    async with api.runtime.engine.connect() as conn:
        return bool((await conn.execute(query)).scalar())


async def _json(conn: Any, bed_id: str) -> dict[str, Any]:
    import orjson

    content = (await conn.execute(select(resources.c.content).where(resources.c.res_id == bed_id))).scalar()
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed
