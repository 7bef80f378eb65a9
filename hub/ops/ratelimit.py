"""Per-client rate limiting: a fixed one-minute window per token subject, in Redis (shared by every hub process)
or in process memory (embedded mode). Over the limit -> 429 with Retry-After."""

from __future__ import annotations

import time
from typing import Any

from hub.errors import TooManyRequests


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None, prefix: str = "zorgnet:rl") -> None:
        self.per_minute, self.prefix = per_minute, prefix
        self._redis: Any = None
        self._redis_url = redis_url
        self._local: dict[tuple[str, int], int] = {}

    async def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        window = int(time.time() // 60)
        if self._redis_url:
            count = await self._incr_redis(client, window)
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

    async def _incr_redis(self, client: str, window: int) -> int:
        assert self._redis_url is not None
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self._redis_url)
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
