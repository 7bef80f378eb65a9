"""The referral and offer rows: load them, and move a referral on by compare-and-set on its `step`.

Every transition of one referral (route, offer, accept, decline, expire, cancel) first `claim`s the referral
row: `UPDATE referrals SET step = step + 1 WHERE sr_id = :id AND step = :seen`. On PostgreSQL the winner
holds that row lock until it commits, so transitions of one referral are serialised across processes; the
loser re-reads the committed state and either proceeds or refuses. SQLite serialises writers already.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.referrals.errors import ReferralChanged, ReferralNotActive
from hub.referrals.tables import referral_offers, referrals

CLAIM_ATTEMPTS = 5


@dataclass(frozen=True)
class Referral:
    sr_id: str
    task_id: str
    state: str
    step: int
    offer_id: str | None
    deadline: datetime | None
    offers: int
    tried: tuple[str, ...]
    requester_org: str | None


def _referral(row: Any) -> Referral:
    return Referral(row.sr_id, row.task_id, row.state, row.step, row.offer_id, row.deadline, row.offers,
                    tuple(orjson.loads(row.tried)), row.requester_org)


async def load(conn: AsyncConnection, sr_id: str) -> Referral | None:
    row = (await conn.execute(select(referrals).where(referrals.c.sr_id == sr_id))).first()
    return None if row is None else _referral(row)


async def create(conn: AsyncConnection, sr_id: str, task_id: str, requester_org: str | None,
                 now: datetime) -> None:
    await conn.execute(insert(referrals).values(
        sr_id=sr_id, task_id=task_id, state="routing", step=0, offers=0, tried=b"[]", requester_org=requester_org,
        created=now, updated=now))


async def claim(conn: AsyncConnection, sr_id: str, allowed: Iterable[str], now: datetime) -> Referral:
    """Take the referral for one transition; ReferralNotActive when its state does not allow it."""
    allowed = frozenset(allowed)
    for _ in range(CLAIM_ATTEMPTS):
        current = await load(conn, sr_id)
        if current is None:
            raise ReferralNotActive(f"ServiceRequest/{sr_id} is not a routed referral")
        if current.state not in allowed:
            raise ReferralNotActive(f"The referral for ServiceRequest/{sr_id} is '{current.state}'; "
                                    f"this needs one of: {', '.join(sorted(allowed))}")
        result = await conn.execute(
            update(referrals).where(referrals.c.sr_id == sr_id, referrals.c.step == current.step)
            .values(step=current.step + 1, updated=now))
        if result.rowcount == 1:
            return Referral(**{**current.__dict__, "step": current.step + 1})
    raise ReferralChanged(f"The referral for ServiceRequest/{sr_id} kept changing; retry")


async def advance(conn: AsyncConnection, referral: Referral, now: datetime, **values: Any) -> Referral:
    """Write the referral's new state (it was claimed in this transaction, so the step still matches)."""
    if "tried" in values:
        values["tried"] = orjson.dumps(list(values["tried"]))
    result = await conn.execute(
        update(referrals).where(referrals.c.sr_id == referral.sr_id, referrals.c.step == referral.step)
        .values(step=referral.step + 1, updated=now, **values))
    if result.rowcount != 1:
        raise ReferralChanged(f"The referral for ServiceRequest/{referral.sr_id} changed meanwhile")
    fresh = await load(conn, referral.sr_id)
    assert fresh is not None
    return fresh


# ------------------------------------------------------------------------------------------------ offers
@dataclass(frozen=True)
class OfferRow:
    offer_id: str
    sr_id: str
    provider: str
    kind: str
    bed_id: str | None
    service_id: str | None
    state: str
    deadline: datetime


async def record_offer(conn: AsyncConnection, offer: OfferRow, now: datetime) -> None:
    await conn.execute(insert(referral_offers).values(**offer.__dict__, created=now))


async def offer(conn: AsyncConnection, offer_id: str) -> OfferRow | None:
    row = (await conn.execute(select(referral_offers).where(referral_offers.c.offer_id == offer_id))).first()
    if row is None:
        return None
    return OfferRow(row.offer_id, row.sr_id, row.provider, row.kind, row.bed_id, row.service_id, row.state,
                    row.deadline)


async def set_offer(conn: AsyncConnection, offer_id: str, **values: Any) -> None:
    await conn.execute(update(referral_offers).where(referral_offers.c.offer_id == offer_id).values(**values))


async def recent_offers(conn: AsyncConnection, since: datetime) -> dict[str, int]:
    """Offers per provider since a moment (the fairness term)."""
    rows = (await conn.execute(
        select(referral_offers.c.provider, func.count()).where(referral_offers.c.created >= since)
        .group_by(referral_offers.c.provider))).all()
    return {str(provider): int(n) for provider, n in rows}


async def due_offers(conn: AsyncConnection, now: datetime, limit: int = 200) -> list[str]:
    """Open offers past their response deadline (the sweep behind the per-offer deadline rows)."""
    rows = (await conn.execute(
        select(referral_offers.c.offer_id).where(referral_offers.c.state == "open", referral_offers.c.deadline <= now)
        .order_by(referral_offers.c.deadline).limit(limit))).all()
    return [str(r.offer_id) for r in rows]
