"""Unit of work: one transaction per request, Bundle or task. Whoever opens it commits it.

Jobs enqueued during the work are written to the outbox table in the same transaction (nothing lost if the
process dies after commit) and handed to the dispatcher only after commit (a worker must see the rows).

A *read-only* unit of work (GET requests) runs its queries without BEGIN/COMMIT (autocommit) and collects the
few writes a read causes — the AuditEvent of the access, a paging snapshot — into one short write transaction
at the end, before the response leaves. On SQLite that keeps readers from taking the write lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.security import audit
from hub.store.raw import RawWrites, raw_writes
from hub.store.schema import outbox
from hub.store.sql import SqlResourceRepository

if TYPE_CHECKING:
    from hub.runtime import Runtime

Write = Callable[[AsyncConnection], Awaitable[Any]]


class UnitOfWork:
    def __init__(self, runtime: Runtime, request_id: str | None = None, *, readonly: bool = False) -> None:
        self.runtime = runtime
        self.request_id = request_id
        self.readonly = readonly
        self._jobs: list[tuple[int, str, tuple[str, ...], str | None]] = []
        self.committed = False
        self._after_commit: list[Any] = []
        self._before_commit: list[Any] = []
        self._refusals: list[dict[str, Any]] = []
        self._deferred: list[Write] = []
        self.conn: AsyncConnection
        self.resources: SqlResourceRepository
        self._raw: RawWrites | None = None

    async def __aenter__(self) -> UnitOfWork:
        self.conn = await self.runtime.engine.connect()
        if self.readonly:
            await self.conn.execution_options(isolation_level="AUTOCOMMIT", hub_readonly=True)
        else:
            await self.conn.begin()
        self.resources = SqlResourceRepository(self.conn, self.runtime, self)
        return self

    async def raw(self) -> RawWrites:
        """Driver-level writes for the repository's fixed shapes, in this unit's transaction (hub/store/raw.py)."""
        if self._raw is None:
            self._raw = await raw_writes(self.conn)
        return self._raw

    async def write(self, fn: Write) -> None:
        """A write caused by the work: now (read-write unit) or in the closing write transaction (read-only)."""
        if self.readonly:
            self._deferred.append(fn)
        else:
            await fn(self.conn)

    async def enqueue(self, task: str, *args: str, delay: timedelta | None = None) -> None:
        """Durably schedule a task: an outbox row now, dispatch after commit (or when due, by the relay)."""
        if self.readonly:
            raise RuntimeError("enqueue needs a read-write unit of work")
        now = datetime.now(UTC).replace(tzinfo=None)
        due = now + (delay or timedelta(0))
        row_id = (
            await self.conn.execute(
                insert(outbox)
                .values(
                    task=task,
                    args=orjson.dumps(list(args)),
                    created=now,
                    due=due,
                    attempts=0,
                    request_id=self.request_id,
                )
                .returning(outbox.c.id)
            )
        ).scalar_one()
        if delay is None:
            self._jobs.append((row_id, task, args, self.request_id))

    def before_commit(self, callback: Any) -> None:
        """Run an async callable inside the transaction, right before COMMIT (e.g. sorted aggregate increments,
        so shared counter rows stay locked as briefly as possible and always in the same order)."""
        self._before_commit.append(callback)

    def after_commit(self, callback: Any) -> None:
        """Run an async callable after a successful commit (cache refresh, pub/sub publish)."""
        self._after_commit.append(callback)

    def audit_after_rollback(self, event: dict[str, Any]) -> None:
        """Refusals are logged even though the request fails and its transaction rolls back."""
        self._refusals.append(event)

    def forget_refusals(self) -> None:
        """A shared (group-commit) unit that failed: each request is run again alone and logs its own."""
        self._refusals.clear()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None and not self.readonly:
                for callback in self._before_commit:
                    await callback()
                for event in self._refusals:
                    await audit.append(self.conn, event)
                await self.conn.commit()
                self.committed = True
            elif not self.readonly:
                await self.conn.rollback()
        finally:
            await self.conn.close()
        if self.readonly and (self._deferred or self._refusals):
            await self._write_deferred(include_work=exc_type is None)
        elif exc_type is not None and self._refusals:
            await self._write_deferred(include_work=False)
        if exc_type is None:
            for row_id, task, args, request_id in self._jobs:
                self.runtime.dispatcher.send(task, list(args), outbox_id=row_id, request_id=request_id)
            for callback in self._after_commit:
                await callback()

    async def _write_deferred(self, *, include_work: bool) -> None:
        async with self.runtime.engine.begin() as conn:
            for event in self._refusals:
                await audit.append(conn, event)
            if include_work:
                for fn in self._deferred:
                    await fn(conn)
