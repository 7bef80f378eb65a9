"""iWmo 3.2 WMO301 (toewijzing) and WMO315 (verzoek om toewijzing) -> social-domain FHIR (README 3).

Only kortdurend verblijf (productcategorie 04, respite) is a bed product, so only those products become a
`wmo-kv` ServiceRequest; other categories are reported and left out. Every resource is tagged data-domain
`social` so municipalities may see it (hub.security.policy), and nothing medical gets in: the free-text
`Commentaar` fields are dropped with an information Problem. The XML is parsed hardened: size limit, no
DOCTYPE or ENTITY declarations at all (billion laughs, XXE), defusedxml underneath as a second line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bundle import Resource, TransactionBuilder, mark_social, reference
from adapters.dates import fhir_datetime, local_midnight
from adapters.parties import add_organization, add_patient, bsn_identifier, dutch_name

FORMAT = "iwmo"
MEDIA_TYPES = ("application/xml", "text/xml")
DESCRIPTION = "iWmo 3.2 WMO301/WMO315 (municipal respite, kortdurend verblijf) -> Patient + ServiceRequest"
MAX_BYTES = 2 * 1024 * 1024
PRODUCTCATEGORIE = ids.HUB_CODES + "iwmo-productcategorie"
UCUM = "http://unitsofmeasure.org"
_NAMESPACE = re.compile(r"^\{http://www\.istandaarden\.nl/iwmo/(\d+)_(\d+)/(wmo\d{3})/schema\}Bericht$")
_BERICHTCODE = {"414": "wmo301", "444": "wmo315"}  # iWmo 2.0 COD002 values (3.x unchanged, unverified)
_GENDER = {"0": "unknown", "1": "male", "2": "female"}  # COD046
_UNITS = {"14": ("etmaal", "d"), "04": ("uur", "h")}  # Eenheid (WJ756)
_FREQUENCY = {"1": "per dag", "2": "per week", "4": "per maand", "6": "totaal binnen de toewijzingsperiode"}
_REFERRER = {"01": "Gemeente", "02": "Huisarts", "05": "Medisch specialist"}  # COD327 (partial)


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """One iWmo message -> Patient, gemeente and aanbieder, one ServiceRequest per respite product."""
    root = parse_safely(source)
    kind = _message_kind(root)
    problems: list[Problem] = []
    header, client = _child(root, "Header"), _child(root, "Client")
    if header is None or client is None:
        raise AdapterError(f"{kind.upper()} needs Header and Client", location="Bericht")
    gemeente, aanbieder = _parties(header, kind)
    builder = TransactionBuilder()
    gemeente_urn = add_organization(builder, ids.GEMEENTECODE, gemeente, org_type="govt", social=True)
    aanbieder_urn = add_organization(builder, ids.AGB, aanbieder, org_type="prov", social=True)
    patient = add_patient(builder, mark_social(_patient(client, problems)))
    day = _date(_text(header, "BerichtIdentificatie", "Dagtekening"), "Header/BerichtIdentificatie/Dagtekening")
    context = _Context(kind, gemeente, aanbieder, gemeente_urn, aanbieder_urn, patient, day)
    products = (
        _all(client, "ToegewezenProducten", "ToegewezenProduct")
        if kind == "wmo301"
        else _all(client, "AangevraagdeProducten", "AangevraagdProduct")
    )
    added = [_add_request(builder, context, product, index, problems) for index, product in enumerate(products, 1)]
    if not any(added):  # data minimisation: no bed request, so no client data is stored either
        problems.append(Problem("warning", "no kortdurend verblijf (categorie 04) product; nothing to store"))
        builder = TransactionBuilder()
    return Translation(
        bundle=builder.bundle(),
        problems=problems,
        message_id=_text(header, "BerichtIdentificatie", "Identificatie") or None,
        event_time=local_midnight(day),
        kind=kind.upper(),
    )


def parse_safely(source: bytes) -> Element:
    """Parse untrusted XML: size cap, DOCTYPE/ENTITY refused outright, defusedxml for what slips by."""
    if len(source) > MAX_BYTES:
        raise AdapterError(f"iWmo message larger than {MAX_BYTES} bytes", code="too-costly")
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", source, re.IGNORECASE):
        raise AdapterError("DOCTYPE and ENTITY declarations are not allowed in iWmo messages", code="security")
    try:
        root: Element = fromstring(source, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AdapterError(f"unsafe XML refused: {exc!r}", code="security") from exc
    except LookupError as exc:  # an unknown encoding in the XML declaration
        raise AdapterError(f"unreadable XML declaration: {exc}", location="line 1") from exc
    except ParseError as exc:
        line, column = exc.position
        raise AdapterError(f"not well-formed XML: {exc}", location=f"line {line}, column {column}") from exc
    return root


def _message_kind(root: Element) -> str:
    """The message kind (wmo301/wmo315) from the root namespace, cross-checked with BerichtCode."""
    match = _NAMESPACE.match(root.tag)
    if not match or int(match.group(1)) != 3:
        raise AdapterError(f"not an iWmo 3.x Bericht: {root.tag}", location="Bericht", code="not-supported")
    kind = match.group(3)
    if kind not in _BERICHTCODE.values():
        raise AdapterError(f"{kind.upper()} is not supported (WMO301, WMO315)", code="not-supported")
    code = _text(root, "Header", "BerichtCode")
    if code and _BERICHTCODE.get(code, kind) != kind:
        raise AdapterError(
            f"BerichtCode {code} does not match the {kind.upper()} namespace", location="Header/BerichtCode"
        )
    return kind


def _parties(header: Element, kind: str) -> tuple[str, str]:
    """(gemeentecode, aanbieder AGB): 301 is sent by the gemeente, 315 by the aanbieder."""
    sender, receiver = _text(header, "Afzender"), _text(header, "Ontvanger")
    gemeente, aanbieder = (sender, receiver) if kind == "wmo301" else (receiver, sender)
    if not ids.is_valid_gemeentecode(gemeente):
        raise AdapterError(f"gemeentecode {gemeente!r} is not 4 digits", location="Header")
    if not ids.is_valid_agb(aanbieder):
        raise AdapterError(f"aanbieder AGB {aanbieder!r} is not 8 digits", location="Header")
    return gemeente, aanbieder


def _patient(client: Element, problems: list[Problem]) -> Resource:
    """Client -> Patient (BSN, name, birth date, gender) - administrative data only."""
    bsn = ids.normalize_bsn(_text(client, "Bsn"))
    if not ids.is_valid_bsn(bsn):
        raise AdapterError(f"BSN {_text(client, 'Bsn')!r} is missing or fails the 11-proof", location="Client/Bsn")
    patient: Resource = {"resourceType": "Patient", "identifier": [bsn_identifier(bsn)]}
    name = _child(client, "Naam")
    if name is not None:
        surname = _text(name, "Achternaam") or _text(name, "Geslachtsnaam", "Achternaam")
        prefix = _text(name, "Voorvoegsel") or _text(name, "Geslachtsnaam", "Voorvoegsel")
        if surname:
            patient["name"] = [
                dutch_name(own_prefix=prefix or None, own_name=surname, initials=_text(name, "Voorletters") or None)
            ]
    if gender := _GENDER.get(_text(client, "Geslacht")):
        patient["gender"] = gender
    if born := _birth_date(client):
        patient["birthDate"] = born
    if _text(client, "Commentaar"):
        problems.append(
            Problem(
                "information",
                "Client/Commentaar (free text) dropped: no free text enters the hub from the social domain",
                "Client/Commentaar",
            )
        )
    return patient


def _birth_date(client: Element) -> str | None:
    """Geboortedatum with DatumGebruik (COD170, unverified): 1 day unknown, 2 day+month unknown, 3 unknown."""
    value = _text(client, "Geboortedatum", "Datum")
    if not value:
        return None
    usage = _text(client, "Geboortedatum", "DatumGebruik")
    born = _date(value, "Client/Geboortedatum").isoformat()
    return {"1": born[:7], "2": born[:4], "3": None}.get(usage, born)


@dataclass(frozen=True)
class _Context:
    """What every product of one message shares."""

    kind: str
    gemeente: str
    aanbieder: str
    gemeente_urn: str
    aanbieder_urn: str
    patient: str
    day: date


def _add_request(
    builder: TransactionBuilder, ctx: _Context, product: Element, index: int, problems: list[Problem]
) -> bool:
    """One respite product -> ServiceRequest (True if added); 301 PUT by ToewijzingNummer, 315 POST once."""
    where = f"{'ToegewezenProduct' if ctx.kind == 'wmo301' else 'AangevraagdProduct'}[{index}]"
    category, code = _text(product, "Product", "Categorie"), _text(product, "Product", "Code")
    if category != "04":
        problems.append(
            Problem(
                "warning",
                f"productcategorie {category or '(none)'} is not kortdurend verblijf; not a bed request, left out",
                f"{where}/Product",
            )
        )
        return False
    if _text(product, "Commentaar"):
        problems.append(Problem("information", "Commentaar (free text) dropped", f"{where}/Commentaar"))
    request = _request_body(ctx, product, category, code, where)
    reference_aanbieder = _text(product, "ReferentieAanbieder")
    identifiers = []
    if reference_aanbieder:
        identifiers.append({"system": ids.IWMO_REFERENTIE, "value": f"{ctx.aanbieder}/{reference_aanbieder}"})
    if ctx.kind == "wmo301":
        number = _text(product, "ToewijzingNummer")
        if not number:
            problems.append(Problem("error", "ToewijzingNummer missing; product skipped", where))
            return False
        request["identifier"] = identifiers
        builder.update_by_identifier(mark_social(request), ids.IWMO_TOEWIJZING, f"{ctx.gemeente}/{number}")
        return True
    if not reference_aanbieder:
        problems.append(Problem("error", "ReferentieAanbieder missing; product skipped", where))
        return False
    builder.create_if_none_exist(mark_social(request), ids.IWMO_REFERENTIE, f"{ctx.aanbieder}/{reference_aanbieder}")
    return True


def _request_body(ctx: _Context, product: Element, category: str, code: str, where: str) -> Resource:
    """The ServiceRequest fields both messages share (identifiers are added by the caller)."""
    is_301 = ctx.kind == "wmo301"
    codings: list[dict[str, str]] = [
        care_products.coding("wmo-kv"),
        {"system": PRODUCTCATEGORIE, "code": category, "display": "Kortdurend verblijf"},
    ]
    if code:
        codings.append({"system": f"{ids.HUB_CODES}iwmo-productcode/{ctx.gemeente}", "code": code})
    request: Resource = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order" if is_301 else "proposal",
        "code": {"coding": codings, "text": "Wmo kortdurend verblijf (respijt)"},
        "subject": reference(ctx.patient),
    }
    start = _text(product, "Ingangsdatum" if is_301 else "ToewijzingIngangsdatum")
    end = _text(product, "Einddatum" if is_301 else "ToewijzingEinddatum")
    period = {k: _date(v, f"{where}/{k}").isoformat() for k, v in (("start", start), ("end", end)) if v}
    if period:
        request["occurrencePeriod"] = period
    quantity, notes = _volume(product)
    if quantity:
        request["quantityQuantity"] = quantity
    request["authoredOn"] = _assigned_on(product, where) if is_301 else ctx.day.isoformat()
    request["requester"] = reference(ctx.gemeente_urn if is_301 else ctx.aanbieder_urn)
    request["performer"] = [reference(ctx.aanbieder_urn)]
    notes += _administrative_notes(product)
    if notes:
        request["note"] = [{"text": n} for n in notes]
    return request


def _assigned_on(product: Element, where: str) -> str:
    """WMO301 Toewijzingsdatum (+ Toewijzingstijd, Amsterdam local time) as FHIR dateTime."""
    day = _date(_text(product, "Toewijzingsdatum"), f"{where}/Toewijzingsdatum")
    clock = _text(product, "Toewijzingstijd")
    try:
        return fhir_datetime(datetime.combine(day, time.fromisoformat(clock))) if clock else day.isoformat()
    except ValueError as exc:
        raise AdapterError(f"not a time (hh:mm:ss): {clock!r}", location=f"{where}/Toewijzingstijd") from exc


def _volume(product: Element) -> tuple[dict[str, Any] | None, list[str]]:
    """Omvang -> quantityQuantity (etmaal = d, uur = h) plus a note for the frequency or a euro budget."""
    volume, unit, frequency = (_text(product, "Omvang", k) for k in ("Volume", "Eenheid", "Frequentie"))
    if not volume:
        return None, []
    label = f"{volume} {_UNITS.get(unit, (f'eenheid {unit}', ''))[0]} {_FREQUENCY.get(frequency, '')}".strip()
    note = [f"Omvang: {label}"]
    if unit not in _UNITS or not volume.isdigit():
        return None, note
    name, ucum = _UNITS[unit]
    return {"value": int(volume), "unit": name, "system": UCUM, "code": ucum}, note


def _administrative_notes(product: Element) -> list[str]:
    """Verwijzer and RedenWijziging as short notes (administrative, no free text from Commentaar)."""
    notes = []
    referrer_type = _text(product, "Verwijzer", "Type")
    if referrer_type:
        who = _text(product, "Verwijzer", "Naam") or (
            f"AGB {_text(product, 'Verwijzer', 'ZorgverlenerCode')}"
            if _text(product, "Verwijzer", "ZorgverlenerCode")
            else ""
        )
        kind = _REFERRER.get(referrer_type, f"type {referrer_type}")
        notes.append(f"Verwijzer: {kind}" + (f", {who}" if who else ""))
    if reason := _text(product, "RedenWijziging"):
        notes.append(f"RedenWijziging: {reason}")
    return notes


def _date(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise AdapterError(f"not a date (yyyy-mm-dd): {value!r}", location=where) from exc


# --- namespace-agnostic element access (iWmo mixes the message and basisschema namespaces) --------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Element, *path: str) -> Element | None:
    for name in path:
        found = next((c for c in element if _local(c.tag) == name), None)
        if found is None:
            return None
        element = found
    return element


def _all(element: Element, *path: str) -> list[Element]:
    parent = _child(element, *path[:-1]) if len(path) > 1 else element
    return [c for c in parent if _local(c.tag) == path[-1]] if parent is not None else []


def _text(element: Element, *path: str) -> str:
    found = _child(element, *path)
    return (found.text or "").strip() if found is not None else ""
