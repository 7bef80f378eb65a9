"""The privacy officer's view of the NEN 7513 trail: AuditEvent search and read over `audit_log`, read-only.

AuditEvents are not resources (they live, hash-chained, in audit_log), so the generic FHIR interactions do not
serve them. Only `privacy-officer` may read them (policy.read_scope); any other caller is refused (403) and the
refusal is logged. Reading the log is itself logged (NEN 7513: access to the logging is logged).

Search parameters: `patient` (Patient/id or id), `date` (recorded; prefixes eq/ge/gt/le/lt, repeatable),
`outcome` (0/4/8/12), `action` (C/R/U/D/E), `agent` (the requesting organisation, system|value or |value),
`_count`; newest first, paged by the `_before` link. An unknown parameter is a 400: a privacy officer's filter
is never silently dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta

import orjson

from hub.errors import Forbidden, Invalid, NotFound
from hub.fhir.indexing import date_range
from hub.fhir.search.query import split_prefix
from hub.security import audit, policy
from hub.security.context import AccessContext
from hub.store.sql import instant, utcnow
from hub.store.uow import UnitOfWork

PARAMS = ("patient", "date", "outcome", "action", "agent", "_count", "_before")


@dataclass(frozen=True)
class TrailPage:
    rows: list[tuple[int, str, bytes]]
    canonical: str
    count: int
    next_before: int | None


async def search(uow: UnitOfWork, ctx: AccessContext, items: list[tuple[str, str]]) -> TrailPage:
    """AuditEvents matching `items`, newest first (see the module docstring)."""
    canonical = "&".join(f"{k}={v}" for k, v in items if k != "_before")
    flt, count = parse(items, default_count=uow.runtime.settings.default_count,
                       max_count=uow.runtime.settings.max_count)
    patients = [flt.patient_id] if flt.patient_id else []
    _check_officer(uow, ctx, "search-type", f"AuditEvent?{canonical}", patients)
    rows = await audit.events(uow.conn, flt, count + 1)
    page = rows[:count]
    await _log_read(uow, ctx, "search-type", f"AuditEvent?{canonical}", patients)
    return TrailPage(page, canonical, count, page[-1][0] if len(rows) > count else None)


async def read(uow: UnitOfWork, ctx: AccessContext, event_id: str) -> bytes:
    _check_officer(uow, ctx, "read", f"AuditEvent/{event_id}", [])
    content = await audit.event_by_id(uow.conn, event_id)
    if content is None:
        raise NotFound(f"AuditEvent/{event_id} is not known")
    patients = audit.event_patients(orjson.loads(content))
    await _log_read(uow, ctx, "read", f"AuditEvent/{event_id}", patients)
    return content


def parse(items: list[tuple[str, str]], *, default_count: int, max_count: int) -> tuple[audit.EventFilter, int]:
    flt, count = audit.EventFilter(), default_count
    for key, value in items:
        if key not in PARAMS:
            raise Invalid(f"AuditEvent search supports {', '.join(PARAMS)}; not '{key}'", expression=[key])
        if key == "patient":
            flt = replace(flt, patient_id=value.removeprefix("Patient/"))
        elif key == "date":
            flt = _date(flt, value)
        elif key == "outcome":
            flt = replace(flt, outcome=value)
        elif key == "action":
            flt = replace(flt, action=value)
        elif key == "agent":
            flt = replace(flt, agent=value if "|" in value else f"|{value}")
        elif key == "_before":
            flt = replace(flt, before_seq=_number(key, value))
        else:
            count = _number(key, value)
            if count > max_count:
                raise Invalid(f"_count {count} exceeds the server maximum of {max_count}", expression=["_count"])
    return flt, count


def _date(flt: audit.EventFilter, value: str) -> audit.EventFilter:
    prefix, text = split_prefix(value)
    try:
        low, high = date_range(text)
    except ValueError:
        raise Invalid(f"date '{value}' is not a valid date/dateTime", expression=["date"]) from None
    tick = timedelta(microseconds=1)
    if prefix in ("ge", "gt"):
        return replace(flt, recorded_from=low if prefix == "ge" else high + tick)
    if prefix in ("le", "lt"):
        return replace(flt, recorded_to=high if prefix == "le" else low - tick)
    if prefix == "eq":
        return replace(flt, recorded_from=low, recorded_to=high)
    raise Invalid(f"date prefix '{prefix}' is not supported on AuditEvent search", expression=["date"])


def _number(key: str, value: str) -> int:
    if not value.isdigit():
        raise Invalid(f"{key} must be a non-negative integer, not '{value}'", expression=[key])
    return int(value)


def _check_officer(uow: UnitOfWork, ctx: AccessContext, interaction: str, query: str, patients: list[str]) -> None:
    if policy.read_scope(ctx, "AuditEvent").allowed:
        return
    uow.audit_after_rollback(audit.build_event(
        ctx, interaction=interaction, outcome="4", outcome_desc="the audit trail is for the privacy officer only",
        entities=[audit.AuditedEntity(query=query)], patient_ids=patients))
    raise Forbidden(f"role '{ctx.role}' may not read the audit trail (privacy-officer only)")


async def _log_read(uow: UnitOfWork, ctx: AccessContext, interaction: str, query: str, patients: list[str]) -> None:
    event = audit.build_event(ctx, interaction=interaction, patient_ids=patients,
                              entities=[audit.AuditedEntity(query=query)])
    await uow.write(lambda conn: audit.append(conn, event))


def searchset(base: str, page: TrailPage) -> bytes:
    """Searchset Bundle with the stored AuditEvent bytes spliced in."""
    links = [{"relation": "self", "url": f"{base}/AuditEvent?{page.canonical}"}]
    if page.next_before is not None:
        sep = "&" if page.canonical else ""
        links.append({"relation": "next",
                      "url": f"{base}/AuditEvent?{page.canonical}{sep}_before={page.next_before}"})
    head = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant(utcnow())},
            "type": "searchset", "link": links}
    entries = [b'{"fullUrl":"' + f"{base}/AuditEvent/{event_id}".encode() + b'","resource":' + content
               + b',"search":{"mode":"match"}}' for _, event_id, content in page.rows]
    body = orjson.dumps(head)[:-1]
    return body + (b',"entry":[' + b",".join(entries) + b"]}" if entries else b"}")
