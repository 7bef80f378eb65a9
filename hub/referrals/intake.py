"""Referral intake: which ServiceRequests are bed referrals, the profile rule that keeps them complete, and the
parsed view (`ReferralRequest`) the routing reads.

A bed referral is a ServiceRequest with category SNOMED 3457005 ("Patient referral") or a care-product coding
in `code`. It must carry:
  subject (Patient), requester, intent order|original-order, code: one care-product coding of a bed product
  (flagged triage#needs-triage in category or meta.tag: then only subject, requester and intent are required,
  and a person decides), priority (routine = planned; urgent, asap,
  stat = acute), for planned care the desired start (occurrenceDateTime or occurrencePeriod.start), and the
  patient's postcode (extension referral-postcode). Optional: needs as orderDetail codings from the
  service-characteristic CodeSystem (dementia-capable, isolation, oxygen, bariatric, ...), preferred providers
  as performer Organization references (in order of preference), and extension
  referral-home-care-acceptable = false when home care ("zo thuis mogelijk") is not an option.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.referrals import vocabulary as v

ACUTE_PRIORITIES = frozenset({"urgent", "asap", "stat"})
PRIORITIES = ACUTE_PRIORITIES | {"routine"}
_POSTCODE = re.compile(r"^[1-9][0-9]{3}\s?([A-Za-z]{2})?$")

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class ReferralRequest:
    """The fields of a referral ServiceRequest the routing needs, parsed once."""

    sr_id: str
    product: str | None
    acute: bool
    priority: str
    desired_start: str | None
    postcode: str | None
    needs: frozenset[str]
    preferred: tuple[str, ...]  # "Organization/<id>" in the requester's order
    home_care_acceptable: bool
    needs_triage: bool
    subject: dict[str, Any] | None
    requester: dict[str, Any] | None


def _codings(concepts: Any) -> list[dict[str, Any]]:
    items = concepts if isinstance(concepts, list) else [concepts] if isinstance(concepts, dict) else []
    return [c for item in items if isinstance(item, dict) for c in item.get("coding") or [] if isinstance(c, dict)]


def _has(concepts: Any, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in _codings(concepts))


def _extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in resource.get("extension") or [] if isinstance(e, dict) and e.get("url") == url), None)


def _tagged(sr: dict[str, Any], system: str, code: str) -> bool:
    meta = sr.get("meta") or {}
    return any(t.get("system") == system and t.get("code") == code
               for t in [*(meta.get("tag") or []), *(meta.get("security") or [])] if isinstance(t, dict))


def needs_triage(sr: dict[str, Any]) -> bool:
    """Flagged triage#needs-triage (category or meta.tag): a person decides product and urgency."""
    return _has(sr.get("category"), v.TRIAGE, "needs-triage") or _tagged(sr, v.TRIAGE, "needs-triage")


def is_referral(sr: dict[str, Any]) -> bool:
    """Is this ServiceRequest a bed referral the hub routes? Explicitly (category SNOMED 3457005), flagged for
    triage, or an order for a care product. Social-domain requests (iWmo, tagged data-domain|social) and
    proposals are not: the municipality assigns those."""
    if sr.get("resourceType") != "ServiceRequest" or _tagged(sr, v.DATA_DOMAIN, "social"):
        return False
    if _has(sr.get("category"), v.SNOMED, v.REFERRAL_CATEGORY) or needs_triage(sr):
        return True
    ordered = sr.get("intent") in ("order", "original-order")
    return ordered and any(c.get("system") == v.CARE_PRODUCT for c in _codings(sr.get("code")))


def make_rule(bed_products: frozenset[str], home_products: frozenset[str],
              characteristics: frozenset[str]) -> Callable[[dict[str, Any]], Problems]:
    """The ServiceRequest profile rule for referrals (registered with runtime.rules)."""

    def rule(sr: dict[str, Any]) -> Problems:
        if not is_referral(sr):
            return []
        problems: Problems = _parties(sr) + _needs_and_preferences(sr, characteristics)
        if needs_triage(sr):
            return problems  # product, urgency and postcode are for the person who triages
        return problems + _product(sr, bed_products, home_products) + _timing(sr) + _postcode(sr)

    return rule


def _parties(sr: dict[str, Any]) -> Problems:
    problems: Problems = []
    if sr.get("intent") not in ("order", "original-order"):
        problems.append(("ServiceRequest.intent", "A referral has intent 'order' (or 'original-order')"))
    subject = sr.get("subject") or {}
    if not str(subject.get("reference", "")).startswith(("Patient/", "urn:uuid:")) and not subject.get("identifier"):
        problems.append(("ServiceRequest.subject", "A referral names the patient: subject = Reference(Patient)"))
    if not sr.get("requester"):
        problems.append(("ServiceRequest.requester", "A referral names its requester (GP, hospital or coordinator)"))
    return problems


def _product(sr: dict[str, Any], bed_products: frozenset[str], home_products: frozenset[str]) -> Problems:
    products = [c.get("code") for c in _codings(sr.get("code")) if c.get("system") == v.CARE_PRODUCT]
    if len(products) != 1:
        return [("ServiceRequest.code", f"A referral asks for exactly one care product (code with system "
                                        f"{v.CARE_PRODUCT}), or carries category {v.TRIAGE}|needs-triage")]
    if products[0] in home_products:
        return [("ServiceRequest.code", f"'{products[0]}' is home care; the hub routes bed products "
                                        f"({', '.join(sorted(bed_products))})")]
    if products[0] not in bed_products:
        known = ", ".join(sorted(bed_products))
        return [("ServiceRequest.code", f"Unknown care product '{products[0]}'; one of {known}")]
    return []


def _timing(sr: dict[str, Any]) -> Problems:
    priority = sr.get("priority")
    if priority not in PRIORITIES:
        return [("ServiceRequest.priority", "Urgency is required: priority 'routine' (planned) or "
                                            "'urgent'/'asap'/'stat' (acute, today)")]
    if priority == "routine" and not desired_start(sr):
        return [("ServiceRequest.occurrence[x]", "A planned referral gives its desired start "
                                                 "(occurrenceDateTime or occurrencePeriod.start)")]
    return []


def _postcode(sr: dict[str, Any]) -> Problems:
    ext = _extension(sr, v.POSTCODE_EXT)
    value = ext.get("valueString") if ext else None
    if not isinstance(value, str) or not _POSTCODE.match(value.strip()):
        return [("ServiceRequest.extension", f"The patient's postcode is required (extension {v.POSTCODE_EXT}, "
                                             "valueString like '9401 AB' or '9401')")]
    return []


def _needs_and_preferences(sr: dict[str, Any], characteristics: frozenset[str]) -> Problems:
    problems: Problems = []
    for i, coding in enumerate(_codings(sr.get("orderDetail"))):
        if coding.get("system") == v.SERVICE_CHARACTERISTIC and coding.get("code") not in characteristics:
            problems.append((f"ServiceRequest.orderDetail[{i}]",
                             f"Unknown need '{coding.get('code')}'; one of {', '.join(sorted(characteristics))}"))
    for i, performer in enumerate(sr.get("performer") or []):
        if not str((performer or {}).get("reference", "")).startswith(("Organization/", "urn:uuid:")):
            problems.append((f"ServiceRequest.performer[{i}]",
                             "Preferred providers are listed as performer = Reference(Organization)"))
    return problems


def requester_key(sr: dict[str, Any]) -> str | None:
    """'system|value' of the requester's identifier (e.g. the GP practice's AGB), when the request names one."""
    ident = (sr.get("requester") or {}).get("identifier") or {}
    return f"{ident['system']}|{ident['value']}" if ident.get("system") and ident.get("value") else None


def desired_start(sr: dict[str, Any]) -> str | None:
    if sr.get("occurrenceDateTime"):
        return str(sr["occurrenceDateTime"])
    start = (sr.get("occurrencePeriod") or {}).get("start")
    return str(start) if start else None


def parse(sr: dict[str, Any]) -> ReferralRequest:
    """The routing view of a (valid) referral ServiceRequest."""
    products = [c.get("code") for c in _codings(sr.get("code")) if c.get("system") == v.CARE_PRODUCT]
    postcode_ext = _extension(sr, v.POSTCODE_EXT)
    home_ext = _extension(sr, v.HOME_CARE_EXT)
    needs = frozenset(str(c.get("code")) for c in _codings(sr.get("orderDetail"))
                      if c.get("system") == v.SERVICE_CHARACTERISTIC)
    preferred = tuple(str(p.get("reference")) for p in sr.get("performer") or []
                      if str((p or {}).get("reference", "")).startswith("Organization/"))
    return ReferralRequest(
        sr_id=str(sr.get("id")),
        product=str(products[0]) if products else None,
        acute=sr.get("priority") in ACUTE_PRIORITIES,
        priority=str(sr.get("priority") or "routine"),
        desired_start=desired_start(sr),
        postcode=(postcode_ext or {}).get("valueString"),
        needs=needs,
        preferred=preferred,
        home_care_acceptable=(home_ext or {}).get("valueBoolean", True) is not False,
        needs_triage=needs_triage(sr) or not products,
        subject=sr.get("subject"),
        requester=sr.get("requester"),
    )
