"""A Celery worker's event loop turns only while a task runs: what a task enqueues must be published to the broker
before the worker takes its next message, or it sits claimed-but-unsent until the relay's claim timeout (this is
what made a two-worker notification test time out once under load)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from sqlalchemy import select

from hub import worker
from hub.runtime import Runtime
from hub.store.migrate import upgrade
from hub.store.schema import outbox
from tests.conftest import make_settings

FIRST, FOLLOW_UP = "test.enqueue_follow_up", "test.follow_up"


async def _enqueue_follow_up(runtime: Runtime, marker: str) -> None:
    async with runtime.uow() as uow:
        await uow.enqueue(FOLLOW_UP, marker)


async def _follow_up(runtime: Runtime, marker: str) -> None:
    return None


def test_a_task_run_by_a_celery_worker_has_published_its_follow_up_when_it_returns(
        tmp_path: Path, redis_url: str) -> None:
    broker = redis_url.rsplit("/", 1)[0] + "/12"
    settings = make_settings("sqlite", tmp_path, None, task_mode="celery", redis_url=broker)
    upgrade(settings.database_url)
    queue = f"worker-publish-{uuid.uuid4().hex[:8]}"
    runtime = Runtime.build(settings, worker=True)
    runtime.dispatcher.app.conf.task_default_queue = queue  # type: ignore[attr-defined]
    loop = asyncio.new_event_loop()
    saved = dict(worker._worker_state)
    worker._worker_state.update(loop=loop, runtime=runtime)
    client = redis.Redis.from_url(broker)
    try:
        marker = uuid.uuid4().hex
        runtime.dispatcher.app.tasks[FIRST](marker)  # type: ignore[attr-defined]  # as the worker would run it

        messages = [orjson.loads(m) for m in client.lrange(queue, 0, -1)]
        published = [m["headers"] for m in messages if m["headers"]["task"] == FOLLOW_UP]
        assert [orjson.loads(h["argsrepr"].replace("'", '"')) for h in published] == [[marker]]

        async def follow_up_row() -> tuple[object, object]:
            async with runtime.engine.connect() as conn:
                row = (await conn.execute(select(outbox.c.dispatched, outbox.c.completed)
                                          .where(outbox.c.task == FOLLOW_UP))).one()
            return row.dispatched, row.completed

        dispatched, completed = loop.run_until_complete(follow_up_row())
        assert dispatched is not None and completed is None  # claimed and sent, not yet run
    finally:
        client.delete(queue)
        loop.run_until_complete(runtime.close())
        loop.close()
        worker._worker_state.clear()
        worker._worker_state.update(saved)


@pytest.fixture(autouse=True)
def _tasks_registered() -> Iterator[None]:
    """Registered for this test only (the Celery app is built from the registry, so before Runtime.build)."""
    worker.task(FIRST)(_enqueue_follow_up)
    worker.task(FOLLOW_UP)(_follow_up)
    yield
    for name in (FIRST, FOLLOW_UP):
        worker.TASKS.pop(name, None)


async def test_stop_task_ends_a_loop_whose_first_cancellation_was_lost() -> None:
    """Shutdown must not hang when a cancellation is swallowed (as asyncio.wait_for could on Python 3.11: the
    relay loop of `hub serve` then ran on and the process never exited)."""
    lost: list[int] = []

    async def relay_like_loop() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not lost:
                    lost.append(1)  # swallowed, as the library race did
                    continue
                raise

    task = asyncio.get_running_loop().create_task(relay_like_loop())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await worker.stop_task(task)
    assert task.done() and lost == [1]
