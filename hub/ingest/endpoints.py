"""Ingest over HTTP: parse the request, call one domain function, shape the response.

- GET  /ingest                      the formats: name, media types, description (public, like /fhir/metadata)
- POST /ingest/{format}             raw body in the format's media type -> OperationOutcome, 201 stored / 200
                                    nothing changed or duplicate; 400/422 unusable input (nothing stored)
- POST /ingest                      the same, the format chosen by Content-Type
- GET  /ingest/config               all configured senders (admin)
- GET  /ingest/config/{sender}      one sender's configuration (admin); sender = "system|value", URL-encoded
- PUT  /ingest/config/{sender}      set it (admin): role, kind, name, hl7Sources, config (adapter settings)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from hub.fhir.body import parse_json
from hub.fhir.http import Access, runtime_of, uow_for
from hub.fhir.responses import FhirResponse
from hub.ingest import senders, service
from hub.ingest.schemas import SenderSettings

router = APIRouter(prefix="/ingest", tags=["ingest"])


class JsonResponse(Response):
    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200) -> None:
        super().__init__(orjson.dumps(content), status_code=status_code)


@router.get("")
async def list_formats() -> JsonResponse:
    return JsonResponse({"formats": service.formats()})


@router.get("/config")
async def list_senders(request: Request, ctx: Access) -> JsonResponse:
    async with uow_for(request, readonly=True) as uow:
        found = await senders.describe(uow, ctx, None)
    return JsonResponse({"senders": [s.as_json() for s in found]})


@router.get("/config/{sender:path}")
async def read_sender(sender: str, request: Request, ctx: Access) -> JsonResponse:
    async with uow_for(request, readonly=True) as uow:
        found = await senders.describe(uow, ctx, sender)
    return JsonResponse(found[0].as_json())


@router.put("/config/{sender:path}")
async def configure_sender(sender: str, request: Request, ctx: Access) -> JsonResponse:
    body = SenderSettings.model_validate(parse_json(await request.body(), max_bytes=1_000_000, max_depth=16))
    async with uow_for(request) as uow:
        saved = await senders.configure(uow, ctx, sender, body, datetime.now(UTC).replace(tzinfo=None))
    return JsonResponse(saved.as_json())


@router.post("")
async def receive_any(request: Request, ctx: Access) -> FhirResponse:
    return await _receive(request, ctx, None)


@router.post("/{fmt}")
async def receive(fmt: str, request: Request, ctx: Access) -> FhirResponse:
    return await _receive(request, ctx, fmt)


async def _receive(request: Request, ctx: Access, fmt: str | None) -> FhirResponse:
    result = await service.receive(
        runtime_of(request),
        ctx,
        fmt,
        await request.body(),
        request.headers.get("content-type"),
        request_id=getattr(request.state, "request_id", None),
    )
    return FhirResponse(result.outcome, result.status)
