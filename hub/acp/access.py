"""Who may see a patient's ACP summary, and on what basis (README §8.3; Wgbo: sharing needs a treatment relation).

The decision, in order:
1. Role: `gp` and `hap-doctor` may see the medical content; `coordinator` sees the summary without it (patient
   and contact persons only, the medical sections say "withheld"); every other role (`municipality`,
   `vvt-provider`, `admin`, `privacy-officer`) is refused as if the patient did not exist (404).
2. Basis (gp / hap-doctor): a treatment relationship — the caller's organisation (token `org`, system|value) is
   the patient's `generalPractitioner` or `managingOrganization`, by the Reference's identifier, the referenced
   Organization's identifier, the PractitionerRole's organization, or the referenced Practitioner's identifier —
   or a stated purpose of use in `X-Purpose-Of-Use`: `TREAT` (a HAP doctor standing in for the GP, waarneming)
   or `ETREAT` (emergency, break-the-glass: allowed, flagged in the AuditEvent). Neither -> 403 that says so.
3. Patient objection: the newest active `Consent` with scope `patient-privacy` that applies to the caller (no
   provision.actor, or an actor whose identifier is the caller's organisation; within provision.period) decides:
   `deny` (bezwaar) refuses everyone, even ETREAT (403); `permit` is the recorded consent and becomes the consent
   basis in the AuditEvent. Without either the regional opt-in policy is the basis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.acp import codes
from hub.acp.records import Loaded, PatientRecord
from hub.security import policy
from hub.security.context import AccessContext

MEDICAL_ROLES = frozenset({"gp", "hap-doctor"})
SUMMARY_ROLES = MEDICAL_ROLES | {"coordinator"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: str  # treatment-relationship | purpose-of-use | emergency | role-non-medical | refused-...
    reason: str = ""  # for a refusal: what the caller is told (and the AuditEvent's outcomeDesc)
    hide_existence: bool = False  # refusal answered as 404 (the role may never see ACP data)
    medical: bool = True  # may see the medical sections
    consent_ref: str | None = None  # the Consent used as basis, or the objection that refused
    responsible: dict[str, Any] | None = None  # the GP a HAP doctor acts for (NEN 7513 responsible user)

    @property
    def emergency(self) -> bool:
        return self.basis == "emergency"

    @property
    def policies(self) -> list[str]:
        """agent.policy URIs: the authorisation protocol and consent profile used (README §8.2)."""
        if not self.allowed:
            return [f"{codes.ACCESS_POLICY}#{self.basis}"]
        consent = "recorded-consent" if self.consent_ref else "regional-opt-in"
        return [f"{codes.ACCESS_POLICY}#{self.basis}", f"{codes.ACCESS_POLICY}#consent-{consent}"]


def role_allowed(ctx: AccessContext) -> Decision | None:
    """Refusal for roles that never see an ACP summary (decided before anything is loaded), else None."""
    if ctx.role in SUMMARY_ROLES:
        return None
    return Decision(False, "refused-role", f"role '{ctx.role}' may not see advance care planning data",
                    hide_existence=True, medical=False)


def decide(ctx: AccessContext, record: PatientRecord, *, now: datetime | None = None) -> Decision:
    """The basis for `ctx` to see `record`'s ACP summary, or the refusal (see the module docstring)."""
    refused = role_allowed(ctx)
    if refused is not None:
        return refused
    effective = effective_privacy_consent(ctx, record.privacy_consents, now or datetime.now(UTC))
    if effective is not None and effective.resource.get("provision", {}).get("type") == "deny":
        return Decision(False, "refused-objection", "de patiënt heeft bezwaar gemaakt tegen het delen van deze "
                        f"gegevens via de hub ({effective.ref})", medical=False, consent_ref=effective.ref)
    consent_ref = effective.ref if effective is not None else None
    if ctx.role == "coordinator":
        return Decision(True, "role-non-medical", medical=False, consent_ref=consent_ref)
    responsible = _general_practitioner(record)
    if has_treatment_relationship(ctx, record):
        return Decision(True, "treatment-relationship", consent_ref=consent_ref)
    if ctx.purpose_of_use == policy.EMERGENCY_PURPOSE:
        return Decision(True, "emergency", consent_ref=consent_ref, responsible=responsible)
    if ctx.purpose_of_use in policy.TREATMENT_PURPOSES:
        return Decision(True, "purpose-of-use", consent_ref=consent_ref, responsible=responsible)
    return Decision(False, "refused-no-basis",
                    "no treatment relationship with this patient is registered for your organisation; state the "
                    "purpose of use in X-Purpose-Of-Use: TREAT (waarneming) or ETREAT (spoed, wordt gelogd)")


def has_treatment_relationship(ctx: AccessContext, record: PatientRecord) -> bool:
    if not ctx.org:
        return False
    patient = record.patient.resource
    for reference in [*patient.get("generalPractitioner", []), patient.get("managingOrganization")]:
        if isinstance(reference, dict) and ctx.org in _identifiers_behind(record, reference):
            return True
    return False


def _identifiers_behind(record: PatientRecord, reference: dict[str, Any]) -> set[str]:
    """system|value identifiers of the organisation (or practitioner) a Reference stands for."""
    found = _identifiers(reference.get("identifier"))
    target = record.resolve(reference)
    if target is not None:
        found |= _identifiers(target.resource.get("identifier", []))
        organization = target.resource.get("organization")
        if target.stored.res_type == "PractitionerRole" and isinstance(organization, dict):
            found |= _identifiers(organization.get("identifier"))
            org = record.resolve(organization)
            if org is not None:
                found |= _identifiers(org.resource.get("identifier", []))
    return found


def _identifiers(value: Any) -> set[str]:
    items = value if isinstance(value, list) else [value]
    return {f"{i.get('system', '')}|{i.get('value', '')}" for i in items if isinstance(i, dict) and i.get("value")}


def _general_practitioner(record: PatientRecord) -> dict[str, Any] | None:
    gps = record.patient.resource.get("generalPractitioner") or []
    return dict(gps[0]) if gps and isinstance(gps[0], dict) else None


def effective_privacy_consent(ctx: AccessContext, consents: list[Loaded], now: datetime) -> Loaded | None:
    """The newest active patient-privacy Consent that applies to the caller now, or None."""
    applicable = [c for c in consents if _is_privacy(c.resource) and _applies(ctx, c.resource, now)]
    return max(applicable, key=lambda c: (c.resource.get("dateTime", ""), c.stored.last_updated), default=None)


def _is_privacy(consent: dict[str, Any]) -> bool:
    scope = consent.get("scope") or {}
    return consent.get("status") == "active" and any(
        c.get("system") == codes.CONSENT_SCOPE and c.get("code") == "patient-privacy" for c in scope.get("coding", []))


def _applies(ctx: AccessContext, consent: dict[str, Any], now: datetime) -> bool:
    provision = consent.get("provision") or {}
    period = provision.get("period") or {}
    today = now.date().isoformat()
    if (period.get("start") and period["start"][:10] > today) or (period.get("end") and period["end"][:10] < today):
        return False
    actors = provision.get("actor") or []
    if not actors:
        return True
    return any(ctx.org in _identifiers((a.get("reference") or {}).get("identifier")) for a in actors)
