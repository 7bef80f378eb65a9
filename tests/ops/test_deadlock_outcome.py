"""A deadlock or serialization failure in PostgreSQL rolls the whole transaction back: the client gets 409 with
Retry-After and an OperationOutcome saying nothing was changed — not a 500. Provoked for real: two transactions
locking two rows in opposite order, inside a request handled by the hub app."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response


async def _deadlocking_endpoint(request: Request) -> Response:
    engine = request.app.state.runtime.engine
    async with engine.connect() as first, engine.connect() as second:
        await first.execute(text("SELECT pg_advisory_xact_lock(1)"))
        await second.execute(text("SELECT pg_advisory_xact_lock(2)"))
        # each now waits for the lock the other holds: PostgreSQL aborts one of them (deadlock_timeout, 1 s).
        # Both statements are awaited to the end before the error goes on: closing a connection whose statement
        # is still running would break it (and the pool would hand it to a later test).
        outcomes = await asyncio.gather(first.execute(text("SELECT pg_advisory_xact_lock(2)")),
                                        second.execute(text("SELECT pg_advisory_xact_lock(1)")),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    return Response("unreachable")


@pytest.mark.parametrize("hub_session", ["postgresql"], indirect=True)  # SQLite writers queue in the hub instead
async def test_a_deadlock_is_a_409_to_retry(hub: Any) -> None:
    hub.app.router.add_route("/test-deadlock", _deadlocking_endpoint, methods=["GET"])
    try:
        r = await hub.client.get("/test-deadlock")
    finally:
        hub.app.router.routes.pop()
    assert r.status_code == 409, r.text
    assert r.headers["retry-after"] == "1"
    body = r.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "conflict"
    assert "nothing was changed" in body["issue"][0]["diagnostics"]
