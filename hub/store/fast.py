"""The hot read path: a point read of the current version straight through the database driver.

SQLAlchemy's async engine costs ~1 ms per checkout+query here; a primary-key read through the raw driver costs
~0.01 ms (sqlite3, in the event loop: WAL readers never block) or ~0.1 ms (asyncpg prepared statement). The
GET-by-id path uses it for rows that need no audit, and read-only units of work run their driver-level queries
(search_text.py's searches, page loads) on it, so a simple search never checks out a SQLAlchemy connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from hub.config import Settings
from hub.store.repository import StoredResource

# The columns stored_from_row reads, in its order (every driver-level read of current rows selects them).
STORED_SELECT = "rid, version, last_updated, content, deleted, owner_org, patient_id, medical"
_CURRENT = f"SELECT {STORED_SELECT} FROM resources WHERE res_type = {{0}} AND res_id = {{1}}"
# The current row by (type, id) in each driver's placeholders (the fast readers and the repository share it).
CURRENT_SQL = {"sqlite": _CURRENT.format("?", "?"), "postgresql": _CURRENT.format("$1", "$2")}


class FastReader(Protocol):
    async def current(self, res_type: str, res_id: str) -> StoredResource | None: ...
    async def rows(self, sql: str, params: list[Any]) -> list[Any]:
        """Rows of a read-only query in the driver's placeholders (`?` SQLite, `$n` PostgreSQL), autocommit."""
    async def close(self) -> None: ...


def stored_from_row(res_type: str, res_id: str, row: Any) -> StoredResource:
    """A StoredResource from driver columns (rid, version, last_updated, content, deleted, owner_org, patient_id,
    medical): the fast read and the search page load share it."""
    rid, version, last_updated, content, deleted, owner, patient, medical = row
    if isinstance(last_updated, str):
        last_updated = datetime.fromisoformat(last_updated)
    return StoredResource(
        res_type,
        res_id,
        int(version),
        last_updated,
        bytes(content),
        bool(deleted),
        owner,
        patient,
        bool(medical),
        int(rid),
    )


@dataclass
class SqliteFastReader:
    path: str

    def __post_init__(self) -> None:
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA query_only=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
        return self._conn

    async def current(self, res_type: str, res_id: str) -> StoredResource | None:
        row = self._connection().execute(CURRENT_SQL["sqlite"], (res_type, res_id)).fetchone()
        return None if row is None else stored_from_row(res_type, res_id, row)

    async def rows(self, sql: str, params: list[Any]) -> list[Any]:
        return list(self._connection().execute(sql, params).fetchall())

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_SQL_MANY = (
    "SELECT r.res_type, r.res_id, r.rid, r.version, r.last_updated, r.content, r.deleted, r.owner_org, "
    "r.patient_id, r.medical FROM unnest($1::text[], $2::text[]) AS k(res_type, res_id) "
    "JOIN resources r ON r.res_type = k.res_type AND r.res_id = k.res_id"
)
_Key = tuple[str, str]


class PgFastReader:
    """Point reads through an asyncpg pool. Reads that arrive while others are in flight are coalesced: each
    round trip answers every read queued before it left (at most MAX_BATCH), and at most `size` // 2 round trips
    are in flight. At low load a read still goes out at once, alone, as the plain prepared point query."""

    MAX_BATCH = 64

    def __init__(self, dsn: str, schema: str | None, size: int) -> None:
        self.dsn, self.schema, self.size = dsn, schema, size
        self._pool: Any = None
        self._queue: list[tuple[_Key, asyncio.Future[StoredResource | None]]] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self.max_in_flight = max(1, size // 2)
        self.round_trips = 0  # observability (and the tests)

    async def _get_pool(self) -> Any:
        if self._pool is None:
            import asyncpg

            settings = {"search_path": self.schema} if self.schema else {}
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.size, server_settings=settings,
                                                   reset=_nothing_to_reset)
        return self._pool

    async def current(self, res_type: str, res_id: str) -> StoredResource | None:
        future: asyncio.Future[StoredResource | None] = asyncio.get_running_loop().create_future()
        self._queue.append(((res_type, res_id), future))
        if len(self._in_flight) < self.max_in_flight:
            task = asyncio.create_task(self._drain())
            self._in_flight.add(task)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
                try:
                    found = await self._fetch([key for key, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for key, future in batch:
                    if not future.done():
                        future.set_result(found.get(key))
        finally:  # in the same step as the empty-queue check: a read queued later starts its own round trip
            self._in_flight.discard(asyncio.current_task())

    async def _fetch(self, keys: list[_Key]) -> dict[_Key, StoredResource]:
        pool = await self._get_pool()
        self.round_trips += 1
        if len(keys) == 1:
            res_type, res_id = keys[0]
            row = await pool.fetchrow(CURRENT_SQL["postgresql"], res_type, res_id)
            return {} if row is None else {keys[0]: stored_from_row(res_type, res_id, tuple(row))}
        rows = await pool.fetch(_SQL_MANY, [k[0] for k in keys], [k[1] for k in keys])
        return {(r[0], r[1]): stored_from_row(r[0], r[1], tuple(r)[2:]) for r in rows}

    async def rows(self, sql: str, params: list[Any]) -> list[Any]:
        pool = await self._get_pool()
        return list(await pool.fetch(sql, *params))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _nothing_to_reset(_connection: Any) -> None:
    """asyncpg's default reset on release (`SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`)
    is a second round trip per read. These connections only ever run one autocommit SELECT by primary key — no
    session state to undo (asyncpg still rolls back an open transaction and drops listeners by itself)."""
    return None


def make_fast_reader(settings: Settings) -> FastReader:
    url = make_url(settings.database_url)
    if settings.is_sqlite:
        return SqliteFastReader(url.database or ":memory:")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PgFastReader(dsn, settings.database_schema, settings.db_pool_size)
