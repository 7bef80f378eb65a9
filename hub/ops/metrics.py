"""Prometheus metrics: request rate/latency per interaction, queue depth, availability freshness, referral
states and notification failures (the domain gauges are read from the database at scrape time)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from starlette.responses import Response

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("hub_requests_total", "HTTP requests", ["method", "interaction", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "hub_request_seconds",
    "HTTP request latency",
    ["method", "interaction"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUE = Gauge("hub_outbox_pending", "Outbox tasks not yet completed (queue depth)", registry=REGISTRY)
FAILED_TASKS = Gauge("hub_outbox_failed", "Outbox tasks that recorded an error", registry=REGISTRY)
STALE = Gauge(
    "hub_availability_stale_sources", "Provider x product figures older than the staleness period", registry=REGISTRY
)
OLDEST = Gauge("hub_availability_oldest_update_seconds", "Age of the oldest availability figure", registry=REGISTRY)
REFERRALS = Gauge("hub_referral_tasks", "Referral offer Tasks by status", ["status"], registry=REGISTRY)
router = APIRouter(tags=["ops"])


def interaction_of(method: str, path: str) -> str:
    """A low-cardinality label: read / search-type / operation / history / transaction / create / ..."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != "fhir":
        return parts[0] if parts else "root"
    rest = parts[1:]
    if not rest:
        return "transaction" if method == "POST" else "system"
    if any(p.startswith("$") for p in rest):
        return "operation:" + next(p for p in rest if p.startswith("$"))
    if "_history" in rest:
        return "history" if len(rest) != 4 else "vread"
    if rest[0] == "metadata":
        return "capabilities"
    if len(rest) == 1 or rest[-1] == "_search":
        if rest[-1] == "_search":
            return "search-type"
        return {"GET": "search-type", "POST": "create", "PUT": "conditional-update"}.get(method, method.lower())
    return {"GET": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())


_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(method: str, path: str, status: int, seconds: float) -> None:
    """Count and time one request. The labelled children are looked up once per (method, interaction, status):
    `labels()` costs more than the increment itself, on every request."""
    label = interaction_of(method, path)
    key = (method, label, status)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (REQUESTS.labels(method, label, str(status)), LATENCY.labels(method, label))
    children[0].inc()
    children[1].observe(seconds)


async def _refresh_domain_gauges(runtime: Any) -> None:
    from hub.store.schema import idx_token, outbox, resources

    async with runtime.engine.connect() as conn:
        QUEUE.set(
            (await conn.execute(select(func.count()).select_from(outbox).where(outbox.c.completed.is_(None)))).scalar()
            or 0
        )
        FAILED_TASKS.set(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(outbox)
                    .where(outbox.c.completed.is_(None), outbox.c.last_error.is_not(None))
                )
            ).scalar()
            or 0
        )
        for collect in runtime.extras.get("metrics_collectors", []):
            try:
                await collect(conn)
            except Exception:  # a domain gauge must never break the scrape
                await conn.rollback()
        rows = (
            await conn.execute(
                select(idx_token.c.code, func.count())
                .join(resources, resources.c.rid == idx_token.c.rid)
                .where(idx_token.c.res_type == "Task", idx_token.c.param == "status", resources.c.deleted.is_(False))
                .group_by(idx_token.c.code)
            )
        ).all()
        for status, count in rows:
            REFERRALS.labels(status or "unknown").set(count)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    started = time.perf_counter()
    await _refresh_domain_gauges(request.app.state.runtime)
    body = generate_latest(REGISTRY)
    LATENCY.labels("GET", "metrics").observe(time.perf_counter() - started)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
