"""Systems, codes and extension urls the referral flow reads and writes (one place, so a reader greps once)."""

from __future__ import annotations

HUB = "https://zorgnet-hub.nl/fhir"
CARE_PRODUCT = f"{HUB}/CodeSystem/care-product"
CARE_PRODUCT_EXT = f"{HUB}/StructureDefinition/care-product"
BED_RESERVATION_EXT = f"{HUB}/StructureDefinition/bed-reservation"
BED_STATUS_EXTRA = f"{HUB}/CodeSystem/bed-status-extra"
SERVICE_CHARACTERISTIC = f"{HUB}/CodeSystem/service-characteristic"
TRIAGE = f"{HUB}/CodeSystem/triage"
DATA_DOMAIN = f"{HUB}/CodeSystem/data-domain"
V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
TASK_CODE = "http://terminology.hl7.org/CodeSystem/task-code"
SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = "3457005"  # SNOMED "Patient referral": marks a ServiceRequest as a bed referral
SANER_VALUES = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues"

# Extensions on the referral ServiceRequest (hub-defined; profiles/ should publish them, see the package doc).
POSTCODE_EXT = f"{HUB}/StructureDefinition/referral-postcode"  # valueString: the patient's postcode (PC4 or PC6)
HOME_CARE_EXT = f"{HUB}/StructureDefinition/referral-home-care-acceptable"  # valueBoolean, default true

# Identifier systems that mark the Tasks this package owns (and gives them deterministic, idempotent ids).
REFERRAL_TASK_SYSTEM = f"{HUB}/NamingSystem/referral-task"  # value = ServiceRequest id
OFFER_SYSTEM = f"{HUB}/NamingSystem/referral-offer"  # value = "<ServiceRequest id>/<offer number>"

# Task.businessStatus: BSeR's states (HL7 BSeR TaskBusinessStatusCS) plus the hub's routing states.
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
BSER_STATES = {
    "created": ("2.0", "Service Request Created"),
    "accepted": ("3.0", "Service Request Accepted"),
    "declined": ("4.0", "Service Request Declined"),
    "cancelled": ("6.0", "Service Request Fulfillment Cancelled"),
}
ROUTING_STATUS = f"{HUB}/CodeSystem/referral-status"
ROUTING_DISPLAY = {
    "routing": "Looking for a bed",
    "offered": "Offered to a provider",
    "accepted": "Bed accepted",
    "declined": "Declined by the provider",
    "expired": "No answer before the deadline",
    "needs-person": "Needs a person at the coordination point",
    "cancelled": "Cancelled",
}
HOME_AVAILABLE = "home-alternative"  # Task.input type text for a "zo thuis mogelijk" alternative
RESERVED_BED = "reserved-bed"  # Task.input type text for the bed an offer holds
ADMISSION = "admission"  # Task.output type text: admission time
ACCEPTED_BED = "accepted-bed"  # Task.output type text: the bed Location accepted
RANKING = "ranking"  # Task.input type text: why this provider (the ranking explanation)


def business_status(state: str) -> dict[str, object]:
    """A businessStatus CodeableConcept: the hub routing state, plus BSeR's code where BSeR has one."""
    codings: list[dict[str, str]] = []
    bser = {"offered": "created", "accepted": "accepted", "declined": "declined", "cancelled": "cancelled"}.get(state)
    if bser:
        code, display = BSER_STATES[bser]
        codings.append({"system": BSER, "code": code, "display": display})
    codings.append({"system": ROUTING_STATUS, "code": state, "display": ROUTING_DISPLAY[state]})
    return {"coding": codings, "text": ROUTING_DISPLAY[state]}


def identifier_value(resource: dict[str, object], system: str) -> str | None:
    for ident in resource.get("identifier") or []:  # type: ignore[attr-defined]
        if isinstance(ident, dict) and ident.get("system") == system:
            value = ident.get("value")
            return str(value) if value is not None else None
    return None


def is_referral_task(task: dict[str, object]) -> bool:
    """A referral or offer Task: written only by this package's transitions."""
    return bool(identifier_value(task, OFFER_SYSTEM) or identifier_value(task, REFERRAL_TASK_SYSTEM))
