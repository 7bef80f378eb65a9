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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.security import audit
from hub.store.raw import RawWrites, driver_rows, raw_writes
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
        self.defer_creates = False  # HTTP writes (group_commit.py): creates go out at COMMIT (raw.PgWrites)
        # the work running now is all this unit will write (group_commit.py): a write that is its only statement
        # may then commit by itself (SqlResourceRepository.update_many `alone`)
        self.sole_work = False

    async def __aenter__(self) -> UnitOfWork:
        if self.readonly:
            self.conn = LazyReadConnection(self.runtime.engine)  # type: ignore[assignment]
        else:
            self.conn = await self.runtime.engine.connect()
            await self.conn.begin()
        self.resources = SqlResourceRepository(self.conn, self.runtime, self)
        return self

    async def rows(self, sql: str, params: list[Any]) -> list[Any]:
        """A driver-level query: on this unit's transaction (read-write: it must see its own writes), or on the
        fast reader (read-only units run autocommit anyway, so no pooled connection is needed)."""
        if self.readonly:
            return await self.runtime.fast.rows(sql, params)
        if self._raw is not None:
            await self._raw.flush()
        return await driver_rows(self.conn, sql, params)

    async def raw(self) -> RawWrites:
        """Driver-level writes for the repository's fixed shapes, in this unit's transaction (hub/store/raw.py)."""
        if self._raw is None:
            self._raw = await raw_writes(self.conn, defer_creates=self.defer_creates)
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
                if self._raw is not None:
                    await self._raw.flush(final=True)
                await self.conn.commit()
                self.committed = True
            elif not self.readonly:
                await self.conn.rollback()
        finally:
            if self._raw is not None:
                self._raw.discard()
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


class LazyReadConnection:
    """The SQLAlchemy connection of a read-only unit of work, checked out (autocommit) on first use: checkout,
    isolation switch and return cost ~0.2 ms a request, and a read answered through the driver (UnitOfWork.rows)
    never needs it. Offers the AsyncConnection methods the repository and domain reads use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._conn: AsyncConnection | None = None

    async def _open(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self.engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT", hub_readonly=True)
            self._conn = conn
        return self._conn

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._open()).execute(*args, **kwargs)

    async def get_raw_connection(self) -> Any:
        return await (await self._open()).get_raw_connection()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
