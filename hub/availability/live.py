"""The availability parts one process shares (runtime.extras["availability"]): cache, broadcaster, the care-product
vocabulary and the active Subscriptions, plus the after-commit step that feeds the cache and the listeners.

Changes of one unit of work are collected (`schedule`) and published once, after commit: cache first (compare-
and-set by seq), then one event batch for what the cache took. A failure there never fails the committed
request: the cache is marked cold (the next read re-loads it from the table) and the error is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import select

from hub.availability import vocabulary as v
from hub.availability.aggregate import Changes, table_rows, table_totals
from hub.availability.broadcast import InProcessBroadcaster, RedisBroadcaster
from hub.availability.cache import AvailabilityCache, MemoryCache, RedisCache, redis_prefix
from hub.availability.tables import availability_subscriptions
from hub.config import Settings

log = logging.getLogger("hub.availability")
SUBSCRIPTIONS_TTL = 2.0  # seconds another process may take to see a new availability Subscription


@dataclass
class Live:
    settings: Settings
    cache: AvailabilityCache
    broadcaster: InProcessBroadcaster | RedisBroadcaster
    products: dict[str, str]  # bed care products, code -> Dutch display, in CodeSystem order
    _warm_lock: asyncio.Lock | None = None
    _subscriptions: tuple[float, list[Any]] = (0.0, [])
    _pending: WeakKeyDictionary[Any, Changes] = field(default_factory=WeakKeyDictionary)
    _cold_retry: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, conformance: list[dict[str, Any]]) -> Live:
        if settings.redis_url:
            prefix = redis_prefix(settings.database_url, settings.database_schema)
            return cls(settings, RedisCache(settings.redis_url, prefix),
                       RedisBroadcaster(settings.redis_url, f"{prefix}:changes"), bed_products(conformance))
        return cls(settings, MemoryCache(), InProcessBroadcaster(), bed_products(conformance))

    # ------------------------------------------------------------------------------------------ write side
    def schedule(self, uow: Any, changes: Changes) -> None:
        """Publish these changes after the unit of work commits (once per unit of work, newest seq wins)."""
        if not changes:
            return
        held = self._pending.get(uow)
        if held is None:
            held = self._pending[uow] = Changes()

            async def publish_held() -> None:
                await self.publish(held)

            uow.after_commit(publish_held)
        held.merge(changes)

    async def publish(self, changes: Changes) -> None:
        rows, totals = list(changes.rows.values()), list(changes.totals.values())
        try:
            rows, totals = await self.cache.apply(rows, totals, publish=True)
        except Exception:
            log.exception("availability cache update failed; marking it cold")
            await self._mark_cold()
        if self.cache.publishes:  # the cache's own script published what it took (Redis)
            return
        events = [{"type": "row", **r} for r in rows] + [{"type": "total", **t} for t in totals]
        if not events:
            return
        try:
            await self.broadcaster.publish(events)
        except Exception:
            log.exception("availability change could not be published")

    async def _mark_cold(self) -> None:
        try:
            await self._mark_cold_now()
        except Exception:
            log.warning("could not mark the availability cache cold; retrying until Redis answers")
            self._mark_cold_later()

    def _mark_cold_later(self) -> None:
        """Redis was unreachable when a committed change should have reached it. A Redis that comes back with its
        keys (append-only file) would still say `loaded`: keep trying to mark it cold, so it is re-loaded from the
        table instead of serving the figures from before the change."""
        if self._cold_retry is not None and not self._cold_retry.done():
            return

        async def retry() -> None:
            delay = 0.2
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._mark_cold_now()
                    log.info("availability cache marked cold after Redis came back")
                    return
                except Exception:
                    delay = min(delay * 2, 5.0)

        self._cold_retry = asyncio.get_running_loop().create_task(retry())

    async def _mark_cold_now(self) -> None:
        if isinstance(self.cache, RedisCache):
            await self.cache.mark_cold()
        else:
            await self.cache.clear()

    # ------------------------------------------------------------------------------------------ read side
    async def warm(self, engine: Any) -> None:
        """Load the whole aggregate into the cache (start-up, or after the cache was found cold)."""
        self._warm_lock = self._warm_lock or asyncio.Lock()
        async with self._warm_lock:
            async with engine.connect() as conn:
                rows, totals = await table_rows(conn), await table_totals(conn)
            await self.cache.load(rows, totals)

    def warm_soon(self, engine: Any) -> None:
        """Re-load a cold cache in the background; the request that found it cold reads the table."""
        if self._warm_lock is not None and self._warm_lock.locked():
            return

        async def run() -> None:
            try:
                await self.warm(engine)
            except Exception:
                log.exception("availability cache warm-up failed")

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def reset(self) -> None:
        """Tests: the tables were emptied, so is the cache."""
        await self.cache.clear()
        self._subscriptions = (0.0, [])

    async def close(self) -> None:
        await self.cache.close()
        await self.broadcaster.close()

    # ------------------------------------------------------------------------------------------ subscriptions
    async def subscriptions(self, conn: Any) -> list[Any]:
        """Active availability Subscriptions (cached a few seconds; this process's writes invalidate it)."""
        from hub.availability.subscriptions import subscription_of_row

        stamp, held = self._subscriptions
        if time.monotonic() - stamp < SUBSCRIPTIONS_TTL:
            return held
        t = availability_subscriptions
        rows = (await conn.execute(select(t).where(t.c.active.is_(True)))).all()
        found = [subscription_of_row(r) for r in rows]
        self._subscriptions = (time.monotonic(), found)
        return found

    def forget_subscriptions(self) -> None:
        self._subscriptions = (0.0, [])


_background: set[asyncio.Task[None]] = set()


def live_of(runtime: Any) -> Live:
    live: Live = runtime.extras["availability"]
    return live


def bed_products(conformance: list[dict[str, Any]]) -> dict[str, str]:
    """Care products with setting `bed` from the hub's CodeSystem (Dutch display)."""
    for resource in conformance:
        if resource.get("resourceType") == "CodeSystem" and resource.get("url") == v.CARE_PRODUCT:
            products = {}
            for concept in resource.get("concept") or []:
                setting = next((p.get("valueCode") or p.get("valueString") for p in concept.get("property") or []
                                if p.get("code") == "setting"), "bed")
                if setting == "bed":
                    products[str(concept["code"])] = str(concept.get("display") or concept["code"])
            return products
    return {}
