"""Fan-out of availability changes to live listeners (SSE streams), published after commit.

Embedded: an in-process broadcaster. Production: Redis pub/sub on `<prefix>:changes`, so a change committed by any
API process or worker reaches the streams of every process; each process keeps one Redis subscription while it
has at least one listener, and fans messages out to its local queues.

A listener whose queue is full (a client that stopped reading) gets a `None`, meaning "events were dropped,
re-read the picture".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

log = logging.getLogger("hub.availability.broadcast")
Event = dict[str, Any]
QUEUE_SIZE = 1000
RESUBSCRIBE_MIN, RESUBSCRIBE_MAX = 0.2, 5.0  # seconds between attempts to re-subscribe after Redis went away


class Listener:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[Event] | None] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, events: list[Event] | None) -> None:
        try:
            self.queue.put_nowait(events)
        except asyncio.QueueFull:
            self.resync()

    def resync(self) -> None:
        """Events were lost: drop what is queued and tell the reader to re-read the picture."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class InProcessBroadcaster:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    async def publish(self, events: list[Event]) -> None:
        for listener in list(self._listeners):
            listener.offer(events)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        listener = Listener()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def close(self) -> None:
        self._listeners.clear()


class RedisBroadcaster:
    def __init__(self, redis_url: str, channel: str) -> None:
        self.url, self.channel = redis_url, channel
        self._listeners: set[Listener] = set()
        self._client: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis

            self._client = aioredis.Redis.from_url(self.url)
        return self._client

    async def publish(self, events: list[Event]) -> None:
        await self.client.publish(self.channel, orjson.dumps(events))

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        listener = Listener()
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            self._listeners.add(listener)
            if self._reader is None or self._reader.done():
                self._ready = asyncio.Event()
                self._reader = asyncio.get_running_loop().create_task(self._read(self._ready))
        try:
            assert self._ready is not None
            async with asyncio.timeout(5.0):  # (not wait_for: on 3.11 it can swallow a cancellation)
                await self._ready.wait()  # subscribed: nothing published from now is missed
            yield listener
        finally:
            async with self._lock:
                self._listeners.discard(listener)
                if not self._listeners and self._reader is not None:
                    self._reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await self._reader
                    self._reader = None

    async def _read(self, ready: asyncio.Event) -> None:
        """Subscribe and fan out. A lost connection (Redis restarted) tells every listener to re-read, and the
        reader subscribes again with backoff; once it is back, listeners are told to re-read once more, since
        changes published during the gap never reached them."""
        delay, lost = RESUBSCRIBE_MIN, False
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        ready.set()
                        delay = RESUBSCRIBE_MIN
                        if lost:
                            lost = False
                            for listener in list(self._listeners):
                                listener.resync()
                    elif message["type"] == "message":
                        events = orjson.loads(message["data"])
                        for listener in list(self._listeners):
                            listener.offer(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("availability pub/sub connection lost (%s); listeners re-read, re-subscribing", exc)
                    for listener in list(self._listeners):
                        listener.resync()
                lost = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._client is not None:
            await self._client.aclose()
            self._client = None
