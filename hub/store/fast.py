"""The hot read path: a point read of the current version straight through the database driver.

SQLAlchemy's async engine costs ~1 ms per checkout+query here; a primary-key read through the raw driver costs
~0.01 ms (sqlite3, in the event loop: WAL readers never block) or ~0.1 ms (asyncpg prepared statement). The
GET-by-id path uses it for rows that need no audit, and read-only units of work run their driver-level queries
(search_text.py's searches, page loads) on it, so a simple search never checks out a SQLAlchemy connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from hub.config import Settings
from hub.store.repository import StoredResource

_SQL = (
    "SELECT rid, version, last_updated, content, deleted, owner_org, patient_id, medical "
    "FROM resources WHERE res_type = {0} AND res_id = {1}"
)


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
        row = self._connection().execute(_SQL.format("?", "?"), (res_type, res_id)).fetchone()
        return None if row is None else stored_from_row(res_type, res_id, row)

    async def rows(self, sql: str, params: list[Any]) -> list[Any]:
        return list(self._connection().execute(sql, params).fetchall())

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PgFastReader:
    def __init__(self, dsn: str, schema: str | None, size: int) -> None:
        self.dsn, self.schema, self.size = dsn, schema, size
        self._pool: Any = None

    async def _get_pool(self) -> Any:
        if self._pool is None:
            import asyncpg

            settings = {"search_path": self.schema} if self.schema else {}
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.size, server_settings=settings,
                                                   reset=_nothing_to_reset)
        return self._pool

    async def current(self, res_type: str, res_id: str) -> StoredResource | None:
        pool = await self._get_pool()
        row = await pool.fetchrow(_SQL.format("$1", "$2"), res_type, res_id)
        return None if row is None else stored_from_row(res_type, res_id, tuple(row))

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
