"""A day of referrals through the real hub, for the issue's evidence: `python -m hub.referrals.simulate`.

The hub is real (embedded SQLite, in-process routing, the HTTP operations); the region around it is simulated on
a virtual clock: providers answer offers after a random delay, accept or decline with some probability or do not
answer at all (the offer then expires at its deadline), and beds are freed and filled meanwhile (discharges,
admissions from elsewhere). It reports the median and p90 time from request to accepted bed, offers and GP actions
per placement, and referrals that needed a person, beside the phone baseline (52 minutes of GP time per bed), and
draws placements per hour of the day as a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import statistics
import struct
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

from hub.config import Settings
from hub.referrals import vocabulary as v
from hub.referrals.tables import referral_offers, referrals
from hub.referrals.tasks import expire_one
from hub.security.context import AccessContext
from hub.security.tokens import issue_token
from hub.store.sql import instant

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
GP = f"{AGB}|01000001"
PRODUCTS = {"elv-laag": 0.3, "elv-hoog": 0.25, "elv-pall": 0.1, "wlz-crisis": 0.15, "grz": 0.15, "wmo-kv": 0.05}
PHONE_BASELINE_MINUTES = 52
SYSTEM = AccessContext.system("referral simulation")


@dataclass
class Behaviour:
    answer_mean_minutes: float = 20.0
    accept_probability: float = 0.7
    silent_probability: float = 0.1  # never answers: the offer expires


@dataclass
class Outcome:
    arrived: float
    placed: float | None = None
    offers: int = 0
    needed_person: bool = False


@dataclass
class Simulation:
    client: httpx.AsyncClient
    runtime: Any
    settings: Settings
    rng: random.Random
    behaviour: Behaviour
    start: datetime
    agb_of: dict[str, str] = field(default_factory=dict)  # "Organization/<id>" -> AGB
    beds: list[str] = field(default_factory=list)
    events: list[tuple[float, int, str, tuple[str, ...]]] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seen_offers: set[str] = field(default_factory=set)
    seq: int = 0

    def at(self, minute: float, kind: str, *args: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (minute, self.seq, kind, args))

    def headers(self, role: str, org: str) -> dict[str, str]:
        token = issue_token(self.settings, role=role, org=org, subject=f"sim-{role}-{org}")
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}


async def build_region(sim: Simulation, providers: int) -> None:
    """Providers with 2-4 products each, 4-12 beds per product, about 85% occupied."""
    async with sim.runtime.uow() as uow:
        for n in range(providers):
            agb = f"7399{n:04d}"
            postcode = f"{sim.rng.randint(7700, 9499)} AA"
            org = (await uow.resources.create(SYSTEM, {
                "resourceType": "Organization", "name": f"Zorgaanbieder {n + 1} (sim)", "active": True,
                "identifier": [{"system": AGB, "value": agb}], "address": [{"postalCode": postcode}]})).stored.res_id
            sim.agb_of[f"Organization/{org}"] = agb
            for product in sim.rng.sample(list(PRODUCTS), sim.rng.randint(2, 4)):
                await uow.resources.create(SYSTEM, {
                    "resourceType": "HealthcareService", "active": True, "name": f"{product} {n + 1}",
                    "providedBy": {"reference": f"Organization/{org}"},
                    "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": product}]}]})
                for b in range(sim.rng.randint(4, 12)):
                    status = "O" if sim.rng.random() < 0.85 else "U"
                    bed = await uow.resources.create(SYSTEM, {
                        "resourceType": "Location", "status": "active", "name": f"Bed {b + 1} {product} {n + 1}",
                        "operationalStatus": {"system": v.V2_0116, "code": status},
                        "physicalType": {"coding": [{"system": v.PHYSICAL_TYPE, "code": "bd"}]},
                        "extension": [{"url": v.CARE_PRODUCT_EXT,
                                       "valueCoding": {"system": v.CARE_PRODUCT, "code": product}}],
                        "managingOrganization": {"reference": f"Organization/{org}"},
                        "address": {"postalCode": postcode}})
                    sim.beds.append(bed.stored.res_id)


def referral(sim: Simulation) -> dict[str, Any]:
    product = sim.rng.choices(list(PRODUCTS), weights=list(PRODUCTS.values()))[0]
    acute = sim.rng.random() < 0.7
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "priority": "urgent" if acute else "routine",
        "category": [{"coding": [{"system": v.SNOMED, "code": v.REFERRAL_CATEGORY}]}],
        "code": {"coding": [{"system": v.CARE_PRODUCT, "code": product}]},
        "subject": {"reference": f"Patient/sim-{sim.seq}"},
        "requester": {"identifier": {"system": AGB, "value": "01000001"}},
        "extension": [{"url": v.POSTCODE_EXT, "valueString": f"{sim.rng.randint(7700, 9499)} ZZ"}],
    }
    if not acute:
        sr["occurrenceDateTime"] = (sim.start + timedelta(days=2)).date().isoformat()
    return sr


async def step(sim: Simulation, minute: float, kind: str, args: tuple[str, ...]) -> None:
    if kind == "referral":
        r = await sim.client.post("/fhir/ServiceRequest", json=referral(sim), headers=sim.headers("gp", GP))
        sim.outcomes[r.json()["id"]] = Outcome(arrived=minute)
    elif kind == "answer":
        offer_id, decision, agb = args
        headers = sim.headers("vvt-provider", f"{AGB}|{agb}")
        body = ({"resourceType": "Parameters", "parameter": [
                    {"name": "admission", "valueDateTime": instant(sim.start + timedelta(minutes=minute + 60))}]}
                if decision == "accept" else
                {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "geen plek"}]})
        await sim.client.post(f"/fhir/Task/{offer_id}/${decision}", json=body, headers=headers)
    elif kind == "deadline":
        async with sim.runtime.engine.connect() as conn:
            row = (await conn.execute(select(referral_offers).where(referral_offers.c.offer_id == args[0]))).first()
        if row is not None and row.state == "open":
            await expire_one(sim.runtime, args[0], row.deadline)
    elif kind == "bed-change":
        await change_a_bed(sim)
    await sim.runtime.dispatcher.drain(30)
    await observe(sim, minute)


async def change_a_bed(sim: Simulation) -> None:
    """A discharge (O -> U) or an admission from elsewhere (U -> O), as an ADT feed would send it."""
    async with sim.runtime.uow() as uow:
        bed_id = sim.rng.choice(sim.beds)
        stored = await uow.resources.read_raw(SYSTEM, "Location", bed_id, audit_read=False)
        bed = orjson.loads(stored.content)
        code = (bed.get("operationalStatus") or {}).get("code")
        if code not in ("O", "U"):
            return
        bed["operationalStatus"] = {"system": v.V2_0116, "code": "U" if code == "O" else "O"}
        await uow.resources.update(SYSTEM, bed, if_match=stored.version)


async def observe(sim: Simulation, minute: float) -> None:
    """Schedule the provider's answer (or the deadline) for every new offer; record placements and alerts."""
    async with sim.runtime.engine.connect() as conn:
        offers = (await conn.execute(select(referral_offers))).all()
        states = {r.sr_id: r.state for r in (await conn.execute(select(referrals))).all()}
    window = {True: 30.0, False: 240.0}
    for offer in offers:
        outcome = sim.outcomes.get(offer.sr_id)
        if offer.offer_id in sim.seen_offers or outcome is None:
            continue
        sim.seen_offers.add(offer.offer_id)
        outcome.offers += 1
        acute = (offer.deadline - offer.created) < timedelta(hours=1)
        sim.at(minute + window[acute], "deadline", offer.offer_id)
        if sim.rng.random() >= sim.behaviour.silent_probability:
            delay = sim.rng.expovariate(1 / sim.behaviour.answer_mean_minutes)
            decision = "accept" if sim.rng.random() < sim.behaviour.accept_probability else "decline"
            sim.at(minute + delay, "answer", offer.offer_id, decision, sim.agb_of[offer.provider])
    for sr_id, state in states.items():
        outcome = sim.outcomes.get(sr_id)
        if outcome and state == "accepted" and outcome.placed is None:
            outcome.placed = minute
        if outcome and state == "needs-person":
            outcome.needed_person = True


async def run(*, seed: int = 6, providers: int = 20, referrals_per_day: int = 60, workdir: Path | None = None,
              behaviour: Behaviour | None = None) -> dict[str, Any]:
    """Simulate one day; returns the figures (and the per-hour placements for the plot)."""
    from hub.app import create_app

    directory = workdir or Path(tempfile.mkdtemp(prefix="zorgnet-sim-"))
    settings = Settings(database_url=f"sqlite+aiosqlite:///{directory / 'sim.db'}", base_url="http://sim.test")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim.test") as client:
            sim = Simulation(client, app.state.runtime, settings, random.Random(seed), behaviour or Behaviour(),
                             datetime(2026, 3, 9, 0, 0))
            await build_region(sim, providers)
            for _ in range(referrals_per_day):
                sim.at(sim.rng.uniform(7 * 60, 22 * 60), "referral")
            for _ in range(providers * 3):
                sim.at(sim.rng.uniform(0, 24 * 60), "bed-change")
            while sim.events:
                minute, _, kind, args = heapq.heappop(sim.events)
                await step(sim, minute, kind, args)
    return figures(sim)


def figures(sim: Simulation) -> dict[str, Any]:
    placed = [o for o in sim.outcomes.values() if o.placed is not None]
    waits = sorted(o.placed - o.arrived for o in placed if o.placed is not None)
    per_hour = [0] * 24
    for o in placed:
        per_hour[min(23, int((o.placed or 0) // 60))] += 1
    return {
        "referrals": len(sim.outcomes), "placed": len(placed),
        "median_minutes_to_accepted_bed": round(statistics.median(waits), 1) if waits else None,
        "p90_minutes_to_accepted_bed": round(waits[int(0.9 * (len(waits) - 1))], 1) if waits else None,
        "offers_per_placement": round(sum(o.offers for o in placed) / len(placed), 2) if placed else None,
        "gp_actions_per_placement": 1.0 if placed else None,  # one request; no phone calls, no re-submission
        "needed_a_person": sum(o.needed_person for o in sim.outcomes.values()),
        "phone_baseline_gp_minutes_per_bed": PHONE_BASELINE_MINUTES,
        "placements_per_hour": per_hour,
    }


def bar_chart_png(values: list[int], path: Path, *, bar: int = 16, height: int = 160) -> None:
    """Placements per hour as a plain PNG (no plotting library needed): one bar per hour, a tick per 6 hours."""
    top = max(values) or 1
    width = bar * len(values) + 20
    rows = []
    for y in range(height):
        line = bytearray([0])
        for x in range(width):
            hour, inside = (x - 10) // bar, (x - 10) % bar
            level = values[hour] * (height - 20) / top if 0 <= hour < len(values) else -1
            filled = 1 < inside < bar - 1 and height - 10 - y <= level
            axis = y == height - 10 or (y > height - 10 and 0 <= hour < len(values) and inside == 0 and hour % 6 == 0)
            line += bytes((40, 110, 180) if filled and y < height - 10 else (0, 0, 0) if axis else (255, 255, 255))
        rows.append(bytes(line))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate a day of referrals through the hub")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--providers", type=int, default=20)
    parser.add_argument("--referrals", type=int, default=60)
    parser.add_argument("--plot", type=Path, default=Path("referrals-per-hour.png"))
    args = parser.parse_args(argv)
    result = asyncio.run(run(seed=args.seed, providers=args.providers, referrals_per_day=args.referrals))
    bar_chart_png(result["placements_per_hour"], args.plot)
    for key, value in result.items():
        print(f"{key}: {value}")
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
