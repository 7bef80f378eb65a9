"""Factories and helpers for the availability tests (importable by tests/web through its conftest).

Providers write their own directory (Organization, HealthcareServices, beds) in one transaction Bundle with their
own token, as a VVT system would; so the core's ownership rule and the availability hook both see them as owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from hub.availability import vocabulary as v

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
BED_SYSTEM = "https://zorgnet-hub.nl/fhir/NamingSystem/bed"


def bed(name: str, *, product: str | None = "elv-hoog", status: str = "U", org: str | None = None,
        postcode: str | None = "9401 AB", city: str | None = "Assen", parent: str | None = None,
        reserved_for: str | None = None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Location", "status": "active", "name": name,
        "identifier": [{"system": BED_SYSTEM, "value": name}],
        "physicalType": {"coding": [{"system": v.PHYSICAL_TYPE, "code": "bd"}]},
        "operationalStatus": {"system": v.V2_0116, "code": status},
    }
    extensions = []
    if product:
        extensions.append({"url": v.CARE_PRODUCT_EXT, "valueCoding": {"system": v.CARE_PRODUCT, "code": product}})
    if reserved_for:
        extensions.append({"url": v.BED_RESERVATION_EXT, "extension": [
            {"url": "reserved-for", "valueReference": {"reference": reserved_for}},
            {"url": "until", "valueDateTime": "2030-01-01T12:00:00Z"}]})
    if extensions:
        resource["extension"] = extensions
    if org:
        resource["managingOrganization"] = {"reference": org}
    if parent:
        resource["partOf"] = {"reference": parent}
    if postcode or city:
        resource["address"] = {k: val for k, val in (("postalCode", postcode), ("city", city)) if val}
    resource.update(extra)
    return resource


def organization(agb: str, name: str, *, postcode: str | None = None, city: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Organization", "active": True, "name": name,
                                "identifier": [{"system": AGB, "value": agb}]}
    if postcode or city:
        resource["address"] = [{k: val for k, val in (("postalCode", postcode), ("city", city)) if val}]
    return resource


def service(product: str, org: str, *, locations: tuple[str, ...] = (), name: str | None = None) -> dict[str, Any]:
    return {"resourceType": "HealthcareService", "active": True, "name": name or f"{product} service",
            "providedBy": {"reference": org}, "location": [{"reference": loc} for loc in locations],
            "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": product}]}]}


def count_report(service_ref: str, org: str, *, total: int | None, occupied: int | None, free: int | None,
                 date: str = "2026-11-23T08:00:00Z", status: str = "complete") -> dict[str, Any]:
    populations = []
    for code, count in (("numTotBeds", total), ("numTotBedsOcc", occupied), ("numTotBedsAvail", free)):
        population: dict[str, Any] = {"code": {"coding": [{"system": v.SANER_VALUES, "code": code}]}}
        if count is not None:
            population["count"] = count
        populations.append(population)
    return {"resourceType": "MeasureReport", "status": status, "type": "summary", "measure": v.AVAILABILITY_MEASURE,
            "subject": {"reference": service_ref}, "date": date, "reporter": {"reference": org},
            "period": {"start": date[:10], "end": date[:10]},
            "group": [{"code": {"coding": [{"system": v.SANER_GROUPS, "code": "Beds"}]}, "population": populations}]}


@dataclass
class Provider:
    agb: str
    org_id: str
    headers: dict[str, str]
    beds: dict[str, str] = field(default_factory=dict)  # bed name -> Location id
    services: dict[str, str] = field(default_factory=dict)  # product -> HealthcareService id

    @property
    def ref(self) -> str:
        return f"Organization/{self.org_id}"

    @property
    def org(self) -> str:
        return f"{AGB}|{self.agb}"


async def add_provider(hub: Any, agb: str, name: str, beds: dict[str, str], *, postcode: str = "9401 AB",
                       city: str = "Assen", count_products: tuple[str, ...] = (),
                       org_address: bool = False) -> Provider:
    """One provider writes its Organization, a service per product and its beds ({product: "UUOC"}) in one Bundle."""
    headers = hub.headers("vvt-provider", f"{AGB}|{agb}")
    org_urn = f"urn:uuid:org-{agb}"
    entries: list[dict[str, Any]] = [{
        "fullUrl": org_urn, "request": {"method": "POST", "url": "Organization"},
        "resource": organization(agb, name, postcode=postcode if org_address else None,
                                 city=city if org_address else None)}]
    names: list[str] = []
    for product in sorted(set(beds) | set(count_products)):
        entries.append({"fullUrl": f"urn:uuid:svc-{agb}-{product}",
                        "request": {"method": "POST", "url": "HealthcareService"},
                        "resource": service(product, org_urn, name=f"{name} {product}")})
    for product, statuses in beds.items():
        for n, status in enumerate(statuses, start=1):
            bed_name = f"{agb}/{product}/{n}"
            names.append(bed_name)
            entries.append({"request": {"method": "POST", "url": "Location"},
                            "resource": bed(bed_name, product=product, status=status, org=org_urn,
                                            postcode=postcode, city=city)})
    response = await hub.client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                     headers={**headers, "Prefer": "return=representation"})
    assert response.status_code == 200, response.text
    created = [e["resource"] for e in response.json()["entry"]]
    org_id = created[0]["id"]
    provider = Provider(agb, org_id, headers)
    for resource in created[1:]:
        if resource["resourceType"] == "HealthcareService":
            provider.services[resource["type"][0]["coding"][0]["code"]] = resource["id"]
        else:
            provider.beds[resource["name"]] = resource["id"]
    return provider


def status_parameters(code: str) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": code}]}


async def set_status(hub: Any, provider: Provider, bed_id: str, code: str, **headers: str) -> Any:
    return await hub.client.post(f"/fhir/Location/{bed_id}/$set-status", json=status_parameters(code),
                                 headers={**provider.headers, **headers})


async def picture(hub: Any, **params: str) -> dict[str, Any]:
    response = await hub.client.get("/api/availability", params=params, headers=hub.headers("coordinator"))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def row(hub: Any, provider: Provider, product: str) -> dict[str, Any] | None:
    rows = (await picture(hub, organization=provider.ref))["rows"]
    return next((r for r in rows if r["product"] == product), None)


async def assert_matches_recount(hub: Any) -> None:
    """The incremental aggregate (tables and cache) equals a from-scratch recount of the resources."""
    from hub.availability.recount import recount, table_figures, without_empty

    async with hub.runtime.engine.connect() as conn:
        expected_rows, expected_totals = await recount(conn)
        rows, totals = await table_figures(conn)
    got, want = without_empty(rows), without_empty(expected_rows)
    differing = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    assert not differing, f"aggregate (got, recount) differ: {differing}"
    assert without_empty(totals) == without_empty(expected_totals)
    served = (await picture(hub))["rows"]
    cached = {(r["org_id"], r["product"], r["region"]): (r["total"], r["free"], r["occupied"], r["reserved"],
                                                         r["unavailable"]) for r in served}
    assert {k: val for k, val in cached.items() if any(val)} == {
        (k.org_id, k.product, k.region): (f.total, f.free, f.occupied, f.reserved, f.unavailable)
        for k, f in without_empty(rows).items()}


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll a condition until a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def live_server(app: Any) -> AsyncIterator[str]:
    """The hub's app (lifespan already running) served over real TCP by uvicorn in this event loop."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
