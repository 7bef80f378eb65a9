"""Engine construction for both backends: one code path, per-dialect connection pragmas only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from hub.config import Settings


def make_engine(settings: Settings, *, null_pool: bool = False) -> AsyncEngine:
    """SQLite gets WAL + busy timeout so concurrent writers queue instead of failing; PostgreSQL a sized pool."""
    kwargs: dict[str, Any] = {"echo": settings.sql_echo}
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    elif settings.database_schema:
        kwargs["connect_args"] = {"server_settings": {"search_path": settings.database_schema}}
    if not settings.is_sqlite and null_pool:
        kwargs["poolclass"] = NullPool
    else:
        # no pool_pre_ping: it costs a round trip per checkout; a dropped connection instead fails one request
        # with 503 (hub/app.py), and SQLAlchemy then invalidates the whole pool, so the next requests reconnect.
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size, pool_recycle=1800)
    engine = create_async_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        # Take the write lock at BEGIN: avoids SQLITE_BUSY upgrade deadlocks between concurrent writers.
        # Read-only units of work run in autocommit and never take it.
        if not conn.get_execution_options().get("hub_readonly"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
