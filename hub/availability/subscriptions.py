"""R4 Subscriptions (rest-hook) on availability changes.

Criteria: `HealthcareService/$availability` with optional `product` (codes, comma-separated), `organization`
(Organization/<id>) and `region`, e.g. `HealthcareService/$availability?product=elv-hoog&region=Drenthe`.
Subscriptions with other criteria are left to other packages (referrals handles `Task?...`).

Every aggregate change a Subscription selects enqueues `availability.deliver_change` in the writing transaction
(outbox: dispatched after commit; Celery in production, in-process embedded). The task POSTs the *current*
MeasureReport of that provider × product × region to channel.endpoint (no body when channel.payload is absent),
with channel.header lines as headers. Transient failures (network, 408, 429, 5xx) are retried through the outbox
with exponential backoff (1 s, 2 s, 4 s, ... up to MAX_ATTEMPTS); after that, or on another 4xx, the
Subscription is set to `status = error` with the reason in `Subscription.error`. Delivery is at-least-once and
idempotent for the receiver (the same current figure again).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
from sqlalchemy import delete, insert, select, update

from hub.availability import vocabulary as v
from hub.availability.aggregate import Changes, row_json
from hub.availability.errors import BadAvailabilityQuery
from hub.availability.live import live_of
from hub.availability.reports import measure_report
from hub.availability.sources import Key
from hub.availability.tables import availability_rows, availability_subscriptions
from hub.errors import BusinessRule, Conflict, Gone, NotFound, PreconditionFailed
from hub.security.context import AccessContext
from hub.store.sql import utcnow

log = logging.getLogger("hub.availability.subscriptions")
SYSTEM = AccessContext.system("availability: subscription delivery")
DELIVER = "availability.deliver_change"
MAX_ATTEMPTS = 6
TIMEOUT = 10.0


@dataclass(frozen=True)
class AvailabilitySubscription:
    id: str
    products: frozenset[str] | None
    org_id: str | None
    region: str | None
    endpoint: str
    payload: str | None
    headers: tuple[tuple[str, str], ...]

    def selects(self, row: dict[str, Any]) -> bool:
        return ((self.products is None or row["product"] in self.products)
                and (self.org_id is None or row["org_id"] == self.org_id)
                and (self.region is None or row["region"] == self.region))


def is_availability_subscription(subscription: dict[str, Any] | None) -> bool:
    criteria = str((subscription or {}).get("criteria") or "")
    return criteria.split("?", 1)[0].strip() == v.SUBSCRIPTION_CRITERIA


def columns_of(subscription: dict[str, Any]) -> dict[str, Any]:
    """The row kept for one availability Subscription; bad criteria or channel -> 422."""
    query = dict(parse_qsl(str(subscription["criteria"]).partition("?")[2]))
    unknown = set(query) - {"product", "organization", "region"}
    if unknown:
        raise BadAvailabilityQuery(f"Subscription criteria parameter(s) {', '.join(sorted(unknown))} are not "
                                   "supported (product, organization, region)", expression=["Subscription.criteria"])
    channel = subscription.get("channel") or {}
    endpoint = str(channel.get("endpoint") or "")
    if channel.get("type") != "rest-hook" or urlsplit(endpoint).scheme not in ("http", "https"):
        raise BusinessRule("An availability Subscription needs channel.type rest-hook and an http(s) endpoint",
                           expression=["Subscription.channel"])
    headers = [h for h in channel.get("header") or [] if isinstance(h, str) and ":" in h]
    return {
        "subscription_id": subscription["id"], "product": query.get("product") or None,
        "org_id": (query.get("organization") or "").removeprefix("Organization/") or None,
        "region": query.get("region") or None, "endpoint": endpoint[:400], "payload": channel.get("payload"),
        "headers": "\n".join(headers), "active": subscription.get("status") in ("requested", "active"),
    }


def subscription_of_row(row: Any) -> AvailabilitySubscription:
    headers = tuple((name.strip(), value.strip()) for name, _, value in
                    (line.partition(":") for line in row.headers.split("\n") if line))
    return AvailabilitySubscription(
        id=row.subscription_id, products=frozenset(row.product.split(",")) if row.product else None,
        org_id=row.org_id, region=row.region, endpoint=row.endpoint, payload=row.payload, headers=headers)


async def record(uow: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Write hook for Subscription: keep availability_subscriptions in step with the resource."""
    if not (is_availability_subscription(before) or is_availability_subscription(after)):
        return
    sub_id = str((after or before or {})["id"])
    t = availability_subscriptions
    await uow.conn.execute(delete(t).where(t.c.subscription_id == sub_id))
    if after is not None and is_availability_subscription(after):
        await uow.conn.execute(insert(t).values(**columns_of(after)))
    live = live_of(uow.runtime)
    live.forget_subscriptions()

    async def forget() -> None:
        live.forget_subscriptions()

    uow.after_commit(forget)


async def would_notify(uow: Any, keys: Iterable[Key]) -> bool:
    """Whether an active Subscription selects one of these aggregate rows. Its deliveries are enqueued in the
    writing transaction (`notify`), so a write that would commit on its own statement must not (bed_status.py)."""
    subscriptions = await live_of(uow.runtime).subscriptions(uow.conn)
    return any(s.selects({"org_id": k.org_id, "product": k.product, "region": k.region})
               for s in subscriptions for k in keys)


async def notify(uow: Any, changes: Changes) -> None:
    """Enqueue one delivery per changed row and selecting Subscription (same transaction as the change)."""
    if not changes.rows:
        return
    subscriptions = await live_of(uow.runtime).subscriptions(uow.conn)
    for row in changes.rows.values():
        for subscription in subscriptions:
            if subscription.selects(row):
                await uow.enqueue(DELIVER, subscription.id, row["org_id"], row["product"], row["region"], "1")


async def deliver(runtime: Any, sub_id: str, org_id: str, product: str, region: str, attempt: int) -> None:
    """Send the current figure of one row to one Subscription (the task body)."""
    t, r = availability_subscriptions, availability_rows
    async with runtime.engine.connect() as conn:
        sub_row = (await conn.execute(select(t).where(t.c.subscription_id == sub_id))).first()
        row = (await conn.execute(select(r).where(r.c.org_id == org_id, r.c.product == product,
                                                  r.c.region == region))).first()
    if sub_row is None or not sub_row.active or row is None:
        return
    subscription = subscription_of_row(sub_row)
    live = live_of(runtime)
    report = measure_report(row_json(row), products=live.products, now=utcnow(),
                            stale_after=timedelta(minutes=runtime.settings.stale_after_minutes))
    error = await send(subscription, report)
    if error is None:
        async with runtime.engine.begin() as conn:
            await conn.execute(update(t).where(t.c.subscription_id == sub_id)
                               .values(delivered=utcnow(), last_error=None))
        return
    transient, reason = error
    if transient and attempt < MAX_ATTEMPTS:
        async with runtime.uow() as uow:
            await uow.conn.execute(update(t).where(t.c.subscription_id == sub_id).values(last_error=reason))
            await uow.enqueue(DELIVER, sub_id, org_id, product, region, str(attempt + 1),
                              delay=timedelta(seconds=2 ** (attempt - 1)))
        log.info("availability notification to %s failed (%s); retry %d", subscription.endpoint, reason, attempt)
        return
    await _give_up(runtime, sub_id, f"Delivery to {subscription.endpoint} failed after {attempt} attempt(s): {reason}")


async def send(subscription: AvailabilitySubscription, report: dict[str, Any]) -> tuple[bool, str] | None:
    """POST one notification: None on success, else (transient?, reason)."""
    headers = dict(subscription.headers)
    body = b""
    if subscription.payload:
        headers["Content-Type"] = "application/fhir+json"
        body = orjson.dumps(report)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(subscription.endpoint, content=body, headers=headers)
    except httpx.TransportError as exc:
        return True, f"{type(exc).__name__}: {exc}"
    if response.status_code < 300:
        return None
    transient = response.status_code in (408, 429) or response.status_code >= 500
    return transient, f"HTTP {response.status_code}"


async def _give_up(runtime: Any, sub_id: str, reason: str) -> None:
    """Dead end: the Subscription goes to status error (the hook then takes it out of delivery)."""
    log.warning("availability Subscription/%s: %s", sub_id, reason)
    try:
        async with runtime.uow() as uow:
            subscription = await uow.resources.read(SYSTEM, "Subscription", sub_id)
            await uow.resources.update(SYSTEM, {**subscription, "status": "error", "error": reason[:1000]})
    except (NotFound, Gone, Conflict, PreconditionFailed) as exc:
        log.info("could not set Subscription/%s to error: %s", sub_id, exc)
