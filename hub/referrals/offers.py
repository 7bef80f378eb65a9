"""The offer state machine, enforced by the server (the rule reads the same from HTTP, ingest or a task).

    offer Task:  requested --$accept (owner)--> accepted --$cancel (requester/coordinator)--> cancelled
                 requested --$decline (owner, reason)--> rejected          -> cascade to the next provider
                 requested --deadline passed (hub)--> failed (expired)     -> cascade to the next provider
                 requested --$cancel (requester/coordinator)--> cancelled
    referral:    routing -> offered -> accepted | routing (cascade) | needs-person;  any open state -> cancelled

Every transition claims the referral row first (compare-and-set, see ledger.py), checks If-Match against the
Task it acts on, writes the Task with compare-and-set on its version, releases or confirms the hold, and
enqueues the notifications and follow-up work in the same transaction. Anything refused writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from hub.errors import Gone, NotFound, PreconditionFailed
from hub.fhir.indexing import date_range
from hub.referrals import fhir_tasks, guard, ledger, notify, reservations, routing
from hub.referrals import vocabulary as v
from hub.referrals.errors import (
    BedNotAvailable,
    MissingParameter,
    NotAnOffer,
    NotOfferOwner,
    NotRequester,
    OfferNotOpen,
    ReferralNotActive,
)
from hub.referrals.intake import requester_key
from hub.referrals.ledger import OfferRow, Referral
from hub.referrals.policy import policy_of
from hub.security.context import AccessContext
from hub.store.repository import StoredResource
from hub.store.uow import UnitOfWork

SYSTEM = AccessContext.system("referrals: offer transition")
OPEN_STATES = ("routing", "offered", "accepted", "needs-person")


async def _load_task(uow: UnitOfWork, ctx: AccessContext, task_id: str) -> tuple[StoredResource, dict[str, Any]]:
    stored = await uow.resources.read_raw(ctx, "Task", task_id, audit_read=False)
    return stored, orjson.loads(stored.content)


def _check_version(stored: StoredResource, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != stored.version:
        raise PreconditionFailed(f"Task/{stored.res_id} is at version {stored.version}, not {expected_version} "
                                 "(If-Match)", headers={"ETag": stored.etag})


async def _owned_offer(uow: UnitOfWork, ctx: AccessContext, offer_id: str,
                       expected_version: int | None) -> tuple[StoredResource, dict[str, Any], OfferRow]:
    """The offer Task, checked in the order: exists (404), is an offer (422), caller owns it (403),
    If-Match (412), still open (409)."""
    stored, task = await _load_task(uow, ctx, offer_id)
    row = await ledger.offer(uow.conn, offer_id)
    if row is None or v.identifier_value(task, v.OFFER_SYSTEM) is None:
        raise NotAnOffer(f"Task/{offer_id} is not a bed offer; only offers are accepted or declined")
    if not await _is_owner(uow, ctx, row.provider):
        raise NotOfferOwner(f"Task/{offer_id} is addressed to {task.get('owner', {}).get('display') or row.provider}; "
                            "only that organisation may answer it")
    _check_version(stored, expected_version)
    if task.get("status") != "requested" or row.state != "open":
        raise OfferNotOpen(f"Task/{offer_id} is '{task.get('status')}', no longer open for an answer")
    return stored, task, row


async def _is_owner(uow: UnitOfWork, ctx: AccessContext, provider: str) -> bool:
    if not ctx.org or ctx.is_system:
        return False
    try:
        org = await uow.resources.read(SYSTEM, "Organization", provider.split("/")[-1])
    except (NotFound, Gone):
        return False
    return ctx.org in {f"{i.get('system')}|{i.get('value')}" for i in org.get("identifier") or []}


async def _claim_for(uow: UnitOfWork, row: OfferRow, now: datetime) -> Referral:
    try:
        referral = await ledger.claim(uow.conn, row.sr_id, {"offered"}, now)
    except ReferralNotActive:
        raise OfferNotOpen(f"Task/{row.offer_id} is no longer the open offer of its referral") from None
    if referral.offer_id != row.offer_id:
        raise OfferNotOpen(f"Task/{row.offer_id} is no longer the open offer of its referral")
    guard.allow_task_writes(uow)
    return referral


async def accept(uow: UnitOfWork, ctx: AccessContext, offer_id: str, *, expected_version: int | None,
                 bed: str | None, admission: str | None, now: datetime) -> StoredResource:
    """The provider takes the patient: confirm the bed until admission, close the referral as placed."""
    if not admission:
        raise MissingParameter("$accept needs 'admission' (valueDateTime): when the patient is admitted")
    admitted = _parse_instant(admission, "admission")
    stored, task, row = await _owned_offer(uow, ctx, offer_id, expected_version)
    referral = await _claim_for(uow, row, now)
    bed_id = bed.split("/")[-1] if bed else row.bed_id
    until = max(admitted, now) + policy_of(uow.runtime).accepted_hold
    if bed_id and not await reservations.confirm_bed(uow, bed_id, offer_id, until, row.provider):
        raise BedNotAvailable(f"Location/{bed_id} is not free for this offer (not this provider's, occupied, "
                              "or reserved for another referral)")
    if row.bed_id and bed_id != row.bed_id:
        await reservations.release_bed(uow, row.bed_id, offer_id)
    bed_display = await _bed_name(uow, bed_id)
    output = fhir_tasks.outputs(bed_id, bed_display, admission)
    saved = await uow.resources.update(ctx, fhir_tasks.with_state(
        task, status="accepted", state="accepted", now=now, reason="Accepted by the provider", output=output),
        if_match=stored.version)
    await ledger.set_offer(uow.conn, offer_id, state="accepted", bed_id=bed_id)
    await ledger.advance(uow.conn, referral, now, state="accepted", deadline=None)
    name = task.get("owner", {}).get("display") or row.provider
    await routing.update_referral_task(uow, referral.task_id, now, status="completed", state="accepted",
                                       reason=f"Placed: {name} accepted, admission {admission}", output=output)
    await notify.task_changed(uow, saved.stored)
    return saved.stored


async def decline(uow: UnitOfWork, ctx: AccessContext, offer_id: str, *, expected_version: int | None,
                  reason: str | None, now: datetime) -> StoredResource:
    """The provider declines with a reason: release the hold and cascade to the next provider."""
    if not reason:
        raise MissingParameter("$decline needs a 'reason' (valueString or valueCodeableConcept)")
    stored, task, row = await _owned_offer(uow, ctx, offer_id, expected_version)
    referral = await _claim_for(uow, row, now)
    saved = await uow.resources.update(ctx, fhir_tasks.with_state(
        task, status="rejected", state="declined", now=now, reason=reason), if_match=stored.version)
    await _cascade(uow, referral, row, "declined", f"{task.get('owner', {}).get('display')} declined: {reason}", now)
    await notify.task_changed(uow, saved.stored)
    return saved.stored


async def expire(uow: UnitOfWork, offer_id: str, now: datetime) -> bool:
    """Deadline passed without an answer: the offer fails, the hold is released, the next provider is asked."""
    row = await ledger.offer(uow.conn, offer_id)
    if row is None or row.state != "open" or row.deadline > now:
        return False
    referral = await _claim_for(uow, row, now)
    stored = await uow.resources.read_raw(SYSTEM, "Task", offer_id, audit_read=False)
    task = orjson.loads(stored.content)
    saved = await uow.resources.update(SYSTEM, fhir_tasks.with_state(
        task, status="failed", state="expired", now=now, reason="No answer before the response deadline"),
        if_match=stored.version)
    await _cascade(uow, referral, row, "expired", f"{task.get('owner', {}).get('display')} did not answer in time", now)
    await notify.task_changed(uow, saved.stored)
    return True


async def _cascade(uow: UnitOfWork, referral: Referral, row: OfferRow, state: str, why: str, now: datetime) -> None:
    await _release(uow, row, now)
    await ledger.set_offer(uow.conn, row.offer_id, state=state)
    await ledger.advance(uow.conn, referral, now, state="routing", offer_id=None, deadline=None)
    await routing.update_referral_task(uow, referral.task_id, now, status="in-progress", state="routing",
                                       reason=f"{why}; asking the next provider")
    await uow.enqueue(routing.ROUTE, referral.sr_id)


async def _release(uow: UnitOfWork, row: OfferRow, now: datetime) -> None:
    if row.bed_id:
        await reservations.release_bed(uow, row.bed_id, row.offer_id)
    if row.kind == "count" and row.service_id and row.state == "open":
        await reservations.release_count(uow.conn, row.service_id, now)


async def cancel(uow: UnitOfWork, ctx: AccessContext, task_id: str, *, expected_version: int | None,
                 reason: str | None, now: datetime) -> StoredResource:
    """The requester (or the coordination point) withdraws the referral: everything held is released."""
    stored, task = await _load_task(uow, ctx, task_id)
    sr_id = str((task.get("focus") or {}).get("reference", "")).split("/")[-1]
    ours = v.identifier_value(task, v.OFFER_SYSTEM) or v.identifier_value(task, v.REFERRAL_TASK_SYSTEM)
    referral = await ledger.load(uow.conn, sr_id) if ours else None
    if referral is None:
        raise NotAnOffer(f"Task/{task_id} is not a referral or offer Task")
    if not (ctx.is_system or ctx.role in ("coordinator", "admin") or await _is_requester(uow, ctx, referral)):
        raise NotRequester("Only the requesting organisation or the coordination point may cancel a referral")
    _check_version(stored, expected_version)
    await withdraw(uow, sr_id, reason or "Cancelled by the requester", now, revoke_request=True)
    return await uow.resources.read_raw(SYSTEM, "Task", task_id, audit_read=False)


async def _is_requester(uow: UnitOfWork, ctx: AccessContext, referral: Referral) -> bool:
    """The organisation that submitted the request, or the one its requester identifier names."""
    if not ctx.org:
        return False
    sr = await uow.resources.read(SYSTEM, "ServiceRequest", referral.sr_id)
    return ctx.org in (referral.requester_org, requester_key(sr))


async def withdraw(uow: UnitOfWork, sr_id: str, reason: str, now: datetime, *, revoke_request: bool) -> None:
    """Cancel a referral in any open state: the open or accepted offer is cancelled and its hold released."""
    try:
        referral = await ledger.claim(uow.conn, sr_id, OPEN_STATES, now)
    except ReferralNotActive as exc:
        raise ReferralNotActive(f"Nothing to cancel: {exc.diagnostics}") from None
    guard.allow_task_writes(uow)
    if referral.offer_id:
        row = await ledger.offer(uow.conn, referral.offer_id)
        if row is not None and row.state in ("open", "accepted"):
            await _release(uow, row, now)
            await ledger.set_offer(uow.conn, row.offer_id, state="cancelled")
            offer = await uow.resources.read_raw(SYSTEM, "Task", row.offer_id, audit_read=False)
            saved = await uow.resources.update(SYSTEM, fhir_tasks.with_state(
                orjson.loads(offer.content), status="cancelled", state="cancelled", now=now, reason=reason),
                if_match=offer.version)
            await notify.task_changed(uow, saved.stored)
    await ledger.advance(uow.conn, referral, now, state="cancelled", offer_id=None, deadline=None)
    await routing.update_referral_task(uow, referral.task_id, now, status="cancelled", state="cancelled",
                                       reason=reason)
    if revoke_request:
        sr = await uow.resources.read(SYSTEM, "ServiceRequest", sr_id)
        if sr.get("status") in ("active", "draft", "on-hold"):
            await uow.resources.update(SYSTEM, {**sr, "status": "revoked"})


async def expire_due(uow: UnitOfWork, now: datetime) -> list[str]:
    """Offer ids past their deadline (the sweep; each is then expired in its own unit of work)."""
    return await ledger.due_offers(uow.conn, now)


async def _bed_name(uow: UnitOfWork, bed_id: str | None) -> str | None:
    if not bed_id:
        return None
    bed = await uow.resources.read(SYSTEM, "Location", bed_id)
    return str(bed.get("name") or bed_id)


def _parse_instant(value: str, name: str) -> datetime:
    try:
        return date_range(value)[0]
    except ValueError:
        raise MissingParameter(f"'{name}' must be a FHIR dateTime, not '{value}'") from None
