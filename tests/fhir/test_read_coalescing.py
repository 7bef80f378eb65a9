"""PostgreSQL point reads (GET Type/id) that arrive together share round trips (hub/store/fast.py); each
request still gets exactly its own resource, or its own 404."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.parametrize("hub_session", ["postgresql"], indirect=True)


async def test_concurrent_reads_share_round_trips_and_each_gets_its_own_resource(hub):
    headers = hub.headers()
    created = [
        (await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": f"RC {i}"},
                               headers=headers)).json()
        for i in range(30)
    ]
    fast = hub.runtime.fast
    before = fast.round_trips
    ids = [c["id"] for c in created] + ["does-not-exist-1", "does-not-exist-2"]
    responses = await asyncio.gather(*(hub.client.get(f"/fhir/Location/{i}", headers=headers) for i in ids))
    for resource, response in zip(created, responses[:30], strict=True):
        assert response.status_code == 200 and response.json() == resource
        assert response.headers["ETag"] == 'W/"1"'
    assert [r.status_code for r in responses[30:]] == [404, 404]
    assert responses[30].json()["resourceType"] == "OperationOutcome"
    assert fast.round_trips - before < len(ids), "concurrent reads were expected to share round trips"


async def test_a_failed_round_trip_fails_only_the_reads_it_carried(hub):
    headers = hub.headers()
    created = (await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": "RC ok"},
                                     headers=headers)).json()
    fast = hub.runtime.fast
    real_fetch, calls = fast._fetch, []

    async def failing_once(keys):
        calls.append(keys)
        if len(calls) == 1:
            raise ConnectionResetError("connection lost")
        return await real_fetch(keys)

    fast._fetch = failing_once
    try:
        first = await hub.client.get(f"/fhir/Location/{created['id']}", headers=headers)
        second = await hub.client.get(f"/fhir/Location/{created['id']}", headers=headers)
    finally:
        fast._fetch = real_fetch
    assert first.status_code == 503 and first.json()["resourceType"] == "OperationOutcome"
    assert first.headers.get("Retry-After")
    assert second.status_code == 200 and second.json() == created
