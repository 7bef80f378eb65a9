"""Ingest test helpers: the shared domain samples, senders, HL7 variants, and request/search shortcuts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "domain" / "samples"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
GEMEENTE = "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode"
HUB = "https://zorgnet-hub.nl/fhir"
BED = f"{HUB}/NamingSystem/bed"
HUNZEHOF = f"{AGB}|73730001"  # the nursing home whose ADT feed the HL7 samples are
COORDINATION_POINT = f"{AGB}|73739999"
GP_MULDER = f"{AGB}|01054321"
ASSEN = f"{GEMEENTE}|0106"
HL7 = "application/hl7-v2"
CSV = "text/csv"
BED_K12_1 = "73730001/ELV-ZW/K12-1"
HUNZEHOF_CONFIG = {
    "role": "vvt-provider",
    "name": "Zorggroep Noorderzand, De Hunzehof",
    "hl7Sources": [{"application": "YSIS", "facility": "ZNZ-ASSEN"}],
    "config": {"ward_products": {"ELV-ZW": "elv-hoog"}},
}


def sample(*parts: str) -> bytes:
    return SAMPLES.joinpath(*parts).read_bytes()


def hl7(name: str) -> bytes:
    return sample("hl7v2", name)


def variant(
    message: bytes, *, control_id: str | None = None, event_time: str | None = None, bed_status: str | None = None
) -> bytes:
    """An HL7 sample with another MSH-10, EVN-2 (and MSH-7) or NPU-2 bed status."""
    text = message.decode("latin-1")
    segments = re.split(r"\r\n|\r|\n", text.strip())
    out = []
    for segment in segments:
        fields = segment.split("|")
        if fields[0] == "MSH" and control_id:
            fields[9] = control_id
        if fields[0] == "MSH" and event_time:
            fields[6] = event_time
        if fields[0] == "EVN" and event_time:
            fields[2] = event_time
        if fields[0] == "NPU" and bed_status:
            fields[2] = f"{bed_status}^^HL70116"
        out.append("|".join(fields))
    return ("\r".join(out) + "\r").encode("latin-1")


async def ingest(
    hub: Any, fmt: str, body: bytes, *, role: str, org: str | None, content_type: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {hub.token(role, org)}", "Content-Type": content_type or _media_type(fmt)}
    return await hub.client.post(f"/ingest/{fmt}", content=body, headers=headers)


def _media_type(fmt: str) -> str:
    return {
        "hl7v2": HL7,
        "bed-csv": CSV,
        "iwmo": "application/xml",
        "medvri": "application/edifact",
        "fhir": "application/fhir+json",
        "bed-xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }[fmt]


async def configure(hub: Any, sender: str, body: dict[str, Any]) -> httpx.Response:
    return await hub.client.put(f"/ingest/config/{quote(sender, safe='')}", json=body, headers=hub.headers())


async def search(
    hub: Any, res_type: str, params: dict[str, str] | None = None, role: str = "admin", org: str | None = None
) -> list[dict[str, Any]]:
    headers = hub.headers(role, org) if org else hub.headers(role)
    response = await hub.client.get(f"/fhir/{res_type}", params={"_count": "200", **(params or {})}, headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", []) if e.get("search", {}).get("mode") == "match"]


async def one(hub: Any, res_type: str, identifier: str, **kw: Any) -> dict[str, Any]:
    found = await search(hub, res_type, {"identifier": identifier}, **kw)
    assert len(found) == 1, f"{res_type}?identifier={identifier}: {len(found)} found"
    return found[0]


async def bed(hub: Any, value: str = BED_K12_1) -> dict[str, Any]:
    return await one(hub, "Location", f"{BED}|{value}")


def diagnostics(outcome: dict[str, Any]) -> str:
    return "\n".join(str(i.get("diagnostics")) for i in outcome.get("issue", []))
