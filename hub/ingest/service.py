"""Bytes in -> adapter -> the normal FHIR write path, in one unit of work per message or file.

The same function serves `POST /ingest/{format}`, the MLLP listener and `hub ingest`: translate (pure), then in
one transaction: claim the idempotency receipt, withhold spreadsheet counts HL7 overrides, turn stale updates
into matches (event-time order), apply the transaction Bundle with the sender's access context (validation,
access rules, audit, write hooks), remember HL7-fed beds, write a Provenance for every version written, and
store the answer on the receipt. Any failure rolls all of it back: nothing is stored on error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from adapters import registry
from adapters.base import AdapterError, Problem, SourceMeta, Translation
from hub.errors import HubError, TooLarge
from hub.fhir import bundles, interactions
from hub.fhir.outcome import issue
from hub.ingest import completion, ordering, outcomes, precedence, provenance, receipts, senders
from hub.ingest.errors import (
    EmptyDelivery,
    InputRejected,
    NothingUsable,
    StoreRefused,
    UnknownFormat,
    WrongMediaType,
)
from hub.ingest.senders import Sender
from hub.security import audit, policy
from hub.security.context import AccessContext
from hub.store.uow import UnitOfWork

if TYPE_CHECKING:
    from hub.runtime import Runtime

log = logging.getLogger("hub.ingest")
THREAD_ABOVE = 256 * 1024  # translate bigger inputs (spreadsheets) off the event loop


@dataclass(frozen=True)
class Delivery:
    """One message or file as it arrived, and who sent it."""

    fmt: str
    body: bytes
    ctx: AccessContext  # the sender acting (token, configured MLLP sender, or the CLI's context)
    channel: str  # http | mllp | cli
    received_at: datetime  # aware
    sender: str | None = None  # "system|value"; default ctx.org
    settings: Sender | None = None  # configured kind / adapter settings of the sender

    @property
    def sender_id(self) -> str | None:
        return self.sender or self.ctx.org

    @property
    def sender_kind(self) -> str | None:
        """The configured kind, else the role the sender acts in (system context: the configured role)."""
        if self.settings is not None and self.settings.kind:
            return self.settings.kind
        if not self.ctx.is_system:
            return self.ctx.role
        return self.settings.role if self.settings else None


@dataclass(frozen=True)
class Result:
    """What the sender is told: status (201 stored / 200 nothing changed or duplicate) and the outcome."""

    status: int
    outcome: dict[str, Any]
    key: str
    kind: str
    message_id: str | None
    duplicate: bool
    written: int
    provenance: str | None

    @property
    def summary(self) -> str:
        return str(self.outcome["issue"][0]["diagnostics"])

    @property
    def warnings(self) -> int:
        return sum(1 for i in self.outcome["issue"] if i.get("severity") == "warning")


def formats() -> list[dict[str, Any]]:
    """The registry as the sender sees it: name, media types, description."""
    return [
        {"name": name, "mediaTypes": list(spec.media_types), "description": spec.description}
        for name, spec in registry.ADAPTERS.items()
    ]


def adapter(fmt: str) -> registry.AdapterSpec:
    try:
        return registry.get(fmt)
    except registry.UnknownFormat as exc:
        raise UnknownFormat(str(exc)) from None


async def receive(
    runtime: Runtime,
    ctx: AccessContext,
    fmt: str | None,
    body: bytes,
    content_type: str | None,
    *,
    request_id: str | None = None,
) -> Result:
    """HTTP: the format from the path (its media types checked) or from the Content-Type; the token's org sends."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if fmt is None:
        found = registry.for_media_type(media)
        if found is None:
            known = ", ".join(f"{f['name']} ({', '.join(f['mediaTypes'])})" for f in formats())
            raise WrongMediaType(f"Content-Type '{media or '(none)'}' names no ingest format; known: {known}")
        fmt = found[0]
    spec = adapter(fmt)
    if media not in spec.media_types:
        raise WrongMediaType(f"{fmt} takes Content-Type {', '.join(spec.media_types)}, not '{media or '(none)'}'")
    async with runtime.engine.connect() as conn:
        settings = await senders.load(conn, ctx.org)
    delivery = Delivery(fmt, body, ctx, "http", datetime.now(UTC), settings=settings)
    return await ingest(runtime, delivery, request_id=request_id)


async def ingest(runtime: Runtime, delivery: Delivery, *, request_id: str | None = None) -> Result:
    """Translate and store one delivery; raises a HubError (nothing stored) when it cannot be used."""
    translation = await translate(runtime, delivery)
    digest = hashlib.sha256(delivery.body).hexdigest()
    key = receipts.key_for(delivery.fmt, delivery.sender_id, translation.message_id, digest)
    for attempt in (1, 2):
        try:
            return await _store(runtime, delivery, translation, key, digest, request_id)
        except IntegrityError:  # a concurrent delivery of the same message or object won the insert
            if attempt == 2:
                raise
            log.info("ingest %s: concurrent delivery, retrying once", key)
    raise AssertionError("unreachable")


async def translate(runtime: Runtime, delivery: Delivery) -> Translation:
    """Run the pure adapter; AdapterError -> 400/422, a file whose every record was rejected -> 422."""
    spec = adapter(delivery.fmt)
    if not delivery.body.strip():
        raise EmptyDelivery(f"{delivery.fmt}: the delivery is empty")
    limit = runtime.settings.max_body_bytes
    if len(delivery.body) > limit:
        raise TooLarge(f"{delivery.fmt}: {len(delivery.body)} bytes exceeds the limit of {limit}")
    meta = SourceMeta(
        received_at=delivery.received_at,
        sender=delivery.sender_id,
        sender_kind=delivery.sender_kind,
        config=delivery.settings.config if delivery.settings else {},
    )
    try:
        if len(delivery.body) > THREAD_ABOVE:
            translation = await asyncio.to_thread(spec.translate, delivery.body, meta)
        else:
            translation = spec.translate(delivery.body, meta)
    except AdapterError as err:
        raise InputRejected(delivery.fmt, err) from None
    except Exception:  # an adapter bug must not become a 500 for the sender; it is logged with its trace
        log.exception("ingest: the %s adapter failed on a delivery from %s", delivery.fmt, delivery.sender_id)
        raise InputRejected(delivery.fmt, AdapterError("the input could not be read", code="processing")) from None
    if translation.has_errors and not translation.bundle.get("entry"):
        issues = [outcomes.problem_issue(p) for p in translation.problems]
        raise NothingUsable(f"{delivery.fmt}: every record was rejected; nothing stored", issues=issues)
    return translation


@dataclass
class Plan:
    """The entries to apply and what was held back or added on the way (for the answer)."""

    entries: list[dict[str, Any]]
    overrides: list[precedence.Override]
    stale: list[ordering.Stale]
    notes: list[Problem]


async def _store(
    runtime: Runtime, delivery: Delivery, translation: Translation, key: str, digest: str, request_id: str | None
) -> Result:
    received = _naive(delivery.received_at)
    event_time = _naive(translation.event_time) if translation.event_time else None
    headline = " ".join(p for p in (delivery.fmt, translation.kind, translation.message_id) if p)
    async with runtime.uow(request_id) as uow:
        earlier = await receipts.find(uow.conn, key)
        if earlier is not None:
            return _duplicate(earlier, digest, translation)
        await receipts.claim(uow.conn, key, received, event_time)
        plan = await _plan(uow, delivery, translation.bundle.get("entry", []), key, received, event_time)
        with provenance.collecting(uow, delivery.ctx) as written:
            await _apply(uow, delivery.ctx, translation, plan.entries, headline)
        if delivery.fmt == "hl7v2":
            await precedence.remember_hl7_beds(uow.conn, plan.entries, event_time or received, received)
        await precedence.record_conflicts(
            uow.conn, plan.overrides, received=received, source=key, sender=delivery.sender_id
        )
        reference = await _provenance(uow, delivery, translation, key, digest, written) if written else None
        problems = [*translation.problems, *plan.notes]
        body = outcomes.stored(
            headline, written, reference, plan.stale, plan.overrides, problems, translation.event_time
        )
        status = 201 if written else 200
        answer = {"status": status, "outcome": body, "sha256": digest, "provenance": reference, "written": len(written)}
        await receipts.settle(uow.conn, key, answer)
    return Result(status, body, key, translation.kind, translation.message_id, False, len(written), reference)


async def _plan(
    uow: UnitOfWork,
    delivery: Delivery,
    entries: list[dict[str, Any]],
    key: str,
    received: datetime,
    event_time: datetime | None,
) -> Plan:
    """HL7-overridden spreadsheet counts out, referral postcodes in, stale updates turned into matches."""
    overrides: list[precedence.Override] = []
    if delivery.fmt in precedence.SPREADSHEET_FORMATS:
        live = int(getattr(uow.runtime.settings, "ingest_hl7_live_hours", precedence.DEFAULT_LIVE_HOURS))
        entries, overrides = await precedence.withhold_overridden_counts(
            uow.conn, entries, received=received, live_hours=live
        )
    entries, notes = completion.complete(entries)
    entries, stale = await ordering.guard(uow.conn, entries, event_time, key, received)
    return Plan(entries, overrides, stale, notes)


async def _provenance(
    uow: UnitOfWork,
    delivery: Delivery,
    translation: Translation,
    key: str,
    digest: str,
    written: list[provenance.Written],
) -> str:
    """The Provenance of what the delivery wrote, and its AuditEvent; returns "Provenance/<id>"."""
    name = delivery.settings.name if delivery.settings and delivery.settings.name else delivery.ctx.name
    source = provenance.Source(
        key,
        delivery.fmt,
        translation.kind,
        translation.message_id,
        digest,
        delivery.sender_id,
        name,
        delivery.channel,
        delivery.received_at,
        translation.event_time,
    )
    made = await interactions.create(uow, delivery.ctx, "Provenance", provenance.build(source, written))
    await _audit(uow, delivery, written)
    return f"Provenance/{made.stored.res_id}"


async def _apply(
    uow: UnitOfWork, ctx: AccessContext, translation: Translation, entries: list[dict[str, Any]], headline: str
) -> None:
    """The FHIR transaction; a refused entry is named by its request (which resource), not by its index."""
    if not entries:
        return
    base = uow.runtime.settings.base_url.rstrip("/") + "/fhir"
    try:
        await bundles.process(uow, ctx, {**translation.bundle, "entry": entries}, base, prefer_return="minimal",
                              max_entries=uow.runtime.settings.max_ingest_entries)
    except HubError as err:
        raise StoreRefused(f"{headline}: {_entry_label(err, entries)} not stored", err) from None


async def _audit(uow: UnitOfWork, delivery: Delivery, written: list[provenance.Written]) -> None:
    """NEN 7513: one AuditEvent for the personal data a delivery wrote (who sent it, through which channel)."""
    personal = [w for w in written if policy.needs_audit(w.res_type, w.patient_id)]
    if not personal:
        return
    event = audit.build_event(
        delivery.ctx,
        interaction="create" if all(w.created for w in personal) else "update",
        entities=[audit.AuditedEntity(reference=w.reference) for w in personal],
        patient_ids={w.patient_id for w in personal if w.patient_id},
        operation=f"ingest-{delivery.fmt}-{delivery.channel}",
    )
    await audit.append(uow.conn, event)


def _entry_label(err: HubError, entries: list[dict[str, Any]]) -> str:
    first = err.expression[0] if err.expression else ""
    if first.startswith("Bundle.entry[") and first.endswith("]"):
        index = first[len("Bundle.entry[") : -1]
        if index.isdigit() and int(index) < len(entries):
            request = entries[int(index)].get("request") or {}
            criteria = request.get("ifNoneExist")
            return f"{request.get('method')} {request.get('url')}" + (
                f" (if none exist: {criteria})" if criteria else ""
            )
    return "the Bundle"


def _duplicate(earlier: receipts.Receipt, digest: str, translation: Translation) -> Result:
    first = earlier.answer.get("outcome") or {"issue": [issue("information", "informational", "stored")]}
    same = earlier.answer.get("sha256") in (None, digest)
    body = outcomes.duplicate(first, earlier.received, earlier.key, same_content=same)
    return Result(
        200, body, earlier.key, translation.kind, translation.message_id, True, 0, earlier.answer.get("provenance")
    )


def _naive(ts: datetime) -> datetime:
    """Stored timestamps are naive UTC (hub/store convention)."""
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)
