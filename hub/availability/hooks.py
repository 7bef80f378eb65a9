"""Wiring of the availability package into the core (listed in hub/domains.py INSTALL_MODULES): profile rules,
the write hook that keeps the aggregate in the writing transaction, the operations the CapabilityStatement lists,
and the start-up step that fills the cache.

The hook reacts to:
- Location (a bed): its contribution; a provider may only write its own organisation's beds (403 otherwise).
- MeasureReport (a SANER bed count): the reported service's contribution (latest report wins); the subject must
  be a HealthcareService of a care product provided by the reporter (422), a provider reports only for itself.
- HealthcareService: beds whose product comes from it (or sit under its locations), and its own counts.
- Organization: name and address for display and for sources without an address of their own.
- Location (not a bed) with a new address: count sources whose region comes from it.
- Subscription: availability Subscriptions (see subscriptions.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlalchemy import delete, insert, select

from hub.availability import aggregate, recount, subscriptions
from hub.availability import figures as f
from hub.availability import vocabulary as v
from hub.availability.errors import CountSubjectInvalid
from hub.availability.live import Live, live_of
from hub.availability.publish import publish
from hub.availability.service import check_owner
from hub.availability.sources import (
    SYSTEM,
    Contribution,
    DbDirectory,
    bed_contribution,
    directory_for,
    provider_columns,
    provider_from,
    service_contribution,
    with_new_status,
)
from hub.availability.tables import availability_providers, availability_sources
from hub.fhir import interactions
from hub.fhir.operations import OperationInfo, register
from hub.runtime import Runtime
from hub.security.context import AccessContext
from hub.store.schema import idx_token, resources

log = logging.getLogger("hub.availability")
OPERATIONS = (
    ("availability", ("HealthcareService",),
     "Live bed availability as a Bundle of SANER-style MeasureReports, one per provider × care product × region. "
     "Parameters: product (care-product code[s]), organization (Organization/<id> or system|value), region, "
     "near (postcode: ranked by postcode distance). Each report carries its freshness (date) and a stale flag."),
    ("set-status", ("Location",),
     "Set a bed's operationalStatus: Parameters status (valueCode, HL7 v2 table 0116: U O C K H I). "
     "Own organisation's beds only; If-Match honoured; the same status again refreshes the figure's freshness."),
)


def install(runtime: Runtime) -> None:
    """Rules, the write hook, the operations, and this process's cache/broadcaster."""
    live = Live.build(runtime.settings, runtime.conformance)
    runtime.extras["availability"] = live
    runtime.extras.setdefault("test_resets", []).append(live.reset)
    runtime.rules.register("MeasureReport", f.count_problems)
    runtime.rules.register("Location", bed_status_problems)
    runtime.hooks.add(on_write)
    stale_after = runtime.settings.stale_after_minutes
    runtime.extras.setdefault("metrics_collectors", []).append(lambda conn: collect_metrics(conn, stale_after))
    for name, types, doc in OPERATIONS:
        register(OperationInfo(name, f"{v.HUB}/OperationDefinition/{types[0]}-{name}", types, doc))


async def on_startup(runtime: Runtime) -> None:
    """Recount once if the database has beds but no aggregate yet; then load the cache."""
    live, rebuilt = live_of(runtime), False
    try:
        async with runtime.engine.begin() as conn:
            if await _needs_rebuild(conn):
                log.info("availability: rebuilt from %d sources", await recount.rebuild(conn))
                rebuilt = True
    except Exception:
        log.exception("availability rebuild at start-up failed (another process may be doing it)")
    try:
        if rebuilt:  # seqs start again at 1: what a shared cache holds must go
            await live.cache.clear()
        await live.warm(runtime.engine)
    except Exception:  # Redis down: start anyway; reads use the table until the cache can be loaded
        log.exception("availability cache could not be loaded at start-up")


async def _needs_rebuild(conn: Any) -> bool:
    """No sources and no providers yet (a rebuild leaves providers behind), but beds or counts exist."""
    for table in (availability_sources, availability_providers):
        if (await conn.execute(select(*table.primary_key.columns).limit(1))).first() is not None:
            return False
    # Beds only count through a care product (their extension or their ward's HealthcareService), so a store
    # without HealthcareServices or count reports has nothing to aggregate: no full scan of its Locations.
    stmt = select(resources.c.rid).where(resources.c.res_type.in_(("HealthcareService", "MeasureReport")),
                                         resources.c.deleted.is_(False)).limit(1)
    if (await conn.execute(stmt)).first() is not None:
        return True
    beds = select(idx_token.c.rid).where(idx_token.c.res_type == "Location", idx_token.c.param == "care-product")
    return (await conn.execute(beds.limit(1))).first() is not None


def bed_status_problems(location: dict[str, Any]) -> list[tuple[str, str]]:
    """Profile rule for bed Locations: operationalStatus from v2-0116 or bed-status-extra#reserved."""
    status = location.get("operationalStatus")
    if not f.is_bed(location) or not status:
        return []
    system, code = status.get("system"), status.get("code")
    if (system == v.V2_0116 and code in v.BED_STATUS) or (system == v.BED_STATUS_EXTRA and code == v.RESERVED):
        return []
    return [("Location.operationalStatus", f"operationalStatus {system}|{code} of a bed must be an HL7 v2 table "
                                           f"0116 code ({', '.join(v.BED_STATUS)}) or {v.BED_STATUS_EXTRA}|reserved")]


# ------------------------------------------------------------------------------------------------ the hook
async def on_write(uow: Any, ctx: AccessContext, res_type: str, before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> None:
    """In the writing transaction: keep the aggregate equal to the sum of its sources."""
    if res_type == "Location":
        await _on_location(uow, ctx, before, after)
    elif res_type == "MeasureReport":
        await _on_measure_report(uow, ctx, before, after)
    elif res_type == "HealthcareService":
        await _on_service(uow, before, after)
    elif res_type == "Organization":
        await _on_organization(uow, before, after)
    elif res_type == "Subscription":
        await subscriptions.record(uow, before, after)


async def _apply(uow: Any, new: Contribution | None, source: str, *, touch: bool) -> None:
    await aggregate.apply(uow, new, source, touch=touch, publish=publish)


async def _on_location(uow: Any, ctx: AccessContext, before: dict[str, Any] | None,
                       after: dict[str, Any] | None) -> None:
    was, now = f.bed_facts(before), f.bed_facts(after)
    if was is None and now is None:
        if before is not None and after is not None and f.address_of(before) != f.address_of(after):
            await _reevaluate_services_at(uow, str(after["id"]))
        return
    directory = directory_for(uow)
    location_id = str((after or before or {})["id"])
    source = f"Location/{location_id}"
    if was is not None and now is not None and replace(was, status=now.status) == now:
        stored = await aggregate.stored_source(uow.conn, source)  # a status change: the common bed write
        if stored is not None and stored.status == was.status and stored.org_id == was.org_id:
            await check_owner(directory, ctx, [now.org_id], source)
            await aggregate.apply(uow, with_new_status(stored, now), source, touch=True, publish=publish,
                                  old=stored)
            return
    await check_owner(directory, ctx, [was.org_id if was else None, now.org_id if now else None], source)
    new = await bed_contribution(directory, after) if after is not None and now is not None else None
    await _apply(uow, new, source, touch=True)


async def _on_measure_report(uow: Any, ctx: AccessContext, before: dict[str, Any] | None,
                             after: dict[str, Any] | None) -> None:
    if not (f.is_count_report(before) or f.is_count_report(after)):
        return
    directory = directory_for(uow)
    if after is not None and f.is_count_report(after):
        await _check_count_report(directory, ctx, after)
    services = {f.reference_id(r.get("subject"), "HealthcareService") for r in (before, after)
                if r is not None and f.is_count_report(r)}
    for service_id in sorted(s for s in services if s):
        new = await service_contribution(directory, service_id)
        await _apply(uow, new, f"HealthcareService/{service_id}", touch=True)


async def _check_count_report(directory: DbDirectory, ctx: AccessContext, report: dict[str, Any]) -> None:
    service_id = f.reference_id(report.get("subject"), "HealthcareService")
    if service_id is None:
        raise CountSubjectInvalid("A bed count MeasureReport needs subject Reference(HealthcareService)",
                                  expression=["MeasureReport.subject"])
    service = await directory.service(service_id)
    if service is None or not f.service_products(service):
        raise CountSubjectInvalid(f"HealthcareService/{service_id} is not a known service of a care product",
                                  expression=["MeasureReport.subject"])
    reporter = f.reference_id(report.get("reporter"), "Organization")
    provided_by = f.reference_id(service.get("providedBy"), "Organization")
    if reporter is None or reporter != provided_by:
        raise CountSubjectInvalid(f"reporter must be the Organization that provides HealthcareService/{service_id}"
                                  f" (Organization/{provided_by})", expression=["MeasureReport.reporter"])
    await check_owner(directory, ctx, [reporter], f"HealthcareService/{service_id}")


async def _on_service(uow: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    service_id = str((after or before or {})["id"])
    directory = directory_for(uow)
    if await aggregate.stored_source(uow.conn, f"HealthcareService/{service_id}") is not None:
        await _apply(uow, await service_contribution(directory, service_id), f"HealthcareService/{service_id}",
                     touch=False)
    locations = {f.reference_id(loc, "Location") for r in (before, after) if r is not None
                 for loc in r.get("location") or []} - {None}
    below: set[str] = set()
    for location_id in sorted(loc for loc in locations if loc):
        below |= set(await _ids(uow, "Location", [("partof", f"Location/{location_id}")]))
    s = availability_sources
    stmt = select(s.c.source).where(s.c.kind == "bed", (s.c.via_service == service_id)
                                    | s.c.parent_id.in_(sorted(locations | below)))
    for source in (await uow.conn.execute(stmt.order_by(s.c.source))).scalars():
        await _reevaluate_bed(uow, directory, source)


async def _on_organization(uow: Any, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """Keep the provider row (name, identifiers, address) and what depends on it in step with the Organization."""
    org_id, t = str((after or before or {})["id"]), availability_providers
    directory_for(uow).forget(org_id)
    old = (await uow.conn.execute(select(t).where(t.c.org_id == org_id))).first()
    await uow.conn.execute(delete(t).where(t.c.org_id == org_id))
    provider = provider_from(after) if after is not None else None
    if provider is not None:
        await uow.conn.execute(insert(t).values(**provider_columns(provider)))
        if old is None or old.name != provider.name:
            live_of(uow.runtime).schedule(uow, await aggregate.rename_provider(uow.conn, org_id, provider.name))
        if old is not None and (old.region, old.postcode, old.city) == (provider.region, provider.postcode,
                                                                        provider.city):
            return
    s = availability_sources
    stmt = select(s.c.source).where(s.c.org_id == org_id, s.c.address_via_org.is_(True))
    directory = directory_for(uow)
    for source in (await uow.conn.execute(stmt.order_by(s.c.source))).scalars():
        if source.startswith("Location/"):
            await _reevaluate_bed(uow, directory, source)
        else:
            service_id = source.split("/", 1)[1]
            await _apply(uow, await service_contribution(directory, service_id), source, touch=False)


async def _reevaluate_bed(uow: Any, directory: DbDirectory, source: str) -> None:
    location = await directory.location(source.split("/", 1)[1])
    new = await bed_contribution(directory, location) if location is not None else None
    await _apply(uow, new, source, touch=False)


async def _reevaluate_services_at(uow: Any, location_id: str) -> None:
    """A ward's address changed: count sources of services located there take their region from it."""
    directory = directory_for(uow)
    for service_id in await _ids(uow, "HealthcareService", [("location", f"Location/{location_id}")]):
        if await aggregate.stored_source(uow.conn, f"HealthcareService/{service_id}") is not None:
            await _apply(uow, await service_contribution(directory, service_id), f"HealthcareService/{service_id}",
                         touch=False)


async def _ids(uow: Any, res_type: str, items: list[tuple[str, str]]) -> list[str]:
    outcome = await interactions.search(uow, SYSTEM, res_type, [*items, ("_count", "500")], strict=True)
    return sorted(m.res_id for m in outcome.result.matches)


async def on_shutdown(runtime: Runtime) -> None:
    """Close the Redis client and pub/sub reader of this process."""
    await live_of(runtime).close()


async def collect_metrics(conn: Any, stale_after_minutes: int) -> None:
    """Prometheus gauges at scrape time: how many provider x product figures are stale, and the oldest age."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func

    from hub.availability.tables import availability_rows
    from hub.ops.metrics import OLDEST, STALE

    now = datetime.now(UTC).replace(tzinfo=None)
    cutoff = now - timedelta(minutes=stale_after_minutes)
    stale = (await conn.execute(select(func.count()).select_from(availability_rows)
                                .where(availability_rows.c.last_update < cutoff))).scalar() or 0
    oldest = (await conn.execute(select(func.min(availability_rows.c.last_update)))).scalar()
    STALE.set(stale)
    OLDEST.set((now - oldest).total_seconds() if oldest else 0)
