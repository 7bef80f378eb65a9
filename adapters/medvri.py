"""Edifact MEDVRI:1, the GP referral letter from a HIS over Zorgmail (README 5.1), -> FHIR referral.

The letter is free text (TXT lines), so the care product is *derived* by keyword rules and every
ServiceRequest is tagged `triage|needs-triage` with a note saying what was derived, from which words, and how
sure. The patient is matched by BSN (conditional create), the GP by the AGB in UNB. The letter itself is kept
verbatim as a text/plain DocumentReference. Envelope counts (UNT, UNZ) are checked by `edifact.parse`.
"""

from __future__ import annotations

import re
from datetime import datetime

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bundle import TRIAGE, Resource, TransactionBuilder, add_tag, mark_medical, reference
from adapters.dates import AMSTERDAM, fhir_datetime
from adapters.edifact import Interchange, Message, Segment, parse
from adapters.parties import (
    add_patient,
    add_practitioner,
    add_practitioner_role,
    bsn_identifier,
    dutch_name,
    name_from_display,
    sender_organization,
)
from adapters.referrals import REFERRAL_NOTE, add_postcode, attachment, referral_match_key

FORMAT = "medvri"
MEDIA_TYPES = ("application/edifact",)
DESCRIPTION = "Edifact MEDVRI:1 GP referral letter -> Patient, ServiceRequest (flagged for triage), letter"
_URGENT = re.compile(r"\b(vandaag|spoed|met spoed|acuut|z ?s ?m|direct|zo snel mogelijk)\b")


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """One interchange -> one Bundle; a bad message among several becomes an error Problem, not a 400."""
    interchange = parse(source)
    builder = TransactionBuilder()
    problems: list[Problem] = []
    times: list[datetime] = []
    for message in interchange.messages:
        if message.message_type != "MEDVRI":
            problems.append(
                Problem(
                    "error",
                    f"message type {message.message_type!r} is not MEDVRI; skipped",
                    message.segments[0].where,
                )
            )
            continue
        try:
            times.append(_translate_message(interchange, message, meta, builder, problems))
        except AdapterError as exc:
            if len(interchange.messages) == 1:
                raise
            problems.append(Problem("error", f"{exc.message}; message {message.reference} skipped", exc.location))
    single = len(interchange.messages) == 1
    return Translation(
        bundle=builder.bundle(),
        problems=problems,
        message_id=interchange.messages[0].reference if single else interchange.reference,
        event_time=max(times, default=None),
        kind="MEDVRI",
    )


def _translate_message(
    interchange: Interchange,
    message: Message,
    meta: SourceMeta,
    builder: TransactionBuilder,
    problems: list[Problem],
) -> datetime:
    """Patient, requester, ServiceRequest and letter for one MEDVRI; returns the letter's date/time."""
    written = _written_at(message)
    patient_resource = _patient(message)
    bsn = patient_resource["identifier"][0]["value"]
    patient = add_patient(builder, patient_resource)
    requester = _requester(interchange, message, meta, builder, problems)
    letter = "\n".join(s.text() for s in message.all("TXT"))
    key = f"MEDVRI/{interchange.sender}/{message.reference}"
    request = _service_request(message, letter, written, patient, requester)
    add_postcode(request, next((a.get("postalCode") for a in patient_resource.get("address", [])), None))
    request["identifier"] = [{"system": ids.REFERRAL, "value": key}]
    if match := referral_match_key(bsn, request["authoredOn"], requester[1] if requester else None):
        request["identifier"].append(match)
    urn = builder.create_if_none_exist(mark_medical(request), ids.REFERRAL, key)
    builder.create_if_none_exist(
        mark_medical(_letter(letter, written, patient, requester, urn)),
        ids.REFERRAL_DOCUMENT,
        f"{key}/letter",
    )
    return written


def _written_at(message: Message) -> datetime:
    """DET:1 `yy:mm:dd` + `hh:mm`, Amsterdam local time."""
    det = message.first("DET", "1") or message.first("DET")
    try:
        if det is None:
            raise ValueError("missing")
        yy, mm, dd = (int(det.value(1, i)) for i in range(3))
        hour = int(det.value(2, 0) or 0)
        minute = int(det.value(2, 1) or 0)
        return datetime(2000 + yy if yy < 100 else yy, mm, dd, hour, minute, tzinfo=AMSTERDAM)
    except ValueError as exc:
        raise AdapterError(
            "DET:1 date/time of the letter is missing or unreadable", location=det.where if det else "DET"
        ) from exc


def _patient(message: Message) -> Resource:
    """PID (birth date, M/V, name parts, BSN) + PAD (address, phone); the BSN is required for matching."""
    pid = message.first("PID")
    if pid is None:
        raise AdapterError("MEDVRI has no PID segment", location="PID")
    raw = pid.value(5)
    bsn = ids.normalize_bsn(raw.removeprefix("BSN").removeprefix("bsn"))
    if not ids.is_valid_bsn(bsn):
        raise AdapterError(f"BSN {raw!r} is missing or fails the 11-proof", location=f"{pid.where} element 5")
    patient: Resource = {"resourceType": "Patient", "identifier": [bsn_identifier(bsn)]}
    surname, prefix, own_surname, own_prefix, initials = (pid.value(3, i) for i in (0, 1, 2, 3, 5))
    if surname or own_surname:
        family = " ".join(p for p in (prefix, surname) if p)
        patient["name"] = [
            dutch_name(
                family=family or None,
                own_prefix=own_prefix or None,
                own_name=own_surname or None,
                initials=initials or None,
            )
        ]
    if gender := {"M": "male", "V": "female", "O": "unknown"}.get(pid.value(2).upper()):
        patient["gender"] = gender
    if all(pid.value(1, i) for i in range(3)):
        patient["birthDate"] = "-".join(pid.value(1, i) for i in range(3))
    pad = message.first("PAD")
    if pad is not None:
        if address := _address(pad, 1):
            patient["address"] = [{"use": "home", **address}]
        if pad.value(2):
            patient["telecom"] = [{"system": "phone", "value": pad.value(2), "use": "home"}]
    return patient


def _address(segment: Segment, element: int) -> dict[str, object] | None:
    """`street:number::city:postcode` -> Address."""
    street, number, city, postcode = (segment.value(element, i) for i in (0, 1, 3, 4))
    address: dict[str, object] = {}
    if street:
        address["line"] = [" ".join(p for p in (street, number) if p)]
    address |= {k: v for k, v in (("city", city), ("postalCode", postcode)) if v}
    return address or None


def _requester(
    interchange: Interchange,
    message: Message,
    meta: SourceMeta,
    builder: TransactionBuilder,
    problems: list[Problem],
) -> tuple[str, str] | None:
    """The GP by the UNB sender AGB (named in GGA); with a GP-practice sender, a PractitionerRole."""
    agb = interchange.sender
    if not ids.is_valid_agb(agb):
        problems.append(Problem("warning", f"UNB sender {agb!r} is not an AGB; no requester", interchange.header.where))
        return None
    gga = message.first("GGA")
    name = name_from_display(gga.value(1)) if gga is not None and gga.value(1) else None
    practitioner = add_practitioner(builder, agb, name), agb
    if meta.sender_kind == "gp" and meta.sender and ids.split_token(meta.sender)[1] != agb:
        practice = sender_organization(builder, meta)  # the practice, when it delivers under its own id
        if practice:
            return add_practitioner_role(builder, practitioner, practice), agb
    return practitioner


def _service_request(
    message: Message, letter: str, written: datetime, patient: str, requester: tuple[str, str] | None
) -> Resource:
    """ServiceRequest with the derived product (if any), always flagged for triage with the reasoning."""
    derived = care_products.derive_from_text(letter)
    request: Resource = {"resourceType": "ServiceRequest", "status": "active", "intent": "order"}
    add_tag(request, TRIAGE, "needs-triage")
    if derived.code:
        request["code"] = {
            "coding": [care_products.coding(derived.code)],
            "text": f"{care_products.PRODUCTS[derived.code].display} (derived from letter text)",
        }
    urgent = _URGENT.search(care_products.normalize(letter))
    if urgent:
        request["priority"] = "urgent"
    request |= {"subject": reference(patient), "authoredOn": fhir_datetime(written)}
    if requester:
        request["requester"] = reference(requester[0])
    notes = [derived.explain()]
    if urgent:
        notes.append(f"Priority 'urgent' derived from the words '{urgent.group(0)}' in the letter.")
    if sender := _sender_line(message):
        notes.append(f"Referrer: {sender}")
    request["note"] = [{"text": n} for n in notes]
    return request


def _sender_line(message: Message) -> str:
    """GGA as one line for staff: name, practice, phone."""
    gga = message.first("GGA")
    if gga is None:
        return ""
    return ", ".join(p for p in (gga.value(1), gga.value(3) or gga.value(2), gga.value(5)) if p)


def _letter(letter: str, written: datetime, patient: str, requester: tuple[str, str] | None, request: str) -> Resource:
    """The TXT lines verbatim as a text/plain DocumentReference linked to the ServiceRequest."""
    document: Resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [REFERRAL_NOTE], "text": "Verwijsbrief (MEDVRI)"},
        "subject": reference(patient),
        "date": fhir_datetime(written),
    }
    if requester:
        document["author"] = [reference(requester[0])]
    document["description"] = "Verwijsbrief (MEDVRI)"
    document["content"] = [
        {"attachment": attachment(letter.encode("utf-8"), "text/plain; charset=utf-8", "Verwijsbrief", language="nl")}
    ]
    document["context"] = {"related": [reference(request)]}
    return document
