"""NEN 7513 audit trail as FHIR AuditEvents, append-only and tamper-evident (hash chain, sealed in order).

Events are inserted in the same unit of work as the access they record (refusals in their own transaction).
Sealing links each unsealed row to the chain head by SHA-256 (`hash = sha256(prev_hash || content)`) and then
moves the head in `audit_chain` with compare-and-set, inside a savepoint: two sealers (several processes, or
PostgreSQL commit order differing from `seq` order) can never fork the chain — the loser rolls back its batch.
The chain order is the seal order, so `verify_chain` walks the links from the genesis to the recorded head: a
changed row breaks its own hash, a removed row orphans its successor, and removed rows at the end leave the
walk short of the head.

Events about several patients (a search) get one `audit_patients` row per patient, so the privacy officer's
per-patient query (`events`) finds them too; single-patient events use the indexed `audit_log.patient_id`.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Column, DateTime, Index, Integer, String, Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.security.context import AccessContext
from hub.store.schema import RID, audit_log, metadata

HUB_POLICY = "https://zorgnet-hub.nl/fhir/policy/access-v1"
SUBTYPE_SYSTEM = "https://zorgnet-hub.nl/fhir/CodeSystem/audit-subtype"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_ACTIONS = {"read": "R", "vread": "R", "search-type": "E", "search-system": "E", "history-instance": "R",
            "history-type": "E", "history-system": "E", "operation": "E", "create": "C", "update": "U",
            "patch": "U", "delete": "D"}
GENESIS = "0" * 64

# The chain head: one row (id 1). Moving it is the sealers' compare-and-set, and it anchors the chain's end.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("head_seq", RID, nullable=False),
    Column("length", RID, nullable=False),
    Column("sealed_at", DateTime(timezone=False), nullable=False),
)
# Patients of events that concern more than one patient (searches); see module docstring.
audit_patients = Table(
    "audit_patients",
    metadata,
    Column("seq", RID, primary_key=True, autoincrement=False),
    Column("patient_id", String(64), primary_key=True),
    Index("ix_audit_patients_patient", "patient_id", "seq"),
)


@dataclass(frozen=True)
class AuditedEntity:
    """One object of an access: a resource read (type/id/version) or the query itself."""

    reference: str | None = None
    query: str | None = None
    patient_id: str | None = None


def build_event(
    ctx: AccessContext,
    *,
    interaction: str,
    entities: Iterable[AuditedEntity],
    patient_ids: Iterable[str],
    outcome: str = "0",
    outcome_desc: str | None = None,
    consent_ref: str | None = None,
    recorded: datetime | None = None,
    policies: Iterable[str] = (),
    responsible: dict[str, Any] | None = None,
    operation: str | None = None,
) -> dict[str, Any]:
    """A FHIR R4 AuditEvent with the NEN 7513 fields mapped as in shared/domain/README.md §8.2.

    `policies`: the authorisation protocol / consent profile used (agent.policy URIs); `consent_ref`: the Consent
    that was the basis (entity, role 13); `responsible`: the responsible user the caller acted for (second agent,
    e.g. the GP a HAP doctor stands in for); a purpose of use ETREAT (break-the-glass) is flagged in subtype.
    """
    now = recorded or datetime.now(UTC)
    requestor: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                             "code": "humanuser" if not ctx.is_system else "dataprocessor"}]},
        "role": [{"coding": [{"system": "https://zorgnet-hub.nl/fhir/CodeSystem/role", "code": ctx.role}]}],
        "who": {"identifier": {"value": ctx.subject}, "display": ctx.name or ctx.subject},
        "requestor": True,
        "policy": [HUB_POLICY, *policies],
    }
    if ctx.org:
        system, _, value = ctx.org.partition("|")
        requestor["who"]["identifier"] = {"system": system, "value": value} if value else {"value": system}
        requestor["altId"] = ctx.subject
    if ctx.client_address:
        requestor["network"] = {"address": ctx.client_address, "type": "2"}
    purpose = [{"coding": [{"system": ACT_REASON, "code": ctx.purpose_of_use}]}] if ctx.purpose_of_use else []
    if purpose:
        requestor["purposeOfUse"] = purpose
    agents = [requestor]
    if ctx.acting_for:
        agents.append({"who": {"display": ctx.acting_for}, "requestor": False,
                       "type": {"text": "verantwoordelijke gebruiker"}})
    if responsible:
        agents.append({"who": responsible, "requestor": False, "type": {"text": "verantwoordelijke gebruiker"}})
    subtype = [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}]
    if operation:
        subtype.append({"system": SUBTYPE_SYSTEM, "code": operation})
    if ctx.purpose_of_use == "ETREAT":
        subtype.append({"system": SUBTYPE_SYSTEM, "code": "break-the-glass", "display": "noodtoegang (ETREAT)"})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": subtype,
        "action": _ACTIONS.get(interaction, "E"),
        "recorded": now.isoformat().replace("+00:00", "Z"),
        "outcome": outcome,
        "agent": agents,
        "source": {"site": "zorgnet-hub", "observer": {"display": "Zorgnet Hub"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": [],
    }
    if purpose:
        event["purposeOfEvent"] = purpose
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    if ctx.request_id:
        event["extension"] = [{"url": "https://zorgnet-hub.nl/fhir/StructureDefinition/request-id",
                               "valueString": ctx.request_id}]
    for pid in sorted(set(patient_ids)):
        event["entity"].append({"what": {"reference": f"Patient/{pid}"},
                                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "1"},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    for ent in entities:
        item: dict[str, Any] = {"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                         "code": "2"}}
        if ent.reference:
            item["what"] = {"reference": ent.reference}
        if ent.query:
            item["query"] = base64.b64encode(ent.query.encode()).decode()
        event["entity"].append(item)
    if consent_ref:
        event["entity"].append({"what": {"reference": consent_ref},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                         "code": "13", "display": "Security Resource"}})
    return event


def event_patients(event: dict[str, Any]) -> list[str]:
    """Ids of the patients an AuditEvent is about (entity.what = Patient/x)."""
    return [e["what"]["reference"].split("/", 1)[1] for e in event["entity"]
            if e.get("what", {}).get("reference", "").startswith("Patient/")]


async def append(conn: AsyncConnection, event: dict[str, Any]) -> None:
    """Insert one AuditEvent row; part of the caller's transaction (rolled back with it)."""
    patients = event_patients(event)
    agent = event["agent"][0]["who"].get("identifier", {})
    stmt = audit_log.insert().values(
        event_id=event["id"],
        recorded=datetime.fromisoformat(event["recorded"].replace("Z", "+00:00")).replace(tzinfo=None),
        patient_id=patients[0] if len(patients) == 1 else (",".join(patients)[:64] if patients else None),
        agent=f"{agent.get('system', '')}|{agent.get('value', '')}"[:300],
        action=event["action"],
        outcome=event["outcome"],
        content=orjson.dumps(event),
    )
    if len(patients) <= 1:
        await conn.execute(stmt)
        return
    seq = (await conn.execute(stmt.returning(audit_log.c.seq))).scalar_one()
    await conn.execute(insert(audit_patients), [{"seq": seq, "patient_id": p[:64]} for p in patients])


# ------------------------------------------------------------------------------------------------ hash chain
def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + content).hexdigest()


class _LostRace(Exception):
    """Another sealer moved the head first; this batch is rolled back and left to the next run."""


async def seal(conn: AsyncConnection, limit: int = 5000) -> int:
    """Link unsealed rows to the chain head, in seq order, then move the head (compare-and-set).

    Safe to run from several processes at once: whoever loses the race rolls back its savepoint and returns 0.
    """
    try:
        async with conn.begin_nested():
            return await _seal_batch(conn, limit)
    except (_LostRace, IntegrityError):
        return 0


async def _seal_batch(conn: AsyncConnection, limit: int) -> int:
    head = (await conn.execute(select(audit_chain).where(audit_chain.c.id == 1))).first()
    start, prev, length = (head.head_hash, head.head_hash, head.length) if head else (GENESIS, GENESIS, 0)
    rows = (await conn.execute(
        select(audit_log.c.seq, audit_log.c.content).where(audit_log.c.hash.is_(None))
        .order_by(audit_log.c.seq).limit(limit)
    )).all()
    if not rows:
        return 0
    for seq, content in rows:
        digest = chain_hash(prev, content)
        result = await conn.execute(
            update(audit_log).where(audit_log.c.seq == seq, audit_log.c.hash.is_(None))
            .values(prev_hash=prev, hash=digest)
        )
        if result.rowcount != 1:
            raise _LostRace
        prev = digest
    values = {"head_hash": prev, "head_seq": rows[-1].seq, "length": length + len(rows),
              "sealed_at": datetime.now(UTC).replace(tzinfo=None)}
    if head is None:
        await conn.execute(insert(audit_chain).values(id=1, **values))  # a concurrent first seal -> IntegrityError
    else:
        moved = await conn.execute(
            update(audit_chain).where(audit_chain.c.id == 1, audit_chain.c.head_hash == start).values(**values))
        if moved.rowcount != 1:
            raise _LostRace
    return len(rows)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


async def verify_chain(conn: AsyncConnection) -> ChainReport:
    """Check every sealed row's hash, then walk the links from the genesis to the recorded head."""
    successor: dict[str, tuple[str, int]] = {}
    checked = 0
    result = await conn.stream(
        select(audit_log.c.seq, audit_log.c.content, audit_log.c.prev_hash, audit_log.c.hash)
        .where(audit_log.c.hash.is_not(None)).order_by(audit_log.c.seq)
    )
    async for seq, content, prev_hash, digest in result:
        if prev_hash is None or not isinstance(content, bytes) or chain_hash(prev_hash, content) != digest:
            return ChainReport(False, checked, seq, "entry content does not match its hash (entry changed)")
        if prev_hash in successor:
            return ChainReport(False, checked, seq, "two entries claim the same predecessor (chain forked)")
        successor[prev_hash] = (digest, seq)
        checked += 1
    current, walked = GENESIS, 0
    while current in successor:
        current, _ = successor.pop(current)
        walked += 1
    if successor:
        orphan = min(seq for _, seq in successor.values())
        return ChainReport(False, walked, orphan, "link to the previous entry is broken (entry removed?)")
    head = (await conn.execute(select(audit_chain).where(audit_chain.c.id == 1))).first()
    if head is not None and (head.head_hash != current or head.length != walked):
        return ChainReport(False, walked, head.head_seq,
                           f"the chain ends after {walked} entries but the sealed head records {head.length} "
                           "(entries removed at the end, or the head was altered)")
    return ChainReport(True, checked)


# ------------------------------------------------------------------------------------------------ reading the trail
@dataclass(frozen=True)
class EventFilter:
    """What the privacy officer asks for (AuditEvent search); every field optional."""

    patient_id: str | None = None
    recorded_from: datetime | None = None  # inclusive, naive UTC
    recorded_to: datetime | None = None  # inclusive
    outcome: str | None = None
    action: str | None = None
    agent: str | None = None  # "system|value" of the requesting organisation, or "|value"
    before_seq: int | None = None  # keyset paging: newest first


async def events(conn: AsyncConnection, flt: EventFilter, limit: int) -> list[tuple[int, str, bytes]]:
    """(seq, event id, AuditEvent JSON bytes), newest first; the stored bytes are served as they are."""
    where: list[Any] = []
    if flt.patient_id:
        linked = select(audit_patients.c.seq).where(audit_patients.c.patient_id == flt.patient_id)
        where.append(or_(audit_log.c.patient_id == flt.patient_id, audit_log.c.seq.in_(linked)))
    if flt.recorded_from:
        where.append(audit_log.c.recorded >= flt.recorded_from)
    if flt.recorded_to:
        where.append(audit_log.c.recorded <= flt.recorded_to)
    if flt.outcome:
        where.append(audit_log.c.outcome == flt.outcome)
    if flt.action:
        where.append(audit_log.c.action == flt.action)
    if flt.agent:
        where.append(audit_log.c.agent == flt.agent if not flt.agent.startswith("|")
                     else audit_log.c.agent.endswith(flt.agent))
    if flt.before_seq is not None:
        where.append(audit_log.c.seq < flt.before_seq)
    stmt = (select(audit_log.c.seq, audit_log.c.event_id, audit_log.c.content).where(*where)
            .order_by(audit_log.c.seq.desc()).limit(limit))
    return [(row.seq, row.event_id, bytes(row.content)) for row in (await conn.execute(stmt)).all()]


async def event_by_id(conn: AsyncConnection, event_id: str) -> bytes | None:
    row = (await conn.execute(select(audit_log.c.content).where(audit_log.c.event_id == event_id))).first()
    return None if row is None else bytes(row.content)
