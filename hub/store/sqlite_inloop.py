"""SQLite for the embedded hub, driven in the event loop instead of through aiosqlite's thread.

Why: aiosqlite hands every statement to a helper thread and back (a queue put, a self-pipe wake-up, a loop
iteration): ~0.1 ms per statement, ~36 loop iterations for one FHIR create, and the whole write path went to
thread hopping. The statements themselves take microseconds (WAL, synchronous=NORMAL, page cache), so this
dialect runs the standard library `sqlite3` synchronously inside SQLAlchemy's greenlet: an `await conn.execute()`
completes without yielding to the loop.

What that changes, and how it is handled:
- A connection must never *wait* inside SQLite for another connection's write lock: the wait would block the
  one thread that could release it. Writers therefore queue cooperatively on an `asyncio.Lock` per database file
  (taken at BEGIN IMMEDIATE, released at COMMIT/ROLLBACK/close), so SQLite's own lock is always free when asked.
  A wait longer than `lock_timeout` raises `sqlite3.OperationalError("database is locked")`, as SQLite would.
- Another *process* on the same file (a `hub ingest` beside `hub serve`) still meets SQLite's busy handler; that
  wait is bounded by `busy_timeout` (kept short) and blocks only this process's loop while it lasts.
- Readers (WAL) never wait for writers: read-only units of work run in autocommit and take no lock.

The URL stays `sqlite+aiosqlite:///...` for users (hub/store/engine.py swaps the driver); `sqlite+inloop` names
this dialect explicitly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import weakref
from typing import Any

import greenlet
from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.util.concurrency import await_

LOCK_TIMEOUT_SECONDS = 30.0
# Another process on the same file (hub ingest beside hub serve) is waited for by SQLite itself, blocking this
# process's event loop meanwhile: keep that bounded. Writers in this process queue in the loop instead.
BUSY_TIMEOUT_SECONDS = 5.0
log = logging.getLogger("hub.store.sqlite")
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def write_lock(database: str) -> asyncio.Lock:
    """The one writer queue for `database` in the running event loop (engines on the same file share it)."""
    loop = asyncio.get_running_loop()
    per_loop = _locks.setdefault(loop, {})
    lock = per_loop.get(database)
    if lock is None:
        lock = per_loop[database] = asyncio.Lock()
    return lock


async def _completed() -> None:
    return None


def _pass_through_loop_boundary() -> None:
    """SQLAlchemy's async engine insists that a statement awaited *something* (AwaitRequired otherwise): hand it
    an already-completed coroutine — a greenlet switch, no trip through the event loop."""
    if getattr(greenlet.getcurrent(), "__sqlalchemy_greenlet_provider__", False):
        await_(_completed())


class HubSqliteCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> HubSqliteCursor:
        _pass_through_loop_boundary()
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> HubSqliteCursor:
        _pass_through_loop_boundary()
        return super().executemany(sql, seq_of_parameters)

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's async result after a buffered execute; the rows stay readable in the loop."""
        return None


class HubSqliteConnection(sqlite3.Connection):
    """A sqlite3 connection that remembers its database file and whether it holds the writer lock."""

    hub_database: str = ""
    hub_lock: asyncio.Lock | None = None

    def cursor(self, factory: Any = HubSqliteCursor) -> Any:
        return super().cursor(factory)


class _ExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> Any:
        return self._dbapi_connection.cursor()


async def _acquire(lock: asyncio.Lock) -> None:
    """Queue for the writer lock, bounded. (`asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can
    swallow a cancellation that arrives as the lock is granted — the hub's relay loop then ignored its shutdown
    and `hub serve` hung on exit.)"""
    async with asyncio.timeout(LOCK_TIMEOUT_SECONDS):
        await lock.acquire()


def _unwrapped(connection: Any) -> Any:
    """The sqlite3 connection itself: SQLAlchemy hands some dialect hooks a pool proxy around it, on which
    setting `hub_lock` would mark the proxy, not the connection."""
    while not isinstance(connection, sqlite3.Connection) and hasattr(connection, "dbapi_connection"):
        connection = connection.dbapi_connection
    return connection


class SQLiteDialect_inloop(SQLiteDialect_pysqlite):
    driver = "inloop"
    is_async = True  # its calls never block on I/O that another task must finish, so the async engine may use it
    supports_statement_cache = True
    supports_server_side_cursors = True  # `AsyncConnection.stream()`: a sqlite3 cursor already steps lazily
    execution_ctx_cls = _ExecutionContext

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        kwargs["factory"] = HubSqliteConnection
        kwargs["check_same_thread"] = False
        return args, kwargs

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        conn = super().connect(*cargs, **cparams)
        conn.hub_database = str(cargs[0] if cargs else cparams.get("database", ""))
        return conn

    # ---------------------------------------------------------------- the cooperative writer lock
    def begin_immediate(self, dbapi_connection: Any) -> None:
        """BEGIN IMMEDIATE once this connection is first in the writers' queue (called inside the greenlet)."""
        dbapi_connection = _unwrapped(dbapi_connection)
        if dbapi_connection.hub_lock is None:
            lock = write_lock(dbapi_connection.hub_database)
            try:
                await_(_acquire(lock))
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked (waited for the writer queue)") from None
            dbapi_connection.hub_lock = lock
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release(dbapi_connection)
            raise

    def _release(self, dbapi_connection: Any) -> None:
        conn = _unwrapped(dbapi_connection)
        lock = getattr(conn, "hub_lock", None)
        if lock is not None:
            conn.hub_lock = None
            if lock.locked():
                lock.release()

    def do_commit(self, dbapi_connection: Any) -> None:
        try:
            super().do_commit(dbapi_connection)  # type: ignore[no-untyped-call]
        finally:
            self._release(dbapi_connection)
        wal_reset_due(_unwrapped(dbapi_connection).hub_database)

    def do_rollback(self, dbapi_connection: Any) -> None:
        try:
            super().do_rollback(dbapi_connection)  # type: ignore[no-untyped-call]
        finally:
            self._release(dbapi_connection)

    def do_close(self, dbapi_connection: Any) -> None:
        try:
            super().do_close(dbapi_connection)  # type: ignore[no-untyped-call]
        finally:
            self._release(dbapi_connection)

    def do_terminate(self, dbapi_connection: Any) -> None:
        self.do_close(dbapi_connection)


WAL_LIMIT_BYTES = 64 * 1024 * 1024
_checkpointers: dict[str, Checkpointer] = {}


class Checkpointer:
    """Moves WAL checkpoints off the event loop, and keeps the WAL file bounded.

    With SQLite's automatic checkpoint the commit that crosses 1,000 WAL pages copies them into the database file
    and fsyncs it — in the loop, ~0.3 ms per commit on average here. The hub's connections switch that off
    (`wal_autocheckpoint=0`); this thread runs a PASSIVE checkpoint (never blocks readers or writers) on its own
    connection every `interval` seconds, so no request pays for it.

    A PASSIVE checkpoint copies pages but never rewinds the WAL while writes keep coming: under sustained writes the
    file grew to ~700 MB in a one-minute benchmark. Past `limit` bytes the thread asks for a reset: the next commit
    in the loop (`wal_reset_due`) starts a task that takes the writers' queue — in-loop writers wait there, as
    for any writer — and runs a TRUNCATE checkpoint in a worker thread, which empties the file.
    """

    def __init__(self, database: str, interval: float = 0.5, limit: int = WAL_LIMIT_BYTES) -> None:
        self.database, self.interval, self.limit = database, interval, limit
        self.reset_wanted = False
        self.resets = 0
        self._resetting = False
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> Checkpointer:
        _checkpointers[self.database] = self
        self._thread.start()
        return self

    def passive(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; flags a reset when the WAL has grown past the limit."""
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if wal_bytes(self.database) > self.limit:
            self.reset_wanted = True

    def _run(self) -> None:
        conn = sqlite3.connect(self.database, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.passive(conn)
                except sqlite3.Error:
                    log.warning("WAL checkpoint of %s failed; retried in %.1f s", self.database, self.interval)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def start_reset(self) -> None:
        """Called in the loop after a commit: start the reset task once (the loop holds tasks weakly; so do we)."""
        if self.reset_wanted and not self._resetting:
            self._resetting = True
            self._task = asyncio.get_running_loop().create_task(self.reset())

    async def reset(self) -> None:
        """TRUNCATE checkpoint while holding the writers' queue, in a worker thread (readers never wait)."""
        try:
            async with write_lock(self.database):
                await asyncio.to_thread(self._truncate)
            self.reset_wanted = False
            self.resets += 1
        except (sqlite3.Error, TimeoutError):
            log.warning("WAL reset of %s failed; retried after a later commit", self.database)
        finally:
            self._resetting = False

    def _truncate(self) -> None:
        conn = sqlite3.connect(self.database, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if _checkpointers.get(self.database) is self:
            del _checkpointers[self.database]
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def wal_bytes(database: str) -> int:
    try:
        return os.path.getsize(f"{database}-wal")
    except OSError:
        return 0


def wal_reset_due(database: str) -> None:
    """After a commit in the loop: let the checkpointer empty an overgrown WAL (see Checkpointer)."""
    checkpointer = _checkpointers.get(database)
    if checkpointer is not None and checkpointer.reset_wanted:
        checkpointer.start_reset()


registry.register("sqlite.inloop", "hub.store.sqlite_inloop", "SQLiteDialect_inloop")
