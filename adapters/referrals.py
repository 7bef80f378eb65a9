"""What GP referrals share whichever channel brought them (ZorgDomein HL7 v2, Edifact MEDVRI).

The same referral often arrives twice (README 9: ZorgDomein *and* MEDVRI for Mw. Hoekstra), so both channels
stamp the ServiceRequest with the same match key `<bsn>/<date>/<referrer AGB>`, which the hub's referral
service can search on to merge them. Letters are kept as DocumentReferences with size and SHA-1 hash.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from adapters import identifiers as ids

REFERRAL_NOTE = {"system": "http://loinc.org", "code": "57133-1", "display": "Referral note"}
POSTCODE_EXT = "https://zorgnet-hub.nl/fhir/StructureDefinition/referral-postcode"


def add_postcode(request: dict[str, Any], postcode: str | None) -> None:
    """The patient's postcode on the referral (hub/referrals requires it: routing looks for beds nearby)."""
    if postcode and postcode.strip():
        request.setdefault("extension", []).append({"url": POSTCODE_EXT, "valueString": postcode.strip()})


def referral_match_key(bsn: str | None, authored_on: str | None, referrer: str | None) -> dict[str, str] | None:
    """Identifier `<bsn>/<yyyy-mm-dd>/<referrer AGB>`, or None when a part is unknown."""
    if not (bsn and authored_on and referrer):
        return None
    return {"system": ids.REFERRAL_MATCH, "value": f"{bsn}/{authored_on[:10]}/{referrer}"}


def attachment(content: bytes, content_type: str, title: str, *, language: str | None = None) -> dict[str, Any]:
    """Inline Attachment with base64 data, size and SHA-1 hash (FHIR Attachment.hash is base64 SHA-1)."""
    found: dict[str, Any] = {"contentType": content_type}
    if language:
        found["language"] = language
    return found | {
        "data": base64.b64encode(content).decode("ascii"),
        "size": len(content),
        "hash": base64.b64encode(hashlib.sha1(content).digest()).decode("ascii"),
        "title": title,
    }
