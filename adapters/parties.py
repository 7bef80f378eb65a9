"""Patients, organisations and practitioners as every adapter writes them: matched by national identifier.

A Patient is found-or-created by BSN (README 2), an Organization by AGB / URA / gemeentecode, a Practitioner
by AGB. Dutch names keep their parts (own name, prefix, partner name) as the zib/nl-core extensions, so a
"Hoekstra-de Vries" stays searchable and displayable in both forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters import identifiers as ids
from adapters.base import SourceMeta
from adapters.bundle import Resource, TransactionBuilder, mark_social, reference

ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_EXT = "http://hl7.org/fhir/StructureDefinition/"
_QUALIFIER = _EXT + "iso21090-EN-qualifier"


def dutch_name(
    *,
    family: str | None = None,
    own_prefix: str | None = None,
    own_name: str | None = None,
    partner_prefix: str | None = None,
    partner_name: str | None = None,
    given: Sequence[str] = (),
    initials: str | None = None,
    use: str = "official",
) -> dict[str, Any]:
    """HumanName with nl-core family-name parts; `family` is composed from the parts when not given."""
    own = " ".join(p for p in (own_prefix, own_name) if p)
    partner = " ".join(p for p in (partner_prefix, partner_name) if p)
    name: dict[str, Any] = {"use": use}
    family = family or "-".join(p for p in (own, partner) if p)
    if family:
        name["family"] = family
        parts = (
            ("own-prefix", own_prefix),
            ("own-name", own_name),
            ("partner-prefix", partner_prefix),
            ("partner-name", partner_name),
        )
        extensions = [{"url": f"{_EXT}humanname-{k}", "valueString": v} for k, v in parts if v]
        if extensions:
            name["_family"] = {"extension": extensions}
    given_names = [g for g in given if g]
    if initials and initials not in given_names:
        given_names.append(initials)
    if given_names:
        name["given"] = given_names
        if initials:
            initial_mark = {"extension": [{"url": _QUALIFIER, "valueCode": "IN"}]}
            name["_given"] = [initial_mark if g == initials else None for g in given_names]
    return name


def name_from_display(text: str) -> dict[str, Any]:
    """Split "P.A. van Houten" into initials and family (everything from the first word without a dot)."""
    words = text.split()
    cut = next((i for i, w in enumerate(words) if "." not in w), len(words))
    initials, family = " ".join(words[:cut]), " ".join(words[cut:])
    name = dutch_name(family=family or None, initials=initials or None)
    name["text"] = text
    return name


def add_organization(
    builder: TransactionBuilder,
    system: str,
    value: str,
    *,
    name: str | None = None,
    org_type: str | None = None,
    social: bool = False,
) -> str:
    """Conditional create of an Organization by its identifier; `org_type` is an organization-type code."""
    org: Resource = {"resourceType": "Organization", "identifier": [{"system": system, "value": value}]}
    if social:
        mark_social(org)
    if org_type:
        org["type"] = [{"coding": [{"system": ORG_TYPE, "code": org_type}]}]
    if name:
        org["name"] = name
    return builder.create_if_none_exist(org, system, value)


def sender_organization(builder: TransactionBuilder, meta: SourceMeta) -> tuple[str, str] | None:
    """The sending organisation from meta.sender as (urn, identifier value), or None when unknown."""
    if not meta.sender:
        return None
    system, value = ids.split_token(meta.sender)
    org_type = "govt" if system == ids.GEMEENTECODE else "prov"
    return add_organization(builder, system, value, org_type=org_type), value


def add_practitioner(builder: TransactionBuilder, agb: str, name: dict[str, Any] | None) -> str:
    """Conditional create of a Practitioner by AGB (the only identifier every Dutch source agrees on)."""
    practitioner: Resource = {
        "resourceType": "Practitioner",
        "identifier": [{"system": ids.AGB, "value": agb}],
    }
    if name:
        practitioner["name"] = [name]
    return builder.create_if_none_exist(practitioner, ids.AGB, agb)


def add_practitioner_role(
    builder: TransactionBuilder, practitioner: tuple[str, str], organization: tuple[str, str]
) -> str:
    """PractitionerRole "this AGB works for this organisation", so a requester carries both."""
    value = f"{practitioner[1]}/{organization[1]}"
    role: Resource = {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": reference(practitioner[0]),
        "organization": reference(organization[0]),
    }
    return builder.create_if_none_exist(role, ids.PRACTITIONER_ROLE, value)


def add_patient(builder: TransactionBuilder, patient: Resource, *, replace: bool = False) -> str:
    """Find-or-create by BSN (else the first identifier); `replace` = conditional update (ADT A08)."""
    identifiers = patient.get("identifier", [])
    key = next((i for i in identifiers if i["system"] == ids.BSN), identifiers[0] if identifiers else None)
    if key is None:
        raise ValueError("a Patient needs at least one identifier to be matched")
    if replace:
        return builder.update_by_identifier(patient, key["system"], key["value"])
    return builder.create_if_none_exist(patient, key["system"], key["value"])


def bsn_identifier(bsn: str) -> dict[str, str]:
    """Patient.identifier for a (validated) BSN."""
    return {"system": ids.BSN, "value": bsn}
