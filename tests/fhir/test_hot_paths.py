"""The hottest requests skip the FastAPI middleware stack (hub/fhir/hot_paths.py) and still answer exactly as the
full stack would: request id, back-pressure, OperationOutcomes from the app's own exception handlers."""

from __future__ import annotations

from typing import Any

import pytest

from hub.fhir import endpoints as fhir_endpoints
from tests.conftest import Hub

BED = {"resourceType": "Location", "status": "active", "name": "Bed hot",
       "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U"}}


def test_matcher_takes_only_the_hot_patterns(hub: Hub) -> None:
    hot = hub.app.hot_paths  # type: ignore[attr-defined]
    endpoint, params = hot.match("GET", "/fhir/Location/abc-1")
    assert endpoint is fhir_endpoints.read_by_id and params == {"res_type": "Location", "res_id": "abc-1"}
    assert hot.match("POST", "/fhir/Location")[0] is fhir_endpoints.create_by_type
    assert hot.match("POST", "/fhir/Location/b1/$set-status")[1] == {"location_id": "b1"}
    assert hot.match("HEAD", "/fhir/Location/x")[0] is fhir_endpoints.read_by_id  # as the router answered HEAD
    for method, path in [("GET", "/fhir/Location/$availability"), ("GET", "/fhir/Location/_history"),
                         ("GET", "/fhir/AuditEvent/x"), ("DELETE", "/fhir/Location/x"),
                         ("GET", "/fhir/metadata"), ("POST", "/fhir"), ("GET", "/fhir/Location/x/_history/1")]:
        assert hot.match(method, path) is None, (method, path)


async def test_hot_requests_do_not_enter_the_middleware_stack(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_stack(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the middleware stack was entered")

    monkeypatch.setattr(hub.app, "middleware_stack", broken_stack)  # type: ignore[attr-defined]
    created = await hub.client.post("/fhir/Location", json=BED, headers=hub.headers())
    assert created.status_code == 201
    read = await hub.client.get(created.headers["location"].split("/_history")[0].replace("http://hub.test", ""),
                                headers=hub.headers())
    assert read.status_code == 200 and read.json()["name"] == "Bed hot"
    with pytest.raises(AssertionError, match="middleware stack"):
        await hub.client.get("/fhir/metadata")


async def test_hot_errors_are_the_apps_operation_outcomes_with_the_request_id(hub: Hub) -> None:
    no_token = await hub.client.post("/fhir/Location", json=BED, headers={"X-Request-Id": "trace-1"})
    assert no_token.status_code == 401 and no_token.headers["x-request-id"] == "trace-1"
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert no_token.json()["resourceType"] == "OperationOutcome"
    invalid = await hub.client.post("/fhir/Location", json={**BED, "status": 7}, headers=hub.headers())
    assert invalid.status_code in (400, 422) and invalid.json()["issue"][0]["expression"]
    assert len(invalid.headers["x-request-id"]) == 32
    unknown = await hub.client.get("/fhir/Location/nope", headers=hub.headers())
    assert unknown.status_code == 404 and unknown.json()["issue"][0]["code"] == "not-found"
    xml = await hub.client.get("/fhir/Location/nope", headers={**hub.headers(), "Accept": "application/fhir+xml"})
    assert xml.status_code == 406
    ids = {r.headers["x-request-id"] for r in (invalid, unknown, xml)}
    assert len(ids) == 3  # fresh ids are unique


async def test_an_unexpected_error_is_a_500_outcome(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(fhir_endpoints, "validate", boom)
    r = await hub.client.post("/fhir/Location", json=BED, headers={**hub.headers(), "X-Request-Id": "trace-2"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "trace-2"
    assert r.json()["issue"][0]["severity"] == "fatal" and "trace-2" in r.json()["issue"][0]["diagnostics"]


async def test_both_ways_in_share_one_capacity(hub: Hub) -> None:
    in_flight = hub.app.hot_entry.in_flight  # type: ignore[attr-defined]
    in_flight.count = in_flight.capacity  # as if that many requests were being served
    try:
        hot = await hub.client.post("/fhir/Location", json=BED, headers=hub.headers())
        normal = await hub.client.get("/fhir/metadata")
    finally:
        in_flight.count = 0
    for r in (hot, normal):
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["issue"][0]["code"] == "transient"
    after = await hub.client.post("/fhir/Location", json=BED, headers=hub.headers())
    assert after.status_code == 201
