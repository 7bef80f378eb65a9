"""Dutch identifiers (BSN, AGB, URA, gemeentecode) and the hub's own identifier systems.

National systems follow the Nictiz zib profiles (domain README section 2). The hub systems below are the keys
adapters use for conditional create/update so a re-delivered message matches instead of duplicating; they are
listed in adapters/README.md.
"""

from __future__ import annotations

import re

BSN = "http://fhir.nl/fhir/NamingSystem/bsn"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA = "http://fhir.nl/fhir/NamingSystem/ura"

HUB_NAMING = "https://zorgnet-hub.nl/fhir/NamingSystem/"
HUB_CODES = "https://zorgnet-hub.nl/fhir/CodeSystem/"
GEMEENTECODE = HUB_NAMING + "gemeentecode"  # CBS municipality code, 4 digits
BED = HUB_NAMING + "bed"  # <owner>/<ward>/<room>-<bed>
WARD = HUB_NAMING + "ward"  # <owner>/<ward>
SITE = HUB_NAMING + "site"  # <owner>/<location-slug>
HEALTHCARE_SERVICE = HUB_NAMING + "healthcareservice"  # <owner>/<location-slug>/<care-product>
BED_REPORT = HUB_NAMING + "bed-availability-report"  # <healthcareservice value>/<yyyy-mm-dd>
VISIT = HUB_NAMING + "visit-number"  # <owner>/<PV1-19>
REFERRAL = HUB_NAMING + "referral"  # <source>/<placer or message reference>
REFERRAL_DOCUMENT = HUB_NAMING + "referral-document"  # <referral value>/<part>
REFERRAL_MATCH = HUB_NAMING + "referral-match-key"  # <bsn>/<yyyy-mm-dd>/<referrer agb>: same referral, 2 channels
PRACTITIONER_ROLE = HUB_NAMING + "practitioner-role"  # <practitioner agb>/<organisation value>
IWMO_TOEWIJZING = HUB_NAMING + "iwmo-toewijzingnummer"  # <gemeentecode>/<ToewijzingNummer>
IWMO_REFERENTIE = HUB_NAMING + "iwmo-referentie-aanbieder"  # <aanbieder agb>/<ReferentieAanbieder>

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def normalize_bsn(value: str) -> str:
    """Strip spaces and dots and left-pad an 8-digit BSN, as README 2 allows (`12345678` -> `012345678`)."""
    digits = re.sub(r"[\s.]", "", value)
    return digits.zfill(9) if len(digits) == 8 and digits.isdigit() else digits


def is_valid_bsn(value: str) -> bool:
    """The BSN 11-proof: 9 digits, weighted sum 9..2,-1 divisible by 11 (all zeros is not a BSN)."""
    if len(value) != 9 or not value.isdigit() or value == "000000000":
        return False
    return sum(w * int(d) for w, d in zip(_BSN_WEIGHTS, value, strict=True)) % 11 == 0


def is_valid_agb(value: str) -> bool:
    """AGB-code: exactly 8 digits (Vektis publishes no check digit)."""
    return len(value) == 8 and value.isdigit()


def is_valid_ura(value: str) -> bool:
    """URA (UZI-register abonneenummer): exactly 8 digits."""
    return len(value) == 8 and value.isdigit()


def is_valid_gemeentecode(value: str) -> bool:
    """CBS gemeentecode: exactly 4 digits with leading zeros (e.g. 0106 Assen)."""
    return len(value) == 4 and value.isdigit()


def split_token(token: str) -> tuple[str, str]:
    """Split a FHIR token "system|value" (as in SourceMeta.sender); ValueError when it has no system."""
    system, sep, value = token.partition("|")
    if not sep or not system or not value:
        raise ValueError(f"expected 'system|value', got {token!r}")
    return system, value
