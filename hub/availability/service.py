"""Domain functions of availability: read the picture (cache first, table as fallback), check who may write a bed
or a count, and what the provider detail view shows (a bed's status is set by bed_status.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from hub.availability import aggregate
from hub.availability import vocabulary as v
from hub.availability.errors import BadAvailabilityQuery, NotYourLocation
from hub.availability.live import live_of
from hub.availability.regions import normalise_postcode, postcode_distance
from hub.availability.sources import Directory, Provider, provider_of_row
from hub.availability.tables import availability_providers
from hub.security.context import AccessContext
from hub.store.sql import utcnow

log = logging.getLogger("hub.availability")
Row = dict[str, Any]


@dataclass(frozen=True)
class AvailabilityQuery:
    """Filters shared by $availability, /api/availability, the stream and the overview page."""

    products: tuple[str, ...] = ()  # empty: every product
    organization: str | None = None  # "Organization/<id>", "<id>" or an identifier "system|value"
    region: str | None = None
    near: str | None = None  # postcode: rank by postcode distance (regions.postcode_distance)

    def selects(self, row: Row, org_id: str | None) -> bool:
        return ((not self.products or row["product"] in self.products)
                and (self.region is None or row["region"] == self.region)
                and (org_id is None or row["org_id"] == org_id))


@dataclass
class Picture:
    rows: list[Row]
    totals: list[Row]
    from_cache: bool
    now: datetime
    stale_after: timedelta
    products: dict[str, str] = field(default_factory=dict)


def parse_query(products: Mapping[str, str], params: Mapping[str, str]) -> AvailabilityQuery:
    """Query parameters -> AvailabilityQuery; unknown products and malformed postcodes are a 400."""
    codes: list[str] = []
    for raw in filter(None, (params.get("product") or "").split(",")):
        code = raw.split("|", 1)[1] if "|" in raw else raw
        if raw.count("|") and raw.split("|", 1)[0] not in ("", v.CARE_PRODUCT):
            raise BadAvailabilityQuery(f"product system must be {v.CARE_PRODUCT}", expression=["product"])
        if code not in products:
            raise BadAvailabilityQuery(f"'{code}' is not a bed care product ({', '.join(products)})",
                                       expression=["product"])
        codes.append(code)
    near = params.get("near") or None
    if near is not None and normalise_postcode(near) is None:
        raise BadAvailabilityQuery(f"near '{near}' is not a Dutch postcode (1234 or 1234 AB)", expression=["near"])
    return AvailabilityQuery(products=tuple(codes), organization=params.get("organization") or None,
                             region=params.get("region") or None, near=near)


async def resolve_organization(runtime: Any, organization: str | None) -> str | None:
    """Organization/<id> or <id> -> id; "system|value" -> the id of the Organization with that identifier."""
    if not organization:
        return None
    if "|" not in organization:
        return organization.removeprefix("Organization/")
    t = availability_providers
    async with runtime.engine.connect() as conn:
        stmt = select(t.c.org_id).where(t.c.identifiers.contains(f"\n{organization}\n", autoescape=True))
        return (await conn.execute(stmt.limit(1))).scalar() or "-"  # "-": no such provider, nothing matches


async def query(runtime: Any, q: AvailabilityQuery, *, with_totals: bool = True) -> Picture:
    """The current picture: one cache read (one HGETALL for one provider or one product); the table when cold."""
    live = live_of(runtime)
    org_id = await resolve_organization(runtime, q.organization)
    product = q.products[0] if len(q.products) == 1 else None
    rows: list[Row] | None = None
    totals: list[Row] | None = [] if not with_totals else None
    try:
        rows = await live.cache.rows(org_id=org_id, product=product)
        if with_totals and rows is not None:
            totals = await live.cache.totals()
    except Exception:
        log.exception("availability cache unreachable; reading the table")
    from_cache = rows is not None and totals is not None
    if rows is None or totals is None:
        async with runtime.engine.connect() as conn:
            rows = await aggregate.table_rows(conn, org_id=org_id, product=product)
            totals = await aggregate.table_totals(conn) if with_totals else []
        live.warm_soon(runtime.engine)
    now = utcnow()
    rows = [r for r in rows if q.selects(r, org_id)]
    if q.near:
        rows.sort(key=lambda r: (postcode_distance(q.near, r.get("postcode")), r.get("org_name") or "", r["product"]))
    else:
        rows.sort(key=lambda r: (r.get("org_name") or "", r["org_id"], r["product"], r["region"]))
    totals = sorted((t for t in totals if (not q.products or t["product"] in q.products)
                     and (q.region is None or t["region"] == q.region)), key=lambda t: (t["region"], t["product"]))
    return Picture(rows, totals, from_cache, now, timedelta(minutes=runtime.settings.stale_after_minutes),
                   live.products)


# ------------------------------------------------------------------------------------------------ writing
async def check_owner(directory: Directory, ctx: AccessContext, org_ids: Iterable[str | None], what: str) -> None:
    """A provider writes only beds and counts of its own organisation (coordinators and admins: any)."""
    if ctx.is_system or ctx.role != "vvt-provider":
        return
    for org_id in sorted({o for o in org_ids if o}):
        provider = await directory.provider(org_id)
        if provider is None or not provider.is_identified_by(ctx.org):
            raise NotYourLocation(f"{what} belongs to Organization/{org_id}, not to your organisation ({ctx.org}); "
                                  "nothing was changed")


# ------------------------------------------------------------------------------------------------ detail view
@dataclass
class ProviderDetail:
    provider: Provider | None
    picture: Picture
    sources: list[Any]


async def provider_detail(runtime: Any, org_id: str) -> ProviderDetail:
    """One provider: its figures per product (cache), its beds and reporting services (source rows)."""
    picture = await query(runtime, AvailabilityQuery(organization=f"Organization/{org_id}"), with_totals=False)
    async with runtime.engine.connect() as conn:
        row = (await conn.execute(select(availability_providers)
                                  .where(availability_providers.c.org_id == org_id))).first()
        sources = await aggregate.sources_of(conn, org_id=org_id)
    return ProviderDetail(provider_of_row(row) if row is not None else None, picture, sources)
