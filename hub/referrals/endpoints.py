"""Referral operations over REST: parse the request, call one domain function, shape the response."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from hub.fhir.body import parse_json
from hub.fhir.http import Access, base_url, negotiate, uow_for
from hub.fhir.interactions import parse_etag
from hub.fhir.outcome import information
from hub.fhir.responses import FhirResponse, stored_response
from hub.referrals import notify, offers, routing
from hub.referrals.errors import MissingParameter
from hub.worker import utcnow

router = APIRouter(prefix="/fhir", tags=["referrals"], dependencies=[Depends(negotiate)])
IfMatch = Annotated[str | None, Header(alias="If-Match")]


async def parameters(request: Request) -> dict[str, Any]:
    """A POSTed Parameters resource flattened to name -> value[x] (empty body: no parameters)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    body = parse_json(raw, max_bytes=1_000_000, max_depth=32)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise MissingParameter("The body of an operation is a Parameters resource")
    out: dict[str, Any] = {}
    for p in body.get("parameter") or []:
        value = next((val for key, val in p.items() if key.startswith("value")), None)
        if isinstance(value, dict) and "reference" in value:
            value = value["reference"]
        elif isinstance(value, dict):  # CodeableConcept: its text or first display/code
            coding = (value.get("coding") or [{}])[0]
            value = value.get("text") or coding.get("display") or coding.get("code")
        out[str(p.get("name"))] = value
    return out


@router.post("/Task/{task_id}/$accept")
async def accept(request: Request, task_id: str, ctx: Access, if_match: IfMatch = None) -> Response:
    params = await parameters(request)
    async with uow_for(request) as uow:
        stored = await offers.accept(uow, ctx, task_id, expected_version=parse_etag(if_match),
                                     bed=params.get("location"), admission=params.get("admission"), now=utcnow())
    return stored_response(stored, base_url(request))


@router.post("/Task/{task_id}/$decline")
async def decline(request: Request, task_id: str, ctx: Access, if_match: IfMatch = None) -> Response:
    params = await parameters(request)
    async with uow_for(request) as uow:
        stored = await offers.decline(uow, ctx, task_id, expected_version=parse_etag(if_match),
                                      reason=params.get("reason"), now=utcnow())
    return stored_response(stored, base_url(request))


@router.post("/Task/{task_id}/$cancel")
async def cancel(request: Request, task_id: str, ctx: Access, if_match: IfMatch = None) -> Response:
    params = await parameters(request)
    async with uow_for(request) as uow:
        stored = await offers.cancel(uow, ctx, task_id, expected_version=parse_etag(if_match),
                                     reason=params.get("reason"), now=utcnow())
    return stored_response(stored, base_url(request))


@router.post("/ServiceRequest/{sr_id}/$route")
async def route(request: Request, sr_id: str, ctx: Access) -> Response:
    async with uow_for(request) as uow:
        task_id = await routing.reroute(uow, ctx, sr_id, utcnow())
        stored = await uow.resources.read_raw(ctx, "Task", task_id, audit_read=False)
    return stored_response(stored, base_url(request))


@router.post("/Subscription/{subscription_id}/$set-secret")
async def set_secret(request: Request, subscription_id: str, ctx: Access) -> Response:
    params = await parameters(request)
    async with uow_for(request) as uow:
        await notify.set_secret(uow, ctx, subscription_id, params.get("secret"), utcnow())
    return FhirResponse(information(f"Signing secret set for Subscription/{subscription_id}"))
