"""ACP for the out-of-hours GP (issue 7): install the PZP rules and the operation, and answer $acp-summary.

One summary = one unit of work: the patient's record is loaded in one indexed statement (records.py), the
access decision is taken on it (access.py), the view is built (summary.py) and written out from the stored
bytes (document.py), and one NEN 7513 AuditEvent records who saw what, why and on which basis — a refusal too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.acp import access, codes, document, records, rules
from hub.acp import summary as views
from hub.acp.access import Decision
from hub.acp.errors import AcpAccessRefused, AmbiguousIdentifier, BadIdentifier, PatientNotKnown
from hub.acp.statements import Displays
from hub.errors import Gone
from hub.fhir.operations import OperationInfo, register
from hub.runtime import Runtime
from hub.security import audit, policy
from hub.security.context import AccessContext
from hub.store.uow import UnitOfWork
from hub.terminology.expansion import entries

OPERATION = OperationInfo(
    "acp-summary", "https://zorgnet-hub.nl/fhir/OperationDefinition/Patient-acp-summary", ("Patient",),
    "Proactieve zorgplanning (PZP/ACP) in one call for the out-of-hours GP: a collection Bundle with a Composition "
    "(Dutch narrative; the seven treatment limits, 'Niet besproken' when absent), then the stored resources, newest "
    "valid directive first, superseded ones marked on their entry. GET Patient/[id]/$acp-summary or "
    "Patient/$acp-summary?identifier=system|value; _format=html (or Accept: text/html) for the HAP doctor's page. "
    "gp/hap-doctor need a treatment relationship or X-Purpose-Of-Use TREAT/ETREAT; every call is audited.",
)


def install(runtime: Runtime) -> None:
    """PZP profile rules on write, the operation in the CapabilityStatement, Dutch displays of the PZP ValueSets."""
    rules.install(runtime.rules, runtime.extras["expand_valueset"])
    runtime.extras["acp_displays"] = _displays(runtime)
    register(OPERATION)


def _displays(runtime: Runtime) -> Displays:
    profiles = runtime.extras["profiles"]
    return {(e.system, e.code): e.display for url in codes.VALUESETS.values()
            for e in entries(profiles, url) if e.display}


@dataclass(frozen=True)
class Summary:
    view: views.AcpView
    bundle: bytes | None  # None when only the HTML page was asked for


async def summary(uow: UnitOfWork, ctx: AccessContext, patient_id: str, *, base: str, as_html: bool = False,
                  query: str | None = None) -> Summary:
    """The ACP summary of one patient for `ctx`, audited; refusals are audited too (outcome 4)."""
    query = query or f"Patient/{patient_id}/$acp-summary"
    refused = access.role_allowed(ctx)
    if refused is not None:
        _refuse(uow, ctx, patient_id, refused, query)
    record = await records.load(uow.conn, ctx, patient_id)
    if record is None or not policy.may_read_row(ctx, "Patient", medical=record.patient.stored.medical,
                                                 owner_org=record.patient.stored.owner_org):
        raise PatientNotKnown(f"Patient/{patient_id} is not known")
    if record.patient.stored.deleted:
        raise Gone(f"Patient/{patient_id} was deleted")
    decision = access.decide(ctx, record)
    if not decision.allowed:
        _refuse(uow, ctx, patient_id, decision, query)
    displays: Displays = uow.runtime.extras["acp_displays"]
    view = views.build(record, displays, medical=decision.medical, emergency=decision.emergency)
    members = document.resources_in_order(view, record)
    await _audit(uow, ctx, patient_id, decision, query, [m.stored.location for m in members])
    return Summary(view, None if as_html else document.bundle(view, record, base))


async def summary_by_identifier(uow: UnitOfWork, ctx: AccessContext, identifier: str | None, *, base: str,
                                as_html: bool = False) -> Summary:
    """`Patient/$acp-summary?identifier=http://fhir.nl/fhir/NamingSystem/bsn|...`: exactly one Patient, or an error."""
    system, sep, value = (identifier or "").partition("|")
    if not sep or not system or not value:
        raise BadIdentifier("identifier must be system|value, e.g. http://fhir.nl/fhir/NamingSystem/bsn|999911120",
                            expression=["identifier"])
    query = f"Patient/$acp-summary?identifier={identifier}"
    found = await records.patient_ids_by_identifier(uow.conn, system, value)
    refused = access.role_allowed(ctx)
    if refused is not None:  # logged against the patient the identifier names, so the patient's trail shows it
        _refuse(uow, ctx, found[0] if len(found) == 1 else None, refused, query)
    if not found:
        raise PatientNotKnown(f"no Patient with identifier {identifier}")
    if len(found) > 1:
        raise AmbiguousIdentifier(f"identifier {identifier} matches more than one Patient; ask for one by id")
    return await summary(uow, ctx, found[0], base=base, as_html=as_html, query=query)


def _refuse(uow: UnitOfWork, ctx: AccessContext, patient_id: str | None, decision: Decision, query: str) -> None:
    """Log the refusal (its own transaction, since the request fails) and raise the matching error."""
    event = audit.build_event(
        ctx, interaction="operation", operation="acp-summary", outcome="4", outcome_desc=decision.reason,
        entities=[audit.AuditedEntity(query=query)], patient_ids=[patient_id] if patient_id else [],
        consent_ref=decision.consent_ref, policies=decision.policies)
    uow.audit_after_rollback(event)
    if decision.hide_existence:
        raise PatientNotKnown(f"Patient/{patient_id} is not known" if patient_id else "Patient is not known")
    raise AcpAccessRefused(decision.reason)


async def _audit(uow: UnitOfWork, ctx: AccessContext, patient_id: str, decision: Decision, query: str,
                 locations: list[str]) -> None:
    outcome_desc = "noodtoegang (ETREAT)" if decision.emergency else None
    event = audit.build_event(
        ctx, interaction="operation", operation="acp-summary", outcome_desc=outcome_desc,
        entities=[audit.AuditedEntity(reference=loc) for loc in locations] + [audit.AuditedEntity(query=query)],
        patient_ids=[patient_id], consent_ref=decision.consent_ref, policies=decision.policies,
        responsible=_responsible(ctx, decision))
    await uow.write(lambda conn: audit.append(conn, event))


def _responsible(ctx: AccessContext, decision: Decision) -> dict[str, Any] | None:
    """A HAP doctor stands in for the patient's GP (waarneming): the GP is the responsible user (NEN 7513)."""
    return decision.responsible if ctx.role == "hap-doctor" else None
