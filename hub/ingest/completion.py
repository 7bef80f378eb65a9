"""What the hub completes in an adapter's Bundle from the same message before storing it.

The referrals domain requires the patient's postcode on a referral ServiceRequest (extension
`referral-postcode`, hub/referrals/intake.py: routing looks for beds near it). The adapters put the address on
the Patient (HL7 PID-11, MEDVRI PAD, ...) but not on the ServiceRequest, so a GP referral from ZorgDomein or
MEDVRI would be refused. Here the postcode is copied from the Patient the ServiceRequest's subject points to,
in the same Bundle: derived from the message, never invented; a ServiceRequest that already has it, or whose
patient has no postcode, is left alone, and social-domain requests (iWmo) get nothing added. This belongs in
the adapters (see the ingest report); it is a no-op once they emit the extension.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.base import Problem

HUB = "https://zorgnet-hub.nl/fhir"
POSTCODE_EXT = f"{HUB}/StructureDefinition/referral-postcode"
SOCIAL = (f"{HUB}/CodeSystem/data-domain", "social")
_POSTCODE = re.compile(r"^\s*([1-9][0-9]{3})\s?([A-Za-z]{2})?\s*$")


def complete(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The entries with referral postcodes filled in, and one information Problem per filled-in value."""
    patients = {
        e.get("fullUrl"): e.get("resource") or {}
        for e in entries
        if (e.get("resource") or {}).get("resourceType") == "Patient"
    }
    out: list[dict[str, Any]] = []
    notes: list[Problem] = []
    for entry in entries:
        resource = entry.get("resource") or {}
        postcode = _missing_postcode(resource, patients)
        if postcode is None:
            out.append(entry)
            continue
        extension = [*(resource.get("extension") or []), {"url": POSTCODE_EXT, "valueString": postcode}]
        out.append({**entry, "resource": {**resource, "extension": extension}})
        notes.append(
            Problem(
                "information",
                f"referral postcode {postcode} taken from the patient's address",
                "ServiceRequest.extension",
            )
        )
    return out, notes


def _missing_postcode(resource: dict[str, Any], patients: dict[Any, dict[str, Any]]) -> str | None:
    if resource.get("resourceType") != "ServiceRequest":
        return None
    if any(e.get("url") == POSTCODE_EXT for e in resource.get("extension") or []):
        return None
    tags = {(t.get("system"), t.get("code")) for t in (resource.get("meta") or {}).get("tag") or []}
    if SOCIAL in tags:
        return None
    patient = patients.get((resource.get("subject") or {}).get("reference"))
    for address in (patient or {}).get("address") or []:
        match = _POSTCODE.match(str(address.get("postalCode") or ""))
        if match:
            return f"{match.group(1)} {match.group(2).upper()}" if match.group(2) else match.group(1)
    return None
