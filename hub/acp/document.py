"""The $acp-summary response: a `collection` Bundle — a Composition first (sections + Dutch narrative), then the
resources as stored — and the same view as an HTML page for the HAP doctor.

Stored resources are spliced into the Bundle as their stored bytes (never re-serialized); only the Composition
is built here. Directive entries carry the hub's marks on the Bundle entry (not in the resource):
`acp-directive-status` (current | superseded | inactive | conflict) and `acp-superseded-by` (the newer Consent).
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape

from hub.acp import codes
from hub.acp.records import Loaded, PatientRecord
from hub.acp.statements import Statement
from hub.acp.summary import AcpView, acp_context

TEMPLATES = Environment(loader=PackageLoader("hub.acp", "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
SECTION_SYSTEM = f"{codes.HUB_CS}acp-section"
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'


def bundle(view: AcpView, record: PatientRecord, base: str, *, now: datetime | None = None) -> bytes:
    """The summary Bundle as bytes (see the module docstring)."""
    now = now or datetime.now(UTC)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    members = resources_in_order(view, record)
    composition = _composition(view, stamp)
    head = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": stamp},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": "collection", "timestamp": stamp}
    marks = view.marks()
    entries = [b'{"fullUrl":"urn:uuid:' + composition["id"].encode() + b'","resource":' + orjson.dumps(composition)
               + b"}"]
    entries += [_entry(base, item, marks.get(item.ref)) for item in members]
    return orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def resources_in_order(view: AcpView, record: PatientRecord) -> list[Loaded]:
    """Patient, then what the sections show in section order, then their context (encounters, who recorded it)."""
    statements: list[Statement] = [*view.limits, *view.other_limits, *view.history, *view.advance_directives,
                                   *view.goals, *view.wishes, *([view.place_of_death] if view.place_of_death else []),
                                   *view.devices, *view.documents, *view.conversations]
    refs = [s.ref for s in statements if s.ref] + [c.ref for c in view.contacts if c.ref]
    by_ref = {item.ref: item for item in record.compartment}
    ordered = [record.patient] + [by_ref[r] for r in dict.fromkeys(refs) if r in by_ref]
    if view.medical:
        ordered += acp_context(record)
        ordered += [d for d in (record.resolve(u.resource.get("device")) for u in record.of_type("DeviceUseStatement")
                                if u.ref in refs) if d is not None]
    ordered += list(record.referenced.values())
    return list({item.ref: item for item in ordered}.values())


def _entry(base: str, item: Loaded, mark: Statement | None) -> bytes:
    head: dict[str, Any] = {"fullUrl": f"{base}/{item.ref}"}
    if mark is not None:
        head["extension"] = [{"url": codes.EXT_STATUS, "valueCode": mark.status}]
        if mark.replaced_by:
            head["extension"].append({"url": codes.EXT_SUPERSEDED_BY,
                                      "valueReference": {"reference": mark.replaced_by}})
    return orjson.dumps(head)[:-1] + b',"resource":' + item.stored.content + b"}"


# ------------------------------------------------------------------------------------------------ Composition
def _composition(view: AcpView, stamp: str) -> dict[str, Any]:
    withheld = None if view.medical else "withheld"
    limits = _section("treatment-limits", "Behandelafspraken", view.limits + view.other_limits, withheld,
                      subsections=[_limit_section(s) for s in view.limits] if view.medical else None)
    sections = [
        limits,
        _section("superseded", "Vervallen of tegenstrijdige behandelafspraken", view.history, withheld),
        _section("advance-directives", "Wilsverklaringen", view.advance_directives, withheld),
        _section("goal", "Belangrijkste doel van het medisch beleid", view.goals, withheld),
        _section("place-of-death", "Voorkeursplek van overlijden",
                 [view.place_of_death] if view.place_of_death else [], withheld),
        _section("wishes", "Wensen en overige afspraken", view.wishes, withheld),
        _section("devices", "ICD en andere hulpmiddelen", view.devices, withheld),
        _contact_section(view),
        _section("documents", "Documenten", view.documents, withheld),
        _section("conversations", "Gesprekken over proactieve zorgplanning", view.conversations, withheld),
    ]
    return {
        "resourceType": "Composition",
        "id": str(uuid.uuid4()),
        "status": "final",
        "type": {"coding": [{"system": codes.LOINC, "code": "42348-3", "display": "Advance healthcare directives"}],
                 "text": "Proactieve zorgplanning"},
        "subject": {"reference": view.patient_ref, "display": view.name},
        "date": stamp,
        "author": [{"display": "Zorgnet Hub (samengesteld uit de opgeslagen PZP-gegevens)"}],
        "title": "Proactieve zorgplanning – overzicht voor de huisartsenpost",
        "confidentiality": "R",
        "text": {"status": "generated", "div": narrative(view)},
        "section": sections,
    }


def _section(key: str, title: str, statements: list[Statement], empty: str | None,
             subsections: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title, "code": {"coding": [{"system": SECTION_SYSTEM, "code": key}]}}
    entries = [{"reference": s.ref} for s in statements if s.ref]
    if empty or not statements:
        reason = empty or "nilknown"
        text = "Niet zichtbaar voor uw rol." if empty else "Niets vastgelegd."
        return {**section, "text": _div([text]), "emptyReason": {"coding": [{"system": codes.LIST_EMPTY,
                                                                             "code": reason}]}}
    section["text"] = _div([_line(s) for s in statements])
    if entries:
        section["entry"] = entries
    if subsections:
        section["section"] = subsections
    return section


def _limit_section(line: Statement) -> dict[str, Any]:
    section: dict[str, Any] = {"title": line.label, "code": {"coding": [{"system": codes.SNOMED, "code": line.code}]},
                               "text": _div([_line(line)])}
    if line.ref:
        section["entry"] = [{"reference": line.ref}]
    else:  # absence is not a "Nee": say that it was not discussed
        section["emptyReason"] = {"coding": [{"system": codes.LIST_EMPTY, "code": "notasked",
                                              "display": codes.NOT_DISCUSSED}]}
    return section


def _contact_section(view: AcpView) -> dict[str, Any]:
    section: dict[str, Any] = {"title": "Contactpersonen",
                               "code": {"coding": [{"system": SECTION_SYSTEM, "code": "contacts"}]}}
    if not view.contacts:
        return {**section, "text": _div(["Geen contactpersonen vastgelegd."]),
                "emptyReason": {"coding": [{"system": codes.LIST_EMPTY, "code": "nilknown"}]}}
    lines = [f"{c.name} ({', '.join(c.roles)}) {' '.join(c.phones)}".strip() for c in view.contacts]
    section["text"] = _div(lines)
    refs = [{"reference": c.ref} for c in view.contacts if c.ref]
    return {**section, "entry": refs} if refs else section


def _line(s: Statement) -> str:
    marks = {"superseded": " [vervallen]", "inactive": " [niet meer geldig]", "conflict": " [tegenstrijdig]"}
    parts = [f"{s.label}: {s.value}" if s.value else s.label, s.detail, s.date]
    return " — ".join(p for p in parts if p) + marks.get(s.status, "")


def _div(lines: list[str]) -> dict[str, str]:
    """A generated Narrative: the lines as an XHTML list."""
    items = "".join(f"<li>{html.escape(text)}</li>" for text in lines)
    return {"status": "generated", "div": f"{XHTML}<ul>{items}</ul></div>"}


# ------------------------------------------------------------------------------------------------ HTML
def narrative(view: AcpView) -> str:
    """The Composition narrative (XHTML): banner and treatment limits, the part a doctor reads first."""
    return TEMPLATES.get_template("narrative.html").render(view=view).strip()


def html_page(view: AcpView, *, generated: datetime | None = None) -> str:
    """The full Dutch page for the HAP doctor (`_format=html`)."""
    stamp = (generated or datetime.now(UTC)).astimezone().strftime("%d-%m-%Y %H:%M")
    return TEMPLATES.get_template("summary.html").render(view=view, generated=stamp)
