"""Per-client rate limiting: a fixed one-minute window per token subject, in Redis (shared by every hub process)
or in process memory (embedded mode). Over the limit -> 429 with Retry-After.

When Redis cannot be reached the limiter fails open: requests are served unthrottled (one warning per outage)
rather than refused, because the hub's own data lives in PostgreSQL and a Redis restart must not take the API down.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from hub.errors import TooManyRequests

log = logging.getLogger("hub.ops.ratelimit")
RETRY_SECONDS = 2.0  # while Redis is unreachable, ask it again at most this often


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None, prefix: str = "zorgnet:rl") -> None:
        self.per_minute, self.prefix = per_minute, prefix
        self._redis: Any = None
        self._redis_url = redis_url
        self._local: dict[tuple[str, int], int] = {}
        self._failing_open, self._retry_at = False, 0.0

    async def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        if self._redis_url:
            count = await self._incr_or_open(client, window)
        else:
            key = (client, window)
            if len(self._local) > 10_000:
                self._local = {k: v for k, v in self._local.items() if k[1] >= window}
            count = self._local[key] = self._local.get(key, 0) + 1
        if count > self.per_minute:
            retry = 60 - int(time.time() % 60)
            raise TooManyRequests(
                f"rate limit of {self.per_minute} requests/minute exceeded for this client",
                headers={"Retry-After": str(max(1, retry))},
            )

    async def _incr_or_open(self, client: str, window: int) -> int:
        """The window's count so far; 0 (not limited) while Redis is unreachable (re-tried every few seconds)."""
        import redis.exceptions

        if self._failing_open and time.monotonic() < self._retry_at:
            return 0
        try:
            count = await self._incr_redis(client, window)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if not self._failing_open:
                log.warning("rate limiting suspended: Redis unreachable (%s)", exc)
            self._failing_open, self._retry_at = True, time.monotonic() + RETRY_SECONDS
            return 0
        if self._failing_open:
            log.warning("rate limiting resumed: Redis reachable again")
            self._failing_open = False
        return count

    async def _incr_redis(self, client: str, window: int) -> int:
        assert self._redis_url is not None
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self._redis_url, socket_connect_timeout=1, socket_timeout=1)
        key = f"{self.prefix}:{client}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
