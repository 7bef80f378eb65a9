"""Live paths: Server-Sent Events over real TCP, the Redis cache and pub/sub (production mode)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest_asyncio
import redis.asyncio as aioredis
from availability_factories import add_provider, assert_matches_recount, eventually, live_server, picture, set_status

from hub.availability.cache import redis_prefix
from hub.availability.live import live_of
from tests.conftest import Hub, make_settings, start_hub


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from a text/event-stream response."""
    event, data = "message", b""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip().encode()
        elif line == "" and data:
            yield event, orjson.loads(data)
            event, data = "message", b""


async def next_event(events: AsyncIterator[tuple[str, dict[str, Any]]], wanted: str,
                     timeout: float) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        async for event, data in events:
            if event == wanted:
                return data
        raise AssertionError("stream ended")

    return await asyncio.wait_for(find(), timeout)


async def assert_stream_pushes_a_change_within_a_second(hub: Hub) -> None:
    provider = await add_provider(hub, "73300001", "Zorg Live", {"elv-hoog": "UUU"})
    other = await add_provider(hub, "73300002", "Zorg Anders", {"grz": "U"})
    async with live_server(hub.app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {hub.token('coordinator')}"}
        async with client.stream("GET", "/api/availability/stream?product=elv-hoog", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            await next_event(events, "ready", 5)
            await set_status(hub, other, other.beds["73300002/grz/1"], "O")  # another product: filtered out
            started = time.monotonic()
            r = await set_status(hub, provider, provider.beds["73300001/elv-hoog/2"], "O")
            assert r.status_code == 200
            change = await next_event(events, "availability", 1.0)
            elapsed = time.monotonic() - started
            totals = await next_event(events, "totals", 1.0)
    assert elapsed < 1.0
    assert change["org_id"] == provider.org_id and change["product"] == "elv-hoog"
    assert (change["free"], change["occupied"], change["total"], change["stale"]) == (2, 1, 3, False)
    assert (totals["region"], totals["product"], totals["free"]) == ("Drenthe", "elv-hoog", 2)


async def test_sse_stream_pushes_each_change_within_a_second(hub):
    await assert_stream_pushes_a_change_within_a_second(hub)


@pytest_asyncio.fixture
async def redis_hub(redis_url: str, pg_schema: str, tmp_path) -> AsyncIterator[Hub]:
    """Production mode: PostgreSQL + Redis cache and pub/sub, tasks in-process."""
    settings = make_settings("postgresql", tmp_path, pg_schema, redis_url=redis_url, task_mode="inprocess")
    async for hub in start_hub("postgresql", settings):
        try:
            yield hub
        finally:
            await hub.runtime.dispatcher.drain(10)  # type: ignore[attr-defined]
            await hub.clean()
            await live_of(hub.runtime).close()


async def test_redis_cache_holds_the_aggregate_and_reads_use_it(redis_hub, redis_url):
    hub = redis_hub
    provider = await add_provider(hub, "73300003", "Zorg Redis", {"elv-laag": "UUO"})
    prefix = redis_prefix(hub.settings.database_url, hub.settings.database_schema)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        cached = await client.hgetall(f"{prefix}:org:{provider.org_id}")
        assert list(cached) == ["elv-laag|Drenthe"]
        seq, payload = cached["elv-laag|Drenthe"].split("|", 1)
        assert orjson.loads(payload)["free"] == 2 and int(seq) == orjson.loads(payload)["seq"]
        body = await picture(hub, organization=provider.ref)
        assert body["from_cache"] is True and body["rows"][0]["free"] == 2
        await set_status(hub, provider, provider.beds["73300003/elv-laag/1"], "O")
        after = await client.hgetall(f"{prefix}:product:elv-laag")
        assert orjson.loads(after[f"{provider.org_id}|Drenthe"].split("|", 1)[1])["free"] == 1
        await client.delete(f"{prefix}:loaded")  # Redis lost the cache: reads fall back, then it is re-loaded
        cold = await picture(hub, organization=provider.ref)
        assert cold["from_cache"] is False and cold["rows"][0]["free"] == 1

        async def warm_again() -> bool:
            return bool(await client.exists(f"{prefix}:loaded"))

        await eventually(warm_again, what="cache re-loaded")
        assert (await picture(hub, organization=provider.ref))["from_cache"] is True
        await assert_matches_recount(hub)
    finally:
        await client.aclose()


async def test_redis_cache_keeps_the_newest_seq_whatever_order_updates_arrive(redis_hub):
    live = live_of(redis_hub.runtime)
    newer = {"org_id": "o1", "product": "grz", "region": "Drenthe", "free": 1, "seq": 7}
    older = {**newer, "free": 5, "seq": 6}
    rows, _ = await live.cache.apply([newer], [])
    assert rows == [newer]
    rows, _ = await live.cache.apply([older], [])
    assert rows == []
    assert await live.cache.rows(org_id="o1") in (None, [newer])


async def test_redis_cache_takes_a_value_with_a_tab_or_newline_in_it(redis_hub):
    """The cache script reads one entry per line, its keys tab-separated: separators inside a value are dropped
    from its key (the row itself is kept as it came)."""
    live = live_of(redis_hub.runtime)
    odd = {"org_id": "o\t2", "product": "grz", "region": "Drenthe\nNoord", "free": 2, "seq": 3}
    plain = {"org_id": "o3", "product": "grz", "region": "Drenthe", "free": 4, "seq": 1}
    rows, _ = await live.cache.apply([odd, plain], [])
    assert rows == [odd, plain]
    assert await live.cache.rows(org_id="o3") in (None, [plain])


async def test_changes_are_published_on_redis_pubsub(redis_hub, redis_url):
    hub = redis_hub
    provider = await add_provider(hub, "73300004", "Zorg PubSub", {"wmo-kv": "UU"})
    prefix = redis_prefix(hub.settings.database_url, hub.settings.database_schema)
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(f"{prefix}:changes")
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        await set_status(hub, provider, provider.beds["73300004/wmo-kv/2"], "C")
        message = None
        deadline = time.monotonic() + 1.0
        while message is None and time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        assert message is not None, "no pub/sub message within a second"
        events = orjson.loads(message["data"])
        rows = [e for e in events if e["type"] == "row"]
        assert [(e["org_id"], e["product"], e["free"], e["unavailable"]) for e in rows] == [
            (provider.org_id, "wmo-kv", 1, 1)]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_sse_stream_over_redis_pubsub(redis_hub):
    await assert_stream_pushes_a_change_within_a_second(redis_hub)
