"""Liveness (`/health`: the process answers) and readiness (`/ready`: database and Redis reachable)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from hub.fhir.outcome import issue, outcome
from hub.fhir.responses import FhirResponse

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> Response:
    return FhirResponse(outcome(issue("information", "informational", "alive")))


@router.get("/ready")
async def ready(request: Request) -> Response:
    """503 with an OperationOutcome naming what is down, so a load balancer stops routing here."""
    runtime = request.app.state.runtime
    problems: list[str] = []
    try:
        async with asyncio.timeout(2):
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if runtime.settings.redis_url:
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(runtime.settings.redis_url, socket_timeout=2)
            try:
                await client.ping()
            finally:
                await client.aclose()
        except Exception as exc:
            problems.append(f"redis: {type(exc).__name__}")
    if problems:
        body = outcome(issue("error", "transient", "not ready: " + "; ".join(problems)))
        return FhirResponse(body, 503, {"Retry-After": "2"})
    return FhirResponse(outcome(issue("information", "informational", "ready")))
