"""Checked bed records -> Organization, site Location, HealthcareService and a SANER-style MeasureReport.

One HealthcareService per provider x location x product (conditional update, so tomorrow's sheet updates the
same service), and one MeasureReport per service per day (conditional update by `<service>/<date>`, so
importing the same sheet twice is a no-op). Shape per profiles/HubBedAvailabilityReport: one group `Beds` with
populations numTotBeds / numTotBedsOcc / numTotBedsAvail; an unknown count keeps its population but has no
`count`.
"""

from __future__ import annotations

import re
from typing import Any

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import Problem, SourceMeta, Translation
from adapters.bed_overview import BedRecord, Sheet, read_records, slug
from adapters.bundle import Resource, TransactionBuilder, reference
from adapters.dates import local_midnight
from adapters.parties import add_organization

MEASURE = "https://zorgnet-hub.nl/fhir/Measure/bed-availability"
SANER_GROUPS = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasureGroupSystem"
SANER_VALUES = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues"
EXPECTED_FREE = "https://zorgnet-hub.nl/fhir/StructureDefinition/expected-free-date"
CHARACTERISTIC = ids.HUB_CODES + "service-characteristic"
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
POPULATIONS = (("capacity", "numTotBeds"), ("occupied", "numTotBedsOcc"), ("free", "numTotBedsAvail"))
_WOMEN = re.compile(r"\balleen (?:dame|dames|vrouw|vrouwen)\b")
_MEN = re.compile(r"\balleen (?:heer|heren|man|mannen)\b")
_SEX_CELL = {
    "v": "women-only",
    "vrouw": "women-only",
    "vrouwen": "women-only",
    "dames": "women-only",
    "m": "men-only",
    "man": "men-only",
    "mannen": "men-only",
    "heren": "men-only",
}
_PHONE = re.compile(r"^\+?[\d\s\-()]{6,}$")


def translate_sheet(sheet: Sheet, meta: SourceMeta, problems: list[Problem]) -> Translation:
    """All usable rows of a located sheet -> one transaction Bundle (rows with problems are left out)."""
    builder = TransactionBuilder()
    records = read_records(sheet, meta, problems)
    for record in records:
        add_record(builder, record)
    last_day = max((r.day for r in records), default=None)
    return Translation(
        bundle=builder.bundle(),
        problems=problems,
        message_id=None,
        event_time=local_midnight(last_day) if last_day else None,
        kind="bed-overview",
    )


def add_record(builder: TransactionBuilder, record: BedRecord) -> None:
    """Organization, site, service and that day's report for one record."""
    organization = add_organization(builder, record.owner_system, record.owner, name=record.provider, org_type="prov")
    site = _add_site(builder, record, organization)
    service_key = f"{record.owner}/{record.place}/{record.product}"
    service = builder.update_by_identifier(_service(record, organization, site), ids.HEALTHCARE_SERVICE, service_key)
    builder.update_by_identifier(
        _report(record, organization, service), ids.BED_REPORT, f"{service_key}/{record.day.isoformat()}"
    )


def _add_site(builder: TransactionBuilder, record: BedRecord, organization: str) -> str:
    """The provider's site (vestiging) as a Location (physicalType bu); created once, staff enrich it."""
    site: Resource = {
        "resourceType": "Location",
        "status": "active",
        "name": record.location,
        "mode": "instance",
        "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "bu", "display": "Building"}]},
        "managingOrganization": reference(organization),
    }
    if record.city:
        site["address"] = {"city": record.city}
    return builder.create_if_none_exist(site, ids.SITE, f"{record.owner}/{slug(record.location)}")


def _service(record: BedRecord, organization: str, site: str) -> Resource:
    """HealthcareService: type = care product, restrictions as characteristic, remarks in comment."""
    product = care_products.PRODUCTS[record.product]
    where = f"{record.location} ({record.ward})" if record.ward else record.location
    service: Resource = {"resourceType": "HealthcareService"}
    if record.expected_free:
        service["extension"] = [{"url": EXPECTED_FREE, "valueDate": record.expected_free.isoformat()}]
    service |= {
        "active": True,
        "providedBy": reference(organization),
        "type": [{"coding": [care_products.coding(record.product)], "text": product.display}],
        "location": [reference(site)],
        "name": f"{product.display} - {where}",
    }
    comment, telecom = _contact(record)
    if telecom:
        service["telecom"] = telecom
    if characteristic := _characteristics(record):
        service["characteristic"] = characteristic
    remarks = [r for r in (record.remark, *record.notes, comment) if r]
    if remarks:
        service["comment"] = "; ".join(remarks)
    return service


def _contact(record: BedRecord) -> tuple[str | None, list[dict[str, str]]]:
    """Contact cell -> ContactPoint for a phone number or e-mail, else a remark ("na 17:00 via HAP")."""
    contact = record.contact
    if not contact:
        return None, []
    if "@" in contact:
        return None, [{"system": "email", "value": contact, "use": "work"}]
    if _PHONE.match(contact):
        return None, [{"system": "phone", "value": contact, "use": "work"}]
    return f"Contact: {contact}", []


def _characteristics(record: BedRecord) -> list[dict[str, Any]]:
    """Sex restriction from the Geslacht column or an explicit "alleen dames/heren" remark."""
    found: list[dict[str, Any]] = []
    sex = care_products.normalize(record.sex or "")
    remark = care_products.normalize(record.remark or "")
    code = (
        _SEX_CELL.get(sex)
        or ("women-only" if _WOMEN.search(remark) else None)
        or ("men-only" if _MEN.search(remark) else None)
    )
    if code:
        display = "Alleen vrouwen" if code == "women-only" else "Alleen mannen"
        found.append({"coding": [{"system": CHARACTERISTIC, "code": code, "display": display}]})
    elif record.sex and sex not in ("m v", "v m", "gemengd", "beide"):
        found.append({"text": f"Geslacht: {record.sex}"})
    return found


def _report(record: BedRecord, organization: str, service: str) -> Resource:
    """MeasureReport for one service and day; unknown counts have no `count` (absence is not zero)."""
    day = record.day.isoformat()
    populations = []
    for key, code in POPULATIONS:
        population: dict[str, Any] = {"code": {"coding": [{"system": SANER_VALUES, "code": code}]}}
        if record.counts[key] is not None:
            population["count"] = record.counts[key]
        populations.append(population)
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "subject": reference(service),
        "date": day,
        "reporter": reference(organization),
        "period": {"start": day, "end": day},
        "group": [{"code": {"coding": [{"system": SANER_GROUPS, "code": "Beds"}]}, "population": populations}],
    }
