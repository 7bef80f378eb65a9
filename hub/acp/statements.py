"""The lines of the HAP view and the small readings of FHIR data they are made of (names, codes, provenance).

Ordering keys are here too: everything in the view is sorted newest first (`newest_first`, `newest_stored_first`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.acp import codes
from hub.acp.records import Loaded

Displays = dict[tuple[str, str], str]  # (system, code) -> Dutch display from the hub's PZP ValueSets


@dataclass
class Statement:
    """One line of the view: what, its value, when, from whom, and which resource says it."""

    label: str
    value: str = ""
    detail: str = ""
    date: str = ""
    source: str = ""
    ref: str = ""
    status: str = "current"  # current | superseded | inactive | conflict | absent
    replaced_by: str = ""
    key: str = ""
    code: str = ""


@dataclass
class Contact:
    name: str
    roles: list[str]
    phones: list[str]
    emails: list[str]
    legal_representative: bool
    ref: str = ""


def person_name(names: Any) -> str:
    items = names if isinstance(names, list) else [names] if isinstance(names, dict) else []
    best = next((n for n in items if n.get("use") == "official"), items[0] if items else {})
    if best.get("text"):
        return str(best["text"])
    return " ".join([*best.get("given", []), best.get("family", "")]).strip()


def mask_bsn(patient: dict[str, Any]) -> str:
    """BSN masked except the last three digits (README §7 banner)."""
    bsn = next((i.get("value", "") for i in patient.get("identifier", []) if i.get("system") == codes.BSN), "")
    return f"{'*' * (len(bsn) - 3)}{bsn[-3:]}" if len(bsn) > 3 else ""


def concept_text(concept: Any, displays: Displays) -> str:
    if not isinstance(concept, dict):
        return ""
    for c in concept.get("coding", []):
        shown = displays.get((c.get("system", ""), c.get("code", "")))
        if shown:
            return shown
    return str(concept.get("text") or next((c["display"] for c in concept.get("coding", []) if c.get("display")),
                                           next((c.get("code", "") for c in concept.get("coding", [])), "")))


def source(item: Loaded) -> str:
    """Provenance line: the owning organisation's identifier and the date the hub last stored it."""
    owner = item.stored.owner_org or ""
    system, _, value = owner.partition("|")
    kind = {"agb-z": "AGB", "ura": "URA"}.get(system.rsplit("/", 1)[-1], "")
    who = f"{kind} {value}".strip() if value else owner
    return f"{who}, bijgewerkt {item.stored.last_updated:%Y-%m-%d}" if who else \
        f"bijgewerkt {item.stored.last_updated:%Y-%m-%d}"


def extension_text(extensions: list[dict[str, Any]], url: str) -> str:
    return next((str(e.get("valueString", "")) for e in extensions if e.get("url") == url), "")


def newest_first(text: str) -> str:
    """Sort key that orders ISO date strings newest first when sorted ascending."""
    return "".join(chr(0x10FFFF - ord(ch)) for ch in text) + "\U0010ffff"


def newest_stored_first(item: Loaded) -> datetime:
    return datetime.max - (item.stored.last_updated - datetime.min)
