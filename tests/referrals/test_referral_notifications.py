"""Requester notifications: rest-hook Subscriptions get every Task change, HMAC-signed, retried with exponential
backoff against a flaky receiver, and dead-lettered visibly (delivery row + Subscription.status=error)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
import respx
from referral_factories import AGB, GP_ORG, post_referral, provider_headers, resource
from sqlalchemy import select

from hub.referrals import notify
from hub.referrals.policy import configure, policy_of
from hub.referrals.tables import referral_deliveries
from hub.worker import utcnow

HOOK = "https://receiver.test/zorgnet"
SECRET = "s3cret-shared-with-the-gp-system"


@pytest.fixture
def slow_retries(hub):
    """Retries far in the future, so only the test's explicit `deliver(..., now)` calls make attempts."""
    before = policy_of(hub.runtime)
    configure(hub.runtime, replace(before, notify_backoff=timedelta(hours=1),
                                       notify_backoff_cap=timedelta(hours=12), notify_max_attempts=4))
    yield
    configure(hub.runtime, before)


async def subscribe(hub: Any, org: str, role: str = "gp", secret: str | None = SECRET) -> str:
    sub = {"resourceType": "Subscription", "status": "requested", "reason": "follow my referrals",
           "criteria": "Task?code=http://terminology.hl7.org/CodeSystem/task-code|fulfill",
           "channel": {"type": "rest-hook", "endpoint": HOOK, "payload": "application/fhir+json",
                       "header": ["X-Receiver-Token: abc"]}}
    r = await hub.client.post("/fhir/Subscription", json=sub, headers=hub.headers(role, org))
    assert r.status_code == 201, r.text
    if secret:
        body = {"resourceType": "Parameters", "parameter": [{"name": "secret", "valueString": secret}]}
        s = await hub.client.post(f"/fhir/Subscription/{r.json()['id']}/$set-secret", json=body,
                                  headers=hub.headers(role, org))
        assert s.status_code == 200, s.text
    sub_id: str = r.json()["id"]
    return sub_id


async def deliveries(hub: Any) -> list[Any]:
    async with hub.runtime.engine.connect() as conn:
        return list((await conn.execute(select(referral_deliveries).order_by(referral_deliveries.c.id))).all())


async def deliver_all(hub: Any, days_later: int) -> list[str]:
    """Run every pending delivery as if `days_later` days had passed (time is driven, never slept)."""
    now = utcnow() + timedelta(days=days_later)
    return [await notify.deliver(hub.runtime, d.id, now) for d in await deliveries(hub) if d.status == "pending"]


class Receiver:
    """A fake third-party endpoint (respx) that checks every signature and can be made to fail."""

    def __init__(self) -> None:
        self.status = 500
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        expected = "sha256=" + hmac.new(SECRET.encode(), request.content, hashlib.sha256).hexdigest()
        assert request.headers["X-Hub-Signature-256"] == expected
        assert request.headers["X-Receiver-Token"] == "abc"
        self.received.append(request)
        return httpx.Response(self.status)


async def test_notifications_are_signed_and_retried_with_backoff_until_delivered(hub, region, slow_retries):
    sub_id = await subscribe(hub, GP_ORG)
    bystander = await subscribe(hub, f"{AGB}|73730003", role="vvt-provider")  # not asked: hears nothing
    receiver = Receiver()
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK).mock(side_effect=receiver)
        sr = await post_referral(hub)
        first = await deliveries(hub)
        assert {d.subscription_id for d in first} == {sub_id} and bystander not in {d.subscription_id for d in first}
        assert {d.status for d in first} == {"pending"} and {d.attempts for d in first} == {1}
        assert all("HTTP 500" in d.last_error for d in first)
        delay_1 = [d.next_attempt - d.created for d in first]

        assert set(await deliver_all(hub, 1)) == {"pending"}
        second = await deliveries(hub)
        delay_2 = [d.next_attempt - d.created - timedelta(days=1) for d in second]
        assert all(b - a > timedelta(minutes=50) for a, b in zip(delay_1, delay_2, strict=True))  # 1 h, then 2 h

        receiver.status = 200
        assert set(await deliver_all(hub, 2)) == {"delivered"}
    final = await deliveries(hub)
    assert {d.status for d in final} == {"delivered"} and {d.attempts for d in final} == {3}
    events = [orjson.loads(r.content) for r in receiver.received if r.content]
    assert {(e["resourceType"], e["focus"]["reference"]) for e in events} == {("Task", f"ServiceRequest/{sr['id']}")}
    assert {e["status"] for e in events} >= {"in-progress", "requested"}
    assert (await resource(hub, "Subscription", sub_id))["status"] == "active"


async def test_undeliverable_notifications_are_dead_lettered_and_the_subscription_shows_the_error(
        hub, region, slow_retries):
    sub_id = await subscribe(hub, GP_ORG)
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK).mock(return_value=httpx.Response(503))
        await post_referral(hub)
        for day in range(1, 4):
            await deliver_all(hub, day)
    dead = await deliveries(hub)
    assert {d.status for d in dead} == {"dead"}
    assert (dead[0].attempts, dead[0].last_error) == (4, f"HTTP 503 from {HOOK}")
    assert all("no longer active" in d.last_error for d in dead[1:])  # the Subscription is in error: stop
    sub = await resource(hub, "Subscription", sub_id)
    assert sub["status"] == "error" and "HTTP 503" in sub["error"]


async def test_a_refusing_receiver_is_dead_lettered_at_once_and_secrets_are_owner_only(hub, region, slow_retries):
    sub_id = await subscribe(hub, GP_ORG)
    body = {"resourceType": "Parameters", "parameter": [{"name": "secret", "valueString": "x" * 20}]}
    other = await hub.client.post(f"/fhir/Subscription/{sub_id}/$set-secret", json=body,
                                  headers=provider_headers(hub, "73730001"))
    assert other.status_code == 403
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK).mock(return_value=httpx.Response(410))
        await post_referral(hub)
    assert {(d.status, d.attempts) for d in await deliveries(hub)} == {("dead", 1)}
