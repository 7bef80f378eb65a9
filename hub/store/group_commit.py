"""Group commit: single-resource writes that arrive together share one transaction.

Why: per write request the transaction itself — connection checkout, BEGIN, COMMIT with its log flush, close —
cost more than storing the resource (on SQLite ~0.35 ms of the event loop per request; on PostgreSQL two of the
three round trips). Requests that queue while a batch is being written are written by the next batch, in one
transaction, in arrival order. At low load a batch holds one request: no added wait.

Each request keeps its own outcome. The work of a request runs in the shared unit of work as it would in its own
(a later request in the batch sees the earlier ones' writes, as in a transaction Bundle). If any work or the
commit fails, nothing of the batch is kept: the batch is rolled back and every request of it is run again in a
unit of work of its own, so a failing request fails alone and exactly as it would have without batching. The
response of every request leaves only after its data is committed.

Lock order: a batch writes its requests ordered by the resource they change (creates first, in arrival order;
requests for the same resource keep their arrival order), and domain hooks apply shared counters in key order at
commit (availability/aggregate.py), so concurrent batches — of two API processes, or `concurrency` > 1 in one —
take row locks in one order. Should a deadlock still happen (a hook taking other rows), it is a failed batch like
any other: rolled back, each request run again alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from hub.ops import logs

if TYPE_CHECKING:
    from hub.runtime import Runtime
    from hub.store.uow import UnitOfWork

T = TypeVar("T")
Work = Callable[["UnitOfWork"], Awaitable[T]]
log = logging.getLogger("hub.store.group_commit")


@dataclass
class _Pending(Generic[T]):
    work: Work[T]
    request_id: str | None
    future: asyncio.Future[T]
    key: str | None  # the resource the work changes ("Location/123"); None: a create


def _lock_order(pending: _Pending[Any]) -> tuple[bool, str]:
    return (pending.key is not None, pending.key or "")


class GroupCommit:
    """Writes of concurrent requests, batched into shared transactions (at most `max_batch` requests each)."""

    def __init__(self, runtime: Runtime, max_batch: int, concurrency: int = 1) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
        self.concurrency = max(1, concurrency)
        self._queue: deque[_Pending[Any]] = deque()
        self._drainers: set[asyncio.Task[None]] = set()  # referenced: the loop holds tasks only weakly
        self.batches = 0  # observability (and the tests): how many shared transactions ran, how many fell back
        self.fallbacks = 0

    async def run(self, work: Work[T], request_id: str | None = None, *, key: str | None = None) -> T:
        """Run `work` in a unit of work — shared with concurrent requests when batching is on — and return its
        result once committed; its exception if it failed. `key`: the resource the work changes, if known."""
        if self.max_batch <= 1:
            return await _alone(self.runtime, work, request_id)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(work, request_id, future, key))
        if len(self._drainers) < self.concurrency:
            drainer = asyncio.create_task(self._drain())
            self._drainers.add(drainer)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                await self._write(sorted(batch, key=_lock_order))
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for pending in self._queue:
                _settle(pending, exc=exc)
            self._queue.clear()
            raise
        finally:  # no await between the empty-queue check and here: a request queued later starts a new drainer
            self._drainers.discard(asyncio.current_task())

    async def _write(self, batch: list[_Pending[Any]]) -> None:
        if len(batch) == 1:
            await _one(self.runtime, batch[0])
            return
        self.batches += 1
        uow = self.runtime.uow(None)
        results: list[Any] = []
        try:
            await uow.__aenter__()
            try:
                for pending in batch:
                    uow.request_id = pending.request_id
                    token = logs.request_id_var.set(pending.request_id)
                    try:
                        results.append(await pending.work(uow))
                    finally:
                        logs.request_id_var.reset(token)
            except BaseException as exc:
                uow.forget_refusals()  # each request's own run below logs its refusals once
                await uow.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await uow.__aexit__(None, None, None)
        except asyncio.CancelledError:
            for pending in batch:
                _settle(pending, exc=asyncio.CancelledError())
            raise
        except Exception:
            if not uow.committed:
                self.fallbacks += 1
                for pending in batch:
                    await _one(self.runtime, pending)
                return
            log.exception("after-commit step of a shared write transaction failed; the writes are committed")
        for pending, result in zip(batch, results, strict=True):
            _settle(pending, result=result)


async def _alone(runtime: Runtime, work: Work[T], request_id: str | None) -> T:
    async with runtime.uow(request_id) as uow:
        return await work(uow)


async def _one(runtime: Runtime, pending: _Pending[Any]) -> None:
    token = logs.request_id_var.set(pending.request_id)
    try:
        result = await _alone(runtime, pending.work, pending.request_id)
    except asyncio.CancelledError:
        _settle(pending, exc=asyncio.CancelledError())
        raise
    except Exception as exc:
        _settle(pending, exc=exc)
    else:
        _settle(pending, result=result)
    finally:
        logs.request_id_var.reset(token)


def _settle(pending: _Pending[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if pending.future.done():  # the request went away (client disconnect cancelled it)
        return
    if isinstance(exc, asyncio.CancelledError):
        pending.future.cancel()
    elif exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)
