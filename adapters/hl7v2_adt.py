"""ADT events -> bed Location status, Encounter with its location(s), Patient (README 4.1).

Each event is one row of `EFFECTS`: what happens to the Encounter, to the bed in PV1-3 and to the bed in
PV1-6. Cancels (A11/A12/A13) are the same rows with the undo written out, so an undo is just another
idempotent PUT. HL7 carries no care product: the bed's product comes from the per-sender `ward_products`
configuration. Beds belong to the sender: their identifier is `<sender id>/<ward>/<room>-<bed>`, so
meta.sender is required.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import AdapterError, Problem, SourceMeta
from adapters.bundle import Resource, TransactionBuilder, mark_medical, reference
from adapters.dates import fhir_datetime
from adapters.hl7v2_message import PersonLocation, V2Message
from adapters.hl7v2_parties import add_agb_practitioner, add_hl7_patient
from adapters.parties import sender_organization

V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
BED_STATUS = {
    "C": "Closed",
    "H": "Housekeeping",
    "I": "Isolated",
    "K": "Contaminated",
    "O": "Occupied",
    "U": "Unoccupied",
}
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
CARE_PRODUCT_EXT = "https://zorgnet-hub.nl/fhir/StructureDefinition/care-product"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
REFERRER = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "REF", "display": "referrer"}
    ]
}
_CLASS = {
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "E": ("EMER", "emergency"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
}
VACATED = "vacated"  # placeholder for meta.config["vacated_bed_status"] (default H, README 4.1)


@dataclass(frozen=True)
class Effect:
    """What one ADT event does: Encounter.status, and (bed status, Encounter.location.status) per location."""

    encounter: str
    current: tuple[str, str | None]  # for PV1-3; location status None = not listed on the Encounter
    prior: tuple[str, str | None] | None = None  # for PV1-6


EFFECTS: dict[str, Effect] = {
    "A01": Effect("in-progress", ("O", "active")),
    "A02": Effect("in-progress", ("O", "active"), (VACATED, "completed")),
    "A03": Effect("finished", (VACATED, "completed")),
    "A11": Effect("cancelled", ("U", None)),  # cancel admit: the bed is free, the stay never happened
    "A12": Effect("in-progress", ("O", "active"), ("U", None)),  # cancel transfer: PV1-3 = original bed
    "A13": Effect("in-progress", ("O", "active")),  # cancel discharge: back in the bed
}
SUPPORTED = (*EFFECTS, "A08", "A20")


def translate_adt(msg: V2Message, meta: SourceMeta, builder: TransactionBuilder, problems: list[Problem]) -> None:
    """Dispatch on the trigger event; A08 touches only the Patient, A20 only the bed."""
    trigger = msg.trigger
    if trigger == "A20":
        _bed_status_update(msg, meta, builder, problems)
        return
    if trigger not in SUPPORTED:
        raise AdapterError(
            f"ADT^{trigger} is not supported (supported: {', '.join(SUPPORTED)})",
            location="MSH-9",
            code="not-supported",
        )
    patient = add_hl7_patient(builder, msg, replace=trigger == "A08")
    if trigger == "A08":
        return
    _visit_event(msg, meta, builder, problems, EFFECTS[trigger], patient)


def _bed_status_update(msg: V2Message, meta: SourceMeta, builder: TransactionBuilder, problems: list[Problem]) -> None:
    """A20: NPU-1 bed, NPU-2 status from table 0116; no patient data at all."""
    npu = msg.segment("NPU")
    place = msg.location(npu, 1)
    if npu is None or not place.bed_label:
        raise AdapterError("ADT^A20 needs a bed in NPU-1", location="NPU-1")
    status = msg.get(npu, 2).upper()
    if status not in BED_STATUS:
        raise AdapterError(f"bed status {status!r} is not in HL7 table 0116", location="NPU-2")
    _add_bed(builder, meta, problems, place, status, "NPU-1")


def _visit_event(
    msg: V2Message,
    meta: SourceMeta,
    builder: TransactionBuilder,
    problems: list[Problem],
    effect: Effect,
    patient: str,
) -> None:
    """Beds of PV1-3/PV1-6 and the Encounter (keyed by visit number PV1-19) of an admit/transfer/discharge."""
    pv1 = msg.segment("PV1")
    if pv1 is None:
        raise AdapterError(f"ADT^{msg.trigger} needs a PV1 segment", location="PV1")
    event_at = msg.event_time()
    admitted = msg.timestamp(pv1, 44)
    locations: list[dict[str, Any]] = []
    for field, change in ((6, effect.prior), (3, effect.current)):
        place = msg.location(pv1, field)
        if change is None or place.is_empty:
            continue
        bed_status, location_status = change
        urn = (
            _add_bed(builder, meta, problems, place, bed_status, f"PV1-{field}")
            if place.bed_label
            else _add_ward(builder, place, *_sender(builder, meta))
        )
        if location_status:
            start = event_at if msg.trigger == "A02" and field == 3 else (admitted[0] if admitted else None)
            end = event_at if location_status == "completed" else None
            locations.append(_encounter_location(urn, location_status, start, end))
    visit = msg.get(pv1, 19)
    if not visit:
        problems.append(Problem("warning", "no visit number: the Encounter is not written", "PV1-19"))
        return
    organization, owner = _sender(builder, meta)
    encounter = _encounter(msg, builder, pv1, effect.encounter, patient, locations)
    encounter["serviceProvider"] = reference(organization)
    builder.update_by_identifier(mark_medical(encounter), ids.VISIT, f"{owner}/{visit}")


def _encounter(
    msg: V2Message,
    builder: TransactionBuilder,
    pv1: Any,
    status: str,
    patient: str,
    locations: list[dict[str, Any]],
) -> Resource:
    """The Encounter as this event leaves it; the hub keeps earlier states as versions."""
    code, display = _CLASS.get(msg.get(pv1, 2).upper(), _CLASS["I"])
    encounter: Resource = {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "subject": reference(patient),
    }
    period = {}
    if admitted := msg.timestamp(pv1, 44):
        period["start"] = admitted[1]
    if status == "finished" and (left := msg.timestamp(pv1, 45) or _timestamp(msg.event_time())):
        period["end"] = left[1]
    if period:
        encounter["period"] = period
    if referrer := add_agb_practitioner(builder, msg, pv1, 8):
        encounter["participant"] = [{"type": [REFERRER], "individual": reference(referrer[0])}]
    if reason := msg.get("PV2", 3, comp=2) or msg.get("PV2", 3, comp=1):
        encounter["reasonCode"] = [{"text": reason}]
    if status == "finished" and (disposition := msg.get(pv1, 36)):
        coding = {"system": "http://terminology.hl7.org/CodeSystem/v2-0112", "code": disposition}
        if text := msg.get(pv1, 36, comp=2):
            coding["display"] = text
        encounter["hospitalization"] = {"dischargeDisposition": {"coding": [coding]}}
    if locations:
        encounter["location"] = locations
    return encounter


def _timestamp(moment: datetime | None) -> tuple[datetime, str] | None:
    """(datetime, FHIR text) like V2Message.timestamp, for the event-time fallback."""
    return (moment, fhir_datetime(moment)) if moment else None


def _encounter_location(urn: str, status: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """One Encounter.location entry; the period is as much as this message tells."""
    item: dict[str, Any] = {"location": reference(urn), "status": status}
    period = {k: fhir_datetime(v) for k, v in (("start", start), ("end", end)) if v}
    if period:
        item["period"] = period
    return item


def _sender(builder: TransactionBuilder, meta: SourceMeta) -> tuple[str, str]:
    """(Organization urn, identifier value) of the sender, whose value scopes bed, ward and visit ids."""
    found = sender_organization(builder, meta)
    if found is None:
        raise AdapterError(
            "HL7 v2 bed and visit events need meta.sender (the provider's AGB) to scope bed ids",
            code="business-rule",
        )
    return found


def _add_ward(builder: TransactionBuilder, place: PersonLocation, organization: str, owner: str) -> str:
    """The ward Location (physicalType wa) a bed is partOf; conditional create, staff may enrich it."""
    ward: Resource = {
        "resourceType": "Location",
        "status": "active",
        "name": place.ward,
        "mode": "instance",
        "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "wa", "display": "Ward"}]},
        "managingOrganization": reference(organization),
    }
    return builder.create_if_none_exist(ward, ids.WARD, f"{owner}/{place.ward}")


def _add_bed(
    builder: TransactionBuilder,
    meta: SourceMeta,
    problems: list[Problem],
    place: PersonLocation,
    status: str,
    where: str,
) -> str:
    """Conditional update of the bed Location with its new operationalStatus (and product from config)."""
    organization, owner = _sender(builder, meta)
    code = meta.config.get("vacated_bed_status", "H") if status == VACATED else status
    if code not in BED_STATUS:
        raise AdapterError(f"configured vacated_bed_status {code!r} is not in table 0116", code="business-rule")
    bed: Resource = {
        "resourceType": "Location",
        "status": "suspended" if code == "C" else "active",
        "operationalStatus": {"system": V2_0116, "code": code, "display": BED_STATUS[code]},
        "name": " ".join(p for p in (place.ward, place.bed_label) if p),
        "mode": "instance",
        "physicalType": {"coding": [{"system": PHYSICAL_TYPE, "code": "bd", "display": "Bed"}]},
        "managingOrganization": reference(organization),
    }
    product = _product_for_bed(meta, place, problems, where)
    if product:
        bed["extension"] = [{"url": CARE_PRODUCT_EXT, "valueCoding": care_products.coding(product)}]
    if place.ward:
        bed["partOf"] = reference(_add_ward(builder, place, organization, owner))
    ward = place.ward or "-"
    return builder.update_by_identifier(bed, ids.BED, f"{owner}/{ward}/{place.bed_label}")


def _product_for_bed(meta: SourceMeta, place: PersonLocation, problems: list[Problem], where: str) -> str | None:
    """Most specific key wins: ward/bed, bed, ward/room, room, ward (README 4.2: beds get re-purposed)."""
    table = meta.config.get("ward_products") or {}
    keys = (
        f"{place.ward}/{place.bed_label}",
        place.bed_label,
        f"{place.ward}/{place.room}",
        place.room,
        place.ward,
    )
    for key in keys:
        if key and key in table:
            code = str(table[key])
            if code in care_products.PRODUCTS:
                return code
            problems.append(Problem("warning", f"ward_products maps {key!r} to unknown care product {code!r}", where))
            return None
    problems.append(
        Problem(
            "warning",
            f"no ward_products entry for {place.ward}/{place.bed_label}: the bed carries no care product",
            where,
        )
    )
    return None
