"""Engine construction for both backends: one code path, per-dialect connection pragmas only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hub.config import Settings
from hub.store.sqlite_inloop import BUSY_TIMEOUT_SECONDS, Checkpointer


def sqlite_url(database_url: str) -> URL:
    """`sqlite+aiosqlite:///file.db` (what users configure) -> the in-loop driver (hub/store/sqlite_inloop.py)."""
    url = make_url(database_url)
    return url.set(drivername="sqlite+inloop") if url.drivername in ("sqlite", "sqlite+aiosqlite") else url


def make_engine(settings: Settings, *, null_pool: bool = False) -> AsyncEngine:
    """SQLite gets WAL + busy timeout so concurrent writers queue instead of failing; PostgreSQL a sized pool."""
    kwargs: dict[str, Any] = {"echo": settings.sql_echo}
    url: str | URL = settings.database_url
    if settings.is_sqlite:
        url = sqlite_url(settings.database_url)
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_SECONDS}
    elif settings.database_schema:
        kwargs["connect_args"] = {"server_settings": {"search_path": settings.database_schema}}
    if not settings.is_sqlite and null_pool:
        kwargs["poolclass"] = NullPool
    else:
        # no pool_pre_ping: it costs a round trip per checkout; a dropped connection instead fails one request
        # with 503 (hub/app.py), and SQLAlchemy then invalidates the whole pool, so the next requests reconnect.
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size, pool_recycle=1800)
    engine = create_async_engine(url, **kwargs)
    if settings.is_sqlite:
        _configure_sqlite(engine)
        database = make_url(settings.database_url).database
        if database and database != ":memory:" and "mode=memory" not in settings.database_url:
            checkpointer = Checkpointer(database).start()
            event.listen(engine.sync_engine, "engine_disposed", lambda _engine: checkpointer.stop())
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in a thread (sqlite_inloop.Checkpointer)
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        # Take the write lock at BEGIN (after queueing for it in the loop, see sqlite_inloop): avoids SQLITE_BUSY
        # upgrade deadlocks between concurrent writers. Read-only units of work run in autocommit, take no lock.
        if not conn.get_execution_options().get("hub_readonly"):
            conn.dialect.begin_immediate(conn.connection.dbapi_connection)
