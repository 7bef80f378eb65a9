"""Shared fixtures: real PostgreSQL and Redis (fail under CI when missing), SQLite, the app, tokens.

Each test run gets its own PostgreSQL schema (search_path) in database `test`, built with `alembic upgrade
head` — so every run exercises the migrations — and dropped at the end. Tests share one app per backend;
`clean` removes what a test wrote (rows newer than the start-up baseline), so tests stay independent.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, func, select, text

from hub import domains
from hub.app import create_app
from hub.config import Settings
from hub.runtime import Runtime
from hub.security.tokens import issue_token
from hub.store.schema import metadata, resources

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("HUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
domains.import_tables()
URA = "http://fhir.nl/fhir/NamingSystem/ura"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require(url: str, port: int, what: str) -> None:
    if not reachable(url, port):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{what} not reachable at {url}")


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for this run (parallel runs never see each other's rows)."""
    require(PG_URL, 5432, "PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    in_thread(lambda: asyncio.run(run(f'CREATE SCHEMA "{schema}"')))
    yield schema
    in_thread(lambda: asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE')))


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking set-up (its own event loop) outside the session's running loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


@pytest.fixture(scope="session")
def redis_url() -> str:
    require(REDIS_URL, 6379, "Redis")
    return REDIS_URL


def make_settings(backend: str, tmp_root: Path, schema: str | None, **overrides: Any) -> Settings:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_root / f'hub-{uuid.uuid4().hex[:8]}.db'}"
        return Settings(database_url=url, base_url="http://hub.test", **overrides)
    return Settings(database_url=PG_URL, database_schema=schema, base_url="http://hub.test", **overrides)


@dataclass
class Hub:
    """One running app (lifespan entered) plus what tests need to talk to it and inspect its database."""

    backend: str
    settings: Settings
    runtime: Runtime
    client: httpx.AsyncClient
    baseline_rid: int

    def token(self, role: str = "admin", org: str | None = f"{URA}|90000000", **kw: Any) -> str:
        return issue_token(self.settings, role=role, org=org, subject=kw.pop("subject", f"test-{role}"), **kw)

    def headers(self, role: str = "admin", org: str | None = f"{URA}|90000000", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, org)}", "Content-Type": "application/fhir+json", **extra}

    async def scalar(self, stmt: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(stmt)).scalar()

    async def count(self, table: Any, *where: Any) -> int:
        return int(await self.scalar(select(func.count()).select_from(table).where(*where)))

    async def clean(self) -> None:
        """Delete everything a test wrote; conformance resources published at start stay."""
        async with self.runtime.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                if table.name in ("resources", "resource_versions") or table.name.startswith("idx_"):
                    continue
                await conn.execute(delete(table))
            for name in [t.name for t in metadata.sorted_tables if t.name.startswith("idx_")] + ["resource_versions"]:
                table = metadata.tables[name]
                await conn.execute(delete(table).where(table.c.rid > self.baseline_rid))
            await conn.execute(delete(resources).where(resources.c.rid > self.baseline_rid))
        for reset in self.runtime.extras.get("test_resets", []):
            await reset()


async def start_hub(backend: str, settings: Settings) -> AsyncIterator[Hub]:
    from hub.store.migrate import upgrade

    if backend == "postgresql":
        await asyncio.to_thread(upgrade, settings.database_url, "head", settings.database_schema)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        async with runtime.engine.connect() as conn:
            baseline = (await conn.execute(select(func.max(resources.c.rid)))).scalar() or 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            hub = Hub(backend, settings, runtime, client, baseline)
            hub.app = app  # type: ignore[attr-defined]
            yield hub


@pytest_asyncio.fixture(scope="session", params=["sqlite", "postgresql"])
async def hub_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hub]:
    backend = request.param
    schema = request.getfixturevalue("pg_schema") if backend == "postgresql" else None
    settings = make_settings(backend, tmp_path_factory.mktemp(backend), schema)
    async for hub in start_hub(backend, settings):
        yield hub


@pytest_asyncio.fixture
async def hub(hub_session: Hub) -> AsyncIterator[Hub]:
    """The app on SQLite and on PostgreSQL (parametrised), cleaned after each test."""
    try:
        yield hub_session
    finally:
        dispatcher = hub_session.runtime.dispatcher
        if hasattr(dispatcher, "drain"):
            await dispatcher.drain(10)
        await hub_session.clean()


@pytest.fixture
def location_factory() -> Callable[..., dict[str, Any]]:
    def make(name: str = "Bed 1", *, status: str = "U", org_ref: str | None = None, **extra: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Location",
            "status": "active",
            "name": name,
            "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": status},
            "physicalType": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]
            },
        }
        if org_ref:
            resource["managingOrganization"] = {"reference": org_ref}
        resource.update(extra)
        return resource

    return make
