"""create_app(settings): routers, the one error handler family, middleware, lifespan."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.config import Settings, get_settings
from hub.errors import Conflict, HubError, Invalid, TooLarge, Unavailable
from hub.fhir import endpoints as fhir_endpoints
from hub.fhir import hot_paths
from hub.fhir.hot_paths import HotPaths
from hub.fhir.http import check_format
from hub.fhir.outcome import issue, outcome, outcome_response
from hub.fhir.responses import FhirResponse
from hub.ops import health, logs, metrics
from hub.ops.ratelimit import RateLimiter
from hub.runtime import Runtime
from hub.security.endpoints import router as auth_router
from hub.security.tokens import ReplayGuard, TokenVerifier

log = logging.getLogger("hub")
_STATUS_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.build(settings)
        app.state.runtime = rt
        app.state.supported_types = supported_types(rt)
        await startup(rt)
        await rt.dispatcher.start()
        _freeze_startup_heap()
        try:
            yield
        finally:
            from hub import domains

            await domains.on_shutdown(rt)
            await rt.dispatcher.stop()
            await app.state.rate_limiter.close()
            if runtime is None:
                await rt.fast.close()
                await rt.engine.dispose()

    app = HubApp(
        title="Zorgnet Hub",
        version="0.1.0",
        lifespan=lifespan,
        description="FHIR R4 hub for regional elderly-care coordination (NL)",
    )
    app.state.tokens = TokenVerifier(settings)
    app.state.replay_guard = ReplayGuard()
    app.state.capability_bytes = None
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.redis_url)
    if settings.json_logs:
        logs.configure(settings.log_level)
    _install_errors(app)
    _install_middleware(app, settings)
    from hub import domains

    # The hottest interactions skip the middleware stack (hub/fhir/hot_paths.py); the FastAPI routes below answer
    # the same paths in the OpenAPI description.
    by_type, by_id = "/fhir/{res_type:fhirtype}", "/fhir/{res_type:fhirtype}/{res_id:fhirid}"
    app.hot_paths = HotPaths([
        Route(by_id, fhir_endpoints.read_by_id, methods=["GET"]),
        Route(by_id, fhir_endpoints.update_by_id, methods=["PUT"]),
        Route(by_type, fhir_endpoints.search_by_type, methods=["GET"]),
        Route(by_type, fhir_endpoints.create_by_type, methods=["POST"]),
        *domains.hot_routes(),
    ])
    app.include_router(fhir_endpoints.hot)  # the same read, documented in the OpenAPI description
    for extra in domains.routers():
        app.include_router(extra)
    app.include_router(auth_router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(fhir_endpoints.public)
    app.include_router(fhir_endpoints.router)
    return app


def _freeze_startup_heap() -> None:
    """Move everything built at start (FHIR model classes, validators, registries: ~1M objects) out of the
    collector's reach. Otherwise each full collection walks them all — a 300-400 ms stop of the event loop that
    made the 99th percentile at 64 clients twenty times the median."""
    gc.freeze()


def supported_types(runtime: Runtime) -> set[str]:
    from fhir.resources.R4B import fhirtypes  # a name check; importing every model class costs ~0.6 s at start

    types = {t for t in runtime.registry.by_type if hasattr(fhirtypes, f"{t}Type")}
    return types | {"Binary", "Bundle", "AuditEvent", "Provenance", "OperationDefinition"}


async def startup(runtime: Runtime) -> None:
    """Embedded SQLite creates/migrates its schema at start; PostgreSQL is migrated by `hub migrate`."""
    from hub import domains

    if runtime.settings.is_sqlite:
        from hub.store.migrate import sqlite_at_head, upgrade

        if not sqlite_at_head(runtime.settings.database_url):
            await asyncio.to_thread(upgrade, runtime.settings.database_url)
    await domains.on_startup(runtime)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(HubError)
    async def hub_error(_: Request, exc: HubError) -> Response:
        return outcome_response(exc)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> Response:
        issues = [
            issue("error", "invalid", str(e.get("msg")), [".".join(str(p) for p in e.get("loc", ()))])
            for e in exc.errors()
        ]
        return FhirResponse(outcome(*issues), 400)

    @app.exception_handler(ValidationError)
    async def model_invalid(_: Request, exc: ValidationError) -> Response:
        issues = [
            issue("error", "processing", str(e.get("msg")), [".".join(str(p) for p in e.get("loc", ()))])
            for e in exc.errors()
        ]
        return FhirResponse(outcome(*issues), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "exception")
        detail = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404:
            detail = "No such endpoint (FHIR base is /fhir)"
        return FhirResponse(outcome(issue("error", code, detail)), exc.status_code, dict(exc.headers or {}))

    # Connection-level failures of PostgreSQL or Redis (refused, reset, server shutting down or starting up, pool
    # timeout) are 503 + Retry-After, never 500. They arrive wrapped by SQLAlchemy, raw from asyncpg (the fast read
    # path, connect-time errors, a pool release on a dead connection) or from redis-py. Handlers on these classes
    # run in the exception middleware, so an outage neither logs an ASGI crash per request nor makes uvicorn drop
    # the client's keep-alive connection; the catch-all checks the chain too, for wrappers of other types.
    async def database_down(request: Request, exc: Exception) -> Response:
        if _is_connection_error(exc):
            return _unavailable(exc)
        state = _sqlstate(exc) or ""
        if state.startswith("22"):  # data exception: a value PostgreSQL cannot take (NUL, range)
            return _bad_value(exc)
        if state == "23505":  # unique violation: the same new id written twice (one Bundle, or two clients at once)
            log.info("duplicate write refused: %s", str(_root(exc)).split("\n", 1)[0])
            return outcome_response(
                Conflict("The same resource was created twice at once (in this request or by another); retry")
            )
        if state in ("40P01", "40001"):  # deadlock / serialization failure: the transaction was rolled back whole
            log.info("concurrent write collided (%s): %s", state, str(_root(exc)).split("\n", 1)[0])
            return outcome_response(Conflict("A concurrent change collided with this one; nothing was changed, "
                                             "retry", headers={"Retry-After": "1"}))
        return _internal_error(request, exc)

    for kind in _BACKEND_ERRORS:
        app.add_exception_handler(kind, database_down)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return await database_down(request, exc)


def _unavailable(exc: Exception) -> Response:
    log.warning("backing service unavailable: %s: %s", type(exc).__name__, str(exc).split("\n", 1)[0])
    err = Unavailable("The database or Redis is temporarily unavailable; retry shortly", headers={"Retry-After": "2"})
    return outcome_response(err)


def _bad_value(exc: Exception) -> Response:
    """SQLSTATE class 22 (e.g. a NUL character, a number out of range) comes from a value the client sent."""
    detail = str(_root(exc)).split("\n", 1)[0][:200]
    log.info("value refused by the database: %s", detail)
    return outcome_response(Invalid(f"A value in the request cannot be stored or searched: {detail}"))


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _sqlstate(exc: BaseException) -> str | None:
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
        current = current.__cause__ or getattr(current, "orig", None)
    return None


def _internal_error(request: Request, exc: Exception) -> Response:
    request_id = getattr(request.state, "request_id", "-")
    log.exception("unhandled error (request %s)", request_id, exc_info=exc)
    return FhirResponse(outcome(issue("fatal", "exception", f"Internal error; reference {request_id}")), 500)


def _backend_errors() -> tuple[type[Exception], ...]:
    import asyncpg
    import redis.exceptions
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return (
        OperationalError,
        DBAPIError,
        PoolTimeout,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        redis.exceptions.RedisError,
        ConnectionError,
        TimeoutError,
    )


def _connection_types() -> tuple[type[Exception], ...]:
    import asyncpg
    import redis.exceptions
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    # asyncpg's InternalClientError ("cannot switch to state …; another operation is in progress") is a connection
    # whose protocol state broke when the server went away mid-operation: the pool discards it, a retry succeeds.
    return (
        ConnectionError,
        TimeoutError,
        PoolTimeout,
        asyncpg.InternalClientError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )


_BACKEND_ERRORS = _backend_errors()
_CONNECTION_TYPES = _connection_types()
# SQLSTATE class 08 (connection exception), 57P01-03 (admin/crash shutdown, cannot connect now), 53300 (too many
# connections): the server is going away or not there yet.
_TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")
_CONNECTION_TEXTS = (
    "connection refused",
    "connection was closed",
    "cannot connect",
    "terminating connection",
    "connection is closed",
    "server closed the connection",
    "connect call failed",
    "the database system is",
    "connectionreseterror",
    "timeout",
)


def _is_connection_error(exc: BaseException) -> bool:
    """A lost or refused PostgreSQL/Redis connection anywhere in the exception's chain (cause, context, orig)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False) or isinstance(current, _CONNECTION_TYPES):
            return True
        sqlstate = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return True
        if any(s in str(current).lower() for s in _CONNECTION_TEXTS):
            return True
        current = current.__cause__ or current.__context__ or getattr(current, "orig", None)
    return False


class HubApp(FastAPI):
    """The FastAPI app, with its hottest requests served ahead of the middleware stack (hub/fhir/hot_paths.py):
    through the same request context, then straight to their endpoints."""

    hot_paths: HotPaths | None = None
    hot_entry: RequestContextMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hot_paths is not None and self.hot_entry is not None:
            found = self.hot_paths.match(scope["method"], scope["path"])
            if found is not None:
                scope["app"] = self
                scope["endpoint"], scope["path_params"] = found
                await self.hot_entry(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _install_middleware(app: HubApp, settings: Settings) -> None:
    in_flight = InFlight(settings.max_in_flight)
    app.add_middleware(RequestContextMiddleware, settings=settings, in_flight=in_flight)
    app.hot_entry = RequestContextMiddleware(hot_paths.serve, settings, in_flight)


class InFlight:
    """Requests being served by this process, against its capacity (shared by both ways into the app)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0


class RequestContextMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware on the hot path): request id, body-size limit, back-pressure.

    Past `max_in_flight` concurrent requests the process answers 503 + Retry-After at once instead of queueing.
    """

    def __init__(self, app: ASGIApp, settings: Settings, in_flight: InFlight) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id")
        request_id = given.decode("latin-1")[:64] if given else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = logs.request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [500]
        length = headers.get(b"content-length")
        if length and length.isdigit() and int(length) > self.max_body:
            await _send_outcome(send, TooLarge(f"Request body exceeds {self.max_body} bytes"), request_id)
            return
        in_flight = self.in_flight
        if in_flight.count >= in_flight.capacity:
            await _send_outcome(
                send, Unavailable("The hub is at capacity; retry shortly", headers={"Retry-After": "1"}), request_id
            )
            return
        if scope["path"].startswith("/fhir"):
            try:
                check_format(_format_param(scope), (headers.get(b"accept") or b"").decode("latin-1") or None)
            except HubError as err:
                await _send_outcome(send, err, request_id)
                return
            scope["state"]["negotiated"] = True
        in_flight.count += 1
        rid_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid_header]
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            in_flight.count -= 1
            logs.request_id_var.reset(token)
            metrics.observe(scope["method"], scope["path"], status_holder[0], time.perf_counter() - started)


_ids = itertools.count(1)
_id_prefix: tuple[int, str] = (0, "")


def _new_request_id() -> str:
    """32 hex digits, unique across processes: a random prefix per process and a counter (uuid4 reads
    os.urandom on every request)."""
    global _id_prefix
    if _id_prefix[0] != os.getpid():  # a forked worker draws its own prefix
        _id_prefix = (os.getpid(), os.urandom(8).hex())
    return f"{_id_prefix[1]}{next(_ids):016x}"


def _format_param(scope: Scope) -> str | None:
    query = scope.get("query_string", b"")
    if b"_format=" not in query:
        return None
    from urllib.parse import parse_qs

    values = parse_qs(query.decode("latin-1")).get("_format")
    return str(values[0]) if values else None


async def _send_outcome(send: Send, err: HubError, request_id: str) -> None:
    response = outcome_response(err)
    response.headers["X-Request-Id"] = request_id
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
