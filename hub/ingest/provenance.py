"""What one delivery wrote, and the Provenance resource that ties those versions to the source message.

A write hook (installed by hub/ingest/hooks.py) notes every resource version the delivery's own access context
writes inside its unit of work — exactly the versions that changed (a conditional create that matched, or an
update that changed nothing, writes no version and is not a target). Writes the core or other domains make in
the same transaction under another context (e.g. referral routing) are not attributed to the sender.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from hub.security import policy
from hub.security.context import AccessContext
from hub.store.sql import instant

HUB = "https://zorgnet-hub.nl/fhir"
MESSAGE_SYSTEM = f"{HUB}/NamingSystem/ingest-message"
MEDICAL_LABEL = {"system": f"{HUB}/CodeSystem/data-domain", "code": "medical"}
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
V2_EVENT = "http://terminology.hl7.org/CodeSystem/v2-0003"


@dataclass(frozen=True)
class Written:
    res_type: str
    res_id: str
    version: str
    created: bool
    medical: bool
    patient_id: str | None = None  # the Patient it is (about), for the audit trail

    @property
    def reference(self) -> str:
        return f"{self.res_type}/{self.res_id}/_history/{self.version}"


_collectors: WeakKeyDictionary[Any, tuple[AccessContext, list[Written]]] = WeakKeyDictionary()


@contextmanager
def collecting(uow: Any, ctx: AccessContext) -> Iterator[list[Written]]:
    """Collect the versions `ctx` writes in `uow` while the block runs."""
    written: list[Written] = []
    _collectors[uow] = (ctx, written)
    try:
        yield written
    finally:
        _collectors.pop(uow, None)


async def note_write(
    uow: Any, ctx: AccessContext, res_type: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Write hook: record the new version when the writer is the delivery being collected."""
    collector = _collectors.get(uow)
    if collector is None or after is None or collector[0] is not ctx:
        return
    version = str((after.get("meta") or {}).get("versionId") or "1")
    written = Written(res_type, str(after["id"]), version, before is None, policy.is_medical(after), _patient(after))
    collector[1].append(written)


def _patient(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource["id"])
    for key in ("subject", "patient", "beneficiary"):
        value = resource.get(key)
        reference = str(value.get("reference") or "") if isinstance(value, dict) else ""
        if reference.startswith("Patient/"):
            return reference.split("/")[1]
    return None


@dataclass(frozen=True)
class Source:
    """The delivered message as Provenance names it (the raw bytes are not kept: hash + id identify them)."""

    key: str  # receipt key
    fmt: str
    kind: str
    message_id: str | None
    sha256: str
    sender: str | None
    sender_name: str | None
    channel: str  # http | mllp | cli
    received_at: datetime
    event_time: datetime | None


def build(source: Source, written: list[Written]) -> dict[str, Any]:
    """Provenance: target = every written version, agent = the sender, entity = the source message."""
    resource: dict[str, Any] = {"resourceType": "Provenance"}
    if any(w.medical for w in written):  # keeps it away from the social domain, like its targets
        resource["meta"] = {"security": [MEDICAL_LABEL]}
    resource["target"] = [{"reference": w.reference} for w in written]
    if source.event_time is not None:
        resource["occurredDateTime"] = source.event_time.isoformat()
    resource["recorded"] = instant(source.received_at.astimezone(UTC).replace(tzinfo=None))
    resource["activity"] = _activity(source)
    resource["agent"] = [_author(source), _assembler(source)]
    label = " ".join(p for p in (source.fmt, source.kind, source.message_id, f"sha256:{source.sha256}") if p)
    resource["entity"] = [
        {"role": "source", "what": {"identifier": {"system": MESSAGE_SYSTEM, "value": source.key}, "display": label}}
    ]
    return resource


def _activity(source: Source) -> dict[str, Any]:
    """HL7: the trigger event (table 0003, e.g. A01); every kind keeps its name as text."""
    activity: dict[str, Any] = {}
    if source.fmt == "hl7v2" and "^" in source.kind:
        activity["coding"] = [{"system": V2_EVENT, "code": source.kind.split("^")[1]}]
    activity["text"] = source.kind
    return activity


def _author(source: Source) -> dict[str, Any]:
    who: dict[str, Any] = {}
    if source.sender and "|" in source.sender:
        system, value = source.sender.split("|", 1)
        who["identifier"] = {"system": system, "value": value}
    who["display"] = source.sender_name or source.sender or "unknown sender"
    return {"type": {"coding": [{"system": PARTICIPANT, "code": "author"}]}, "who": who}


def _assembler(source: Source) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": PARTICIPANT, "code": "assembler"}]},
        "who": {"display": f"Zorgnet Hub ingest ({source.channel})"},
    }
