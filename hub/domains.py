"""Explicit wiring of the domain packages: profile rules, write hooks, routers, start-up work. No import magic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from hub.runtime import Runtime


def install(runtime: Runtime) -> None:
    """Each domain package adds its profile rules, write hooks and services to the runtime here."""
    from hub.fhir.terminology_endpoints import install as install_terminology

    install_terminology(runtime)


def routers() -> list[APIRouter]:
    """Domain routers go before the generic FHIR router so `Type/$operation` is not read as `Type/{id}`."""
    from hub.fhir.terminology_endpoints import router as terminology_router

    return [terminology_router]


async def on_startup(runtime: Runtime) -> None:
    """Start-up work that needs the database: the hub's own conformance resources become servable resources."""
    from hub.conformance import publish

    await publish(runtime)


def register_tasks() -> None:
    """Import the task modules so their @task registrations exist (API process and Celery worker alike)."""
