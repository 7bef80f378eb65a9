"""ACP routes (thin): $acp-summary as FHIR JSON or as the HAP doctor's HTML page, and the read-only AuditEvent API.

Included before the generic FHIR router (hub/domains.py), so `Patient/$acp-summary` is not read as an id and
AuditEvent requests reach the audit trail instead of the resource store. All of them are reads: a read-only unit
of work, whose one write (the AuditEvent of the access) goes in a short write transaction at the end.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, Response

from hub.acp import audit_trail, document, service
from hub.errors import MethodNotAllowed
from hub.fhir.http import Access, base_url, negotiate, query_items, uow_for
from hub.fhir.responses import FhirResponse

router = APIRouter(prefix="/fhir", tags=["acp"], dependencies=[Depends(negotiate)])
NO_STORE = {"Cache-Control": "no-store"}


def wants_html(request: Request) -> bool:
    """`_format=html`, or a browser whose first choice is text/html."""
    fmt = (request.query_params.get("_format") or "").lower()
    if fmt:
        return fmt in ("html", "text/html")
    accept = (request.headers.get("accept") or "").split(",")[0].split(";")[0].strip().lower()
    return accept == "text/html"


def _respond(result: service.Summary, as_html: bool) -> Response:
    if as_html or result.bundle is None:
        return HTMLResponse(document.html_page(result.view), headers=NO_STORE)
    return FhirResponse(result.bundle, headers=NO_STORE)


@router.get("/Patient/$acp-summary")
async def acp_summary_by_identifier(request: Request, ctx: Access) -> Response:
    as_html = wants_html(request)
    async with uow_for(request, readonly=True) as uow:
        result = await service.summary_by_identifier(uow, ctx, request.query_params.get("identifier"),
                                                     base=base_url(request), as_html=as_html)
    return _respond(result, as_html)


@router.get("/Patient/{patient_id}/$acp-summary")
async def acp_summary(request: Request, patient_id: str, ctx: Access) -> Response:
    as_html = wants_html(request)
    async with uow_for(request, readonly=True) as uow:
        result = await service.summary(uow, ctx, patient_id, base=base_url(request), as_html=as_html)
    return _respond(result, as_html)


@router.get("/AuditEvent")
async def audit_search(request: Request, ctx: Access) -> Response:
    async with uow_for(request, readonly=True) as uow:
        page = await audit_trail.search(uow, ctx, query_items(request))
    return FhirResponse(audit_trail.searchset(base_url(request), page), headers=NO_STORE)


@router.get("/AuditEvent/{event_id}")
async def audit_read(request: Request, event_id: str, ctx: Access) -> Response:
    async with uow_for(request, readonly=True) as uow:
        content = await audit_trail.read(uow, ctx, event_id)
    return FhirResponse(content, headers=NO_STORE)


@router.api_route("/AuditEvent", methods=["POST", "PUT", "PATCH", "DELETE"])
@router.api_route("/AuditEvent/{event_id}", methods=["POST", "PUT", "PATCH", "DELETE"])
async def audit_write(ctx: Access) -> Response:
    raise MethodNotAllowed("the audit trail is append-only: AuditEvents are written by the hub, never by clients")
