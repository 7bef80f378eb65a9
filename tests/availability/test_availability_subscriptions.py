"""R4 Subscription (rest-hook) delivery of availability changes; respx fakes the partner's receiver."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import respx
from availability_factories import add_provider, eventually, set_status
from sqlalchemy import select

from hub.availability import vocabulary as v
from hub.availability.subscriptions import AvailabilitySubscription, send
from hub.availability.tables import availability_subscriptions

RECEIVER = "https://partner.example/availability-hook"


def subscription(criteria: str, *, payload: bool = True) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": RECEIVER, "header": ["Authorization: Bearer partner-1"]}
    if payload:
        channel["payload"] = "application/fhir+json"
    return {"resourceType": "Subscription", "status": "requested", "reason": "bed dashboard of the partner",
            "criteria": criteria, "channel": channel}


async def subscribe(hub: Any, criteria: str, **kw: Any) -> dict[str, Any]:
    r = await hub.client.post("/fhir/Subscription", json=subscription(criteria, **kw),
                              headers=hub.headers("coordinator"))
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def test_matching_change_is_delivered_as_measure_report_with_the_channel_header(hub):
    provider = await add_provider(hub, "73400001", "Zorg Partner", {"elv-hoog": "UU", "grz": "U"})
    await subscribe(hub, f"{v.SUBSCRIPTION_CRITERIA}?product=elv-hoog")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(RECEIVER).respond(200)
        await set_status(hub, provider, provider.beds["73400001/grz/1"], "O")  # not selected: other product
        await set_status(hub, provider, provider.beds["73400001/elv-hoog/1"], "O")

        async def delivered() -> bool:
            return route.call_count >= 1

        await eventually(delivered, what="delivery")
        await hub.runtime.dispatcher.drain(5)
    assert route.call_count == 1
    request = route.calls[0].request
    assert request.headers["authorization"] == "Bearer partner-1"
    assert request.headers["content-type"] == "application/fhir+json"
    report = orjson.loads(request.content)
    assert report["resourceType"] == "MeasureReport" and report["reporter"]["reference"] == provider.ref
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]}
    assert counts == {"numTotBeds": 2, "numTotBedsOcc": 1, "numTotBedsAvail": 1}


async def test_transient_failure_is_retried_then_delivered(hub):
    provider = await add_provider(hub, "73400002", "Zorg Retry", {"wmo-kv": "UU"})
    sub = await subscribe(hub, f"{v.SUBSCRIPTION_CRITERIA}?organization={provider.ref}", payload=False)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(RECEIVER).mock(side_effect=[httpx.Response(503), httpx.Response(204)])
        await set_status(hub, provider, provider.beds["73400002/wmo-kv/2"], "H")

        async def second_call() -> bool:
            return route.call_count >= 2

        await eventually(second_call, timeout=10, what="a retry")
        await hub.runtime.dispatcher.drain(5)
    assert route.call_count == 2
    assert route.calls[1].request.content == b""  # no payload asked: an empty notification
    row = (await hub_row(hub, sub["id"]))
    assert row.delivered is not None and row.last_error is None


async def test_network_errors_and_429_count_as_transient_other_4xx_do_not():
    target = AvailabilitySubscription("s", None, None, None, RECEIVER, None, ())
    with respx.mock() as mock:
        mock.post(RECEIVER).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(429),
                                              httpx.Response(404), httpx.Response(200)])
        assert [await send(target, {}) for _ in range(4)] == [
            (True, "ConnectError: refused"), (True, "HTTP 429"), (False, "HTTP 404"), None]


async def test_receiver_refusing_for_good_puts_the_subscription_in_error(hub):
    provider = await add_provider(hub, "73400003", "Zorg Fout", {"grz": "U"})
    sub = await subscribe(hub, f"{v.SUBSCRIPTION_CRITERIA}?region=Drenthe")
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(RECEIVER).respond(410)
        await set_status(hub, provider, provider.beds["73400003/grz/1"], "O")

        async def in_error() -> bool:
            current = await hub.client.get(f"/fhir/Subscription/{sub['id']}", headers=hub.headers("coordinator"))
            return bool(current.json()["status"] == "error")

        await eventually(in_error, what="Subscription status error")
        await hub.runtime.dispatcher.drain(5)
    assert route.call_count == 1
    current = (await hub.client.get(f"/fhir/Subscription/{sub['id']}", headers=hub.headers("coordinator"))).json()
    assert "HTTP 410" in current["error"]
    assert (await hub_row(hub, sub["id"])).active is False


async def test_bad_availability_subscription_is_refused(hub):
    bad = subscription(f"{v.SUBSCRIPTION_CRITERIA}?colour=red")
    r = await hub.client.post("/fhir/Subscription", json=bad, headers=hub.headers("coordinator"))
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Subscription.criteria"]
    email = {**subscription(v.SUBSCRIPTION_CRITERIA), "channel": {"type": "email", "endpoint": "mailto:x@y.nl"}}
    r = await hub.client.post("/fhir/Subscription", json=email, headers=hub.headers("coordinator"))
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "business-rule"
    assert await hub.count(availability_subscriptions) == 0


async def hub_row(hub: Any, sub_id: str) -> Any:
    async with hub.runtime.engine.connect() as conn:
        t = availability_subscriptions
        return (await conn.execute(select(t).where(t.c.subscription_id == sub_id))).one()
