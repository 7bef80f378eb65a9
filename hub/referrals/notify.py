"""Telling the requester (and provider, and coordination point) about every change of a referral's Tasks.

Each Task write enqueues `fan_out` (same transaction). Fan-out matches active rest-hook Subscriptions whose
criteria select the changed Task (`Task?focus=ServiceRequest/123`, evaluated by the core search with `_id`) and
whose owning organisation is a party (requester, offer owner, coordination point), and writes one delivery row
each. `deliver` POSTs the Task version (or an empty body when channel.payload is absent), signed with
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` using the secret the subscriber set with
`Subscription/{id}/$set-secret`. Transient failures (network, 408, 429, 5xx, no secret yet) are retried with
exponential backoff through the outbox (`due`), so retries survive restarts; after `notify_max_attempts`, or on
another 4xx, the delivery is dead-lettered (status `dead`, last_error kept) and the Subscription is set to
`status = error` with the reason in `Subscription.error`. Delivery is at-least-once: receivers de-duplicate
on `X-Hub-Delivery`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
from sqlalchemy import insert, select, update

from hub.errors import Conflict, Forbidden, Gone, HubError, NotFound, PreconditionFailed
from hub.fhir import interactions
from hub.referrals import ledger
from hub.referrals.intake import requester_key
from hub.referrals.policy import policy_of
from hub.referrals.tables import referral_deliveries, webhook_secrets
from hub.runtime import Runtime
from hub.security.context import AccessContext
from hub.store.repository import StoredResource
from hub.store.uow import UnitOfWork

log = logging.getLogger("hub.referrals.notify")
SYSTEM = AccessContext.system("referrals: notifications")
FAN_OUT = "referrals.fan_out_notification"
DELIVER = "referrals.deliver_notification"
SIGNATURE_HEADER = "X-Hub-Signature-256"


async def task_changed(uow: UnitOfWork, stored: StoredResource) -> None:
    """Schedule notifications for this Task version (dispatched after commit)."""
    await uow.enqueue(FAN_OUT, stored.res_id, str(stored.version))


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value a receiver recomputes to verify the notification."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------------------------ fan-out
async def fan_out(uow: UnitOfWork, task_id: str, version: int, now: datetime) -> list[int]:
    """Create one delivery per matching, entitled Subscription (idempotent) and schedule them."""
    try:
        stored = await uow.resources.vread_raw(SYSTEM, "Task", task_id, version)
    except (NotFound, Gone):
        return []  # the Task is gone: nothing to tell
    task = orjson.loads(stored.content)
    parties = await _parties(uow, task)
    subscriptions = await interactions.search(uow, SYSTEM, "Subscription", [
        ("status", "requested,active"), ("type", "rest-hook"), ("_count", "500")], strict=True)
    created: list[int] = []
    for sub_stored in subscriptions.result.matches:
        sub = orjson.loads(sub_stored.content)
        if sub_stored.owner_org is not None and sub_stored.owner_org not in parties:
            continue
        if not await _selects(uow, str(sub.get("criteria", "")), task_id):
            continue
        delivery_id = await _delivery(uow, sub_stored.res_id, task_id, version, now)
        if delivery_id is not None:
            created.append(delivery_id)
            await uow.enqueue(DELIVER, str(delivery_id))
    return created


async def _parties(uow: UnitOfWork, task: dict[str, Any]) -> set[str]:
    """Organisations entitled to hear about this Task: requester, coordination point, the offer's owner."""
    parties = {policy_of(uow.runtime).coordinator_org}
    sr_id = str((task.get("focus") or {}).get("reference", "")).split("/")[-1]
    referral = await ledger.load(uow.conn, sr_id)
    if referral and referral.requester_org:
        parties.add(referral.requester_org)
    try:
        named = requester_key(await uow.resources.read(SYSTEM, "ServiceRequest", sr_id))
        parties |= {named} if named else set()
    except (NotFound, Gone):
        pass
    owner = str((task.get("owner") or {}).get("reference", ""))
    if owner.startswith("Organization/"):
        try:
            org = await uow.resources.read(SYSTEM, "Organization", owner.split("/")[1])
            parties |= {f"{i.get('system')}|{i.get('value')}" for i in org.get("identifier") or []}
        except (NotFound, Gone):
            pass
    return parties


async def _selects(uow: UnitOfWork, criteria: str, task_id: str) -> bool:
    res_type, _, query = criteria.partition("?")
    if res_type.strip() != "Task":
        return False
    items = [(k, val) for k, val in parse_qsl(query, keep_blank_values=True) if k not in ("_count", "_sort")]
    try:
        found = await interactions.search(uow, SYSTEM, "Task", [*items, ("_id", task_id)], strict=True)
    except HubError as exc:
        log.info("subscription criteria '%s' cannot be evaluated: %s", criteria, exc.diagnostics)
        return False
    return bool(found.result.matches)


async def _delivery(uow: UnitOfWork, subscription_id: str, task_id: str, version: int, now: datetime) -> int | None:
    t = referral_deliveries
    existing = (await uow.conn.execute(select(t.c.id).where(
        t.c.subscription_id == subscription_id, t.c.task_id == task_id, t.c.task_version == version))).first()
    if existing is not None:
        return None
    return int((await uow.conn.execute(insert(t).values(
        subscription_id=subscription_id, task_id=task_id, task_version=version, status="pending", attempts=0,
        next_attempt=now, created=now).returning(t.c.id))).scalar_one())


# ------------------------------------------------------------------------------------------------ delivery
@dataclass(frozen=True)
class Attempt:
    delivery_id: int
    attempts: int
    subscription: dict[str, Any]
    body: bytes
    secret: str | None


async def deliver(runtime: Runtime, delivery_id: int, now: datetime) -> str:
    """One delivery attempt; returns the delivery's status afterwards (pending | delivered | dead | not-due)."""
    async with runtime.uow() as uow:
        attempt = await _prepare(uow, delivery_id, now)
    if isinstance(attempt, str):
        return attempt
    error, permanent = await _post(runtime, attempt)
    async with runtime.uow() as uow:
        return await _record(uow, attempt, error, permanent, now)


async def _prepare(uow: UnitOfWork, delivery_id: int, now: datetime) -> Attempt | str:
    t = referral_deliveries
    row = (await uow.conn.execute(select(t).where(t.c.id == delivery_id))).first()
    if row is None or row.status != "pending":
        return "missing" if row is None else str(row.status)
    if row.next_attempt > now:
        return "not-due"
    try:
        sub = await uow.resources.read(SYSTEM, "Subscription", row.subscription_id)
    except (NotFound, Gone):
        sub = {}
    body = b""
    if sub and (sub.get("channel") or {}).get("payload"):
        body = (await uow.resources.vread_raw(SYSTEM, "Task", row.task_id, row.task_version)).content
    secret = (await uow.conn.execute(select(webhook_secrets.c.secret).where(
        webhook_secrets.c.subscription_id == row.subscription_id))).scalar()
    return Attempt(delivery_id, row.attempts, sub, body, secret)


async def _post(runtime: Runtime, attempt: Attempt) -> tuple[str | None, bool]:
    """(error or None, is the error permanent?)"""
    sub = attempt.subscription
    if not sub or sub.get("status") not in ("requested", "active"):
        return "the Subscription is gone or no longer active", True
    if not attempt.secret:
        return f"no signing secret set (POST Subscription/{sub.get('id')}/$set-secret)", False
    channel = sub.get("channel") or {}
    headers = {"Content-Type": str(channel.get("payload") or "application/fhir+json"),
               SIGNATURE_HEADER: sign(attempt.secret, attempt.body), "X-Hub-Delivery": str(attempt.delivery_id)}
    for line in channel.get("header") or []:
        name, _, value = str(line).partition(":")
        if name.strip() and name.strip().lower() not in ("content-type", SIGNATURE_HEADER.lower()):
            headers[name.strip()] = value.strip()
    try:
        async with httpx.AsyncClient(timeout=policy_of(runtime).notify_timeout_seconds) as client:
            response = await client.post(str(channel.get("endpoint")), content=attempt.body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}", False
    if response.is_success:
        return None, False
    transient = response.status_code in (408, 429) or response.status_code >= 500
    return f"HTTP {response.status_code} from {channel.get('endpoint')}", not transient


async def _record(uow: UnitOfWork, attempt: Attempt, error: str | None, permanent: bool, now: datetime) -> str:
    policy = policy_of(uow.runtime)
    attempts = attempt.attempts + 1
    values: dict[str, Any]
    if error is None:
        status, values = "delivered", {"delivered": now, "last_error": None}
    elif permanent or attempts >= policy.notify_max_attempts:
        status, values = "dead", {"last_error": error}
    else:
        status, values = "pending", {"last_error": error, "next_attempt": now + policy.retry_delay(attempts)}
    t = referral_deliveries
    result = await uow.conn.execute(update(t).where(t.c.id == attempt.delivery_id, t.c.attempts == attempt.attempts,
                                                    t.c.status == "pending")
                                    .values(status=status, attempts=attempts, **values))
    if result.rowcount != 1:
        return "raced"  # another run of the same delivery recorded first
    if status == "pending":
        await uow.enqueue(DELIVER, str(attempt.delivery_id), delay=policy.retry_delay(attempts))
    elif attempt.subscription:
        await _subscription_state(uow, attempt.subscription, "active" if status == "delivered" else "error", error)
    if status == "dead":
        log.warning("notification %s dead-lettered after %s attempt(s): %s", attempt.delivery_id, attempts, error)
    return status


async def _subscription_state(uow: UnitOfWork, sub: dict[str, Any], status: str, error: str | None) -> None:
    """requested -> active on the first delivery; -> error (with the reason) when a delivery is dead-lettered."""
    if sub.get("status") == status and status == "active":
        return
    try:
        current = await uow.resources.read_raw(SYSTEM, "Subscription", str(sub["id"]), audit_read=False)
        fresh = orjson.loads(current.content)
        if fresh.get("status") not in ("requested", "active") or (status == "active" and fresh["status"] == "active"):
            return
        changed = {**fresh, "status": status}
        if error:
            changed["error"] = f"Notification delivery failed: {error}"
        await uow.resources.update(SYSTEM, changed, if_match=current.version)
    except (Conflict, PreconditionFailed, NotFound, Gone):
        log.info("Subscription/%s changed meanwhile; status %s not recorded", sub.get("id"), status)


# ------------------------------------------------------------------------------------------------ secrets
async def set_secret(uow: UnitOfWork, ctx: AccessContext, subscription_id: str, secret: str | None,
                     now: datetime) -> None:
    """Register the HMAC secret for a Subscription (write-only; only its owner or an admin may set it)."""
    from hub.referrals.errors import MissingParameter

    if not secret or len(secret) < 16:
        raise MissingParameter("$set-secret needs 'secret' (valueString, at least 16 characters)")
    stored = await uow.resources.read_raw(ctx, "Subscription", subscription_id, audit_read=False)
    if not (ctx.is_system or ctx.role == "admin" or (ctx.org and ctx.org == stored.owner_org)):
        raise Forbidden(f"Only the organisation that owns Subscription/{subscription_id} may set its secret")
    t = webhook_secrets
    changed = await uow.conn.execute(update(t).where(t.c.subscription_id == subscription_id)
                                     .values(secret=secret, updated=now))
    if changed.rowcount == 0:
        await uow.conn.execute(insert(t).values(subscription_id=subscription_id, secret=secret, updated=now))
