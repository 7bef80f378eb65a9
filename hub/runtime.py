"""Runtime: the long-lived parts one hub process (API or worker) shares — engine, registries, dispatcher, cache."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.config import Settings
from hub.fhir import profiles as profile_files
from hub.fhir.searchparams import SearchRegistry, build_registry
from hub.fhir.validation import ProfileRules
from hub.security.context import AccessContext
from hub.store.engine import make_engine
from hub.store.fast import FastReader, make_fast_reader
from hub.store.group_commit import GroupCommit

if TYPE_CHECKING:
    from hub.worker import TaskDispatcher

Hook = Callable[[Any, AccessContext, str, dict[str, Any] | None, dict[str, Any] | None], Awaitable[None]]


@dataclass
class WriteHooks:
    """Domain reactions that must happen in the writing transaction (availability aggregate, subscriptions)."""

    hooks: list[Hook] = field(default_factory=list)

    def add(self, hook: Hook) -> None:
        self.hooks.append(hook)

    async def after_write(
        self, uow: Any, ctx: AccessContext, res_type: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
        *, skip: Hook | None = None,
    ) -> None:
        """`skip`: a hook whose work the writer does itself (a batched write that applies it for the whole set)."""
        for hook in self.hooks:
            if hook is not skip:
                await hook(uow, ctx, res_type, before, after)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    registry: SearchRegistry
    rules: ProfileRules
    hooks: WriteHooks
    conformance: list[dict[str, Any]]
    dispatcher: TaskDispatcher = field(init=False)
    fast: FastReader = field(init=False)
    writes: GroupCommit = field(init=False)
    extras: dict[str, Any] = field(default_factory=dict)  # domain services attach here (cache, pubsub, ...)

    @classmethod
    def build(cls, settings: Settings, *, worker: bool = False) -> Runtime:
        conformance = profile_files.load_resources(settings.profiles_dir)
        runtime = cls(
            settings=settings,
            engine=make_engine(settings, null_pool=worker),
            registry=build_registry(profile_files.search_parameters(conformance)),
            rules=ProfileRules(),
            hooks=WriteHooks(),
            conformance=conformance,
        )
        from hub import domains

        domains.install(runtime)
        runtime.dispatcher = _make_dispatcher(runtime)
        runtime.fast = make_fast_reader(settings)
        together = (settings.group_commit_max, 1) if settings.is_sqlite else (
            settings.group_commit_together_max, settings.group_commit_together_concurrency)  # SQLite: one writer
        runtime.writes = GroupCommit(runtime, settings.group_commit_max, settings.group_commit_concurrency,
                                     settings.group_commit_linger_ms / 1000, gather_plain=settings.is_sqlite,
                                     together=together)
        return runtime

    def uow(self, request_id: str | None = None, *, readonly: bool = False) -> Any:
        from hub.store.uow import UnitOfWork

        return UnitOfWork(self, request_id, readonly=readonly)

    async def start_worker(self) -> None:
        """Celery worker process start: nothing to warm besides the engine (lazy)."""

    async def close(self) -> None:
        await self.dispatcher.stop()
        await self.fast.close()
        await self.engine.dispose()


def _make_dispatcher(runtime: Runtime) -> TaskDispatcher:
    from hub.worker import CeleryDispatcher, InProcessDispatcher, make_celery

    if runtime.settings.uses_celery and runtime.settings.redis_url:
        return CeleryDispatcher(runtime, make_celery(runtime.settings.redis_url))
    return InProcessDispatcher(runtime)
