"""Holding capacity for an offer, with database-level guarantees.

Beds: a compare-and-set update of the bed Location (`update(..., if_match=version)`), adding the
bed-reservation extension (reserved-for -> the offer Task, until) and operationalStatus bed-status-extra#reserved.
Two referrals racing for one bed both send `UPDATE ... WHERE version = v`; one row changes, the other gets
409/412 and tries the next bed. The availability hook sees the same write, so a reserved bed is not free anywhere.

Counts (providers that publish MeasureReports, not beds): `UPDATE referral_capacity SET held = held + 1
WHERE service_id = :s AND held < free`, so a count is never held more often than it is free.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, Gone, NotFound, PreconditionFailed
from hub.referrals import vocabulary as v
from hub.referrals.tables import referral_capacity, referral_offers
from hub.security.context import AccessContext
from hub.store.sql import instant
from hub.store.uow import UnitOfWork

log = logging.getLogger("hub.referrals.reservations")
SYSTEM = AccessContext.system("referrals: bed reservation")
RETRIES = 3


def reservation_of(bed: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in bed.get("extension") or [] if e.get("url") == v.BED_RESERVATION_EXT), None)


def reserved_for(bed: dict[str, Any]) -> str | None:
    ext = reservation_of(bed)
    for sub in (ext or {}).get("extension") or []:
        if sub.get("url") == "reserved-for":
            return str((sub.get("valueReference") or {}).get("reference"))
    return None


def is_bed(location: dict[str, Any]) -> bool:
    codings = (location.get("physicalType") or {}).get("coding") or []
    return any(c.get("system") == v.PHYSICAL_TYPE and c.get("code") == "bd" for c in codings)


def is_free_bed(bed: dict[str, Any]) -> bool:
    """A bed the hub may offer: active, physicalType bd, unoccupied (v2-0116 U) and not reserved."""
    status = bed.get("operationalStatus") or {}
    return (is_bed(bed) and bed.get("status", "active") == "active" and status.get("system") == v.V2_0116
            and status.get("code") == "U" and reservation_of(bed) is None)


def _with_reservation(bed: dict[str, Any], offer_id: str, until: datetime) -> dict[str, Any]:
    others = [e for e in bed.get("extension") or [] if e.get("url") != v.BED_RESERVATION_EXT]
    reservation = {"url": v.BED_RESERVATION_EXT, "extension": [
        {"url": "reserved-for", "valueReference": {"reference": f"Task/{offer_id}"}},
        {"url": "until", "valueDateTime": instant(until)},
    ]}
    status = {"system": v.BED_STATUS_EXTRA, "code": "reserved", "display": "Gereserveerd"}
    return {**bed, "extension": [*others, reservation], "operationalStatus": status}


def _without_reservation(bed: dict[str, Any]) -> dict[str, Any]:
    out = {**bed, "extension": [e for e in bed.get("extension") or [] if e.get("url") != v.BED_RESERVATION_EXT]}
    if not out["extension"]:
        del out["extension"]
    if (bed.get("operationalStatus") or {}).get("code") == "reserved":
        out["operationalStatus"] = {"system": v.V2_0116, "code": "U", "display": "Unoccupied"}
    return out


async def _current(uow: UnitOfWork, bed_id: str) -> tuple[dict[str, Any], int] | None:
    try:
        stored = await uow.resources.read_raw(SYSTEM, "Location", bed_id, audit_read=False)
    except (NotFound, Gone):
        return None
    return orjson.loads(stored.content), stored.version


async def reserve_bed(uow: UnitOfWork, bed_id: str, offer_id: str, until: datetime) -> bool:
    """Reserve a free bed for an offer; False when it is no longer free (someone else was first)."""
    current = await _current(uow, bed_id)
    if current is None or not is_free_bed(current[0]):
        return False
    try:
        await uow.resources.update(SYSTEM, _with_reservation(current[0], offer_id, until), if_match=current[1])
    except (Conflict, PreconditionFailed) as exc:
        log.debug("Location/%s went to another referral first: %s", bed_id, exc.diagnostics)
        return False
    return True


async def confirm_bed(uow: UnitOfWork, bed_id: str, offer_id: str, until: datetime, provider: str) -> bool:
    """On acceptance: keep (or take) the bed for the offer until admission + hold; False if not possible."""
    for _ in range(RETRIES):
        current = await _current(uow, bed_id)
        if current is None:
            return False
        bed, version = current
        if (bed.get("managingOrganization") or {}).get("reference") != provider:
            return False
        if reserved_for(bed) != f"Task/{offer_id}" and not is_free_bed(bed):
            return False
        try:
            await uow.resources.update(SYSTEM, _with_reservation(bed, offer_id, until), if_match=version)
            return True
        except (Conflict, PreconditionFailed):
            continue
    return False


async def release_bed(uow: UnitOfWork, bed_id: str, offer_id: str) -> None:
    """Take the reservation off a bed if it is still this offer's (a later bed update may have replaced it)."""
    for _ in range(RETRIES):
        current = await _current(uow, bed_id)
        if current is None or reserved_for(current[0]) != f"Task/{offer_id}":
            return
        try:
            await uow.resources.update(SYSTEM, _without_reservation(current[0]), if_match=current[1])
            return
        except (Conflict, PreconditionFailed):
            continue
    raise Conflict(f"Location/{bed_id} kept changing while its reservation was released; retry")


# ------------------------------------------------------------------------------------------------ counts
async def hold_count(conn: AsyncConnection, service_id: str, report: str, free: int, now: datetime) -> bool:
    """Hold one of the free places a count-only provider reported; False when all are held."""
    await _ensure_capacity_row(conn, service_id, report, free, now)
    open_holds = (select(func.count()).select_from(referral_offers)
                  .where(referral_offers.c.service_id == service_id, referral_offers.c.state == "open")
                  .scalar_subquery())
    await conn.execute(update(referral_capacity)
                       .where(referral_capacity.c.service_id == service_id, referral_capacity.c.report != report)
                       .values(report=report, free=free, held=open_holds, updated=now))
    result = await conn.execute(update(referral_capacity)
                                .where(and_(referral_capacity.c.service_id == service_id,
                                            referral_capacity.c.held < referral_capacity.c.free))
                                .values(held=referral_capacity.c.held + 1, updated=now))
    return bool(result.rowcount == 1)


async def release_count(conn: AsyncConnection, service_id: str, now: datetime) -> None:
    await conn.execute(update(referral_capacity)
                       .where(referral_capacity.c.service_id == service_id, referral_capacity.c.held > 0)
                       .values(held=referral_capacity.c.held - 1, updated=now))


async def _ensure_capacity_row(conn: AsyncConnection, service_id: str, report: str, free: int,
                               now: datetime) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(referral_capacity).values(service_id=service_id, report=report, free=free, held=0,
                                                    updated=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["service_id"]))
