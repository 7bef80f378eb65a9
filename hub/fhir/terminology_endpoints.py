"""Terminology operations on the hub's own code systems: $lookup, $validate-code, $expand (thin router)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from hub.errors import HubError
from hub.fhir.http import Access, negotiate
from hub.fhir.operations import OperationInfo, register
from hub.fhir.responses import FhirResponse
from hub.runtime import Runtime
from hub.terminology import operations as terminology
from hub.terminology.errors import TerminologyError
from hub.terminology.loader import ProfileSet, profile_set

router = APIRouter(prefix="/fhir", tags=["terminology"], dependencies=[Depends(negotiate)])


def install(runtime: Runtime) -> None:
    """Index the conformance resources once; search's `:in` modifier expands ValueSets through this."""
    profiles = profile_set(r for r in runtime.conformance if r.get("resourceType") != "SearchParameter")
    runtime.extras["profiles"] = profiles
    runtime.extras["expand_valueset"] = lambda url: _expand_codes(profiles, url)
    for name, types, doc in (
        ("lookup", ("CodeSystem",), "Concept details (display, designations incl. spreadsheet aliases, properties)"),
        ("validate-code", ("CodeSystem", "ValueSet"), "Is a code in a hub CodeSystem/ValueSet"),
        ("expand", ("ValueSet",), "Expansion of the hub's ValueSets, with text filter and paging"),
    ):
        register(OperationInfo(name, f"http://hl7.org/fhir/OperationDefinition/{types[0]}-{name}", types, doc))


def _expand_codes(profiles: ProfileSet, url: str) -> frozenset[tuple[str, str]]:
    try:
        return terminology.expand_codes(profiles, url)
    except TerminologyError as exc:
        raise _hub_error(exc) from None


def _hub_error(exc: TerminologyError) -> HubError:
    err = HubError(exc.message)
    err.status, err.code = exc.status, exc.code
    return err


async def _params(request: Request) -> dict[str, str]:
    """GET query parameters or a POSTed Parameters resource, flattened to name -> value."""
    params = dict(request.query_params)
    if request.method == "POST":
        from hub.fhir.body import check_content_type, parse_json

        check_content_type(request.headers.get("content-type"))
        body = parse_json(await request.body(), max_bytes=1_000_000, max_depth=32)
        for p in body.get("parameter", []) if isinstance(body, dict) else []:
            for key, value in p.items():
                if key.startswith("value"):
                    params[p["name"]] = str(value)
            if p.get("name") == "coding" and isinstance(p.get("valueCoding"), dict):
                params.setdefault("system", p["valueCoding"].get("system", ""))
                params.setdefault("code", p["valueCoding"].get("code", ""))
    return params


def _profiles(request: Request) -> ProfileSet:
    profiles: ProfileSet = request.app.state.runtime.extras["profiles"]
    return profiles


def _call(fn: Any, *args: Any, **kwargs: Any) -> Response:
    try:
        return FhirResponse(fn(*args, **kwargs))
    except TerminologyError as exc:
        raise _hub_error(exc) from None


@router.api_route("/CodeSystem/$lookup", methods=["GET", "POST"])
async def lookup(request: Request, ctx: Access) -> Response:
    p = await _params(request)
    return _call(terminology.lookup, _profiles(request), p.get("system", ""), p.get("code", ""), p.get("version"))


@router.api_route("/ValueSet/$validate-code", methods=["GET", "POST"])
@router.api_route("/CodeSystem/$validate-code", methods=["GET", "POST"])
async def validate_code(request: Request, ctx: Access) -> Response:
    p = await _params(request)
    system = p.get("system") or (p.get("url") if "/CodeSystem/" in request.url.path else None)
    url = p.get("url") if "/ValueSet/" in request.url.path else None
    return _call(
        terminology.validate_code,
        _profiles(request),
        url=url,
        system=system,
        code=p.get("code", ""),
        display=p.get("display"),
    )


@router.api_route("/ValueSet/$expand", methods=["GET", "POST"])
async def expand(request: Request, ctx: Access) -> Response:
    p = await _params(request)
    count = int(p["count"]) if p.get("count", "").isdigit() else None
    offset = int(p["offset"]) if p.get("offset", "").isdigit() else 0
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return _call(
        terminology.expand,
        _profiles(request),
        p.get("url", ""),
        filter=p.get("filter"),
        count=count,
        offset=offset,
        timestamp=stamp,
    )
