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

Works of one kind can also be written *together*: a request that passes `Together(run_many, item)` has its item
handed, with the items of the other requests of the batch that name the same `run_many`, to one call
`run_many(uow, items)` (at the place of the first of them), which answers one outcome per item. An outcome that is
a `Refused` is that request's error, decided before anything of it was written, so the rest of the batch is kept;
an exception raised by `run_many` fails the batch like any failing work. Why: a write that always has the same
shape (a bed's status) can then be one multi-row statement per batch instead of several statements per request.

Gathering a batch (like PostgreSQL's `commit_delay`): under load, requests reach the queue one after another
as the event loop gets through their parsing and validation, so the drainer writes whatever happens to be
queued — batches alternated 1 and 15 (or 8 and 8) under 16 clients. Where a batch's own cost is mostly work in
this process — every batch on SQLite (BEGIN and COMMIT run in the loop), and on PostgreSQL the `Together` writes
(bed status: several statements and the aggregate per batch) — fewer, fuller batches are cheaper. There the
drainer remembers how many requests its recent batches held (`expected`) and, when fewer are queued, waits for
that many, at most `linger` seconds. A wait that runs out lowers the expectation to what arrived, so a falling
load stops waiting within a few batches; at light load (recent batches below `GATHER_FROM`) nothing waits.
Plain writes on PostgreSQL do not wait: a batch of creates is one round trip, and the alternating batches keep
the database busy with one while the loop prepares the next (measured: gathering them cost a quarter of the
POSTs per second; it gave bed status changes a quarter more, and SQLite POSTs a tenth more).

Side by side: on PostgreSQL `together_concurrency` (2) batches that start with a `Together` write run at once,
each holding `together_max` requests (8) — or, when more are queued, its fair share of them (the queue split
between this drainer and the others not writing), up to `max_batch`. While one batch's statement is in the
database, the loop answers the other's requests and parses the next ones (one batch of everything left the process
idle a third of the time, waiting for the database). Measured with 16 clients: 8 + 8 beat one 16, 12 + 12, three
of 6 and four of 5; with 64 clients the fair share beat a fixed 8 by ~15%. Plain writes keep `concurrency` (1): a
second batch of creates measured no more writes per second.

Lock order: a batch writes its requests ordered by the resource they change (creates first, in arrival order;
requests for the same resource keep their arrival order), and domain hooks apply shared counters in key order at
commit (availability/aggregate.py), so concurrent batches — of two API processes, or `concurrency` > 1 in one —
take row locks in one order; a `run_many` call runs at the place of its first request and orders its own rows
(bed_status.py locks its beds in id order). Should a deadlock still happen (a hook taking other rows), it is a
failed batch like any other: rolled back, each request run again alone.
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
GATHER_FROM = 4  # a batch waits only when recent batches held at least this many (light load: never)


@dataclass(frozen=True)
class Refused:
    """An outcome of `run_many` for an item it refused before writing anything of it."""

    error: Exception


RunMany = Callable[["UnitOfWork", list[Any]], Awaitable[list[Any]]]


@dataclass(frozen=True)
class Together:
    """This request's part of a write done for many requests in one call (see the module docstring)."""

    run_many: RunMany
    item: Any

    async def alone(self, uow: UnitOfWork) -> Any:
        """The same write for this request alone (a batch of one, or the rerun after a failed batch)."""
        (outcome,) = await self.run_many(uow, [self.item])
        if isinstance(outcome, Refused):
            raise outcome.error
        return outcome


@dataclass
class _Pending(Generic[T]):
    work: Work[T]
    request_id: str | None
    future: asyncio.Future[T]
    key: str | None  # the resource the work changes ("Location/123"); None: a create
    together: Together | None = None


def _lock_order(pending: _Pending[Any]) -> tuple[bool, str]:
    return (pending.key is not None, pending.key or "")


class GroupCommit:
    """Writes of concurrent requests, batched into shared transactions (at most `max_batch` requests each)."""

    def __init__(self, runtime: Runtime, max_batch: int, concurrency: int = 1, linger: float = 0.0,
                 gather_plain: bool = False, together: tuple[int, int] | None = None) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
        self.concurrency = max(1, concurrency)
        # batches that start with a `Together` write: (at most this many requests, this many side by side)
        self.together_max, self.together_concurrency = together or (max_batch, self.concurrency)
        self.linger = linger
        self.gather_plain = gather_plain  # plain writes wait for company too (SQLite), not only `Together` ones
        self.expected = 1  # requests the recent batches held: what a batch waits for (at most `linger`)
        self._waiting: list[asyncio.Future[None]] = []  # drainers gathering: resolved when `expected` are queued
        self._queue: deque[_Pending[Any]] = deque()
        self._drainers: set[asyncio.Task[None]] = set()  # referenced: the loop holds tasks only weakly
        self._writing = 0  # drainers writing a batch now
        self.batches = 0  # observability (and the tests): how many shared transactions ran, how many fell back
        self.fallbacks = 0

    async def run(self, work: Work[T] | Together, request_id: str | None = None, *, key: str | None = None) -> T:
        """Run `work` in a unit of work — shared with concurrent requests when batching is on — and return its
        result once committed; its exception if it failed. `key`: the resource the work changes, if known.
        A `Together` is written with the other requests' items of the same kind, in one call."""
        together = work if isinstance(work, Together) else None
        fn: Work[T] = together.alone if together is not None else work  # type: ignore[assignment]
        if self.max_batch <= 1:
            return await _alone(self.runtime, fn, request_id)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(fn, request_id, future, key, together))
        if self._waiting and len(self._queue) >= self.expected:
            for waiting in self._waiting:
                _resolve(waiting)
        if len(self._drainers) < (self.concurrency if together is None else self.together_concurrency):
            drainer = asyncio.create_task(self._drain())
            self._drainers.add(drainer)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                filled = await self._gather()
                batch = [self._queue.popleft() for _ in range(min(self._cap(), len(self._queue)))]
                if not batch:  # another drainer took them while this one gathered
                    continue
                self.expected = max(len(batch), self.expected) if filled else len(batch)
                self._writing += 1
                try:
                    await self._write(sorted(batch, key=_lock_order))
                finally:
                    self._writing -= 1
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for pending in self._queue:
                _settle(pending, exc=exc)
            self._queue.clear()
            raise
        finally:  # no await between the empty-queue check and here: a request queued later starts a new drainer
            self._drainers.discard(asyncio.current_task())

    def _cap(self) -> int:
        """The most requests the next batch may hold. A `Together` write first: `together_max`, or a fair share of
        what is queued when more is (so under heavier load the batches grow again, up to `max_batch`)."""
        if not self._queue or self._queue[0].together is None:
            return self.max_batch
        idle = max(1, self.together_concurrency - self._writing)  # this drainer and those that will take the rest
        share = -(-len(self._queue) // idle)
        return min(self.max_batch, max(self.together_max, share))

    async def _gather(self) -> bool:
        """Wait (at most `linger`) until `expected` requests are queued; False if the wait ran out first."""
        wanted = min(self.expected, self._cap())
        if len(self._queue) >= wanted or wanted < GATHER_FROM or self.linger <= 0:
            return True
        if not self.gather_plain and self._queue[0].together is None:
            return True
        loop = asyncio.get_running_loop()
        filled: asyncio.Future[None] = loop.create_future()
        self._waiting.append(filled)
        timer = loop.call_later(self.linger, _resolve, filled)
        try:
            await filled
        finally:
            timer.cancel()
            self._waiting.remove(filled)
        return len(self._queue) >= wanted

    async def _write(self, batch: list[_Pending[Any]]) -> None:
        if len(batch) == 1:
            await _one(self.runtime, batch[0])
            return
        self.batches += 1
        uow = self.runtime.uow(None)
        uow.defer_creates = True
        results: dict[int, Any] = {}
        try:
            await uow.__aenter__()
            try:
                for i, pending in enumerate(batch):
                    if i in results:  # written together with an earlier request of the batch
                        continue
                    uow.request_id = pending.request_id
                    token = logs.request_id_var.set(pending.request_id)
                    try:
                        if pending.together is None:
                            results[i] = await pending.work(uow)
                        else:
                            results.update(await _together(uow, batch, i))
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
        for i, pending in enumerate(batch):
            outcome = results[i]
            if isinstance(outcome, Refused):
                _settle(pending, exc=outcome.error)
            else:
                _settle(pending, result=outcome)


async def _together(uow: UnitOfWork, batch: list[_Pending[Any]], first: int) -> dict[int, Any]:
    """One call for the items of every request of the batch that shares the first one's `run_many`."""
    head = batch[first].together
    assert head is not None
    members = [i for i in range(first, len(batch))
               if (t := batch[i].together) is not None and t.run_many is head.run_many]
    uow.sole_work = len(members) == len(batch)  # nothing of the batch is written before or after this call
    try:
        outcomes = await head.run_many(uow, [batch[i].together.item for i in members])  # type: ignore[union-attr]
    finally:
        uow.sole_work = False
    return dict(zip(members, outcomes, strict=True))


async def _alone(runtime: Runtime, work: Work[T], request_id: str | None) -> T:
    uow = runtime.uow(request_id)
    uow.defer_creates = True  # a failing create then fails at COMMIT, still before the response
    uow.sole_work = True
    async with uow:
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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settle(pending: _Pending[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if pending.future.done():  # the request went away (client disconnect cancelled it)
        return
    if isinstance(exc, asyncio.CancelledError):
        pending.future.cancel()
    elif exc is not None:
        pending.future.set_exception(exc)
    else:
        pending.future.set_result(result)
