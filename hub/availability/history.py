"""Availability over time (the region's monitoring duty): periodic snapshots and the occupancy report.

`take_snapshots` (task `availability.take_snapshots`, every 5 minutes) copies every aggregate row that changed
since its last snapshot into availability_snapshots: `UPDATE ... SET snapshot_seq = seq WHERE snapshot_seq < seq
RETURNING ...` claims the rows atomically, so two workers never snapshot the same change twice. Rows that did not
change cost nothing, and a busy bed does not add a row per status flip.

`occupancy` answers "how full was product X at provider Y, per hour or per day": per provider × product × region
the last snapshot in each bucket (carried forward through quiet buckets, starting from the last snapshot before
`since`), with occupancy = occupied / total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, tuple_, update

from hub.availability.errors import BadAvailabilityQuery
from hub.availability.figures import Figures
from hub.availability.tables import availability_rows, availability_snapshots
from hub.store.sql import instant

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_POINTS = 2000


async def take_snapshots(runtime: Any, now: datetime) -> int:
    """Snapshot the rows changed since their last snapshot; returns how many."""
    t = availability_rows
    async with runtime.engine.begin() as conn:
        # Rows locked in key order, as every writer locks them (aggregate.add): no deadlock with a write.
        keys = (t.c.org_id, t.c.product, t.c.region)
        due = select(*keys).where(t.c.snapshot_seq < t.c.seq).order_by(*keys).with_for_update()
        changed = (await conn.execute(update(t).where(tuple_(*keys).in_(due))
                                      .values(snapshot_seq=t.c.seq).returning(*t.c))).all()
        if changed:
            await conn.execute(insert(availability_snapshots), [
                {"org_id": r.org_id, "product": r.product, "region": r.region, "taken_at": now,
                 "last_update": r.last_update, "seq": r.seq, **Figures.of(r).as_dict()} for r in changed])
    return len(changed)


@dataclass
class Series:
    org_id: str
    product: str
    region: str
    points: list[dict[str, Any]] = field(default_factory=list)


def bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    if bucket == BUCKETS["day"]:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


async def occupancy(runtime: Any, *, products: tuple[str, ...], org_id: str | None, region: str | None,
                    since: datetime, until: datetime, bucket: str) -> list[Series]:
    """Occupancy per bucket and provider × product × region between since and until."""
    step = BUCKETS.get(bucket)
    if step is None:
        raise BadAvailabilityQuery("bucket must be hour or day", expression=["bucket"])
    first, last = bucket_start(since, step), bucket_start(until, step)
    if last < first or (last - first) / step > MAX_POINTS:
        raise BadAvailabilityQuery(f"since..until must be ascending and span at most {MAX_POINTS} buckets",
                                   expression=["since", "until"])
    s = availability_snapshots
    where = [s.c.taken_at <= until]
    if products:
        where.append(s.c.product.in_(products))
    if org_id:
        where.append(s.c.org_id == org_id)
    if region:
        where.append(s.c.region == region)
    # the last snapshot before `since` per key is the starting value; then every snapshot in range
    start_ids = (select(func.max(s.c.id)).where(*where, s.c.taken_at < since)
                 .group_by(s.c.org_id, s.c.product, s.c.region))
    stmt = select(s).where(and_(*where), (s.c.taken_at >= since) | s.c.id.in_(start_ids)).order_by(s.c.id)
    async with runtime.engine.connect() as conn:
        snapshots = (await conn.execute(stmt)).all()
    by_key: dict[tuple[str, str, str], list[Any]] = {}
    for snap in snapshots:
        by_key.setdefault((snap.org_id, snap.product, snap.region), []).append(snap)
    return [_series(key, snaps, first, last, step) for key, snaps in sorted(by_key.items())]


def _series(key: tuple[str, str, str], snaps: list[Any], first: datetime, last: datetime,
            step: timedelta) -> Series:
    series = Series(*key)
    current: Any = None
    index = 0
    moment = first
    while moment <= last:
        end = moment + step
        while index < len(snaps) and snaps[index].taken_at < end:
            current = snaps[index]
            index += 1
        if current is not None:
            figures = Figures.of(current)
            series.points.append({"time": instant(moment), **figures.as_dict(),
                                  "occupancy": round(figures.occupied / figures.total, 3) if figures.total else None,
                                  "as_of": instant(current.last_update)})
        moment = end
    return series
