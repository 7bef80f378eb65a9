"""HL7 v2 NL person data (PID, XCN, XON, XAD, XTN) to Patient / Practitioner / Organization.

Dutch conventions (README 4.3): BSN in PID-3 with assigning authority NLMINBIZA (type NNNLD), practitioners
and GP practices by AGB with authority VEKTIS, names as FN subcomponents surname & own prefix & own surname &
partner prefix & partner surname, addresses as SAD street & name & house number.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from adapters import identifiers as ids
from adapters.base import AdapterError
from adapters.bundle import Resource, TransactionBuilder, reference
from adapters.hl7v2_message import V2Message
from adapters.parties import add_organization, add_patient, add_practitioner, dutch_name

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_ADXP = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"
_LOCAL_ID_TYPES = {"PI", "MR", "PN", "PT"}
_GENDER = {"M": "male", "F": "female", "V": "female", "O": "other", "U": "unknown", "A": "other"}
_ADDRESS_USE = {"H": "home", "B": "work", "O": "work", "C": "temp"}
_PHONE_USE = {"PRN": "home", "ORN": "home", "WPN": "work", "VHN": "temp", "EMR": "home"}


def local_id_system(authority: str) -> str:
    """Identifier system for a source-local id (e.g. a hospital PI); scoped by the HL7 assigning authority."""
    return ids.HUB_NAMING + "local-id/" + quote(authority, safe="")


def patient_identifiers(msg: V2Message, pid: Any) -> list[dict[str, Any]]:
    """BSN (11-proof checked) and local patient ids from PID-3; an invalid BSN rejects the message."""
    found: list[dict[str, Any]] = []
    for rep in range(msg.repetitions(pid, 3)):
        value, authority, id_type = (msg.get(pid, 3, rep, c) for c in (1, 4, 5))
        if authority.upper() == "NLMINBIZA" or id_type.upper() == "NNNLD":
            bsn = ids.normalize_bsn(value)
            if not ids.is_valid_bsn(bsn):
                raise AdapterError(f"BSN {value!r} fails the 11-proof", location=f"PID-3[{rep + 1}]")
            found.insert(0, {"system": ids.BSN, "value": bsn})
        elif value and authority and id_type.upper() in _LOCAL_ID_TYPES:
            code = {"system": V2_0203, "code": id_type.upper()}
            found.append({"type": {"coding": [code]}, "system": local_id_system(authority), "value": value})
    if not found:
        raise AdapterError("PID-3 has no BSN (NLMINBIZA) and no local patient id", location="PID-3")
    return found


def xpn_name(msg: V2Message, seg: Any, field: int, rep: int = 0) -> dict[str, Any] | None:
    """XPN with FN subcomponents -> nl-core HumanName; None when the name is empty."""

    def fn(sub: int) -> str:
        return msg.get(seg, field, rep, 1, sub)

    given, initials = msg.get(seg, field, rep, 2), msg.get(seg, field, rep, 3)
    if not (fn(1) or fn(3) or given):
        return None
    use = "official" if msg.get(seg, field, rep, 7) in ("L", "") else "usual"
    return dutch_name(
        family=fn(1) or None,
        own_prefix=fn(2) or None,
        own_name=fn(3) or None,
        partner_prefix=fn(4) or None,
        partner_name=fn(5) or None,
        given=[given] if given else [],
        initials=initials or None,
        use=use,
    )


def xcn(msg: V2Message, seg: Any, field: int, rep: int = 0) -> tuple[str, str, dict[str, Any] | None]:
    """XCN -> (id, assigning authority, HumanName); the name parts sit one component later than in XPN."""

    def fn(sub: int) -> str:
        return msg.get(seg, field, rep, 2, sub)

    given = msg.get(seg, field, rep, 3)
    name = None
    if fn(1) or fn(3) or given:
        name = dutch_name(
            family=fn(1) or None,
            own_prefix=fn(2) or None,
            own_name=fn(3) or None,
            partner_prefix=fn(4) or None,
            partner_name=fn(5) or None,
            initials=given or None,
        )
    return msg.get(seg, field, rep, 1), msg.get(seg, field, rep, 9).upper(), name


def add_agb_practitioner(builder: TransactionBuilder, msg: V2Message, seg: Any, field: int) -> tuple[str, str] | None:
    """Practitioner for an XCN whose id is an AGB (authority VEKTIS); other ids are local and not shared."""
    agb, authority, name = xcn(msg, seg, field)
    if authority != "VEKTIS" or not ids.is_valid_agb(agb):
        return None
    return add_practitioner(builder, agb, name), agb


def add_agb_organization(builder: TransactionBuilder, msg: V2Message, seg: Any, field: int) -> tuple[str, str] | None:
    """Organization for an XON carrying an AGB (XON-10 in 2.5, XON-3 in 2.4; authority VEKTIS or none)."""
    name, authority = msg.get(seg, field, comp=1), msg.get(seg, field, comp=6).upper()
    agb = msg.get(seg, field, comp=10) or msg.get(seg, field, comp=3)
    if authority not in ("", "VEKTIS") or not ids.is_valid_agb(agb):
        return None
    return add_organization(builder, ids.AGB, agb, name=name or None, org_type="prov"), agb


def xad_address(msg: V2Message, seg: Any, field: int, rep: int = 0) -> dict[str, Any] | None:
    """XAD -> Address with street and house number kept apart (ADXP extensions), as nl-core does."""

    def c(n: int, sub: int = 1) -> str:
        return msg.get(seg, field, rep, n, sub)

    addition = c(2)
    line = " ".join(p for p in (c(1), addition) if p)
    if not (line or c(3) or c(5)):
        return None
    address: dict[str, Any] = {}
    if use := _ADDRESS_USE.get(c(7)):
        address["use"] = use
    if line:
        address["line"] = [line]
        parts = (("streetName", c(1, 2)), ("houseNumber", c(1, 3)), ("buildingNumberSuffix", addition))
        extensions = [{"url": _ADXP + k, "valueString": v} for k, v in parts if v]
        if extensions:
            address["_line"] = [{"extension": extensions}]
    for key, value in (("city", c(3)), ("postalCode", c(5)), ("country", c(6))):
        if value:
            address[key] = value
    return address


def xtn_contacts(msg: V2Message, seg: Any, field: int) -> list[dict[str, Any]]:
    """XTN repetitions -> ContactPoints (phone, mobile, fax, e-mail)."""
    contacts = []
    for rep in range(msg.repetitions(seg, field)):
        number = msg.get(seg, field, rep, 1) or msg.get(seg, field, rep, 12)
        use_code, equipment, email = (msg.get(seg, field, rep, n) for n in (2, 3, 4))
        if email or use_code == "NET" or equipment.upper() == "INTERNET":
            if email or number:
                contacts.append({"system": "email", "value": email or number})
            continue
        if not number:
            continue
        contact = {"system": "fax" if equipment == "FX" else "phone", "value": number}
        if use := ("mobile" if equipment == "CP" else _PHONE_USE.get(use_code)):
            contact["use"] = use
        contacts.append(contact)
    return contacts


def patient_resource(msg: V2Message) -> Resource:
    """Patient from PID (+ PD1 general practitioner references are added by the caller)."""
    pid = msg.segment("PID")
    if pid is None:
        raise AdapterError("message has no PID segment", location="PID")
    patient: Resource = {"resourceType": "Patient", "identifier": patient_identifiers(msg, pid)}
    names = [n for r in range(msg.repetitions(pid, 5)) if (n := xpn_name(msg, pid, 5, r))]
    if names:
        patient["name"] = names
    if contacts := xtn_contacts(msg, pid, 13):
        patient["telecom"] = contacts
    if gender := _GENDER.get(msg.get(pid, 8).upper()):
        patient["gender"] = gender
    if born := msg.timestamp(pid, 7):
        patient["birthDate"] = born[1][:10]
    died = msg.timestamp(pid, 29)
    if died:
        patient["deceasedDateTime"] = died[1]
    elif msg.get(pid, 30).upper() == "Y":
        patient["deceasedBoolean"] = True
    addresses = [a for r in range(msg.repetitions(pid, 11)) if (a := xad_address(msg, pid, 11, r))]
    if addresses:
        patient["address"] = addresses
    return patient


def add_hl7_patient(builder: TransactionBuilder, msg: V2Message, *, replace: bool) -> str:
    """Patient entry plus its GP (PD1-4 practitioner, PD1-3 practice) when identified by AGB."""
    patient = patient_resource(msg)
    pd1 = msg.segment("PD1")
    gps = [
        found[0]
        for found in (add_agb_practitioner(builder, msg, pd1, 4), add_agb_organization(builder, msg, pd1, 3))
        if found
    ]
    if gps:
        patient["generalPractitioner"] = [reference(urn) for urn in gps]
    deceased = "deceasedDateTime" in patient or "deceasedBoolean" in patient
    return add_patient(builder, patient, replace=replace or deceased)
