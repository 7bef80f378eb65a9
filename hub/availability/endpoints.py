"""Availability router: parse the request, call one domain function, shape the response. No SQL, no rules.

- GET  /fhir/HealthcareService/$availability   Bundle of MeasureReports (product, organization, region, near)
- POST /fhir/Location/{id}/$set-status         a bed's status (Parameters status = v2-0116 code)
- GET  /api/availability                       the same picture as plain JSON for dashboards, with regional totals
- GET  /api/availability/stream                Server-Sent Events: `ready`, then `availability` / `totals` per change
- GET  /api/availability/history               occupancy over time (bucket hour|day, since, until)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hub.availability import bed_status, history, reports, service
from hub.availability import vocabulary as v
from hub.availability.access import Reader
from hub.availability.broadcast import Event
from hub.availability.errors import BadAvailabilityQuery, UnknownBedStatus
from hub.availability.live import live_of
from hub.availability.service import AvailabilityQuery, Picture
from hub.fhir.body import JSON_TYPES, check_content_type, parse_json
from hub.fhir.http import Access, access_context, base_url, negotiate, runtime_of, write
from hub.fhir.indexing import date_range
from hub.fhir.interactions import parse_etag
from hub.fhir.responses import FhirResponse, stored_response
from hub.security.context import AccessContext
from hub.store.repository import WriteResult
from hub.store.sql import instant, utcnow

router = APIRouter(tags=["availability"])
KEEPALIVE_SECONDS = 15.0


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# ------------------------------------------------------------------------------------------------ FHIR
@router.get("/fhir/HealthcareService/$availability", dependencies=[Depends(negotiate)])
async def availability(request: Request, ctx: Access) -> Response:
    runtime = runtime_of(request)
    q = service.parse_query(live_of(runtime).products, request.query_params)
    picture = await service.query(runtime, q, with_totals=False)
    self_url = f"{base_url(request)}/HealthcareService/$availability"
    if request.url.query:
        self_url += f"?{request.url.query}"
    return FhirResponse(reports.availability_bundle(picture.rows, self_url=self_url, products=picture.products,
                                                    now=picture.now, stale_after=picture.stale_after))


@router.post("/fhir/Location/{location_id}/$set-status", dependencies=[Depends(negotiate)])
async def set_status(request: Request, location_id: str, ctx: Access) -> Response:
    return await _set_status(request, location_id, ctx)


async def set_status_route(request: Request) -> Response:
    """Starlette endpoint for the same operation, served ahead of the FastAPI stack (hub/fhir/hot_paths.py): every
    EHR pushes its bed changes here."""
    return await _set_status(request, request.path_params["location_id"], await access_context(request))


HOT_ROUTES = [Route("/fhir/Location/{location_id:fhirid}/$set-status", set_status_route, methods=["POST"])]


async def _set_status(request: Request, location_id: str, ctx: AccessContext) -> Response:
    check_content_type(request.headers.get("content-type"), JSON_TYPES)
    settings = runtime_of(request).settings
    body = parse_json(await request.body(), max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)
    code = _status_parameter(body)
    expected = parse_etag(request.headers.get("if-match"))
    change = bed_status.StatusChange(ctx, location_id, code, expected)
    result: WriteResult = await write(request, bed_status.together(change), key=f"Location/{location_id}")
    return stored_response(result.stored, base_url(request))


def _status_parameter(body: Any) -> str:
    """Parameters.parameter[name=status] as valueCode, valueString or valueCoding (system v2-0116)."""
    parameters = body.get("parameter") if isinstance(body, dict) and body.get("resourceType") == "Parameters" else None
    for parameter in parameters or []:
        if isinstance(parameter, dict) and parameter.get("name") == "status":
            coding = parameter.get("valueCoding") or {}
            if coding and coding.get("system") not in (None, v.V2_0116):
                break
            code = parameter.get("valueCode") or parameter.get("valueString") or coding.get("code")
            if isinstance(code, str) and code:
                return code
    raise UnknownBedStatus("Send Parameters with parameter 'status' (valueCode, an HL7 v2 table 0116 code)",
                           expression=["Parameters.parameter"])


# ------------------------------------------------------------------------------------------------ JSON
@router.get("/api/availability")
async def dashboard(request: Request, ctx: Reader) -> Response:
    runtime = runtime_of(request)
    q = service.parse_query(live_of(runtime).products, request.query_params)
    return JsonResponse(picture_json(await service.query(runtime, q)))


def picture_json(picture: Picture) -> dict[str, Any]:
    """The dashboard document: products, regional totals, one entry per provider × product, per provider."""
    rows = [reports.dashboard_row(r, products=picture.products, now=picture.now, stale_after=picture.stale_after)
            for r in picture.rows]
    providers: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = providers.setdefault(row["org_id"], {
            "organization": row["organization"], "org_id": row["org_id"], "name": row["name"], "region": row["region"],
            "postcode": row["postcode"], "city": row["city"], "free": 0, "total": 0, "last_update": row["last_update"]})
        entry["free"] += row["free"]
        entry["total"] += row["total"]
        entry["last_update"] = max(entry["last_update"], row["last_update"])
    for entry in providers.values():
        entry["stale"] = reports.is_stale(entry, picture.now, picture.stale_after)
    return {
        "generated": instant(picture.now), "stale_after_minutes": int(picture.stale_after.total_seconds() // 60),
        "from_cache": picture.from_cache,
        "products": [{"code": code, "display": display} for code, display in picture.products.items()],
        "totals": [reports.dashboard_total(t, products=picture.products) for t in picture.totals],
        "rows": rows, "providers": list(providers.values()),
    }


@router.get("/api/availability/history")
async def occupancy(request: Request, ctx: Reader) -> Response:
    runtime = runtime_of(request)
    params = request.query_params
    q = service.parse_query(live_of(runtime).products, params)
    now = utcnow()
    until = _instant(params.get("until"), "until") or now
    since = _instant(params.get("since"), "since") or until - timedelta(days=1)
    org_id = await service.resolve_organization(runtime, q.organization)
    bucket = params.get("bucket", "hour")
    series = await history.occupancy(runtime, products=q.products, org_id=org_id, region=q.region, since=since,
                                     until=until, bucket=bucket)
    return JsonResponse({
        "bucket": bucket, "since": instant(since), "until": instant(until),
        "series": [{"organization": f"Organization/{s.org_id}", "product": s.product, "region": s.region,
                    "points": s.points} for s in series],
    })


def _instant(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return date_range(text)[0]
    except ValueError:
        raise BadAvailabilityQuery(f"{name} '{text}' is not a FHIR date or instant", expression=[name]) from None


# ------------------------------------------------------------------------------------------------ SSE
@router.get("/api/availability/stream")
async def stream(request: Request, ctx: Reader) -> Response:
    runtime = runtime_of(request)
    q = service.parse_query(live_of(runtime).products, request.query_params)
    org_id = await service.resolve_organization(runtime, q.organization)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(runtime, q, org_id), media_type="text/event-stream", headers=headers)


def _sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


async def _events(runtime: Any, q: AvailabilityQuery, org_id: str | None) -> AsyncIterator[bytes]:
    """`ready` once listening (nothing committed after it is missed), then one event per change."""
    live = live_of(runtime)
    stale_after = timedelta(minutes=runtime.settings.stale_after_minutes)
    async with live.broadcaster.listen() as listener:
        yield b"retry: 2000\n" + _sse("ready", {"stale_after_minutes": runtime.settings.stale_after_minutes})
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):  # (wait_for can swallow a cancellation on 3.11)
                    batch = await listener.queue.get()
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if batch is None:
                yield _sse("resync", {})
                continue
            for chunk in _batch_events(batch, q, org_id, live.products, stale_after):
                yield chunk


def _batch_events(batch: list[Event], q: AvailabilityQuery, org_id: str | None, products: dict[str, str],
                  stale_after: timedelta) -> list[bytes]:
    now, out = utcnow(), []
    for event in batch:
        if event["type"] == "row" and q.selects(event, org_id):
            out.append(_sse("availability", reports.dashboard_row(event, products=products, now=now,
                                                                  stale_after=stale_after), event["seq"]))
        elif (event["type"] == "total" and org_id is None and (not q.products or event["product"] in q.products)
              and (q.region is None or event["region"] == q.region)):
            out.append(_sse("totals", reports.dashboard_total(event, products=products)))
    return out
