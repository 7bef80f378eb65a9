"""Contributions: what one source (a bed Location, or a HealthcareService with count reports) adds, and under
which key (provider × care product × region), resolved through a `Directory`.

The write hook resolves against the database (`DbDirectory`, inside the writing transaction); the from-scratch
recount resolves against an in-memory scan (`MemoryDirectory`). Both run the same functions below, so a recount
reproduces exactly what the hook did.

Resolution rules:
- provider: bed `managingOrganization`; counts: MeasureReport `reporter` (it must provide the service).
- care product: bed care-product extension; else the HealthcareService (type = care product) whose `location`
  lists the bed's ward (or room, or the ward above the room: up to three `partOf` steps); several -> lowest id.
- region/postcode: the bed's own address (counts: the service's first location's address); else the provider
  Organization's address.
- counts: the latest `complete` count MeasureReport of the service (by `date`, then id) replaces earlier ones.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from weakref import WeakKeyDictionary, ref

from sqlalchemy import select

from hub.availability import figures as f
from hub.availability.regions import normalise_postcode, region_of
from hub.availability.tables import availability_providers
from hub.errors import Gone, NotFound
from hub.fhir import interactions
from hub.security.context import AccessContext
from hub.store.sql import utcnow

SYSTEM = AccessContext.system("availability: resolve bed and service sources")
PARENT_STEPS = 3


class Key(NamedTuple):
    """An aggregate row: provider × care product × region (a tuple: built and hashed for every bed change)."""

    org_id: str
    product: str
    region: str


@dataclass(frozen=True)
class Provider:
    org_id: str
    name: str | None
    identifiers: tuple[str, ...]  # "system|value"
    postcode: str | None
    city: str | None
    region: str | None  # None: the Organization has no address

    def is_identified_by(self, org: str | None) -> bool:
        return org is not None and org in self.identifiers


@dataclass(frozen=True)
class Contribution:
    """One source's share of the aggregate (a row of availability_sources)."""

    source: str
    kind: str  # bed | service
    counted: bool
    figures: f.Figures
    org_id: str | None = None
    product: str | None = None
    region: str | None = None
    postcode: str | None = None
    city: str | None = None
    parent_id: str | None = None
    via_service: str | None = None
    address_via_org: bool = False
    status: str | None = None
    name: str | None = None
    report_id: str | None = None
    reported_at: datetime | None = None
    org_name: str | None = None  # for display on a new aggregate row; not a column of the source row

    @property
    def key(self) -> Key | None:
        if not self.counted or not (self.org_id and self.product and self.region):
            return None
        return Key(self.org_id, self.product, self.region)

    def columns(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "counted": self.key is not None, "org_id": self.org_id,
                "product": self.product, "region": self.region, "postcode": self.postcode, "city": self.city,
                "parent_id": self.parent_id, "via_service": self.via_service,
                "address_via_org": self.address_via_org, "status": self.status, "name": self.name,
                "report_id": self.report_id, "reported_at": self.reported_at, **self.figures.as_dict()}


class Directory(Protocol):
    async def location(self, location_id: str) -> dict[str, Any] | None: ...
    async def services_at(self, location_id: str) -> list[dict[str, Any]]: ...
    async def service(self, service_id: str) -> dict[str, Any] | None: ...
    async def count_reports(self, service_id: str) -> list[dict[str, Any]]: ...
    async def provider(self, org_id: str) -> Provider | None: ...


# ------------------------------------------------------------------------------------------------ resolution
async def bed_contribution(directory: Directory, location: dict[str, Any]) -> Contribution | None:
    """None when the Location is not a bed."""
    facts = f.bed_facts(location)
    if facts is None:
        return None
    product, via = facts.product, None
    if product is None:
        product, via = await _product_from_services(directory, facts.parent_id)
    provider = await directory.provider(facts.org_id) if facts.org_id else None
    region, postcode, city, via_org = _placement(facts.address, provider)
    return Contribution(
        source=f"Location/{location['id']}", kind="bed", counted=facts.active and bool(facts.org_id and product),
        figures=facts.figures() if facts.org_id and product else f.ZERO, org_id=facts.org_id, product=product,
        region=region, postcode=postcode, city=city, parent_id=facts.parent_id, via_service=via,
        address_via_org=via_org, status=facts.status, name=facts.name[:200],
        org_name=provider.name if provider else None,
    )


def with_new_status(stored: Any, facts: f.BedFacts) -> Contribution:
    """A bed's contribution after a change of its status alone (`facts`: the bed as it is now): product, ward and
    placement are those of its stored source row, which writes of the ward, service or provider keep current —
    so the status path needs no directory lookups."""
    return Contribution(
        source=stored.source, kind="bed", counted=stored.counted,
        figures=facts.figures() if stored.org_id and stored.product else f.ZERO, org_id=stored.org_id,
        product=stored.product, region=stored.region, postcode=stored.postcode, city=stored.city,
        parent_id=stored.parent_id, via_service=stored.via_service, address_via_org=stored.address_via_org,
        status=facts.status, name=stored.name,
    )


async def service_contribution(directory: Directory, service_id: str) -> Contribution | None:
    """The latest complete count report of a HealthcareService; None when it has none."""
    reports = [r for r in await directory.count_reports(service_id)
               if f.is_count_report(r) and r.get("status") == "complete"]
    if not reports:
        return None
    latest = max(reports, key=lambda r: (f.report_time(r) or datetime.min, str(r.get("id"))))
    service = await directory.service(service_id)
    org_id = f.reference_id(latest.get("reporter"), "Organization")
    products = f.service_products(service or {})
    product = products[0] if products else None
    provider = await directory.provider(org_id) if org_id else None
    address = f.Address()
    locations = (service or {}).get("location") or []
    if locations and (first_id := f.reference_id(locations[0], "Location")):
        address = f.address_of(await directory.location(first_id))
    region, postcode, city, via_org = _placement(address, provider)
    counted = service is not None and service.get("active", True) is not False and bool(org_id and product)
    return Contribution(
        source=f"HealthcareService/{service_id}", kind="service", counted=counted,
        figures=f.count_figures(latest) if counted else f.ZERO, org_id=org_id, product=product, region=region,
        postcode=postcode, city=city, via_service=service_id, address_via_org=via_org,
        name=str((service or {}).get("name") or "")[:200] or None, report_id=str(latest.get("id")),
        reported_at=f.report_time(latest), org_name=provider.name if provider else None,
    )


async def _product_from_services(directory: Directory, parent_id: str | None) -> tuple[str | None, str | None]:
    location_id = parent_id
    for _ in range(PARENT_STEPS):
        if not location_id:
            break
        for service in sorted(await directory.services_at(location_id), key=lambda s: str(s.get("id"))):
            products = f.service_products(service)
            if products and service.get("active", True) is not False:
                return products[0], str(service["id"])
        parent = await directory.location(location_id)
        location_id = f.reference_id((parent or {}).get("partOf"), "Location")
    return None, None


def _placement(address: f.Address, provider: Provider | None) -> tuple[str, str | None, str | None, bool]:
    """(region, postcode, city, depends on the Organization's address?) — the source's own address first."""
    if not address.is_empty:
        return region_of(address), normalise_postcode(address.postcode), address.city, False
    if provider is not None and provider.region:
        return provider.region, provider.postcode, provider.city, True
    return region_of(address), None, None, True


def provider_from(organization: dict[str, Any]) -> Provider:
    address = f.address_of(organization)
    return Provider(
        org_id=str(organization["id"]), name=organization.get("name"),
        identifiers=tuple(f"{i.get('system')}|{i.get('value')}" for i in organization.get("identifier") or []
                          if i.get("system") and i.get("value")),
        postcode=normalise_postcode(address.postcode), city=address.city,
        region=None if address.is_empty else region_of(address),
    )


def provider_columns(provider: Provider) -> dict[str, Any]:
    return {"org_id": provider.org_id, "name": (provider.name or "")[:200] or None,
            "identifiers": "\n" + "\n".join(provider.identifiers) + "\n", "postcode": provider.postcode,
            "city": provider.city, "region": provider.region, "updated": utcnow()}


def provider_of_row(row: Any) -> Provider:
    return Provider(org_id=row.org_id, name=row.name,
                    identifiers=tuple(i for i in row.identifiers.split("\n") if i), postcode=row.postcode,
                    city=row.city, region=row.region)


# ------------------------------------------------------------------------------------------------ directories
class DbDirectory:
    """Lookups inside the writing transaction (they see the transaction's own writes). One per unit of work
    (`directory_for`), so a request that checks ownership and then resolves the bed reads the provider once."""

    def __init__(self, uow: Any) -> None:
        # weakly: `_directories` is keyed weakly by the unit of work, and a strong reference back from its value
        # would keep both alive for good (every writing unit of work of the process, with all it held)
        self._uow = ref(uow)
        self._providers: dict[str, Provider | None] = {}

    @property
    def uow(self) -> Any:
        uow = self._uow()
        assert uow is not None, "a directory outlived its unit of work"
        return uow

    def forget(self, org_id: str) -> None:
        """The Organization was written in this transaction."""
        self._providers.pop(org_id, None)

    async def _read(self, res_type: str, res_id: str) -> dict[str, Any] | None:
        try:
            resource: dict[str, Any] = await self.uow.resources.read(SYSTEM, res_type, res_id)
        except (NotFound, Gone):
            return None
        return resource

    async def _search(self, res_type: str, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
        import orjson

        outcome = await interactions.search(self.uow, SYSTEM, res_type, items, strict=True)
        return [orjson.loads(s.content) for s in outcome.result.matches]

    async def location(self, location_id: str) -> dict[str, Any] | None:
        return await self._read("Location", location_id)

    async def services_at(self, location_id: str) -> list[dict[str, Any]]:
        return await self._search("HealthcareService", [("location", f"Location/{location_id}"), ("_count", "100")])

    async def service(self, service_id: str) -> dict[str, Any] | None:
        return await self._read("HealthcareService", service_id)

    async def count_reports(self, service_id: str) -> list[dict[str, Any]]:
        return await self._search("MeasureReport", [("subject", f"HealthcareService/{service_id}"),
                                                    ("_sort", "-date"), ("_count", "50")])

    def remember(self, rows: list[Any]) -> None:
        """Provider rows read together with something else (bed_rows.py); ones already looked up stay."""
        for row in rows:
            if row.org_id not in self._providers:
                self._providers[row.org_id] = provider_of_row(row)

    async def provider(self, org_id: str) -> Provider | None:
        if org_id not in self._providers:
            row = (await self.uow.conn.execute(
                select(availability_providers).where(availability_providers.c.org_id == org_id))).first()
            if row is not None:
                self._providers[org_id] = provider_of_row(row)
            else:
                organization = await self._read("Organization", org_id)
                self._providers[org_id] = provider_from(organization) if organization else None
        return self._providers[org_id]


_directories: WeakKeyDictionary[Any, DbDirectory] = WeakKeyDictionary()


def directory_for(uow: Any) -> DbDirectory:
    """The unit of work's directory (created on first use)."""
    directory = _directories.get(uow)
    if directory is None:
        directory = _directories[uow] = DbDirectory(uow)
    return directory


class MemoryDirectory:
    """Lookups over resources scanned once (the from-scratch recount)."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.by_id: dict[tuple[str, str], dict[str, Any]] = {(r["resourceType"], r["id"]): r for r in resources}
        self._services_at: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._reports: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in resources:
            if r["resourceType"] == "HealthcareService":
                for loc in r.get("location") or []:
                    if loc_id := f.reference_id(loc, "Location"):
                        self._services_at[loc_id].append(r)
            elif r["resourceType"] == "MeasureReport" and (
                    service_id := f.reference_id(r.get("subject"), "HealthcareService")):
                self._reports[service_id].append(r)

    @property
    def reporting_services(self) -> list[str]:
        return sorted(self._reports)

    async def location(self, location_id: str) -> dict[str, Any] | None:
        return self.by_id.get(("Location", location_id))

    async def services_at(self, location_id: str) -> list[dict[str, Any]]:
        return list(self._services_at.get(location_id, []))

    async def service(self, service_id: str) -> dict[str, Any] | None:
        return self.by_id.get(("HealthcareService", service_id))

    async def count_reports(self, service_id: str) -> list[dict[str, Any]]:
        return list(self._reports.get(service_id, []))

    async def provider(self, org_id: str) -> Provider | None:
        organization = self.by_id.get(("Organization", org_id))
        return provider_from(organization) if organization else None
