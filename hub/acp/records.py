"""Load one patient's ACP record in three indexed queries, as stored bytes (no FHIR model parsing).

1. the Patient row (by id, or by identifier through the token index);
2. its compartment: every resource whose `patient`/`subject` reference index row points at the Patient
   (index `ix_idx_reference_target_type_target_id`);
3. what those resources refer to that the HAP view names (Device of an ICD, PractitionerRole/Practitioner who
   recorded it, Organization, contact persons), one hop, plus the PractitionerRole's Practitioner/Organization.

Every row passes `policy.may_read_row`, the rule the repository applies to reads, so a role sees here exactly
what it could read one by one. (This belongs in the repository as `read_compartment`; see the issue-7 report.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.security import policy
from hub.security.context import AccessContext
from hub.store.repository import StoredResource
from hub.store.schema import idx_reference, idx_token, resources
from hub.store.sql import row_to_stored

COLUMNS = (
    resources.c.rid, resources.c.res_type, resources.c.res_id, resources.c.version, resources.c.last_updated,
    resources.c.content, resources.c.deleted, resources.c.owner_org, resources.c.patient_id, resources.c.medical,
)
COMPARTMENT_TYPES = ("Consent", "Procedure", "Encounter", "Goal", "Observation", "DeviceUseStatement",
                     "Communication", "RelatedPerson", "QuestionnaireResponse", "DocumentReference")
REFERENCED_TYPES = ("Device", "PractitionerRole", "Practitioner", "Organization", "RelatedPerson")
SECOND_HOP_TYPES = ("Practitioner", "Organization")


@dataclass
class Loaded:
    """A stored resource plus its parsed JSON (parsed once; the bytes still go out as they are)."""

    stored: StoredResource
    resource: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.stored.res_type}/{self.stored.res_id}"


@dataclass
class PatientRecord:
    patient: Loaded
    compartment: list[Loaded] = field(default_factory=list)
    referenced: dict[str, Loaded] = field(default_factory=dict)  # "Type/id" -> resource
    withheld: int = 0  # rows the caller's role may not read (e.g. medical rows for a coordinator)

    def of_type(self, res_type: str) -> list[Loaded]:
        return [item for item in self.compartment if item.stored.res_type == res_type]

    def resolve(self, reference: Any) -> Loaded | None:
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str):
            return None
        key = "/".join(ref.split("/_history/")[0].rstrip("/").split("/")[-2:])
        found = self.referenced.get(key)
        return found or next((c for c in self.compartment if c.ref == key), None)


async def patient_row(conn: AsyncConnection, patient_id: str) -> StoredResource | None:
    stmt = select(*COLUMNS).where(resources.c.res_type == "Patient", resources.c.res_id == patient_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else row_to_stored(row)


async def patient_ids_by_identifier(conn: AsyncConnection, system: str, value: str) -> list[str]:
    """Patient ids holding identifier system|value (e.g. a BSN), through the token index; at most two."""
    matching = select(idx_token.c.rid).where(idx_token.c.res_type == "Patient", idx_token.c.param == "identifier",
                                             idx_token.c.code == value, idx_token.c.system == system)
    stmt = select(resources.c.res_id).where(resources.c.rid.in_(matching), resources.c.deleted.is_(False)).limit(2)
    return [r for (r,) in (await conn.execute(stmt)).all()]


async def load(conn: AsyncConnection, ctx: AccessContext, patient: StoredResource) -> PatientRecord:
    """The patient's ACP record as `ctx` may see it (see module docstring for the queries)."""
    record = PatientRecord(_parse(patient))
    in_compartment = select(idx_reference.c.rid).where(
        idx_reference.c.target_type == "Patient", idx_reference.c.target_id == patient.res_id,
        idx_reference.c.param.in_(("patient", "subject")))
    compartment = select(*COLUMNS).where(resources.c.rid.in_(in_compartment), resources.c.deleted.is_(False),
                                         resources.c.res_type.in_(COMPARTMENT_TYPES))
    rows = await _visible(conn, ctx, compartment, record)
    record.compartment = rows
    sources = [patient.rid, *(item.stored.rid for item in rows)]
    first = await _visible(conn, ctx, _targets(sources, REFERENCED_TYPES), record)
    roles = [item.stored.rid for item in first if item.stored.res_type == "PractitionerRole"]
    second = await _visible(conn, ctx, _targets(roles, SECOND_HOP_TYPES), record) if roles else []
    known = {item.ref for item in rows}
    record.referenced = {item.ref: item for item in first + second if item.ref not in known}
    return record


def _targets(source_rids: list[int | None], types: tuple[str, ...]) -> Select[Any]:
    pairs = select(idx_reference.c.target_type, idx_reference.c.target_id).where(
        idx_reference.c.rid.in_([r for r in source_rids if r is not None]),
        idx_reference.c.target_type.in_(types))
    return select(*COLUMNS).where(tuple_(resources.c.res_type, resources.c.res_id).in_(pairs),
                                  resources.c.deleted.is_(False))


async def _visible(conn: AsyncConnection, ctx: AccessContext, stmt: Select[Any], record: PatientRecord) -> list[Loaded]:
    out = []
    for row in (await conn.execute(stmt)).all():
        if policy.may_read_row(ctx, row.res_type, medical=row.medical, owner_org=row.owner_org):
            out.append(_parse(row_to_stored(row)))
        else:
            record.withheld += 1
    return out


def _parse(stored: StoredResource) -> Loaded:
    return Loaded(stored, orjson.loads(stored.content) if stored.content else {})
