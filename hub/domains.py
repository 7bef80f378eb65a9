"""Explicit wiring of the domain packages: tables, profile rules, write hooks, routers, tasks, start-up work.

Every domain package is listed here once, so a reader sees the whole hub in one file. No import magic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.routing import Route

if TYPE_CHECKING:
    from hub.runtime import Runtime

# Modules that define extra tables on hub.store.schema.metadata (alembic + tests need them imported).
TABLE_MODULES: list[str] = [
    "hub.referrals.tables",
    "hub.security.audit",
    "hub.availability.tables",
    "hub.ingest.tables",
]
# Modules whose @task functions must be registered in API processes and Celery workers.
TASK_MODULES: list[str] = ["hub.referrals.tasks", "hub.acp.tasks", "hub.availability.tasks"]
# Routers included before the generic FHIR router, so `Type/$operation` is not read as `Type/{id}`.
ROUTER_MODULES: list[str] = [
    "hub.fhir.terminology_endpoints",
    "hub.referrals.endpoints",
    "hub.acp.endpoints",
    "hub.availability.endpoints",
    "hub.ingest.endpoints",
    "hub.web.pages",
]
# Modules with `install(runtime)` (rules, hooks, services) and optional `async on_startup(runtime)`.
INSTALL_MODULES: list[str] = [
    "hub.fhir.terminology_endpoints",
    "hub.referrals.hooks",
    "hub.acp.service",
    "hub.availability.hooks",
    "hub.ingest.hooks",
]


def import_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)


def register_tasks() -> None:
    for name in TASK_MODULES:
        importlib.import_module(name)


def install(runtime: Runtime) -> None:
    import_tables()
    register_tasks()
    for name in INSTALL_MODULES:
        importlib.import_module(name).install(runtime)


def routers() -> list[APIRouter]:
    return [importlib.import_module(name).router for name in ROUTER_MODULES]


def hot_routes() -> list[Route]:
    """Starlette routes of the domains' hottest requests, served ahead of the FastAPI stack (hub/fhir/hot_paths.py)."""
    return [route for name in ROUTER_MODULES for route in getattr(importlib.import_module(name), "HOT_ROUTES", [])]


async def on_startup(runtime: Runtime) -> None:
    """Start-up work that needs the database: publish profiles/, then each domain's own start-up."""
    from hub.conformance import publish

    await publish(runtime)
    for name in INSTALL_MODULES:
        hook = getattr(importlib.import_module(name), "on_startup", None)
        if hook is not None:
            await hook(runtime)


async def on_shutdown(runtime: Runtime) -> None:
    """Domain shutdown work (e.g. stop the MLLP listener), in reverse install order."""
    for name in reversed(INSTALL_MODULES):
        hook = getattr(importlib.import_module(name), "on_shutdown", None)
        if hook is not None:
            await hook(runtime)
