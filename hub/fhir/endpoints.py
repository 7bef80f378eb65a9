"""FHIR REST router: parse the HTTP request, call one interaction, shape the response. No SQL, no rules."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response

from hub.errors import Invalid, MethodNotAllowed, NotFound, PreconditionFailed
from hub.fhir import bundles, interactions
from hub.fhir.body import JSON_TYPES, PATCH_TYPES, check_content_type, parse_json
from hub.fhir.capability import capability_statement
from hub.fhir.http import Access, access_context, base_url, prefer, query_items, runtime_of, uow_for, write
from hub.fhir.indexing import date_range
from hub.fhir.outcome import information
from hub.fhir.responses import FhirResponse, resource_headers, stored_response
from hub.fhir.shaping import shaper
from hub.fhir.validation import validate
from hub.security import policy
from hub.security.context import AccessContext
from hub.store.repository import WriteResult


class FhirTypeConvertor(StringConvertor):
    """A resource type name; AuditEvent is excluded: the audit trail is served by its own router (hub/acp)."""

    regex = "(?!AuditEvent\\b)[A-Z][A-Za-z]{1,63}"


class FhirIdConvertor(StringConvertor):
    """FHIR id syntax: [A-Za-z0-9\\-\\.]{1,64} — never starts with `$` or `_`."""

    regex = "[A-Za-z0-9\\-\\.]{1,64}"


register_url_convertor("fhirtype", FhirTypeConvertor())
register_url_convertor("fhirid", FhirIdConvertor())
# `hot` is included first in the app: its patterns cannot match `$operation`, `_history` or `_search` segments,
# so it shadows nothing, and the hottest request (read by id) is routed after a single match.
hot = APIRouter(prefix="/fhir", tags=["fhir"])
router = APIRouter(prefix="/fhir", tags=["fhir"])  # content negotiation: RequestContextMiddleware
public = APIRouter(prefix="/fhir", tags=["fhir"])


def supported(request: Request, res_type: str) -> None:
    if res_type not in request.app.state.supported_types:
        raise NotFound(f"Resource type '{res_type}' is not supported by this server")


async def body_json(request: Request, *, patch: bool = False) -> object:
    check_content_type(request.headers.get("content-type"), PATCH_TYPES if patch else JSON_TYPES)
    settings = runtime_of(request).settings
    return parse_json(await request.body(), max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth)


def write_response(request: Request, result: WriteResult) -> Response:
    """201/200 with Location + ETag; body per Prefer: return=minimal|representation|OperationOutcome."""
    stored = result.stored
    status = 201 if result.created else 200
    headers = resource_headers(stored, base_url(request), location=True)
    wanted = prefer(request).get("return", "representation")
    if wanted == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted == "OperationOutcome":
        note = "created" if result.created else ("unchanged" if result.unchanged else "updated")
        return FhirResponse(information(f"{stored.res_type}/{stored.res_id} {note}"), status, headers)
    return FhirResponse(stored.content, status, headers)


# ------------------------------------------------------------------------------------------------ metadata
@public.get("/metadata")
async def metadata(request: Request) -> Response:
    cached = request.app.state.capability_bytes
    if cached is None:
        runtime = runtime_of(request)
        cached = orjson.dumps(
            capability_statement(runtime.registry, base_url(request), sorted(request.app.state.supported_types))
        )
        request.app.state.capability_bytes = cached
    return FhirResponse(cached)


# ------------------------------------------------------------------------------------------------ system level
@router.post("")
@router.post("/")
async def batch_or_transaction(request: Request, ctx: Access) -> Response:
    bundle = await body_json(request)
    async with uow_for(request) as uow:
        response = await bundles.process(
            uow, ctx, bundle, base_url(request), prefer_return=prefer(request).get("return", "minimal")
        )
    return FhirResponse(response)


@router.get("/_history")
async def history_system(request: Request, ctx: Access) -> Response:
    return await _history(request, ctx, None, None)


# ------------------------------------------------------------------------------------------------ type level
@router.get("/{res_type}")
async def search(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    return await _search(request, ctx, res_type, query_items(request))


async def search_by_type(request: Request) -> Response:
    """Starlette endpoint for GET Type?params (hub/fhir/hot_paths.py: served ahead of the FastAPI stack)."""
    res_type = request.path_params["res_type"]
    ctx = await access_context(request)
    supported(request, res_type)
    return await _search(request, ctx, res_type, query_items(request))


@router.post("/{res_type}/_search")
async def search_post(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
    if content_type not in ("application/x-www-form-urlencoded", ""):
        check_content_type(content_type, ("application/x-www-form-urlencoded",))
    form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    return await _search(request, ctx, res_type, query_items(request) + form)


async def _search(request: Request, ctx: Access, res_type: str, items: list[tuple[str, str]]) -> Response:
    strict = prefer(request).get("handling") == "strict"
    async with uow_for(request, readonly=True) as uow:
        outcome = await interactions.search(uow, ctx, res_type, items, strict=strict)
    shape = shaper(outcome.query.summary if outcome.query.summary != "count" else None, outcome.query.elements)
    return FhirResponse(bundles.search_bundle(base_url(request), outcome.query, outcome.result, shape=shape))


@router.post("/{res_type}")
async def create(request: Request, res_type: str, ctx: Access) -> Response:
    return await _create(request, res_type, ctx)


async def create_by_type(request: Request) -> Response:
    """Starlette endpoint for POST Type (hub/fhir/hot_paths.py: served ahead of the FastAPI stack)."""
    res_type = request.path_params["res_type"]
    return await _create(request, res_type, await access_context(request))


async def _create(request: Request, res_type: str, ctx: AccessContext) -> Response:
    supported(request, res_type)
    # Validated before the (possibly shared) transaction: an invalid body fails alone and costs no rollback.
    resource = validate(await body_json(request), runtime_of(request).rules, expected_type=res_type)
    if_none_exist = request.headers.get("if-none-exist")
    result = await write(
        request,
        lambda uow: interactions.create(uow, ctx, res_type, resource, if_none_exist=if_none_exist, validated=True),
    )
    return write_response(request, result)


@router.put("/{res_type}")
async def conditional_update(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    criteria = urlencode(query_items(request))
    if not criteria:
        raise MethodNotAllowed("PUT on a type needs search criteria (conditional update) or an id")
    body = await body_json(request)
    async with uow_for(request) as uow:
        result = await interactions.conditional_update(
            uow, ctx, res_type, criteria, body, if_match=interactions.parse_etag(request.headers.get("if-match"))
        )
    return write_response(request, result)


@router.delete("/{res_type}")
async def conditional_delete(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    criteria = urlencode(query_items(request))
    if not criteria:
        raise MethodNotAllowed("DELETE on a type needs search criteria")
    async with uow_for(request) as uow:
        matches = await interactions.conditional_matches(uow, ctx, res_type, criteria)
        if len(matches) > 1:
            raise PreconditionFailed(f"Conditional delete matched {len(matches)} resources")
        for m in matches:
            await uow.resources.delete(ctx, m.res_type, m.res_id)
    return Response(status_code=204)


@router.get("/{res_type}/_history")
async def history_type(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    return await _history(request, ctx, res_type, None)


@router.post("/{res_type}/$validate")
async def validate_type(request: Request, res_type: str, ctx: Access) -> Response:
    supported(request, res_type)
    return await _validate(request, res_type)


async def _validate(request: Request, res_type: str) -> Response:
    body = await body_json(request)
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        body = next((p.get("resource") for p in body.get("parameter", []) if p.get("name") == "resource"), None)
    validate(body, runtime_of(request).rules, expected_type=res_type)
    return FhirResponse(information("Validation successful: no errors"))


# ------------------------------------------------------------------------------------------------ instance level
@hot.get("/{res_type:fhirtype}/{res_id:fhirid}")
async def read(request: Request, res_type: str, res_id: str) -> Response:
    """The hottest path: authentication is called directly (no dependency solving) and bytes go out as stored."""
    return await read_by_id(request)


async def read_by_id(request: Request) -> Response:
    """Starlette endpoint for GET Type/id (hub/fhir/hot_paths.py: served ahead of the FastAPI stack)."""
    res_type, res_id = request.path_params["res_type"], request.path_params["res_id"]
    ctx = await access_context(request)
    supported(request, res_type)
    stored = await runtime_of(request).fast.current(res_type, res_id)
    if (
        stored is None
        or stored.deleted
        or not policy.may_read_row(ctx, res_type, medical=stored.medical, owner_org=stored.owner_org)
        or policy.needs_audit(stored.res_type, stored.patient_id)
    ):
        # the full path: 404/410, refusals and the AuditEvent of a personal-data read
        async with uow_for(request, readonly=True) as uow:
            stored = await uow.resources.read_raw(ctx, res_type, res_id)
    etag = request.headers.get("if-none-match")
    if etag and etag.strip() in (stored.etag, stored.etag[2:]):
        return Response(status_code=304, headers=resource_headers(stored, base_url(request)))
    params = request.query_params
    shape = shaper(params.get("_summary"), params.get("_elements", "").split(",") if params.get("_elements") else None)
    if shape is not None:
        return FhirResponse(shape(orjson.loads(stored.content)), 200, resource_headers(stored, base_url(request)))
    return stored_response(stored, base_url(request))


@router.put("/{res_type}/{res_id}")
async def update(request: Request, res_type: str, res_id: str, ctx: Access) -> Response:
    return await _update(request, res_type, res_id, ctx)


async def update_by_id(request: Request) -> Response:
    """Starlette endpoint for PUT Type/id (hub/fhir/hot_paths.py: served ahead of the FastAPI stack)."""
    params = request.path_params
    return await _update(request, params["res_type"], params["res_id"], await access_context(request))


async def _update(request: Request, res_type: str, res_id: str, ctx: AccessContext) -> Response:
    supported(request, res_type)
    resource = validate(await body_json(request), runtime_of(request).rules, expected_type=res_type)
    if_match = interactions.parse_etag(request.headers.get("if-match"))
    result = await write(
        request,
        lambda uow: interactions.update(uow, ctx, res_type, res_id, resource, if_match=if_match, validated=True),
        key=f"{res_type}/{res_id}",
    )
    return write_response(request, result)


@router.patch("/{res_type}/{res_id}")
async def patch(request: Request, res_type: str, res_id: str, ctx: Access) -> Response:
    supported(request, res_type)
    ops = await body_json(request, patch=True)
    if_match = interactions.parse_etag(request.headers.get("if-match"))
    result = await write(
        request,
        lambda uow: interactions.patch(uow, ctx, res_type, res_id, ops, if_match=if_match),
        key=f"{res_type}/{res_id}",
    )
    return write_response(request, result)


@router.delete("/{res_type}/{res_id}")
async def delete(request: Request, res_type: str, res_id: str, ctx: Access) -> Response:
    supported(request, res_type)
    if_match = interactions.parse_etag(request.headers.get("if-match"))
    stored = await write(
        request, lambda uow: uow.resources.delete(ctx, res_type, res_id, if_match=if_match), key=f"{res_type}/{res_id}"
    )
    headers = {"ETag": stored.etag} if stored else {}
    return Response(status_code=204, headers=headers)


@router.post("/{res_type}/{res_id}/$validate")
async def validate_instance(request: Request, res_type: str, res_id: str, ctx: Access) -> Response:
    supported(request, res_type)
    return await _validate(request, res_type)


@router.get("/{res_type}/{res_id}/_history")
async def history_instance(request: Request, res_type: str, res_id: str, ctx: Access) -> Response:
    supported(request, res_type)
    return await _history(request, ctx, res_type, res_id)


@router.get("/{res_type}/{res_id}/_history/{version}")
async def vread(request: Request, res_type: str, res_id: str, version: str, ctx: Access) -> Response:
    supported(request, res_type)
    if not version.isdigit():
        raise NotFound(f"Version '{version}' is not known")
    async with uow_for(request, readonly=True) as uow:
        stored = await uow.resources.vread_raw(ctx, res_type, res_id, int(version))
    return stored_response(stored, base_url(request))


async def _history(request: Request, ctx: Access, res_type: str | None, res_id: str | None) -> Response:
    params = request.query_params
    settings = runtime_of(request).settings
    since = None
    if params.get("_since"):
        try:
            since = date_range(params["_since"])[0]
        except ValueError:
            raise Invalid(f"_since '{params['_since']}' is not a valid instant", expression=["_since"]) from None
    count_text = params.get("_count", str(settings.default_count))
    if not count_text.isdigit() or int(count_text) > settings.max_count:
        raise Invalid(f"_count must be an integer up to {settings.max_count}", expression=["_count"])
    count = int(count_text)
    before = params.get("_before_seq")
    async with uow_for(request, readonly=True) as uow:
        page = await interactions.history(
            uow,
            ctx,
            res_type=res_type,
            res_id=res_id,
            since=since,
            count=count,
            before_seq=int(before) if before and before.isdigit() else None,
        )
    path = "/".join(p for p in (res_type, res_id) if p)
    root = f"{base_url(request)}/{path + '/' if path else ''}_history"
    self_url = f"{root}?{request.url.query}" if request.url.query else root
    next_url = None
    if page.has_next and page.last_seq is not None:
        keep = {k: v for k, v in params.items() if k != "_before_seq"}
        next_url = f"{root}?{urlencode({**keep, '_before_seq': page.last_seq})}"
    return FhirResponse(bundles.history_bundle(base_url(request), self_url, page.rows, next_url))
