"""From-scratch recount of the bed picture from the stored resources, with the same rules as the write hook.

Not on any request path: tests compare it with the incremental aggregate, and `rebuild` uses it once at start-up
when a database has beds but no aggregate yet (a hub upgraded to this package).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from hub.availability import figures as f
from hub.availability.figures import ZERO, Figures
from hub.availability.sources import (
    Contribution,
    Key,
    MemoryDirectory,
    bed_contribution,
    provider_columns,
    provider_from,
    service_contribution,
)
from hub.availability.tables import (
    availability_providers,
    availability_rows,
    availability_sources,
    availability_totals,
)
from hub.store.schema import resources
from hub.store.sql import utcnow

SCANNED = ("Location", "HealthcareService", "Organization", "MeasureReport")


async def scan(conn: Any) -> list[dict[str, Any]]:
    stmt = select(resources.c.content).where(resources.c.res_type.in_(SCANNED), resources.c.deleted.is_(False))
    return [orjson.loads(content) for content in (await conn.execute(stmt)).scalars()]


async def contributions(conn: Any) -> tuple[list[Contribution], list[dict[str, Any]]]:
    """Every counted or known source, and the Organizations (for the providers table)."""
    scanned = await scan(conn)
    directory = MemoryDirectory(scanned)
    found: list[Contribution] = []
    for resource in scanned:
        if resource["resourceType"] == "Location" and f.is_bed(resource):
            contribution = await bed_contribution(directory, resource)
            if contribution is not None:
                found.append(contribution)
    for service_id in directory.reporting_services:
        contribution = await service_contribution(directory, service_id)
        if contribution is not None:
            found.append(contribution)
    return found, [r for r in scanned if r["resourceType"] == "Organization"]


def sums(found: list[Contribution]) -> tuple[dict[Key, Figures], dict[tuple[str, str], Figures]]:
    rows: dict[Key, Figures] = defaultdict(lambda: ZERO)
    totals: dict[tuple[str, str], Figures] = defaultdict(lambda: ZERO)
    for c in found:
        if c.key is not None:
            rows[c.key] = rows[c.key] + c.figures
            totals[(c.key.region, c.key.product)] = totals[(c.key.region, c.key.product)] + c.figures
    return dict(rows), dict(totals)


async def recount(conn: Any) -> tuple[dict[Key, Figures], dict[tuple[str, str], Figures]]:
    """The aggregate as it should be, computed from the resources alone."""
    found, _ = await contributions(conn)
    return sums(found)


async def table_figures(conn: Any) -> tuple[dict[Key, Figures], dict[tuple[str, str], Figures]]:
    """The aggregate as the tables hold it (same shape as `recount`)."""
    rows = {Key(r.org_id, r.product, r.region): Figures.of(r)
            for r in (await conn.execute(select(availability_rows))).all()}
    totals = {(r.region, r.product): Figures.of(r) for r in (await conn.execute(select(availability_totals))).all()}
    return rows, totals


def without_empty(figures: dict[Any, Figures]) -> dict[Any, Figures]:
    """Rows whose sources all left stay as zeros; compare without them."""
    return {k: v for k, v in figures.items() if v != ZERO}


async def rebuild(conn: Any) -> int:
    """Replace sources, providers, rows and totals by a recount (one transaction). Returns the sources counted."""
    found, organizations = await contributions(conn)
    rows, totals = sums(found)
    now = utcnow()
    for table in (availability_sources, availability_rows, availability_totals, availability_providers):
        await conn.execute(delete(table))
    for organization in organizations:
        await conn.execute(insert(availability_providers).values(**provider_columns(provider_from(organization))))
    names = {o["id"]: o.get("name") for o in organizations}
    places: dict[Key, Contribution] = {c.key: c for c in found if c.key is not None}
    for c in found:
        await conn.execute(insert(availability_sources).values(**c.columns(), updated=now, version=1))
    for key, figures in rows.items():
        place = places[key]
        await conn.execute(insert(availability_rows).values(
            org_id=key.org_id, product=key.product, region=key.region, org_name=names.get(key.org_id),
            postcode=place.postcode, city=place.city, **figures.as_dict(), last_update=now, seq=1, snapshot_seq=0))
    for (region, product), figures in totals.items():
        await conn.execute(insert(availability_totals).values(
            region=region, product=product, **figures.as_dict(), last_update=now, seq=1))
    return len(found)
