"""Health, readiness, metrics, request ids in logs, rate limiting (Redis and embedded)."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.conftest import make_settings, start_hub


async def test_health_ready_and_request_id(hub):
    assert (await hub.client.get("/health")).status_code == 200
    ready = await hub.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["resourceType"] == "OperationOutcome"
    r = await hub.client.get("/fhir/metadata", headers={"X-Request-Id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


async def test_metrics_count_interactions(hub, location_factory):
    created = (await hub.client.post("/fhir/Location", json=location_factory(), headers=hub.headers())).json()
    await hub.client.get(f"/fhir/Location/{created['id']}", headers=hub.headers())
    body = (await hub.client.get("/metrics")).text
    assert 'hub_requests_total{interaction="read",method="GET",status="200"}' in body
    assert 'hub_requests_total{interaction="create",method="POST",status="201"}' in body
    assert "hub_outbox_pending" in body and "hub_request_seconds_bucket" in body


async def test_ready_is_503_when_redis_is_down(tmp_path):
    settings = make_settings("sqlite", tmp_path, None, redis_url="redis://127.0.0.1:1/0", task_mode="inprocess")
    async for hub in start_hub("sqlite", settings):
        r = await hub.client.get("/ready")
        assert r.status_code == 503 and "redis" in r.json()["issue"][0]["diagnostics"]
        assert r.headers["retry-after"]


@pytest.mark.parametrize("use_redis", [False, True])
async def test_rate_limit_answers_429_with_retry_after(tmp_path, request, use_redis):
    redis_url = request.getfixturevalue("redis_url") if use_redis else None
    settings = make_settings(
        "sqlite", tmp_path, None, rate_limit_per_minute=5, redis_url=redis_url, task_mode="inprocess"
    )
    async for hub in start_hub("sqlite", settings):
        token = hub.token("admin", subject=f"rl-{use_redis}-{uuid.uuid4().hex}")
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [(await hub.client.get("/fhir/Organization", headers=headers)).status_code for _ in range(7)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]
        limited = await hub.client.get("/fhir/Organization", headers=headers)
        assert limited.json()["issue"][0]["code"] == "throttled" and int(limited.headers["retry-after"]) >= 1
        other = hub.token("admin", subject=f"other-{use_redis}-{tmp_path.name}")
        assert (
            await hub.client.get("/fhir/Organization", headers={"Authorization": f"Bearer {other}"})
        ).status_code == 200


def test_json_log_lines_carry_the_request_id(caplog):
    from hub.ops.logs import JsonFormatter, request_id_var

    token = request_id_var.set("req-42")
    try:
        record = logging.LogRecord("hub", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        line = JsonFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert '"request_id":"req-42"' in line and '"msg":"hello world"' in line


async def test_metrics_report_availability_freshness_and_referral_states(hub):
    from tests.conftest import AGB

    org = {"resourceType": "Organization", "name": "Metriek Zorg", "identifier": [{"system": AGB, "value": "73799999"}]}
    org_id = (await hub.client.post("/fhir/Organization", json=org, headers=hub.headers())).json()["id"]
    bed = {"resourceType": "Location", "status": "active", "name": "Bed M",
           "operationalStatus": {"system": "http://terminology.hl7.org/CodeSystem/v2-0116", "code": "U"},
           "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                        "code": "bd"}]},
           "extension": [{"url": "https://zorgnet-hub.nl/fhir/StructureDefinition/care-product",
                          "valueCoding": {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/care-product",
                                          "code": "elv-hoog"}}],
           "managingOrganization": {"reference": f"Organization/{org_id}"}}
    assert (await hub.client.post("/fhir/Location", json=bed, headers=hub.headers())).status_code == 201
    from datetime import datetime, timedelta

    from sqlalchemy import update

    from hub.availability.tables import availability_rows

    def gauge(body: str, name: str) -> float:
        return float(next(line for line in body.splitlines() if line.startswith(name + " ")).split()[1])

    fresh = (await hub.client.get("/metrics")).text
    assert gauge(fresh, "hub_availability_stale_sources") == 0
    assert 0 < gauge(fresh, "hub_availability_oldest_update_seconds") < 600
    async with hub.runtime.engine.begin() as conn:  # the provider falls silent for two days
        await conn.execute(update(availability_rows).values(last_update=datetime.utcnow() - timedelta(days=2)))
    silent = (await hub.client.get("/metrics")).text
    assert gauge(silent, "hub_availability_stale_sources") >= 1
    assert gauge(silent, "hub_availability_oldest_update_seconds") > 86_400
