"""Load one patient's ACP record in one indexed statement, as stored bytes (no FHIR model parsing).

The statement is a UNION ALL of four parts, each marked with its `hop`:
0. the Patient row (by id; by identifier the id is looked up first through the token index);
1. its compartment: every resource whose `patient`/`subject` reference index row points at the Patient
   (index `ix_idx_reference_target_type_target_id`);
2. what the Patient and those resources refer to that the HAP view names (Device of an ICD, PractitionerRole /
   Practitioner who recorded it, Organization, contact persons), and the PractitionerRoles' Practitioner and
   Organization. These follow index rows by `rid` (`ix_idx_reference_rid`); the type filter is written so that
   no planner prefers the target-type index, which would scan every reference of that type in the hub.
One round trip: at 3 a.m. the summary's cost is the database round trips, like any read.

Every row passes `policy.may_read_row`, the rule the repository applies to reads, so a role sees here exactly
what it could read one by one; only the patient's privacy Consents (bezwaar/toestemming) are always loaded, for
the access decision, and never shown. (This belongs in the repository as `read_compartment`; see the issue-7 report.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, func, literal, select, tuple_, union_all
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
PRIVACY_SCOPE = ("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")


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
    privacy_consents: list[Loaded] = field(default_factory=list)  # for the access decision only, never shown

    def of_type(self, res_type: str) -> list[Loaded]:
        return [item for item in self.compartment if item.stored.res_type == res_type]

    def resolve(self, reference: Any) -> Loaded | None:
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str):
            return None
        key = "/".join(ref.split("/_history/")[0].rstrip("/").split("/")[-2:])
        found = self.referenced.get(key)
        return found or next((c for c in self.compartment if c.ref == key), None)


async def patient_ids_by_identifier(conn: AsyncConnection, system: str, value: str) -> list[str]:
    """Patient ids holding identifier system|value (e.g. a BSN), through the token index; at most two."""
    matching = select(idx_token.c.rid).where(idx_token.c.res_type == "Patient", idx_token.c.param == "identifier",
                                             idx_token.c.code == value, idx_token.c.system == system)
    stmt = select(resources.c.res_id).where(resources.c.rid.in_(matching), resources.c.deleted.is_(False)).limit(2)
    return [r for (r,) in (await conn.execute(stmt)).all()]


async def load(conn: AsyncConnection, ctx: AccessContext, patient_id: str) -> PatientRecord | None:
    """The patient's ACP record as `ctx` may see it, or None when there is no Patient row (see the docstring)."""
    rows = (await conn.execute(_RECORD, {"patient_id": patient_id})).all()
    patient = next((row for row in rows if row.hop == 0), None)
    if patient is None:
        return None
    record = PatientRecord(_parse(row_to_stored(patient)))
    seen: set[tuple[str, str]] = set()
    for row in rows:
        key = (row.res_type, row.res_id)
        if row.hop == 0 or key in seen:
            continue
        seen.add(key)
        loaded = _visible(ctx, row, record)
        if loaded is None:
            continue
        if row.hop == 1:
            record.compartment.append(loaded)
        else:
            record.referenced[loaded.ref] = loaded
    return record


def _statement() -> Any:
    """Built once (bound parameter `patient_id`): constructing it per request would cost more than running it."""
    patient_id: BindParameter[str] = bindparam("patient_id")
    compartment = select(idx_reference.c.rid).where(
        idx_reference.c.target_type == "Patient", idx_reference.c.target_id == patient_id,
        idx_reference.c.param.in_(("patient", "subject")))
    patient = select(resources.c.rid).where(resources.c.res_type == "Patient", resources.c.res_id == patient_id)
    first = _targets(idx_reference.c.rid.in_(union_all(compartment, patient)), REFERENCED_TYPES)
    first_rids = select(resources.c.rid).where(tuple_(resources.c.res_type, resources.c.res_id).in_(first))
    second = _targets(idx_reference.c.rid.in_(first_rids), SECOND_HOP_TYPES)
    current = resources.c.deleted.is_(False)
    return union_all(
        select(*COLUMNS, literal(0).label("hop")).where(resources.c.res_type == "Patient",
                                                        resources.c.res_id == patient_id),
        select(*COLUMNS, literal(1).label("hop")).where(resources.c.rid.in_(compartment), current,
                                                        resources.c.res_type.in_(COMPARTMENT_TYPES)),
        select(*COLUMNS, literal(2).label("hop")).where(tuple_(resources.c.res_type, resources.c.res_id).in_(first),
                                                        current),
        select(*COLUMNS, literal(2).label("hop")).where(tuple_(resources.c.res_type, resources.c.res_id).in_(second),
                                                        current),
    )


def _targets(sources: ColumnElement[bool], types: tuple[str, ...]) -> Select[Any]:
    """(target_type, target_id) of the reference index rows of `sources`, for targets of `types`."""
    return select(idx_reference.c.target_type, idx_reference.c.target_id).where(
        sources, func.coalesce(idx_reference.c.target_type, "").in_(types))


_RECORD = _statement()


def _visible(ctx: AccessContext, row: Any, record: PatientRecord) -> Loaded | None:
    """The row if `ctx` may read it; patient-privacy Consents are kept aside for the access decision."""
    visible = policy.may_read_row(ctx, row.res_type, medical=row.medical, owner_org=row.owner_org)
    if not visible and row.res_type != "Consent":
        record.withheld += 1
        return None
    loaded = _parse(row_to_stored(row))
    if row.res_type == "Consent" and _is_privacy_consent(loaded.resource):
        record.privacy_consents.append(loaded)
    if not visible:
        record.withheld += 1
        return None
    return loaded


def _is_privacy_consent(resource: dict[str, Any]) -> bool:
    return any(c.get("system") == PRIVACY_SCOPE[0] and c.get("code") == PRIVACY_SCOPE[1]
               for c in (resource.get("scope") or {}).get("coding", []))


def _parse(stored: StoredResource) -> Loaded:
    return Loaded(stored, orjson.loads(stored.content) if stored.content else {})
