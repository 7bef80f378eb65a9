"""Pure rules over FHIR JSON: what one bed Location or one count MeasureReport adds to the bed picture.

No I/O here: the same functions classify a write (the hook) and a from-scratch recount, so both agree.

Bed (Location, physicalType `bd`): counted in `total` unless Location.status is `inactive`; then exactly one of
- `occupied`: operationalStatus v2-0116 `O`;
- `reserved`: the bed-reservation extension, or operationalStatus bed-status-extra `reserved` (not free);
- `free`: v2-0116 `U` (and not reserved);
- `unavailable`: C closed, K contaminated, H housekeeping, I isolated, Location.status `suspended`, no status.

Counts (MeasureReport with the SANER `Beds` group): numTotBeds, numTotBedsOcc, numTotBedsAvail. A count left out
(unknown, with a data-absent-reason) is derived from the other two when it can be, else taken as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from hub.availability import vocabulary as v
from hub.fhir.indexing import date_range

COUNT_CODES = ("numTotBeds", "numTotBedsOcc", "numTotBedsAvail")


@dataclass(frozen=True)
class Figures:
    """Bed counts of one source, one aggregate row or one regional total."""

    total: int = 0
    free: int = 0
    occupied: int = 0
    reserved: int = 0
    unavailable: int = 0

    # Spelled out field by field: the aggregate adds and subtracts these for every bed change, and going through
    # dataclasses.fields() cost more than the rest of a status change's bookkeeping.
    def __add__(self, other: Figures) -> Figures:
        return Figures(self.total + other.total, self.free + other.free, self.occupied + other.occupied,
                       self.reserved + other.reserved, self.unavailable + other.unavailable)

    def __neg__(self) -> Figures:
        return Figures(-self.total, -self.free, -self.occupied, -self.reserved, -self.unavailable)

    def __sub__(self, other: Figures) -> Figures:
        return Figures(self.total - other.total, self.free - other.free, self.occupied - other.occupied,
                       self.reserved - other.reserved, self.unavailable - other.unavailable)

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "free": self.free, "occupied": self.occupied, "reserved": self.reserved,
                "unavailable": self.unavailable}

    @classmethod
    def of(cls, row: Any) -> Figures:
        """From a table row or a dict with the five count columns."""
        if isinstance(row, dict):
            return cls(*(int(row.get(name) or 0) for name in _FIELDS))
        return cls(int(row.total or 0), int(row.free or 0), int(row.occupied or 0), int(row.reserved or 0),
                   int(row.unavailable or 0))


_FIELDS = tuple(f.name for f in fields(Figures))
ZERO = Figures()


@dataclass(frozen=True)
class Address:
    postcode: str | None = None
    city: str | None = None
    state: str | None = None  # Address.state (province) — an explicit region
    district: str | None = None  # Address.district — an explicit region that wins over state

    @property
    def is_empty(self) -> bool:
        return not (self.postcode or self.city or self.state or self.district)


@dataclass(frozen=True)
class BedFacts:
    """What a bed Location says about itself (no lookups)."""

    org_id: str | None
    product: str | None  # from the care-product extension; None -> look at the ward's HealthcareService
    parent_id: str | None
    status: str  # v2-0116 code, "reserved", or "" when unknown
    active: bool  # False: Location.status inactive -> not counted at all
    name: str
    address: Address

    def figures(self) -> Figures:
        if not self.active:
            return ZERO
        if self.status == "O":
            return Figures(total=1, occupied=1)
        if self.status == v.RESERVED:
            return Figures(total=1, reserved=1)
        if self.status == "U":
            return Figures(total=1, free=1)
        return Figures(total=1, unavailable=1)


def reference_id(ref: Any, res_type: str) -> str | None:
    """`{"reference": "Organization/abc"}` (or an absolute url ending so) -> "abc"."""
    text = str((ref or {}).get("reference") or "") if isinstance(ref, dict) else ""
    parts = text.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == res_type and parts[-1]:
        return parts[-1]
    return None


def is_bed(location: dict[str, Any] | None) -> bool:
    codings = ((location or {}).get("physicalType") or {}).get("coding") or []
    return any(c.get("system") == v.PHYSICAL_TYPE and c.get("code") == "bd" for c in codings)


def address_of(resource: dict[str, Any] | None) -> Address:
    raw = (resource or {}).get("address")
    first = (raw[0] if raw else {}) if isinstance(raw, list) else (raw or {})
    return Address(postcode=_clean(first.get("postalCode")), city=_clean(first.get("city")),
                   state=_clean(first.get("state")), district=_clean(first.get("district")))


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def bed_status(location: dict[str, Any]) -> str:
    """v2-0116 code, or "reserved" (extension or bed-status-extra); "" when there is no usable status."""
    status = location.get("operationalStatus") or {}
    code, system = status.get("code") or "", status.get("system") or ""
    if code == "O" and system == v.V2_0116:
        return "O"
    if has_reservation(location) or (system == v.BED_STATUS_EXTRA and code == v.RESERVED):
        return v.RESERVED
    return code if system == v.V2_0116 and code in v.BED_STATUS else ""


def has_reservation(location: dict[str, Any]) -> bool:
    return any(e.get("url") == v.BED_RESERVATION_EXT for e in location.get("extension") or [])


def product_extension(location: dict[str, Any]) -> str | None:
    for ext in location.get("extension") or []:
        coding = ext.get("valueCoding") or {} if ext.get("url") == v.CARE_PRODUCT_EXT else {}
        if coding.get("system") == v.CARE_PRODUCT and coding.get("code"):
            return str(coding["code"])
    return None


def bed_facts(location: dict[str, Any] | None) -> BedFacts | None:
    """None unless the Location is a bed (physicalType bd)."""
    if location is None or not is_bed(location):
        return None
    return BedFacts(
        org_id=reference_id(location.get("managingOrganization"), "Organization"),
        product=product_extension(location),
        parent_id=reference_id(location.get("partOf"), "Location"),
        status=bed_status(location),
        active=location.get("status", "active") != "inactive",
        name=str(location.get("name") or location.get("id") or ""),
        address=address_of(location),
    )


def service_products(service: dict[str, Any]) -> list[str]:
    """Care-product codes in HealthcareService.type (extra codings such as COD163 are ignored)."""
    return [str(c["code"]) for t in service.get("type") or [] for c in t.get("coding") or []
            if c.get("system") == v.CARE_PRODUCT and c.get("code")]


# ------------------------------------------------------------------------------------------------ counts
def is_count_report(report: dict[str, Any] | None) -> bool:
    """A SANER-style bed count: a group coded MeasureGroupSystem#Beds or populations with the SANER codes."""
    for group in (report or {}).get("group") or []:
        codes = {(c.get("system"), c.get("code")) for c in (group.get("code") or {}).get("coding") or []}
        if (v.SANER_GROUPS, "Beds") in codes or _population_counts(group):
            return True
    return False


def _population_counts(group: dict[str, Any]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for population in group.get("population") or []:
        for coding in (population.get("code") or {}).get("coding") or []:
            if coding.get("system") == v.SANER_VALUES and coding.get("code") in COUNT_CODES:
                count = population.get("count")
                found[str(coding["code"])] = count if isinstance(count, int) else None
    return found


def report_counts(report: dict[str, Any]) -> dict[str, int | None]:
    """numTotBeds / numTotBedsOcc / numTotBedsAvail of the Beds group (None = unknown)."""
    for group in report.get("group") or []:
        found = _population_counts(group)
        if found:
            return {code: found.get(code) for code in COUNT_CODES}
    return dict.fromkeys(COUNT_CODES)


def count_problems(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Profile rule for count MeasureReports: counts that do not add up (-> 422)."""
    if not is_count_report(report):
        return []
    counts = report_counts(report)
    total, occupied, free = counts["numTotBeds"], counts["numTotBedsOcc"], counts["numTotBedsAvail"]
    where = "MeasureReport.group.population.count"
    problems = [(where, f"{code} must not be negative (got {n})")
                for code, n in counts.items() if n is not None and n < 0]
    if problems:
        return problems
    if total is not None and occupied is not None and occupied > total:
        problems.append((where, f"numTotBedsOcc ({occupied}) is larger than numTotBeds ({total})"))
    if total is not None and free is not None and free > total:
        problems.append((where, f"numTotBedsAvail ({free}) is larger than numTotBeds ({total})"))
    if not problems and None not in (total, occupied, free) and occupied + free > total:  # type: ignore[operator]
        problems.append((where, f"numTotBedsOcc + numTotBedsAvail ({occupied} + {free}) exceed numTotBeds ({total})"))
    return problems


def count_figures(report: dict[str, Any]) -> Figures:
    """Figures of a valid count report; unknown counts are derived when possible, else 0."""
    counts = report_counts(report)
    total, occupied, free = counts["numTotBeds"], counts["numTotBedsOcc"], counts["numTotBedsAvail"]
    if free is None and total is not None and occupied is not None:
        free = total - occupied
    if occupied is None and total is not None and free is not None:
        occupied = total - free
    if total is None:
        total = (occupied or 0) + (free or 0)
    occupied, free = occupied or 0, free or 0
    return Figures(total=total, free=free, occupied=occupied, unavailable=max(0, total - occupied - free))


def report_time(report: dict[str, Any]) -> datetime | None:
    """MeasureReport.date (else period.end): which report of a service is the latest."""
    text = report.get("date") or (report.get("period") or {}).get("end")
    if not text:
        return None
    try:
        return date_range(str(text))[0]
    except ValueError:
        return None
