"""Background work: the task registry, the Celery app, and the TaskDispatcher (Celery or in-process).

Domain code only ever calls `uow.enqueue("domain.verb_object", *ids)`. The outbox row written there is the
durable record; the dispatcher is a fast path, and the outbox relay re-sends anything not completed in time,
so a crash between commit and dispatch, or a worker killed mid-task (acks_late), leads to a retry.
Tasks take ids, never objects, and must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy import and_, or_, select, update

from hub.store.schema import outbox

if TYPE_CHECKING:
    from celery import Celery

    from hub.runtime import Runtime

log = logging.getLogger("hub.worker")
TaskFn = Callable[..., Awaitable[None]]  # async fn(runtime, *args)
TASKS: dict[str, TaskFn] = {}
RETRY_TRANSIENT: set[str] = set()
CLAIM_TIMEOUT = timedelta(minutes=5)
PERIODIC: dict[str, float] = {}  # task name -> interval seconds (beat / in-process scheduler)


def task(name: str, *, every: float | None = None) -> Callable[[TaskFn], TaskFn]:
    """Register an async task function under `domain.verb_object`."""

    def register(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        if every:
            PERIODIC[name] = every
        return fn

    return register


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TaskDispatcher(Protocol):
    def send(
        self, task: str, args: list[str], *, outbox_id: int | None = None, request_id: str | None = None
    ) -> None: ...
    async def start(self) -> None: ...
    async def drain(self, timeout: float = 10.0) -> None: ...
    async def stop(self) -> None: ...


async def run_task(
    runtime: Runtime, name: str, args: list[str], outbox_id: int | None, request_id: str | None = None
) -> None:
    """Run one task and mark its outbox row completed (both for Celery workers and in-process).

    The request id of the request that enqueued the task is put back in the logging context, so a request can
    be followed from the API log into the worker log.
    """
    from hub.ops.logs import request_id_var

    request_id_var.set(request_id)
    fn = TASKS[name]
    await fn(runtime, *args)
    if outbox_id is not None:
        async with runtime.engine.begin() as conn:
            await conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(completed=utcnow()))


async def claim(runtime: Runtime, outbox_id: int) -> bool:
    """Compare-and-set the dispatch claim so two relays never both send a fresh row."""
    now = utcnow()
    async with runtime.engine.begin() as conn:
        result = await conn.execute(
            update(outbox)
            .where(
                outbox.c.id == outbox_id,
                outbox.c.completed.is_(None),
                or_(outbox.c.dispatched.is_(None), outbox.c.dispatched < now - CLAIM_TIMEOUT),
            )
            .values(dispatched=now, attempts=outbox.c.attempts + 1)
        )
    return bool(result.rowcount == 1)


async def relay_due(runtime: Runtime, limit: int = 200) -> int:
    """Send outbox rows that are due and not completed (deferred deadlines, lost dispatches)."""
    now = utcnow()
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.id, outbox.c.task, outbox.c.args, outbox.c.request_id)
                .where(
                    and_(
                        outbox.c.completed.is_(None),
                        outbox.c.due <= now,
                        or_(outbox.c.dispatched.is_(None), outbox.c.dispatched < now - CLAIM_TIMEOUT),
                    )
                )
                .order_by(outbox.c.due)
                .limit(limit)
            )
        ).all()
    sent = 0
    for row in rows:
        if row.task in TASKS and await claim(runtime, row.id):
            runtime.dispatcher.send(
                row.task, orjson.loads(row.args), outbox_id=row.id, request_id=row.request_id, claimed=True
            )  # type: ignore[call-arg]
            sent += 1
    return sent


class InProcessDispatcher:
    """Embedded mode: tasks run as asyncio tasks in the hub process; the relay loop also runs periodic tasks."""

    def __init__(self, runtime: Runtime, relay_interval: float = 1.0) -> None:
        self.runtime = runtime
        self.relay_interval = relay_interval
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_periodic: dict[str, float] = {}
        self._request_ids: dict[int, str] = {}

    def send(
        self,
        task: str,
        args: list[str],
        *,
        outbox_id: int | None = None,
        request_id: str | None = None,
        claimed: bool = False,
    ) -> None:
        if outbox_id is not None and request_id:
            self._request_ids[outbox_id] = request_id
        job = asyncio.get_running_loop().create_task(self._run(task, args, outbox_id, claimed))
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)

    async def _run(self, task: str, args: list[str], outbox_id: int | None, claimed: bool) -> None:
        try:
            if outbox_id is not None and not claimed and not await claim(self.runtime, outbox_id):
                return
            await run_task(self.runtime, task, args, outbox_id, self._request_ids.pop(outbox_id or -1, None))
        except Exception as exc:  # the relay retries it after CLAIM_TIMEOUT
            log.exception("task %s failed: %s", task, exc)
            if outbox_id is not None:
                await _record_error(self.runtime, outbox_id, repr(exc))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for running tasks (tests and shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks and asyncio.get_running_loop().time() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - asyncio.get_running_loop().time()))

    async def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._relay_loop())

    async def _relay_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.relay_interval)
            try:
                await relay_due(self.runtime)
                for name, every in PERIODIC.items():
                    if loop.time() - self._last_periodic.get(name, 0.0) >= every:
                        self._last_periodic[name] = loop.time()
                        self.send(name, [])
            except Exception:
                log.exception("outbox relay failed")

    async def stop(self) -> None:
        if self._loop_task:
            await stop_task(self._loop_task)
        await self.drain(5.0)


async def stop_task(task: asyncio.Task[None], attempts: int = 10) -> None:
    """Cancel a background loop and wait for it to end. Cancelled again if it carries on: a cancellation can be
    lost (swallowed by library code at an unlucky moment), and shutdown must not hang on it."""
    for _ in range(attempts):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=1.0)
        if done:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
            return
    log.error("background task %s did not stop after %d cancellations", task.get_name(), attempts)


async def _record_error(runtime: Runtime, outbox_id: int, error: str) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(last_error=error[:2000]))


class CeleryDispatcher:
    """Production: send to Celery via Redis; the API process keeps only the outbox relay."""

    def __init__(self, runtime: Runtime, app: Celery, relay_interval: float = 2.0) -> None:
        self.runtime, self.app, self.relay_interval = runtime, app, relay_interval
        self._loop_task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def send(
        self,
        task: str,
        args: list[str],
        *,
        outbox_id: int | None = None,
        request_id: str | None = None,
        claimed: bool = False,
    ) -> None:
        if outbox_id is None:
            self._publish(task, args, outbox_id, request_id)
            return
        job = asyncio.get_running_loop().create_task(
            self._claim_and_publish(task, args, outbox_id, request_id, claimed)
        )
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)

    async def _claim_and_publish(
        self, task: str, args: list[str], outbox_id: int, request_id: str | None, claimed: bool
    ) -> None:
        """Publish off the event loop; if the broker is unreachable (Redis restarting), give the claim back so
        the relay re-sends the row at its next tick instead of after CLAIM_TIMEOUT."""
        if not claimed and not await claim(self.runtime, outbox_id):
            return
        try:
            await asyncio.to_thread(self._publish, task, args, outbox_id, request_id)
        except Exception as exc:
            log.warning("task %s not published (%s); the outbox relay retries it", task, exc)
            async with self.runtime.engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == outbox_id, outbox.c.completed.is_(None))
                    .values(dispatched=None, last_error=f"publish failed: {exc!r}"[:2000])
                )

    def _publish(self, task: str, args: list[str], outbox_id: int | None, request_id: str | None) -> None:
        self.app.send_task(task, args=args, kwargs={"outbox_id": outbox_id, "request_id": request_id})

    async def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._relay_loop())

    async def _relay_loop(self) -> None:
        while True:
            await asyncio.sleep(self.relay_interval)
            try:
                await relay_due(self.runtime)
            except Exception:
                log.exception("outbox relay failed")

    async def drain(self, timeout: float = 10.0) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)

    async def stop(self) -> None:
        if self._loop_task:
            await stop_task(self._loop_task)
        await self.drain(5.0)


# ------------------------------------------------------------------------------------------- Celery side
def make_celery(broker_url: str) -> Celery:
    """The Celery app: acks_late + reject_on_worker_lost, so a killed worker means a retry, not a lost task."""
    from celery import Celery

    app = Celery("zorgnet-hub", broker=broker_url, backend=None)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        task_default_queue="zorgnet",
        # acks_late: a message a killed worker left unacknowledged is handed out again after the visibility
        # timeout (Redis default 3600 s). Keep it above the longest task, below the outbox CLAIM_TIMEOUT.
        broker_transport_options={"visibility_timeout": 120, "unacked_restore_interval": 10},
        beat_schedule={name: {"task": name, "schedule": every} for name, every in PERIODIC.items()},
    )
    for name in TASKS:
        _register_celery_task(app, name)
    return app


_worker_state: dict[str, Any] = {}


def _worker_loop() -> asyncio.AbstractEventLoop:
    loop = _worker_state.get("loop")
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _worker_state["loop"] = loop
    return loop


def _worker_runtime() -> Runtime:
    runtime = _worker_state.get("runtime")
    if runtime is None:
        from hub.config import get_settings
        from hub.runtime import Runtime as RuntimeCls

        runtime = RuntimeCls.build(get_settings(), worker=True)
        _worker_loop().run_until_complete(runtime.start_worker())
        _worker_state["runtime"] = runtime
    return runtime


async def _run_and_publish(
    runtime: Runtime, name: str, args: list[str], outbox_id: int | None, request_id: str | None
) -> None:
    """Run the task, then wait for the publishing of whatever it enqueued.

    The worker's event loop only turns while a task runs: a follow-up task the dispatcher is still claiming or
    publishing when `run_until_complete` returns would sit frozen, its outbox row claimed but never sent, until
    the relay's claim timeout (minutes) gave it to someone else.
    """
    try:
        await run_task(runtime, name, args, outbox_id, request_id)
    finally:
        await runtime.dispatcher.drain()


def _register_celery_task(app: Celery, name: str) -> None:
    @app.task(name=name, bind=True, acks_late=True, max_retries=8)  # type: ignore[untyped-decorator]
    def _celery_task(self: Any, *args: str, outbox_id: int | None = None, request_id: str | None = None) -> None:
        runtime = _worker_runtime()
        try:
            _worker_loop().run_until_complete(_run_and_publish(runtime, name, list(args), outbox_id, request_id))
        except Exception as exc:
            if type(exc).__name__ in RETRY_TRANSIENT or isinstance(exc, OSError | TimeoutError):
                raise self.retry(exc=exc, countdown=min(2**self.request.retries, 300)) from exc
            log.exception("task %s failed (not retried): %s", name, exc)
            if outbox_id is not None:
                _worker_loop().run_until_complete(_record_error(runtime, outbox_id, repr(exc)))
