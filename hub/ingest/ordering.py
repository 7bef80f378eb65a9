"""Out-of-order deliveries: event time, not arrival, decides which state of a source-owned object stands.

Adapters write the objects a source owns (bed Location, Encounter, HealthcareService, count MeasureReport,
Patient on A08) with `PUT Type?identifier=...`. For each such entry the hub keeps the event time of the last
applied update in `ingest_clock`, keyed by that PUT url. A delivery whose event time is *older* than the one
applied is not allowed to overwrite: its entry becomes `POST ... ifNoneExist` with the same criteria, so the
existing resource is only matched (references from the other entries still resolve) and nothing is written.
An equal event time applies (a corrected re-send of the same day's spreadsheet).

The clock is advanced with a compare-and-set UPDATE (`... WHERE event_time <= :t`) in the writing unit of
work: two concurrent deliveries for one bed serialise on that row, and the older one then sees the newer time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ingest.tables import ingest_clock


@dataclass(frozen=True)
class Stale:
    """One entry not applied because a newer event for the same object was applied before."""

    object_key: str
    applied: datetime  # event time (UTC) of the update that stands
    source: str  # receipt key of the delivery that applied it

    @property
    def label(self) -> str:
        return unquote(self.object_key)


async def guard(
    conn: AsyncConnection, entries: list[dict[str, Any]], event_time: datetime | None, source: str, now: datetime
) -> tuple[list[dict[str, Any]], list[Stale]]:
    """The entries to apply (stale PUTs turned into matches) and the stale ones, advancing the clock."""
    if event_time is None:
        return entries, []
    kept: list[dict[str, Any]] = []
    stale: list[Stale] = []
    for entry in entries:
        request = entry.get("request") or {}
        if request.get("method") != "PUT" or not request.get("url"):
            kept.append(entry)
            continue
        standing = await _advance(conn, str(request["url"]), event_time, source, now)
        if standing is None:
            kept.append(entry)
            continue
        stale.append(standing)
        matched = _match_only(entry)
        if matched is not None:
            kept.append(matched)
    return kept, stale


async def _advance(
    conn: AsyncConnection, object_key: str, event_time: datetime, source: str, now: datetime
) -> Stale | None:
    """Move the object's clock to event_time unless it is already later; return the standing event if so."""
    key_hash = hashlib.sha256(object_key.encode()).hexdigest()
    moved = await conn.execute(
        update(ingest_clock)
        .where(ingest_clock.c.key_hash == key_hash, ingest_clock.c.event_time <= event_time)
        .values(event_time=event_time, source=source, updated=now)
    )
    if moved.rowcount == 1:
        return None
    row = (await conn.execute(select(ingest_clock).where(ingest_clock.c.key_hash == key_hash))).first()
    if row is None:
        await conn.execute(
            insert(ingest_clock).values(
                key_hash=key_hash, object_key=object_key, event_time=event_time, source=source, updated=now
            )
        )
        return None
    return Stale(object_key, row.event_time, row.source)


def _match_only(entry: dict[str, Any]) -> dict[str, Any] | None:
    """`PUT Type?criteria` -> `POST Type` + ifNoneExist (match, write nothing); `PUT Type/id` -> left out."""
    url = str(entry["request"]["url"])
    if "?" not in url:
        return None
    res_type, criteria = url.split("?", 1)
    return {**entry, "request": {"method": "POST", "url": res_type.strip("/"), "ifNoneExist": criteria}}
