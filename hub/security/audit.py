"""NEN 7513 audit trail as FHIR AuditEvents, append-only and tamper-evident (hash chain sealed in seq order).

Events are inserted in the same unit of work as the access they record. Sealing links each row to the previous
one by SHA-256 (`hash = sha256(prev_hash || content)`); a sealer runs in seq order with compare-and-set, so
concurrent writers in several processes never fork the chain. `verify_chain` finds a changed or removed row.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.security.context import AccessContext
from hub.store.schema import audit_log

HUB_POLICY = "https://zorgnet-hub.nl/fhir/policy/access-v1"
_ACTIONS = {"read": "R", "vread": "R", "search-type": "E", "search-system": "E", "history-instance": "R",
            "history-type": "E", "history-system": "E", "operation": "E", "create": "C", "update": "U",
            "patch": "U", "delete": "D"}
GENESIS = "0" * 64


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
) -> dict[str, Any]:
    """A FHIR R4 AuditEvent with the NEN 7513 fields mapped as in shared/domain/README.md §8.2."""
    now = recorded or datetime.now(UTC)
    requestor: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                             "code": "humanuser" if not ctx.is_system else "dataprocessor"}]},
        "role": [{"coding": [{"system": "https://zorgnet-hub.nl/fhir/CodeSystem/role", "code": ctx.role}]}],
        "who": {"identifier": {"value": ctx.subject}, "display": ctx.name or ctx.subject},
        "requestor": True,
        "policy": [HUB_POLICY],
    }
    if ctx.org:
        system, _, value = ctx.org.partition("|")
        requestor["who"]["identifier"] = {"system": system, "value": value} if value else {"value": system}
        requestor["altId"] = ctx.subject
    if ctx.client_address:
        requestor["network"] = {"address": ctx.client_address, "type": "2"}
    if ctx.purpose_of_use:
        requestor["purposeOfUse"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                  "code": ctx.purpose_of_use}]}]
    agents = [requestor]
    if ctx.acting_for:
        agents.append({"who": {"display": ctx.acting_for}, "requestor": False,
                       "type": {"text": "verantwoordelijke gebruiker"}})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(uuid.uuid4()),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
                 "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": _ACTIONS.get(interaction, "E"),
        "recorded": now.isoformat().replace("+00:00", "Z"),
        "outcome": outcome,
        "agent": agents,
        "source": {"site": "zorgnet-hub", "observer": {"display": "Zorgnet Hub"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4"}]},
        "entity": [],
    }
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
            item["query"] = _b64(ent.query)
        event["entity"].append(item)
    if consent_ref:
        event["entity"].append({"what": {"reference": consent_ref},
                                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                                         "code": "13", "display": "Security Resource"}})
    return event


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


async def append(conn: AsyncConnection, event: dict[str, Any]) -> None:
    """Insert one AuditEvent row; part of the caller's transaction (rolled back with it)."""
    patients = [e["what"]["reference"].split("/", 1)[1] for e in event["entity"]
                if e.get("what", {}).get("reference", "").startswith("Patient/")]
    agent = event["agent"][0]["who"].get("identifier", {})
    await conn.execute(
        audit_log.insert().values(
            event_id=event["id"],
            recorded=datetime.fromisoformat(event["recorded"].replace("Z", "+00:00")).replace(tzinfo=None),
            patient_id=patients[0] if len(patients) == 1 else (",".join(patients)[:64] if patients else None),
            agent=f"{agent.get('system', '')}|{agent.get('value', '')}"[:300],
            action=event["action"],
            outcome=event["outcome"],
            content=orjson.dumps(event),
        )
    )


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + content).hexdigest()


async def seal(conn: AsyncConnection, limit: int = 5000) -> int:
    """Link unsealed rows into the chain, in seq order. Safe to run from several processes (CAS per row)."""
    last = (await conn.execute(
        select(audit_log.c.hash).where(audit_log.c.hash.is_not(None)).order_by(audit_log.c.seq.desc()).limit(1)
    )).scalar()
    prev = last or GENESIS
    rows = (await conn.execute(
        select(audit_log.c.seq, audit_log.c.content).where(audit_log.c.hash.is_(None))
        .order_by(audit_log.c.seq).limit(limit)
    )).all()
    sealed = 0
    for seq, content in rows:
        digest = chain_hash(prev, content)
        result = await conn.execute(
            update(audit_log).where(audit_log.c.seq == seq, audit_log.c.hash.is_(None))
            .values(prev_hash=prev, hash=digest)
        )
        if result.rowcount != 1:
            break  # another sealer got there first; it will continue the chain
        prev, sealed = digest, sealed + 1
    return sealed


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


async def verify_chain(conn: AsyncConnection) -> ChainReport:
    """Recompute the chain over sealed rows: a changed row breaks its hash, a removed one breaks the link."""
    prev, checked = GENESIS, 0
    result = await conn.stream(
        select(audit_log.c.seq, audit_log.c.content, audit_log.c.prev_hash, audit_log.c.hash)
        .where(audit_log.c.hash.is_not(None)).order_by(audit_log.c.seq)
    )
    async for seq, content, prev_hash, digest in result:
        if prev_hash != prev:
            return ChainReport(False, checked, seq, "link to the previous entry is broken (entry removed?)")
        if chain_hash(prev, content) != digest:
            return ChainReport(False, checked, seq, "entry content does not match its hash (entry changed)")
        prev, checked = digest, checked + 1
    return ChainReport(True, checked)
