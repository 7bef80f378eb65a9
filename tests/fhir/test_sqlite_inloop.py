"""The embedded SQLite driver runs statements in the event loop (hub/store/sqlite_inloop.py). Writers must queue
in the loop — never inside SQLite, where a wait would block the one thread that could end it — and every way a
transaction ends (commit, rollback, a connection handed back to the pool unfinished) must let the next writer in."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from hub.store.engine import make_engine
from tests.conftest import make_settings


async def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(make_settings("sqlite", tmp_path, None))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return engine


async def test_concurrent_writers_queue_in_the_loop_and_see_each_others_commits(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    order: list[str] = []
    first_holds = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            first_holds.set()
            await asyncio.sleep(0.2)  # other tasks run meanwhile; the second writer must wait, not fail
            order.append("first commits")

    async def second() -> int:
        await first_holds.wait()
        async with engine.begin() as conn:
            order.append("second begins")
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            return int((await conn.execute(text("SELECT count(*) FROM t"))).scalar_one())

    try:
        _, seen = await asyncio.wait_for(asyncio.gather(first(), second()), timeout=10)
        assert order == ["first commits", "second begins"]
        assert seen == 2  # the second transaction began after the first committed
    finally:
        await engine.dispose()


async def test_a_connection_returned_unfinished_releases_the_writer_queue(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    try:
        async with engine.connect() as conn:  # autobegin; closed without commit: the pool rolls it back
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
            await conn.rollback()
        async with asyncio.timeout(5):  # would hang for the 30 s lock timeout if a release had been lost
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (3)"))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT n FROM t"))).scalars().all() == [3]
    finally:
        await engine.dispose()


async def test_reads_do_not_queue_behind_a_writer(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    try:
        async with engine.begin() as writer:
            await writer.execute(text("INSERT INTO t VALUES (1)"))
            reader = await engine.connect()
            await reader.execution_options(isolation_level="AUTOCOMMIT", hub_readonly=True)
            async with asyncio.timeout(2):
                assert (await reader.execute(text("SELECT count(*) FROM t"))).scalar_one() == 0  # WAL snapshot
            await reader.close()
    finally:
        await engine.dispose()


async def test_an_overgrown_wal_is_emptied_with_the_writers_queued(tmp_path: Path) -> None:
    """PASSIVE checkpoints never rewind a WAL under steady writes; past its limit the checkpointer empties it
    (TRUNCATE) while holding the writers' queue, and nothing written is lost."""
    import sqlite3

    from hub.store.sqlite_inloop import _checkpointers, wal_bytes

    engine = await _engine(tmp_path)
    database = str(engine.url.database)
    checkpointer = _checkpointers[database]
    checkpointer.limit = 64 * 1024
    try:
        for batch in range(20):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t SELECT value FROM json_each(:v)"),
                                   {"v": "[" + ",".join(str(batch * 500 + i) for i in range(500)) + "]"})
        assert wal_bytes(database) > checkpointer.limit
        with sqlite3.connect(database) as observer:
            checkpointer.passive(observer)
        assert checkpointer.reset_wanted
        async with engine.begin() as conn:  # the next commit in the loop starts the reset
            await conn.execute(text("INSERT INTO t VALUES (-1)"))
        assert checkpointer._task is not None
        await asyncio.wait_for(checkpointer._task, timeout=10)
        assert checkpointer.resets == 1 and not checkpointer.reset_wanted
        assert wal_bytes(database) == 0
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 20 * 500 + 1
    finally:
        await engine.dispose()
