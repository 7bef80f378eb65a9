"""Routing: start a referral when its ServiceRequest becomes active, then offer it to the best provider that
can still be held, cascading until a provider accepts or the list is exhausted (then a person takes over).

start (in the ServiceRequest's own transaction): referral row + referral Task + outbox row "route".
route (a task; idempotent): claim the referral in state `routing`, match, rank, hold the first bed that can
still be held (compare-and-set), create the offer Task, move to `offered`, schedule the deadline.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import orjson

from hub.referrals import fhir_tasks, guard, ledger, matching, notify, ranking, reservations
from hub.referrals.errors import NotRequester, ReferralNotActive
from hub.referrals.intake import ReferralRequest, parse
from hub.referrals.ledger import OfferRow, Referral
from hub.referrals.policy import policy_of
from hub.security.context import AccessContext
from hub.store.uow import UnitOfWork

log = logging.getLogger("hub.referrals")
SYSTEM = AccessContext.system("referrals: routing")
ROUTE = "referrals.route_referral"
EXPIRE = "referrals.expire_offer"


async def start(uow: UnitOfWork, sr: dict[str, Any], requester_org: str | None, now: datetime) -> None:
    """Durably begin routing a new active referral, in the transaction that stored it."""
    if await ledger.load(uow.conn, str(sr["id"])) is not None:
        return
    request = parse(sr)
    task_id = str(uuid.uuid4())
    guard.allow_task_writes(uow)
    await ledger.create(uow.conn, request.sr_id, task_id, requester_org, now)
    task = fhir_tasks.referral_task(task_id, request, policy_of(uow.runtime), now)
    created = await uow.resources.create(SYSTEM, task, res_id=task_id)
    await notify.task_changed(uow, created.stored)
    await uow.enqueue(ROUTE, request.sr_id)


async def route(uow: UnitOfWork, sr_id: str, now: datetime) -> str:
    """One routing step; returns the referral's state afterwards (no-op unless it is `routing`)."""
    try:
        referral = await ledger.claim(uow.conn, sr_id, {"routing"}, now)
    except ReferralNotActive:
        current = await ledger.load(uow.conn, sr_id)
        return current.state if current else "unknown"
    guard.allow_task_writes(uow)
    policy = policy_of(uow.runtime)
    request = parse(await uow.resources.read(SYSTEM, "ServiceRequest", sr_id))
    if request.needs_triage:
        return await needs_person(uow, referral, "The care product or urgency needs triage by a person", now)
    if referral.offers >= policy.max_offers:
        return await needs_person(uow, referral, f"{referral.offers} offers made without acceptance", now)
    candidates = await matching.find_candidates(uow, request, exclude=set(referral.tried))
    recent = await ledger.recent_offers(uow.conn, now - policy.fairness_window)
    ranked = ranking.rank(candidates, request, policy, recent, now)
    home = await matching.home_alternatives(uow, request, policy)
    for position, choice in enumerate(ranked, start=1):
        if await _offer(uow, referral, request, choice, ranked, position, home, now):
            return "offered"
    tried = f" ({len(referral.tried)} provider(s) already asked)" if referral.tried else ""
    reason = f"No provider with a free {request.product} bed that meets the needs{tried}"
    return await needs_person(uow, referral, reason, now, home=home)


async def _offer(uow: UnitOfWork, referral: Referral, request: ReferralRequest, choice: ranking.Ranked,
                 ranked: list[ranking.Ranked], position: int, home: list[matching.HomeOption], now: datetime) -> bool:
    """Hold capacity at one provider and create its offer; False when nothing there can be held any more."""
    policy = policy_of(uow.runtime)
    cand = choice.candidate
    offer_id = str(uuid.uuid4())
    deadline = now + policy.response_window(request.acute)
    held_any, bed = await _hold(uow, cand, offer_id, deadline, now)
    if not held_any:
        return False
    number = referral.offers + 1
    explanation = choice.explain(position, len(ranked))
    held = fhir_tasks.held_input(cand, bed.bed_id if bed else None, bed.name if bed else None)
    offer = fhir_tasks.offer_task(offer_id, number, request, referral.task_id, cand, held, explanation, deadline, now)
    created = await uow.resources.create(SYSTEM, offer, res_id=offer_id)
    await ledger.record_offer(uow.conn, OfferRow(offer_id, request.sr_id, cand.provider, cand.kind,
                                                 bed.bed_id if bed else None, cand.service_id, "open", deadline), now)
    await ledger.advance(uow.conn, referral, now, state="offered", offer_id=offer_id, deadline=deadline,
                         offers=number, tried=[*referral.tried, cand.provider])
    note = [{"text": "Ranking: " + " | ".join(r.explain(i, len(ranked)) for i, r in enumerate(ranked, start=1))}]
    await update_referral_task(uow, referral.task_id, now, status="in-progress", state="offered",
                               reason=f"Offer {number} sent to {cand.name}; answer due {deadline:%Y-%m-%d %H:%M} UTC",
                               note=note, input=fhir_tasks.home_inputs(home) or None)
    await notify.task_changed(uow, created.stored)
    await uow.enqueue(EXPIRE, offer_id, delay=deadline - now)
    return True


async def _hold(uow: UnitOfWork, cand: matching.Candidate, offer_id: str, deadline: datetime,
                now: datetime) -> tuple[bool, matching.BedOption | None]:
    """(held?, the bed reserved): a bed-level provider holds a bed, a count-only provider one counted place."""
    if cand.kind == "bed":
        for bed in cand.beds:
            if await reservations.reserve_bed(uow, bed.bed_id, offer_id, deadline):
                return True, bed
        return False, None
    assert cand.service_id and cand.report
    return await reservations.hold_count(uow.conn, cand.service_id, cand.report, cand.free, now), None


async def needs_person(uow: UnitOfWork, referral: Referral, reason: str, now: datetime,
                       home: list[matching.HomeOption] | None = None) -> str:
    """The list is exhausted (or triage is needed): alert the coordination point, show the request as waiting."""
    await ledger.advance(uow.conn, referral, now, state="needs-person", offer_id=None, deadline=None)
    await update_referral_task(uow, referral.task_id, now, status="on-hold", state="needs-person",
                               reason=f"Needs a person at the coordination point: {reason}",
                               input=fhir_tasks.home_inputs(home or []) or None)
    log.warning("referral ServiceRequest/%s needs a person: %s", referral.sr_id, reason)
    return "needs-person"


async def update_referral_task(uow: UnitOfWork, task_id: str, now: datetime, *, status: str, state: str,
                               reason: str | None = None, **extra: Any) -> None:
    """Move the requester's referral Task along (the hub writes it; clients only read it)."""
    stored = await uow.resources.read_raw(SYSTEM, "Task", task_id, audit_read=False)
    task = orjson.loads(stored.content)
    changes = {k: val for k, val in extra.items() if val is not None}
    saved = await uow.resources.update(SYSTEM, fhir_tasks.with_state(task, status=status, state=state, now=now,
                                                                     reason=reason, **changes),
                                       if_match=stored.version)
    await notify.task_changed(uow, saved.stored)


async def reroute(uow: UnitOfWork, ctx: AccessContext, sr_id: str, now: datetime) -> str:
    """Coordination point: try again after new availability (providers that declined are asked again too)."""
    if not (ctx.is_system or ctx.role in ("coordinator", "admin")):
        raise NotRequester("Only the coordination point may restart routing")
    referral = await ledger.claim(uow.conn, sr_id, {"needs-person"}, now)
    guard.allow_task_writes(uow)
    await ledger.advance(uow.conn, referral, now, state="routing", offers=0, tried=[])
    await update_referral_task(uow, referral.task_id, now, status="in-progress", state="routing",
                               reason="Routing restarted by the coordination point")
    await uow.enqueue(ROUTE, sr_id)
    return referral.task_id
