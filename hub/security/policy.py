"""The one place that decides what a role may read and write (per resource type, per owning organisation).

Rules (see shared/domain/README.md §8.3): medical resources never reach the `municipality` role, not even via
_include or chaining; `coordinator` handles referrals but sees no clinical content; providers write only what
their own organisation owns; a HAP doctor (huisartsenpost) has no standing treatment relationship, so it sees
medical content only under a stated purpose of use (X-Purpose-Of-Use: TREAT for waarneming, ETREAT for an
emergency); the audit trail (AuditEvent) is for the privacy officer only. Search builds its SQL filter from
`ReadScope`, so lists and _include obey the same rules as reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.errors import Forbidden
from hub.security.context import AccessContext

DIRECTORY = frozenset(
    {
        "Organization", "Location", "HealthcareService", "Endpoint", "Practitioner", "PractitionerRole",
        "MeasureReport", "Measure", "CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition",
        "SearchParameter", "NamingSystem", "Questionnaire", "OperationDefinition", "CapabilityStatement",
    }
)
REFERRAL = frozenset({"ServiceRequest", "Task", "Patient", "RelatedPerson", "Provenance", "Subscription"})
MEDICAL = frozenset(
    {
        "Condition", "Observation", "Consent", "DocumentReference", "Binary", "Procedure", "Encounter", "Goal",
        "DeviceUseStatement", "Device", "Communication", "QuestionnaireResponse", "Composition",
        "AllergyIntolerance", "MedicationStatement", "MedicationRequest", "CarePlan", "DiagnosticReport", "Flag",
        "ClinicalImpression", "EpisodeOfCare", "Immunization",
    }
)
# Resources holding personal data: reading them writes an AuditEvent (NEN 7513).
PERSONAL = frozenset({"Patient", "RelatedPerson"}) | MEDICAL | {"ServiceRequest", "Task"}
SOCIAL_TAG = ("https://zorgnet-hub.nl/fhir/CodeSystem/data-domain", "social")
MUNICIPALITY_TYPES = DIRECTORY | {"Patient", "ServiceRequest", "Task", "Organization", "Provenance"}
# v3 ActReason purposes that count as a stated treatment purpose; ETREAT is break-the-glass (flagged in the audit).
TREATMENT_PURPOSES = frozenset({"TREAT", "ETREAT"})
EMERGENCY_PURPOSE = "ETREAT"


@dataclass(frozen=True)
class ReadScope:
    """What a search may return for one type: nothing, everything, non-medical rows only, or own rows only."""

    allowed: bool
    non_medical_only: bool = False
    own_org_only_for_medical: str | None = None  # medical rows only when owned by this organisation


def is_medical(resource: dict[str, Any]) -> bool:
    """Medical by type; ServiceRequest/Task are medical unless tagged social-domain origin (iWmo)."""
    rt = resource.get("resourceType")
    tags = {(t.get("system"), t.get("code")) for t in resource.get("meta", {}).get("tag", [])}
    labels = {(t.get("system"), t.get("code")) for t in resource.get("meta", {}).get("security", [])}
    if rt in MEDICAL or ("https://zorgnet-hub.nl/fhir/CodeSystem/data-domain", "medical") in tags | labels:
        return True
    if rt in ("ServiceRequest", "Task"):
        return SOCIAL_TAG not in tags
    return False


def needs_audit(resource_type: str, patient_id: str | None) -> bool:
    """A read of this row returns personal data, so it writes an AuditEvent (NEN 7513)."""
    return resource_type in PERSONAL or patient_id is not None


def read_scope(ctx: AccessContext, resource_type: str) -> ReadScope:
    role = ctx.role
    if resource_type == "AuditEvent":  # NEN 7513: the log is access-controlled; reading it is logged too
        return ReadScope(role == "privacy-officer" or ctx.is_system)
    if role == "hap-doctor" and ctx.purpose_of_use not in TREATMENT_PURPOSES:
        return ReadScope(True, non_medical_only=True)
    if role in ("admin", "gp", "hap-doctor") or ctx.is_system:
        return ReadScope(True)
    if role == "privacy-officer":
        return ReadScope(resource_type in DIRECTORY | {"Patient"}, non_medical_only=True)
    if role == "municipality":
        return ReadScope(resource_type in MUNICIPALITY_TYPES, non_medical_only=True)
    if role == "coordinator":
        if resource_type in DIRECTORY or resource_type in REFERRAL:
            return ReadScope(True)
        return ReadScope(False)
    if role == "vvt-provider":
        if resource_type in DIRECTORY or resource_type in REFERRAL:
            return ReadScope(True)
        return ReadScope(True, own_org_only_for_medical=ctx.org or "-")
    return ReadScope(False)


def may_read_row(ctx: AccessContext, resource_type: str, *, medical: bool, owner_org: str | None) -> bool:
    scope = read_scope(ctx, resource_type)
    if not scope.allowed or (medical and scope.non_medical_only):
        return False
    return not (medical and scope.own_org_only_for_medical and owner_org != scope.own_org_only_for_medical)


_WRITABLE: dict[str, frozenset[str]] = {
    "vvt-provider": DIRECTORY - {"CodeSystem", "ValueSet", "ConceptMap", "StructureDefinition", "SearchParameter",
                                 "NamingSystem", "OperationDefinition", "CapabilityStatement", "Measure"}
    | {"Task", "Patient", "Provenance", "Subscription", "ServiceRequest"} | MEDICAL,
    "gp": frozenset({"Patient", "ServiceRequest", "Task", "RelatedPerson", "Provenance", "Subscription",
                     "Practitioner", "PractitionerRole", "Organization"}) | MEDICAL,
    "hap-doctor": frozenset({"Patient", "RelatedPerson", "Provenance"}) | MEDICAL,
    "coordinator": frozenset({"ServiceRequest", "Task", "Patient", "Subscription", "Provenance", "Organization",
                              "Location", "HealthcareService", "Endpoint", "MeasureReport"}),
    "municipality": frozenset({"Patient", "ServiceRequest", "Organization", "Provenance", "Subscription"}),
}
_CROSS_ORG_ROLES = frozenset({"admin", "coordinator"})
# Shared records every care organisation keeps up to date (an A08 demographics update from the hospital of a
# patient the GP registered); referral Tasks have their own state machine (hub/referrals) deciding who may act.
_SHARED_TYPES = frozenset({"Patient", "Task"})


def check_write(
    ctx: AccessContext, resource_type: str, *, existing_owner: str | None, resource: dict[str, Any] | None
) -> None:
    """Raise Forbidden unless ctx may write this resource (type, ownership, social-domain rule)."""
    if ctx.is_system or ctx.role == "admin":
        return
    if resource_type not in _WRITABLE.get(ctx.role, frozenset()):
        raise Forbidden(f"role '{ctx.role}' may not write {resource_type}")
    social_only = ctx.role == "municipality" or (ctx.role == "vvt-provider" and resource_type == "ServiceRequest")
    if social_only and resource is not None and is_medical(resource):
        raise Forbidden(f"role '{ctx.role}' may only write {resource_type} tagged data-domain|social (iWmo)")
    owned_elsewhere = existing_owner is not None and existing_owner != ctx.org
    if owned_elsewhere and ctx.role not in _CROSS_ORG_ROLES and resource_type not in _SHARED_TYPES:
        raise Forbidden(f"{resource_type} is owned by another organisation")
