"""Thin task shells: open a unit of work, load by id, call the service. Idempotent; ids only.

A transition that lost a race to another one of the same referral (ReferralChanged, OfferNotOpen) ends the task
quietly: the other transition did the work and its own follow-up is already in the outbox.
"""

from __future__ import annotations

import logging
from datetime import datetime

from hub.referrals import notify, offers, routing
from hub.referrals.errors import OfferNotOpen, ReferralChanged
from hub.runtime import Runtime
from hub.worker import task, utcnow

log = logging.getLogger("hub.referrals.tasks")


@task(routing.ROUTE)
async def route_referral(runtime: Runtime, sr_id: str) -> None:
    try:
        async with runtime.uow() as uow:
            state = await routing.route(uow, sr_id, utcnow())
        log.info("referral ServiceRequest/%s routed: %s", sr_id, state)
    except ReferralChanged as exc:
        log.info("routing ServiceRequest/%s lost a race: %s", sr_id, exc.diagnostics)


@task(routing.EXPIRE)
async def expire_offer(runtime: Runtime, offer_id: str) -> None:
    await expire_one(runtime, offer_id)


@task("referrals.sweep_deadlines", every=60)
async def sweep_deadlines(runtime: Runtime) -> None:
    """Safety net behind the per-offer deadline rows: expire every open offer past its deadline."""
    await expire_due_offers(runtime)


@task(notify.FAN_OUT)
async def fan_out_notification(runtime: Runtime, task_id: str, version: str) -> None:
    async with runtime.uow() as uow:
        await notify.fan_out(uow, task_id, int(version), utcnow())


@task(notify.DELIVER)
async def deliver_notification(runtime: Runtime, delivery_id: str) -> None:
    await notify.deliver(runtime, int(delivery_id), utcnow())


async def expire_one(runtime: Runtime, offer_id: str, now: datetime | None = None) -> bool:
    """Expire one offer if it is still open and past its deadline (deadline rows and the sweep both land here)."""
    try:
        async with runtime.uow() as uow:
            return await offers.expire(uow, offer_id, now or utcnow())
    except (ReferralChanged, OfferNotOpen) as exc:
        log.info("expiring Task/%s: %s", offer_id, exc.diagnostics)
        return False


async def expire_due_offers(runtime: Runtime, now: datetime | None = None) -> int:
    """Expire all open offers whose deadline is before `now` (default: the clock); returns how many."""
    moment = now or utcnow()
    async with runtime.uow() as uow:
        due = await offers.expire_due(uow, moment)
    expired = 0
    for offer_id in due:
        expired += await expire_one(runtime, offer_id, moment)
    return expired
