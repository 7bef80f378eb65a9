"""HL7 wins over the spreadsheet for beds that have an HL7 feed.

HL7 v2 ADT is the real-time source and reports single beds (bed `Location.operationalStatus`); the daily bed
overview reports counts per provider x location x care product (`MeasureReport`). Both feed the availability
picture, so counting both for the same beds would double or contradict it. The rule:

- Every bed an HL7 message writes is remembered in `ingest_hl7_beds` (owner AGB, care product from the
  sender's `ward_products`, status, event time, arrival).
- A provider x care product is *HL7-fed* when that provider has at least one remembered bed of that product
  and its HL7 feed delivered anything within the live window (`ingest_hl7_live_hours`, default 7 days: ADT
  only speaks when something happens, so a quiet week is still a live feed).
- A spreadsheet count (MeasureReport) for an HL7-fed provider x product is **not applied**: its entry is left
  out of the transaction, the rest of the file (other products, the HealthcareService directory data:
  phone, remarks, expected-free date) is stored. The conflict is logged: an OperationOutcome warning (code
  `conflict`) naming the report with the spreadsheet's and HL7's figures, a log line, and an
  `ingest_conflicts` row.
- Beds without a care product (no `ward_products` mapping) cannot be matched to a spreadsheet row and never
  override it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.ingest.tables import ingest_conflicts, ingest_hl7_beds

log = logging.getLogger("hub.ingest")
HUB = "https://zorgnet-hub.nl/fhir"
BED = f"{HUB}/NamingSystem/bed"
SERVICE = f"{HUB}/NamingSystem/healthcareservice"
REPORT = f"{HUB}/NamingSystem/bed-availability-report"
CARE_PRODUCT = f"{HUB}/CodeSystem/care-product"
CARE_PRODUCT_EXTENSION = f"{HUB}/StructureDefinition/care-product"
DEFAULT_LIVE_HOURS = 7 * 24
SPREADSHEET_FORMATS = frozenset({"bed-csv", "bed-xlsx"})
OCCUPIED, FREE = "O", "U"


@dataclass(frozen=True)
class Override:
    """One spreadsheet count not applied because HL7 reports these beds."""

    report: str  # MeasureReport identifier value
    owner: str
    product: str
    sheet: dict[str, int | None]  # numTotBeds / numTotBedsOcc / numTotBedsAvail as the sheet says
    beds: int
    occupied: int
    free: int

    @property
    def detail(self) -> str:
        def shown(code: str) -> str:
            value = self.sheet.get(code)
            return "unknown" if value is None else str(value)

        return (
            f"bed count {self.report} not applied: provider {self.owner} reports its {self.product} beds over HL7 "
            f"({self.beds} beds: {self.occupied} occupied, {self.free} free, "
            f"{self.beds - self.occupied - self.free} not available); the spreadsheet said capacity "
            f"{shown('numTotBeds')}, occupied {shown('numTotBedsOcc')}, free {shown('numTotBedsAvail')}"
        )


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    return next((i.get("value") for i in resource.get("identifier") or [] if i.get("system") == system), None)


def _bed_product(bed: dict[str, Any]) -> str | None:
    for ext in bed.get("extension") or []:
        if ext.get("url") == CARE_PRODUCT_EXTENSION:
            code = (ext.get("valueCoding") or {}).get("code")
            return str(code) if code else None
    return None


def _service_product(service: dict[str, Any]) -> str | None:
    for concept in service.get("type") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == CARE_PRODUCT and coding.get("code"):
                return str(coding["code"])
    return None


async def remember_hl7_beds(
    conn: AsyncConnection, entries: list[dict[str, Any]], event_time: datetime, received: datetime
) -> int:
    """After an HL7 message: note every bed it actually updated (stale entries are no longer PUTs)."""
    noted = 0
    for entry in entries:
        resource = entry.get("resource") or {}
        bed = _identifier(resource, BED) if resource.get("resourceType") == "Location" else None
        if bed is None or (entry.get("request") or {}).get("method") != "PUT":
            continue
        values = {
            "owner": bed.split("/", 1)[0][:40],
            "care_product": _bed_product(resource),
            "status": str((resource.get("operationalStatus") or {}).get("code") or "")[:4],
            "event_time": event_time,
            "received": received,
        }
        changed = await conn.execute(update(ingest_hl7_beds).where(ingest_hl7_beds.c.bed == bed).values(values))
        if changed.rowcount == 0:
            await conn.execute(insert(ingest_hl7_beds).values(bed=bed, **values))
        noted += 1
    return noted


async def withhold_overridden_counts(
    conn: AsyncConnection, entries: list[dict[str, Any]], *, received: datetime, live_hours: int
) -> tuple[list[dict[str, Any]], list[Override]]:
    """Spreadsheet entries minus the counts of HL7-fed provider x product pairs (see the module rule)."""
    by_url = {e.get("fullUrl"): e.get("resource") or {} for e in entries}
    kept: list[dict[str, Any]] = []
    overrides: list[Override] = []
    live_since = received - timedelta(hours=live_hours)
    for entry in entries:
        resource = entry.get("resource") or {}
        report = _identifier(resource, REPORT) if resource.get("resourceType") == "MeasureReport" else None
        service = by_url.get((resource.get("subject") or {}).get("reference"))
        owner_product = _owner_product(service) if report else None
        if report is None or owner_product is None:
            kept.append(entry)
            continue
        override = await _hl7_picture(conn, report, *owner_product, resource, live_since)
        if override is None:
            kept.append(entry)
        else:
            overrides.append(override)
    return kept, overrides


def _owner_product(service: dict[str, Any] | None) -> tuple[str, str] | None:
    value = _identifier(service or {}, SERVICE)
    product = _service_product(service or {})
    return (value.split("/", 1)[0], product) if value and product else None


async def _hl7_picture(
    conn: AsyncConnection, report: str, owner: str, product: str, resource: dict[str, Any], live_since: datetime
) -> Override | None:
    last_heard = (
        await conn.execute(select(func.max(ingest_hl7_beds.c.received)).where(ingest_hl7_beds.c.owner == owner))
    ).scalar()
    if last_heard is None or last_heard < live_since:
        return None
    stmt = (
        select(ingest_hl7_beds.c.status, func.count())
        .where(ingest_hl7_beds.c.owner == owner, ingest_hl7_beds.c.care_product == product)
        .group_by(ingest_hl7_beds.c.status)
    )
    counts = {status: int(n) for status, n in (await conn.execute(stmt)).all()}
    if not counts:
        return None
    return Override(
        report,
        owner,
        product,
        _sheet_counts(resource),
        sum(counts.values()),
        counts.get(OCCUPIED, 0),
        counts.get(FREE, 0),
    )


def _sheet_counts(report: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for group in report.get("group") or []:
        for population in group.get("population") or []:
            code = next((c.get("code") for c in (population.get("code") or {}).get("coding") or []), None)
            if code:
                out[str(code)] = population.get("count")
    return out


async def record_conflicts(
    conn: AsyncConnection, overrides: list[Override], *, received: datetime, source: str, sender: str | None
) -> None:
    """The log side of the rule: one `ingest_conflicts` row and one warning log line per withheld count."""
    for o in overrides:
        log.warning("HL7 wins over spreadsheet (%s, sender %s): %s", source, sender or "-", o.detail)
        await conn.execute(
            insert(ingest_conflicts).values(
                received=received,
                source=source,
                sender=sender,
                object_key=f"{REPORT}|{o.report}",
                owner=o.owner,
                care_product=o.product,
                detail=o.detail,
                beds=o.beds,
            )
        )
