"""ZorgDomein-style GP referrals (ORU^R01 / ORM^O01) -> ServiceRequest + DocumentReference (README 5.2).

OBR-4 carries a coded product (`ELVHC^ELV hoog complex^ZORGDOMEIN`). ZorgDomein's real codes are not public,
so the care product comes from `meta.config["zorgdomein_products"]` (code -> care product) or else from the
coded display text through the alias rules; the original coding is always kept next to it. When neither works
the ServiceRequest is tagged for triage instead of guessed. OBX of type ED is the letter (base64 PDF),
FT/TX/ST OBX and NTE are the referrer's explanation (reasonCode text), a CE OBX about urgency sets the
priority.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import Problem, SourceMeta
from adapters.bundle import TRIAGE, Resource, TransactionBuilder, add_tag, mark_medical, reference
from adapters.dates import fhir_datetime
from adapters.hl7v2_message import V2Message
from adapters.hl7v2_parties import (
    add_agb_organization,
    add_agb_practitioner,
    add_hl7_patient,
    patient_identifiers,
)
from adapters.parties import add_practitioner_role, sender_organization
from adapters.referrals import REFERRAL_NOTE, add_postcode, attachment, referral_match_key

_URGENT_WORDS = ("VANDAAG", "SPOED", "ACUUT", "ZSM", "DIRECT", "URGENT", "CITO")
_PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "P": "routine", "T": "routine"}


def coding_system(name: str) -> str:
    """URI for an HL7 v2 coding-system name: HL7nnnn tables to THO, others to a hub placeholder system."""
    upper = name.upper()
    if upper.startswith("HL7") and upper[3:].isdigit():
        return f"http://terminology.hl7.org/CodeSystem/v2-{upper[3:]}"
    return ids.HUB_CODES + (upper.lower() if upper else "unknown")


def translate_referral(msg: V2Message, meta: SourceMeta, builder: TransactionBuilder, problems: list[Problem]) -> None:
    """One referral per message: Patient, requester, ServiceRequest, and a DocumentReference per letter."""
    obr = msg.segment("OBR")
    orc = msg.segment("ORC")
    if len(msg.segments("OBR")) > 1:
        problems.append(Problem("warning", "only the first order (OBR) of the message is translated", "OBR"))
    patient = add_hl7_patient(builder, msg, replace=False)
    requester = _requester(msg, meta, builder, obr, orc)
    source = msg.get("MSH", 3) or "hl7v2"
    placer = msg.get(orc, 2) or msg.get(obr, 2) or msg.control_id or ""
    key = f"{source}/{placer}"
    request = _service_request(msg, meta, obr, orc, patient, requester, problems)
    add_postcode(request, msg.get(msg.segment("PID"), 11, comp=5))
    request["identifier"] = [{"system": ids.REFERRAL, "value": key}]
    bsn = next((i["value"] for i in patient_identifiers(msg, msg.segment("PID")) if i["system"] == ids.BSN), None)
    if match := referral_match_key(bsn, request.get("authoredOn"), requester[1] if requester else None):
        request["identifier"].append(match)
    urn = builder.create_if_none_exist(mark_medical(request), ids.REFERRAL, key)
    for index, obx in enumerate(msg.segments("OBX"), start=1):
        if msg.get(obx, 2).upper() == "ED":
            _add_document(msg, builder, obx, index, key, urn, patient, requester, problems)


def _requester(
    msg: V2Message, meta: SourceMeta, builder: TransactionBuilder, obr: Any, orc: Any
) -> tuple[str, str] | None:
    """(urn, AGB) of the GP (ORC-12, OBR-16, PV1-8) - a PractitionerRole when the practice is known too."""
    practitioner = (
        add_agb_practitioner(builder, msg, orc, 12)
        or add_agb_practitioner(builder, msg, obr, 16)
        or add_agb_practitioner(builder, msg, msg.segment("PV1"), 8)
    )
    practice = add_agb_organization(builder, msg, orc, 21) or add_agb_organization(builder, msg, msg.segment("PD1"), 3)
    gp_sender = meta.sender if meta.sender_kind == "gp" else None
    if practice is None and gp_sender and not (practitioner and gp_sender.endswith(f"|{practitioner[1]}")):
        practice = sender_organization(builder, meta)  # the practice, when it delivers under its own id
    if practitioner and practice:
        return add_practitioner_role(builder, practitioner, practice), practitioner[1]
    return practitioner or practice


def _service_request(
    msg: V2Message,
    meta: SourceMeta,
    obr: Any,
    orc: Any,
    patient: str,
    requester: tuple[str, str] | None,
    problems: list[Problem],
) -> Resource:
    """ServiceRequest with the care-product coding first and the ZorgDomein coding kept beside it."""
    code, text, system = (msg.get(obr, 4, comp=n) for n in (1, 2, 3))
    request: Resource = {"resourceType": "ServiceRequest", "status": "active", "intent": "order"}
    product = _product(code, text, meta, problems)
    codings = [care_products.coding(product)] if product else []
    if code:
        original = {"system": coding_system(system), "code": code}
        codings.append({**original, "display": text} if text else original)
    concept = {k: v for k, v in (("coding", codings), ("text", text)) if v}
    if concept:
        request["code"] = concept
    if product is None:
        add_tag(request, TRIAGE, "needs-triage")
    if priority := _priority(msg, obr, orc):
        request["priority"] = priority
    request["subject"] = reference(patient)
    authored = msg.timestamp(orc, 9) or msg.timestamp(obr, 7) or msg.timestamp("MSH", 7)
    if authored:
        request["authoredOn"] = authored[1]
    if requester:
        request["requester"] = reference(requester[0])
    reasons = [
        t for obx in msg.segments("OBX") if msg.get(obx, 2).upper() in ("FT", "TX", "ST") if (t := msg.text(obx, 5))
    ]
    reasons += [t for nte in msg.segments("NTE") if (t := msg.text(nte, 3))]
    if reasons:
        request["reasonCode"] = [{"text": "\n".join(reasons)}]
    return request


def _product(code: str, text: str, meta: SourceMeta, problems: list[Problem]) -> str | None:
    """Configured ZorgDomein mapping first, then the coded display through the alias rules; else triage."""
    configured = (meta.config.get("zorgdomein_products") or {}).get(code)
    if configured in care_products.PRODUCTS:
        return str(configured)
    try:
        return care_products.product_for_alias(text or code, None, meta.sender_kind)
    except care_products.ProductNotResolved as exc:
        problems.append(Problem("warning", f"care product not derived, needs triage: {exc}", "OBR-4"))
        return None


def _priority(msg: V2Message, obr: Any, orc: Any) -> str | None:
    """ORC-7/OBR-27 TQ priority (S/A/R), else a ZorgDomein urgency answer (CE OBX) as urgent/routine."""
    tq = (msg.get(orc, 7, comp=6) or msg.get(obr, 27, comp=6) or msg.get(obr, 5)).upper()
    if tq in _PRIORITY:
        return _PRIORITY[tq]
    for obx in msg.segments("OBX"):
        question = f"{msg.get(obx, 3)} {msg.get(obx, 3, comp=2)}".upper()
        if msg.get(obx, 2).upper() in ("CE", "CWE") and ("URG" in question or "SPOED" in question):
            answer = f"{msg.get(obx, 5)} {msg.get(obx, 5, comp=2)}".upper()
            return "urgent" if any(w in answer for w in _URGENT_WORDS) else "routine"
    return None


def _add_document(
    msg: V2Message,
    builder: TransactionBuilder,
    obx: Any,
    index: int,
    key: str,
    request: str,
    patient: str,
    requester: tuple[str, str] | None,
    problems: list[Problem],
) -> None:
    """OBX ED (^application^pdf^Base64^data) -> DocumentReference with the letter inline."""
    where = f"OBX[{index}]-5"
    mime = "/".join(p for p in (msg.get(obx, 5, comp=2), msg.get(obx, 5, comp=3)) if p).lower()
    encoding, payload = msg.get(obx, 5, comp=4).upper(), "".join(msg.get(obx, 5, comp=5).split())
    if encoding != "BASE64":
        problems.append(Problem("error", f"embedded document encoding {encoding!r} unsupported (Base64 only)", where))
        return
    try:
        content = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        problems.append(Problem("error", "embedded document is not valid base64; document skipped", where))
        return
    title = msg.get(obx, 3, comp=2) or msg.get(obx, 3) or "Verwijsbrief"
    doc_type: list[dict[str, str]] = [REFERRAL_NOTE]
    if msg.get(obx, 3):
        doc_type.append({"system": coding_system(msg.get(obx, 3, comp=3)), "code": msg.get(obx, 3), "display": title})
    document: Resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": doc_type, "text": title},
        "subject": reference(patient),
    }
    observed = msg.timestamp(obx, 14) or msg.timestamp("MSH", 7)
    if observed:
        document["date"] = fhir_datetime(observed[0])
    if requester:
        document["author"] = [reference(requester[0])]
    document["description"] = title
    document["content"] = [{"attachment": attachment(content, mime or "application/octet-stream", title)}]
    document["context"] = {"related": [reference(request)]}
    set_id = msg.get(obx, 1) or str(index)
    builder.create_if_none_exist(mark_medical(document), ids.REFERRAL_DOCUMENT, f"{key}/{set_id}")
