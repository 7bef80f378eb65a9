"""Matching: which providers could take this referral now, found through the core search.

Bed-level providers: bed Locations (physicalType bd) with the care-product extension, operationalStatus
v2-0116 U and no bed-reservation, grouped by managingOrganization. Count-only providers: a HealthcareService of
the product whose organisation publishes no bed Locations for it, with a MeasureReport whose numTotBedsAvail > 0.
Needs must be among the characteristics of the provider's HealthcareService(s) for the product.
Home-care intake ("zo thuis mogelijk"): HealthcareServices of the policy's home products with intake places.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from hub.errors import Gone, NotFound
from hub.fhir import interactions
from hub.fhir.indexing import date_range
from hub.referrals import vocabulary as v
from hub.referrals.intake import ReferralRequest
from hub.referrals.policy import RoutingPolicy
from hub.referrals.reservations import is_bed, is_free_bed
from hub.security.context import AccessContext
from hub.store.repository import StoredResource
from hub.store.uow import UnitOfWork

SYSTEM = AccessContext.system("referrals: matching")
MAX_ROWS = "500"


@dataclass(frozen=True)
class BedOption:
    bed_id: str
    name: str


@dataclass
class Candidate:
    """One provider that could take the referral, with what it would hold."""

    provider: str  # "Organization/<id>"
    name: str = ""
    identifiers: tuple[str, ...] = ()  # "system|value" of the organisation (checked against the caller's org)
    postcode: str | None = None
    beds: list[BedOption] = field(default_factory=list)  # bed-level: free beds, best first
    service_id: str | None = None  # count-only: the HealthcareService whose count is held
    report: str | None = None  # count-only: "MeasureReport/<id>/_history/<v>"
    free: int = 0
    as_of: datetime | None = None  # when the availability figure was last written
    characteristics: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return "bed" if self.beds else "count"


@dataclass(frozen=True)
class HomeOption:
    service_id: str
    name: str
    product: str
    provider: str
    free: int
    as_of: datetime | None


async def _search(uow: UnitOfWork, res_type: str, items: list[tuple[str, str]]) -> list[StoredResource]:
    outcome = await interactions.search(uow, SYSTEM, res_type, [*items, ("_count", MAX_ROWS)], strict=True)
    return outcome.result.matches


def _json(stored: StoredResource) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(stored.content)
    return parsed


async def services_for(uow: UnitOfWork, product: str) -> list[dict[str, Any]]:
    found = await _search(uow, "HealthcareService", [("service-type", f"{v.CARE_PRODUCT}|{product}"),
                                                      ("active", "true")])
    return [_json(s) for s in found]


def characteristics(service: dict[str, Any]) -> set[str]:
    return {c.get("code") for cc in service.get("characteristic") or [] for c in cc.get("coding") or []
            if c.get("system") == v.SERVICE_CHARACTERISTIC}


async def find_candidates(uow: UnitOfWork, request: ReferralRequest, exclude: set[str]) -> list[Candidate]:
    """Providers with a free bed (or a free count) of the product that meet the needs, not yet tried."""
    assert request.product is not None
    services = await services_for(uow, request.product)
    traits: dict[str, set[str]] = defaultdict(set)
    for service in services:
        traits[_ref(service.get("providedBy"))] |= characteristics(service)
    beds = await _search(uow, "Location", [("care-product", f"{v.CARE_PRODUCT}|{request.product}")])
    candidates: dict[str, Candidate] = {}
    bed_level: set[str] = set()
    for stored in sorted(beds, key=lambda s: s.last_updated, reverse=True):
        bed = _json(stored)
        provider = _ref(bed.get("managingOrganization"))
        if not is_bed(bed) or not provider:
            continue
        bed_level.add(provider)
        if not is_free_bed(bed):
            continue
        cand = candidates.setdefault(provider, Candidate(provider, as_of=stored.last_updated))
        cand.beds.append(BedOption(stored.res_id, str(bed.get("name", stored.res_id))))
        cand.postcode = cand.postcode or (bed.get("address") or {}).get("postalCode")
    for service in services:
        provider = _ref(service.get("providedBy"))
        if provider and provider not in bed_level and provider not in candidates:
            count = await _count_candidate(uow, service, provider)
            if count is not None:
                candidates[provider] = count
    fitting = []
    for provider, cand in candidates.items():
        cand.characteristics = frozenset(traits.get(provider, set()))
        if provider in exclude or not request.needs <= cand.characteristics:
            continue
        await _describe(uow, cand)
        fitting.append(cand)
    return fitting


async def _count_candidate(uow: UnitOfWork, service: dict[str, Any], provider: str) -> Candidate | None:
    latest = await latest_count(uow, str(service.get("id")))
    if latest is None or latest[1] <= 0:
        return None
    report, free, as_of = latest
    postcode = await _service_postcode(uow, service)
    return Candidate(provider, service_id=str(service.get("id")), report=report, free=free, as_of=as_of,
                     postcode=postcode)


async def latest_count(uow: UnitOfWork, service_id: str) -> tuple[str, int, datetime | None] | None:
    """The newest MeasureReport's numTotBedsAvail for a HealthcareService: (report ref, free, date)."""
    found = await _search(uow, "MeasureReport", [("subject", f"HealthcareService/{service_id}"), ("_sort", "-date")])
    for stored in found[:1]:
        report = _json(stored)
        for group in report.get("group") or []:
            for population in group.get("population") or []:
                codes = {c.get("code") for c in (population.get("code") or {}).get("coding") or []}
                if "numTotBedsAvail" in codes and isinstance(population.get("count"), int):
                    as_of = _instant(report.get("date")) or stored.last_updated
                    return f"MeasureReport/{stored.res_id}/_history/{stored.version}", population["count"], as_of
    return None


async def _service_postcode(uow: UnitOfWork, service: dict[str, Any]) -> str | None:
    for loc in service.get("location") or []:
        location = await _read(uow, loc.get("reference"))
        postcode = ((location or {}).get("address") or {}).get("postalCode")
        if postcode:
            return str(postcode)
    return None


async def _describe(uow: UnitOfWork, cand: Candidate) -> None:
    """Name, identifiers and (fallback) postcode of the provider Organization."""
    org = await _read(uow, cand.provider) or {}
    cand.name = str(org.get("name") or cand.provider)
    cand.identifiers = tuple(f"{i.get('system')}|{i.get('value')}" for i in org.get("identifier") or [])
    if not cand.postcode:
        cand.postcode = next((a.get("postalCode") for a in org.get("address") or [] if a.get("postalCode")), None)


async def _read(uow: UnitOfWork, reference: str | None) -> dict[str, Any] | None:
    if not reference or reference.count("/") != 1:
        return None
    res_type, res_id = reference.split("/")
    try:
        return await uow.resources.read(SYSTEM, res_type, res_id)
    except (NotFound, Gone):
        return None


def _ref(reference: Any) -> str:
    return str((reference or {}).get("reference") or "")


def _instant(value: Any) -> datetime | None:
    try:
        return date_range(str(value))[0] if value else None
    except ValueError:
        return None


async def home_alternatives(uow: UnitOfWork, request: ReferralRequest, policy: RoutingPolicy,
                            limit: int = 5) -> list[HomeOption]:
    """Home-care services with intake places for the products the policy pairs with the requested bed product."""
    if not request.home_care_acceptable or request.product is None:
        return []
    options: list[HomeOption] = []
    for product in policy.home_alternatives.get(request.product, ()):
        for service in await services_for(uow, product):
            latest = await latest_count(uow, str(service.get("id")))
            if latest is not None and latest[1] > 0:
                org = await _read(uow, _ref(service.get("providedBy"))) or {}
                provider = str(org.get("name") or (service.get("providedBy") or {}).get("display") or "")
                options.append(HomeOption(str(service["id"]), str(service.get("name", product)), product, provider,
                                          latest[1], latest[2]))
    options.sort(key=lambda o: (-o.free, o.service_id))
    return options[:limit]
