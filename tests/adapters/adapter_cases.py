"""Shared inputs for the adapter tests: the shared domain samples, our extra inputs, and the SourceMeta for each.

Golden files are keyed by case name; `translate_case` is the one place a case is run, so the golden test,
the FHIR-validity test and the determinism test all see exactly the same output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters import registry
from adapters.base import SourceMeta, Translation

HERE = Path(__file__).resolve().parent
SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "domain" / "samples"
INPUTS = HERE / "inputs"
GOLDEN = HERE / "golden"
RECEIVED = datetime(2026, 3, 9, 8, 30, tzinfo=UTC)

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
HUNZEHOF = SourceMeta(RECEIVED, f"{AGB}|73730001", "vvt-provider", {"ward_products": {"ELV-ZW": "elv-hoog"}})
COORDINATION_POINT = SourceMeta(RECEIVED, f"{AGB}|73739999", "coordination-point")
GP_MULDER = SourceMeta(RECEIVED, f"{AGB}|01054321", "gp")
ZORGDOMEIN = SourceMeta(RECEIVED)
ESDORP = SourceMeta(RECEIVED, f"{AGB}|73730002", "vvt-provider")
ASSEN = SourceMeta(RECEIVED, "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode|0106", "municipality")


@dataclass(frozen=True)
class Case:
    name: str
    format: str
    path: Path
    meta: SourceMeta


CASES = [
    Case("bed_csv_drenthe", "bed-csv", SAMPLES / "beddenoverzicht_drenthe_2026-03-09.csv", COORDINATION_POINT),
    Case("hl7_a20_bedstatus", "hl7v2", SAMPLES / "hl7v2" / "adt_a20_bedstatus.hl7", HUNZEHOF),
    Case("hl7_a01_opname", "hl7v2", SAMPLES / "hl7v2" / "adt_a01_opname.hl7", HUNZEHOF),
    Case("hl7_a03_ontslag", "hl7v2", SAMPLES / "hl7v2" / "adt_a03_ontslag.hl7", HUNZEHOF),
    Case("iwmo_wmo315", "iwmo", SAMPLES / "iwmo" / "wmo315_verzoek_kortdurend_verblijf.xml", ESDORP),
    Case("medvri_elv", "medvri", SAMPLES / "gp" / "medvri_verwijzing_elv.edi", GP_MULDER),
    Case("zorgdomein_oru_r01", "hl7v2", SAMPLES / "gp" / "zorgdomein_oru_r01_elv.hl7", ZORGDOMEIN),
    Case("hl7_a02_overplaatsing", "hl7v2", INPUTS / "adt_a02_overplaatsing.hl7", HUNZEHOF),
    Case("hl7_a08_wijziging_utf8", "hl7v2", INPUTS / "adt_a08_wijziging_utf8.hl7", HUNZEHOF),
    Case("hl7_a11_annulering_opname", "hl7v2", INPUTS / "adt_a11_annulering_opname.hl7", HUNZEHOF),
    Case("hl7_a12_annulering_overplaatsing", "hl7v2", INPUTS / "adt_a12_annulering_overplaatsing.hl7", HUNZEHOF),
    Case("hl7_a13_annulering_ontslag", "hl7v2", INPUTS / "adt_a13_annulering_ontslag.hl7", HUNZEHOF),
    Case("zorgdomein_orm_o01_underscore", "hl7v2", INPUTS / "zorgdomein_orm_o01_underscore.hl7", ZORGDOMEIN),
    Case("iwmo_wmo301", "iwmo", INPUTS / "wmo301_toewijzing_kv.xml", ASSEN),
]


def translate_case(case: Case) -> Translation:
    return registry.get(case.format).translate(case.path.read_bytes(), case.meta)


def as_golden(translation: Translation) -> dict[str, Any]:
    """Everything a Translation says, as JSON (what the golden files hold)."""
    return {
        "kind": translation.kind,
        "message_id": translation.message_id,
        "event_time": translation.event_time.isoformat() if translation.event_time else None,
        "problems": [
            {"severity": p.severity, "message": p.message, "location": p.location} for p in translation.problems
        ],
        "bundle": translation.bundle,
    }


def golden_text(translation: Translation) -> str:
    return json.dumps(as_golden(translation), indent=2, ensure_ascii=False) + "\n"


def resources(bundle: dict[str, Any], resource_type: str | None = None) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if "resource" in e and resource_type in (None, e["resource"]["resourceType"])
    ]


def entry_for(bundle: dict[str, Any], resource_type: str, identifier_value: str) -> dict[str, Any]:
    """The entry whose resource has this type and an identifier with this value."""
    entries: list[dict[str, Any]] = bundle.get("entry", [])
    for entry in entries:
        resource = entry["resource"]
        values = [i.get("value") for i in resource.get("identifier", [])]
        if resource["resourceType"] == resource_type and identifier_value in values:
            return entry
    raise AssertionError(f"no {resource_type} with identifier {identifier_value}")


def meta_with(meta: SourceMeta, **changes: Any) -> SourceMeta:
    fields = {
        "received_at": meta.received_at,
        "sender": meta.sender,
        "sender_kind": meta.sender_kind,
        "config": meta.config,
    } | changes
    return SourceMeta(**fields)


def resource_of(bundle: dict[str, Any], resource_type: str, identifier_value: str) -> dict[str, Any]:
    """The resource of `entry_for`."""
    found: dict[str, Any] = entry_for(bundle, resource_type, identifier_value)["resource"]
    return found
