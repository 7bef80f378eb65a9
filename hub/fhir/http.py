"""Request plumbing shared by routers: access context, unit of work, Prefer/If-Match, content negotiation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from hub.errors import NotAcceptable
from hub.runtime import Runtime
from hub.security.context import AccessContext
from hub.store.group_commit import Together
from hub.store.uow import UnitOfWork

ACCEPTABLE = (
    "application/fhir+json",
    "application/json",
    "application/json+fhir",
    "*/*",
    "application/*",
    "text/html",
    "json",
)
XML_FORMATS = ("xml", "text/xml", "application/xml", "application/fhir+xml", "ttl", "application/fhir+turtle")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def access_context(request: Request) -> AccessContext:
    """Authenticate every request; the purpose of use (e.g. ETREAT for break-the-glass) comes from a header."""
    verifier = request.app.state.tokens
    ctx: AccessContext = verifier.context(
        request.headers.get("authorization"),
        purpose_of_use=request.headers.get("x-purpose-of-use"),
        client_address=request.client.host if request.client else None,
        request_id=request.state.request_id if hasattr(request.state, "request_id") else None,
    )
    await request.app.state.rate_limiter.check(ctx.subject)
    return ctx


def uow_for(request: Request, *, readonly: bool = False) -> UnitOfWork:
    """A unit of work opened by the router with `async with`, so the commit happens before the response."""
    uow: UnitOfWork = runtime_of(request).uow(getattr(request.state, "request_id", None), readonly=readonly)
    return uow


T = TypeVar("T")


async def write(request: Request, work: Callable[[UnitOfWork], Awaitable[T]] | Together, *,
                key: str | None = None) -> T:
    """A single-resource write in a unit of work — shared with concurrent writes (hub/store/group_commit.py) —
    committed before this returns, so the response never announces an uncommitted change. `key`: the resource
    it changes ("Type/id"), which orders the writes of a shared transaction. A `Together` is written in one call
    with the same kind of write of other requests."""
    return await runtime_of(request).writes.run(work, getattr(request.state, "request_id", None), key=key)


async def negotiate(request: Request) -> None:
    """Router dependency kept for domain routers; the check itself runs in the ASGI middleware (cheaper)."""
    if not getattr(request.state, "negotiated", False):
        check_format(request.query_params.get("_format"), request.headers.get("accept"))


def check_format(fmt: str | None, accept: str | None) -> None:
    """JSON only: _format or Accept asking for XML/Turtle alone gets 406 with an OperationOutcome."""
    if fmt and fmt.lower() in XML_FORMATS:
        raise NotAcceptable(f"_format={fmt} is not supported; this server speaks application/fhir+json")
    if not accept or fmt:
        return
    types = [t.split(";")[0].strip().lower() for t in accept.split(",")]
    if not any(t in ACCEPTABLE or t.endswith("+json") for t in types):
        raise NotAcceptable(f"Accept '{accept}' cannot be satisfied; this server speaks application/fhir+json")


def prefer(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in request.headers.get("prefer", "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            if key:
                out[key.lower()] = value.strip('"')
    return out


def base_url(request: Request) -> str:
    runtime = runtime_of(request)
    configured = runtime.settings.base_url.rstrip("/")
    return f"{configured}/fhir" if configured else str(request.base_url).rstrip("/") + "/fhir"


Access = Annotated[AccessContext, Depends(access_context)]


def query_items(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k not in ("_format", "_pretty")]
