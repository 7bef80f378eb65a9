"""The hottest requests, routed ahead of the FastAPI middleware stack.

Why: FastAPI and Starlette wrap every request in about ten layers (server errors, telemetry, body limit,
exception middleware, exit stack, the router's match over every route in turn, the request/response wrapper).
Measured under uvicorn, those layers were ~20 % of the CPU of a create or a bed status change. A request whose
method and path match one of a few patterns (read, update, search, create, `$set-status`) goes instead through
the hub's own request context (request id, size limit, back-pressure, format check, metrics: the same instance as
for every other request) straight to its endpoint. Its errors take the app's registered exception handlers, so
it gets the same answer it would get through the full stack. Every other request goes the normal way; FastAPI's
routes for the same paths stay, for the OpenAPI description.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]


class HotPaths:
    """A few Starlette routes matched by method first, then by their compiled path pattern."""

    def __init__(self, routes: list[Route]) -> None:
        self._by_method: dict[str, list[tuple[Any, dict[str, Any], Endpoint]]] = {}
        for route in routes:
            for method in route.methods or ():  # a GET route answers HEAD too, as Starlette's router does
                self._by_method.setdefault(method, []).append((route.path_regex, route.param_convertors,
                                                               route.endpoint))

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, Any]] | None:
        """The endpoint and its path parameters, or None: not a hot request."""
        for regex, convertors, endpoint in self._by_method.get(method, ()):
            found = regex.match(path)
            if found is not None:
                return endpoint, {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
        return None


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI app for a matched hot request (`scope["endpoint"]`, `scope["path_params"]` set by the matcher)."""
    request = Request(scope, receive, send)
    try:
        response = await scope["endpoint"](request)
    except Exception as exc:
        response = await _handler(scope["app"], exc)(request, exc)
    await response(scope, receive, send)


def _handler(app: Any, exc: Exception) -> Handler:
    """The app's handler for `exc`, looked up as Starlette's exception middleware does (status code for an
    HTTPException, then the class hierarchy); the app registers one for Exception, so there always is one."""
    handlers: dict[Any, Handler] = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    raise exc
