"""Referral test factories: a small region (providers, bed Locations, HealthcareServices, MeasureReports), referral
ServiceRequests, tokens per party, and helpers that read the referral's rows and Tasks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select

from hub.referrals import vocabulary as v
from hub.referrals.tables import referral_offers, referrals
from hub.security.context import AccessContext
from hub.store.schema import outbox, resources
from hub.worker import utcnow

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
GP_ORG = f"{AGB}|01000001"
COORDINATOR_ORG = f"{URA}|90000001"
SYSTEM = AccessContext.system("test region")


@dataclass
class Provider:
    agb: str
    name: str
    postcode: str
    beds: dict[str, str] = field(default_factory=dict)  # product -> statuses, e.g. {"elv-hoog": "UO"}
    traits: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)  # product -> free places (MeasureReport, no beds)


@dataclass
class Region:
    orgs: dict[str, str] = field(default_factory=dict)  # agb -> Organization id
    beds: dict[str, list[str]] = field(default_factory=dict)  # agb -> bed Location ids
    services: dict[str, list[str]] = field(default_factory=dict)  # agb -> HealthcareService ids

    def org_ref(self, agb: str) -> str:
        return f"Organization/{self.orgs[agb]}"


DEFAULT = [
    Provider("73730001", "Noorderboog (test)", "9401 AB", {"elv-hoog": "UO"}, ("dementia-capable", "oxygen")),
    Provider("73730002", "Icare (test)", "9402 CD", {"elv-hoog": "UO"}, ("oxygen",)),
    Provider("73730003", "Meppel (test)", "7941 EF", {"elv-hoog": "U"}),
    Provider("73730010", "Thuiszorg Assen (test)", "9401 AA", counts={"spoedzorg-thuis": 3}),
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def load_region(hub: Any, providers: list[Provider] | None = None) -> Region:
    """Write the providers straight through the repository (system context), in one unit of work."""
    region = Region()
    async with hub.runtime.uow() as uow:
        for p in providers or DEFAULT:
            address = {"city": "Drenthe", "postalCode": p.postcode, "country": "NL"}
            org = (await uow.resources.create(SYSTEM, {
                "resourceType": "Organization", "name": p.name, "active": True, "address": [address],
                "identifier": [{"system": AGB, "value": p.agb}]})).stored.res_id
            region.orgs[p.agb] = org
            for product in {**p.beds, **p.counts}:
                service = await uow.resources.create(SYSTEM, {
                    "resourceType": "HealthcareService", "active": True, "name": f"{product} {p.name}",
                    "providedBy": {"reference": f"Organization/{org}", "display": p.name},
                    "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": product}]}],
                    "characteristic": [{"coding": [{"system": v.SERVICE_CHARACTERISTIC, "code": t}]}
                                       for t in p.traits]})
                region.services.setdefault(p.agb, []).append(service.stored.res_id)
                if product in p.counts:
                    await uow.resources.create(SYSTEM, measure_report(service.stored.res_id, org, p.counts[product]))
            for product, statuses in p.beds.items():
                for n, status in enumerate(statuses, start=1):
                    bed = await uow.resources.create(SYSTEM, {
                        "resourceType": "Location", "status": "active", "name": f"Bed {n} {p.name}",
                        "operationalStatus": {"system": v.V2_0116, "code": status},
                        "physicalType": {"coding": [{"system": v.PHYSICAL_TYPE, "code": "bd"}]},
                        "extension": [{"url": v.CARE_PRODUCT_EXT,
                                       "valueCoding": {"system": v.CARE_PRODUCT, "code": product}}],
                        "managingOrganization": {"reference": f"Organization/{org}"}, "address": address})
                    region.beds.setdefault(p.agb, []).append(bed.stored.res_id)
    return region


def measure_report(service_id: str, org_id: str, free: int) -> dict[str, Any]:
    def population(code: str, count: int) -> dict[str, Any]:
        return {"code": {"coding": [{"system": v.SANER_VALUES, "code": code}]}, "count": count}

    return {"resourceType": "MeasureReport", "status": "complete", "type": "summary",
            "measure": "http://hl7.org/fhir/uv/saner/Measure/CDCPatientImpactAndHospitalCapacity",
            "subject": {"reference": f"HealthcareService/{service_id}"}, "date": _now(),
            "reporter": {"reference": f"Organization/{org_id}"},
            "period": {"start": _now(), "end": _now()},
            "group": [{"code": {"coding": [{"system": "http://hl7.org/fhir/uv/saner/CodeSystem/MeasureGroupSystem",
                                            "code": "Beds"}]},
                       "population": [population("numTotBeds", free + 2), population("numTotBedsOcc", 2),
                                      population("numTotBedsAvail", free)]}]}


def referral(product: str | None = "elv-hoog", *, priority: str = "urgent", postcode: str = "9401 ZZ",
             needs: tuple[str, ...] = (), preferred: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A complete referral ServiceRequest (override or drop fields to make it incomplete)."""
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": priority,
        "category": [{"coding": [{"system": v.SNOMED, "code": v.REFERRAL_CATEGORY, "display": "Patient referral"}]}],
        "subject": {"reference": f"Patient/p-{uuid.uuid4().hex[:8]}"},
        "requester": {"identifier": {"system": AGB, "value": "01000001"}, "display": "Huisarts De Brink"},
        "authoredOn": _now(),
        "extension": [{"url": v.POSTCODE_EXT, "valueString": postcode}],
    }
    if product:
        sr["code"] = {"coding": [{"system": v.CARE_PRODUCT, "code": product}]}
    if priority == "routine":
        sr["occurrenceDateTime"] = "2026-12-01"
    if needs:
        sr["orderDetail"] = [{"coding": [{"system": v.SERVICE_CHARACTERISTIC, "code": n}]} for n in needs]
    if preferred:
        sr["performer"] = [{"reference": ref} for ref in preferred]
    sr.update(extra)
    return {k: val for k, val in sr.items() if val is not None}


async def settle(hub: Any) -> None:
    """Wait for in-process routing/notification tasks (they start right after each commit)."""
    await hub.runtime.dispatcher.drain(30)


async def settle_all(hubs: list[Any], timeout: float = 60.0) -> None:
    """Wait until every outbox row that is due has completed, on instances sharing one database.

    Draining each instance is not enough: another instance's outbox relay may claim a row between the commit and
    the enqueuing instance's own claim, and start it after that instance's drain has already returned. So this
    waits on the database: drain everything, then look for due rows not yet completed, until there are none."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await asyncio.gather(*[h.runtime.dispatcher.drain(max(0.1, deadline - loop.time())) for h in hubs])
        async with hubs[0].runtime.engine.connect() as conn:
            pending = (await conn.execute(select(outbox.c.task, outbox.c.attempts, outbox.c.last_error).where(
                outbox.c.completed.is_(None), outbox.c.due <= utcnow()))).all()
        if not pending:
            return
        assert loop.time() < deadline, f"outbox rows still pending after {timeout} s: {pending[:3]}"
        await asyncio.sleep(0.05)  # a relay holds a claimed row it has not handed to its dispatcher yet


async def post_referral(hub: Any, sr: dict[str, Any] | None = None, *, settle_after: bool = True) -> dict[str, Any]:
    r = await hub.client.post("/fhir/ServiceRequest", json=sr or referral(), headers=hub.headers("gp", GP_ORG))
    assert r.status_code == 201, r.text
    if settle_after:
        await settle(hub)
    created: dict[str, Any] = r.json()
    return created


async def row(hub: Any, sr_id: str) -> Any:
    async with hub.runtime.engine.connect() as conn:
        return (await conn.execute(select(referrals).where(referrals.c.sr_id == sr_id))).first()


async def offer_rows(hub: Any, sr_id: str) -> list[Any]:
    async with hub.runtime.engine.connect() as conn:
        return list((await conn.execute(select(referral_offers).where(referral_offers.c.sr_id == sr_id)
                                        .order_by(referral_offers.c.created))).all())


async def resource(hub: Any, res_type: str, res_id: str) -> dict[str, Any]:
    async with hub.runtime.engine.connect() as conn:
        content = (await conn.execute(select(resources.c.content).where(
            resources.c.res_type == res_type, resources.c.res_id == res_id))).scalar()
    parsed: dict[str, Any] = orjson.loads(content)
    return parsed


async def version(hub: Any, res_type: str, res_id: str) -> int:
    return int((await resource(hub, res_type, res_id))["meta"]["versionId"])


def provider_headers(hub: Any, agb: str) -> dict[str, str]:
    return hub.headers("vvt-provider", f"{AGB}|{agb}")


def params(**values: Any) -> dict[str, Any]:
    """A Parameters resource: strings as valueString, 'admission' as valueDateTime, 'location' as valueReference."""
    out = []
    for name, value in values.items():
        if name == "admission":
            out.append({"name": name, "valueDateTime": value})
        elif name == "location":
            out.append({"name": name, "valueReference": {"reference": value}})
        else:
            out.append({"name": name, "valueString": value})
    return {"resourceType": "Parameters", "parameter": out}


@dataclass
class Instance:
    """A second hub app on the same database: its own engine, pool and dispatcher, as another process has."""

    runtime: Any
    client: Any


@asynccontextmanager
async def another_instance(settings: Any) -> AsyncIterator[Instance]:
    import httpx

    from hub.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Instance(app.state.runtime, client)
