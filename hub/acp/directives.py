"""Treatment directives (behandelafspraken) and advance directives (wilsverklaringen) as lines of the HAP view.

Per treatment the newest valid directive is current; older ones are `superseded`, withdrawn ones `inactive`, and
two valid ones of the same date that disagree are both `conflict` (never merged silently). The seven limits of
the 3 a.m. view are always listed, with "Niet besproken" where nothing was recorded (absence is not a "Nee").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from hub.acp import codes
from hub.acp.records import Loaded, PatientRecord
from hub.acp.rules import is_advance_directive, is_treatment_directive
from hub.acp.statements import Statement, extension_text, newest_first, newest_stored_first, source
from hub.fhir.indexing import normalize


def treatment_directives(record: PatientRecord) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """(the seven limits in fixed order, other treatments, superseded/inactive/conflicting ones)."""
    groups: dict[str, list[Loaded]] = {}
    for consent in record.of_type("Consent"):
        if is_treatment_directive(consent.resource) and consent.resource.get("status") in ("active", "inactive"):
            groups.setdefault(_treatment_key(consent.resource), []).append(consent)
    current: dict[str, Statement] = {}
    history: list[Statement] = []
    for key, items in groups.items():
        lines = [_directive(c, key) for c in sorted(items, key=_directive_order)]
        head = lines[0]
        if head.status != "current":  # nothing valid left: the newest withdrawn one is all there is
            history.extend(lines)
            continue
        current[key] = head
        for line in lines[1:]:
            same_day = line.status == "current" and line.date == head.date and line.value != head.value
            line.status, line.replaced_by = ("conflict", head.ref) if same_day else (
                "inactive" if line.status == "inactive" else "superseded", head.ref)
            if same_day:
                head.status = "conflict"
            history.append(line)
    limits = [current.get(limit.key) or Statement(limit.label, codes.NOT_DISCUSSED, status="absent", key=limit.key,
                                                  code=limit.code) for limit in codes.TREATMENT_LIMITS]
    others = [s for k, s in current.items() if k.startswith("other:")]
    return limits, others, history


def _treatment_key(consent: dict[str, Any]) -> str:
    concept = ((consent.get("provision") or {}).get("code") or [{}])[0]
    for coding in concept.get("coding", []):
        if coding.get("system") == codes.SNOMED and coding.get("code") in codes.LIMIT_BY_CODE:
            return codes.LIMIT_BY_CODE[coding["code"]].key
    text = concept.get("text") or ""
    if codes.ICD_DEACTIVATION in text or "defibrillator" in text.lower():
        return codes.LIMIT_BY_CODE[codes.ICD_DEACTIVATION].key
    return "other:" + normalize(text or "onbekende behandeling")


def _directive_order(consent: Loaded) -> tuple[int, str, datetime]:
    """Valid first, then newest dateTime, then newest stored version (sort ascending on the negation)."""
    valid = consent.resource.get("status") == "active"
    return (0 if valid else 1, newest_first(consent.resource.get("dateTime", "")), newest_stored_first(consent))


def _directive(consent: Loaded, key: str) -> Statement:
    resource = consent.resource
    provision = resource.get("provision") or {}
    specification = extension_text(resource.get("modifierExtension", []) + resource.get("extension", []),
                               codes.EXT_SPECIFICATION_OTHER)
    comment = extension_text(resource.get("extension", []), codes.EXT_COMMENT)
    kind = provision.get("type")
    if kind in ("permit", "deny"):
        value = codes.YES if kind == "permit" else codes.NO
    elif specification:
        value = codes.NOT_DISCUSSED if "niet besproken" in normalize(specification) else codes.LIMITED
    else:
        value = codes.UNKNOWN
    limit = next((lim for lim in codes.TREATMENT_LIMITS if lim.key == key), None)
    concept = (provision.get("code") or [{}])[0]
    label = limit.label if limit else (concept.get("text") or "Overige behandeling")
    detail = "; ".join(t for t in (specification if value == codes.LIMITED else "", comment) if t)
    return Statement(label, value, detail, (resource.get("dateTime") or "")[:10], source(consent), consent.ref,
                     "current" if resource.get("status") == "active" else "inactive", key=key,
                     code=limit.code if limit else "")


def _advance_directive(consent: Loaded) -> Statement:
    resource = consent.resource
    concept = ((resource.get("provision") or {}).get("code") or [{}])[0]
    attachment = resource.get("sourceAttachment") or {}
    label = next((c.get("display") for c in concept.get("coding", []) if c.get("display")), None)
    note = f"document: {attachment.get('title') or attachment.get('contentType', '')}" if attachment else ""
    return Statement(label or concept.get("text") or "Wilsverklaring", "", note, (resource.get("dateTime") or "")[:10],
                     source(consent), consent.ref, "current" if resource.get("status") == "active" else "inactive")


def advance_directives(record: PatientRecord) -> list[Statement]:
    """Wilsverklaringen, newest valid first."""
    return [_advance_directive(c) for c in _newest(record.of_type("Consent"), is_advance_directive)]


def _newest(items: list[Loaded], wanted: Callable[[dict[str, Any]], bool]) -> list[Loaded]:
    chosen = [i for i in items if wanted(i.resource) and i.resource.get("status") in ("active", "inactive")]
    return sorted(chosen, key=_directive_order)
