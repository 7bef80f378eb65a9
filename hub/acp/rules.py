"""The PZP profiles' key rules, checked on every write (runtime.rules): each rule returns [(expression, message)].

A rule applies when the resource claims the IKNL profile in `meta.profile`, or — for what the $acp-summary
relies on — when its codes say what it is (a Consent with category 129125009 is a treatment directive whatever
its profile; an Observation with a PZP wish code must name its Patient). Only the IG's key constraints are
checked (fixed codes, required references, bound value sets); every example in shared/conformance passes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.identifiers import is_valid_bsn, normalize_bsn
from hub.acp import codes
from hub.fhir.validation import ProfileRules

Problems = list[tuple[str, str]]
Codes = frozenset[tuple[str, str]]

# provision.code of a treatment directive: the limits the hub knows, or NullFlavor OTH with a text (README §7).
TREATMENT_CODES: Codes = frozenset((codes.SNOMED, limit.code) for limit in codes.TREATMENT_LIMITS)


def install(rules: ProfileRules, expand: Callable[[str], Codes]) -> None:
    """Register the PZP rules; value sets are expanded once, here, from the hub's own ValueSets."""
    bound = {name: expand(url) for name, url in codes.VALUESETS.items()}
    rules.register("Consent", consent)
    rules.register("Procedure", procedure)
    rules.register("Encounter", encounter)
    rules.register("Goal", lambda r: goal(r, bound["goal"]))
    rules.register("Observation", lambda r: observation(r, bound))
    rules.register("Device", lambda r: device(r, bound["icd"]))
    rules.register("DeviceUseStatement", device_use)
    rules.register("Communication", communication)
    rules.register("RelatedPerson", contact_person)
    rules.register("DocumentReference", document)
    rules.register("Patient", patient)


# ------------------------------------------------------------------------------------------------ helpers
def claims(resource: dict[str, Any], *profile_ids: str) -> bool:
    profiles = (resource.get("meta") or {}).get("profile") or []
    return any(p.split("|")[0].rsplit("/", 1)[-1] in profile_ids for p in profiles)


def codings(concept: Any) -> list[tuple[str | None, str | None]]:
    if not isinstance(concept, dict):
        return []
    return [(c.get("system"), c.get("code")) for c in concept.get("coding", []) if isinstance(c, dict)]


def has_code(concepts: Any, system: str, code: str) -> bool:
    items = concepts if isinstance(concepts, list) else [concepts]
    return any((system, code) in codings(c) for c in items)


def patient_ref(resource: dict[str, Any], field: str, rt: str) -> Problems:
    ref = (resource.get(field) or {}).get("reference", "")
    if isinstance(ref, str) and (ref.startswith("Patient/") or "/Patient/" in ref):
        return []
    return [(f"{rt}.{field}", f"{rt}.{field} must reference the Patient (PZP: an ACP statement is about one patient)")]


def in_valueset(concept: Any, allowed: Codes, expression: str, name: str) -> Problems:
    found = codings(concept)
    if any(pair in allowed for pair in found):
        return []
    shown = ", ".join(f"{s}|{c}" for s, c in found) or "no coding"
    return [(expression, f"{expression} ({shown}) is not in the ValueSet {codes.VALUESETS[name]}")]


# ------------------------------------------------------------------------------------------------ Consent
def is_treatment_directive(resource: dict[str, Any]) -> bool:
    return claims(resource, "ACP-TreatmentDirective", "nl-core-TreatmentDirective2") or has_code(
        resource.get("category", []), codes.SNOMED, codes.TREATMENT_CATEGORY)


def is_advance_directive(resource: dict[str, Any]) -> bool:
    return claims(resource, "ACP-AdvanceDirective", "nl-core-AdvanceDirective") or has_code(
        resource.get("category", []), codes.CONSENT_CATEGORY, "acd")


def consent(resource: dict[str, Any]) -> Problems:
    """Treatment directive (behandelafspraak), advance directive (wilsverklaring), privacy consent (bezwaar)."""
    if is_treatment_directive(resource):
        return treatment_directive(resource)
    if is_advance_directive(resource):
        return _scoped(resource, "adr", (codes.CONSENT_CATEGORY, "acd"), "an advance directive")
    if has_code(resource.get("scope"), codes.CONSENT_SCOPE, "patient-privacy"):
        problems = patient_ref(resource, "patient", "Consent")
        if (resource.get("provision") or {}).get("type") not in ("permit", "deny"):
            problems.append(("Consent.provision.type", "a patient-privacy Consent must say permit (toestemming) "
                                                       "or deny (bezwaar) in provision.type"))
        return problems
    return []


def _scoped(resource: dict[str, Any], scope: str, category: tuple[str, str], what: str) -> Problems:
    problems = patient_ref(resource, "patient", "Consent")
    if not has_code(resource.get("scope"), codes.CONSENT_SCOPE, scope):
        problems.append(("Consent.scope", f"{what} needs scope {codes.CONSENT_SCOPE}|{scope}"))
    if not has_code(resource.get("category", []), *category):
        problems.append(("Consent.category", f"{what} needs category {category[0]}|{category[1]}"))
    return problems


def treatment_directive(resource: dict[str, Any]) -> Problems:
    problems = _scoped(resource, "treatment", (codes.SNOMED, codes.TREATMENT_CATEGORY), "a treatment directive")
    treatments = (resource.get("provision") or {}).get("code") or []
    if len(treatments) != 1:
        problems.append(("Consent.provision.code", "a treatment directive names exactly one treatment in "
                                                   f"provision.code (found {len(treatments)})"))
        return problems
    treatment = treatments[0]
    found = codings(treatment)
    if any(pair in TREATMENT_CODES for pair in found):
        return problems
    if (codes.NULL_FLAVOR, "OTH") in found and (treatment.get("text") or "").strip():
        return problems
    allowed = ", ".join(sorted(code for _, code in TREATMENT_CODES))
    problems.append(("Consent.provision.code[0]", f"treatment must be SNOMED CT {allowed}, or NullFlavor OTH "
                                                  "with the treatment in text"))
    return problems


# ------------------------------------------------------------------------------------------------ the others
def procedure(resource: dict[str, Any]) -> Problems:
    if not (claims(resource, "ACP-Procedure") or has_code(resource.get("code"), codes.SNOMED, codes.ACP_PROCEDURE)):
        return []
    problems = patient_ref(resource, "subject", "Procedure")
    if not has_code(resource.get("code"), codes.SNOMED, codes.ACP_PROCEDURE):
        problems.append(("Procedure.code", f"an ACP Procedure has code {codes.SNOMED}|{codes.ACP_PROCEDURE}"))
    return problems


def encounter(resource: dict[str, Any]) -> Problems:
    if not claims(resource, "ACP-Encounter"):
        return []
    reasons = [r.get("reference", "") for r in resource.get("reasonReference", []) if isinstance(r, dict)]
    if any(isinstance(r, str) and "Procedure/" in r for r in reasons):
        return []
    return [("Encounter.reasonReference", "an ACP Encounter names the ACP Procedure in reasonReference")]


def goal(resource: dict[str, Any], allowed: Codes) -> Problems:
    if not (claims(resource, "ACP-Medical-Policy-Goal")
            or any(pair in allowed for pair in codings(resource.get("description")))):
        return []
    return patient_ref(resource, "subject", "Goal") + in_valueset(
        resource.get("description"), allowed, "Goal.description", "goal")


_OBSERVATION_PROFILES = {"ACP-SpecificCareWishes": codes.CARE_WISHES, "ACP-PreferredPlaceOfDeath": codes.PLACE_OF_DEATH,
                         "ACP-PositionRegardingEuthanasia": codes.EUTHANASIA_POSITION,
                         "ACP-OrganDonationChoiceRegistration": codes.DONOR_REGISTRATION,
                         "ACP-OtherImportantInformation": codes.OTHER_INFORMATION}
_OBSERVATION_VALUES = {codes.PLACE_OF_DEATH: "place-of-death", codes.EUTHANASIA_POSITION: "euthanasia",
                       codes.DONOR_REGISTRATION: "yes-no-unknown"}


def observation(resource: dict[str, Any], bound: dict[str, Codes]) -> Problems:
    found = {code for system, code in codings(resource.get("code")) if system == codes.SNOMED and code}
    claimed = [code for profile, code in _OBSERVATION_PROFILES.items() if claims(resource, profile)]
    wish = (found & set(codes.WISH_LABELS)) or set(claimed)
    if not wish:
        return []
    problems = patient_ref(resource, "subject", "Observation")
    for code in claimed:
        if code not in found:
            problems.append(("Observation.code", f"this PZP profile fixes code {codes.SNOMED}|{code}"))
    for wish_code in sorted(wish):
        name = _OBSERVATION_VALUES.get(wish_code)
        if name and "valueCodeableConcept" in resource:
            problems += in_valueset(resource["valueCodeableConcept"], bound[name], "Observation.valueCodeableConcept",
                                    name)
        elif name and "dataAbsentReason" not in resource:
            problems.append(("Observation.value[x]", f"{codes.WISH_LABELS[wish_code]}: give valueCodeableConcept "
                                                     "or dataAbsentReason"))
    return problems


def device(resource: dict[str, Any], allowed: Codes) -> Problems:
    if not claims(resource, "ACP-MedicalDevice.Product-ICD"):
        return []
    return in_valueset(resource.get("type"), allowed, "Device.type", "icd")


def device_use(resource: dict[str, Any]) -> Problems:
    return patient_ref(resource, "subject", "DeviceUseStatement") if claims(resource, "ACP-MedicalDevice") else []


def communication(resource: dict[str, Any]) -> Problems:
    if not claims(resource, "ACP-Communication"):
        return []
    problems = patient_ref(resource, "subject", "Communication")
    if not has_code(resource.get("reasonCode", []), codes.SNOMED, codes.ACP_PROCEDURE):
        problems.append(("Communication.reasonCode", f"an ACP Communication has reasonCode "
                                                     f"{codes.SNOMED}|{codes.ACP_PROCEDURE}"))
    return problems


def contact_person(resource: dict[str, Any]) -> Problems:
    if not claims(resource, "ACP-ContactPerson") or any(codings(r) for r in resource.get("relationship", [])):
        return []
    return [("RelatedPerson.relationship", "an ACP contact person states its role (relationship)")]


def document(resource: dict[str, Any]) -> Problems:
    """A signed wilsverklaring as a PDF: every attachment says what it is and where its bytes are."""
    problems: Problems = []
    for i, content in enumerate(resource.get("content", [])):
        attachment = content.get("attachment") or {}
        where = f"DocumentReference.content[{i}].attachment"
        if not attachment.get("contentType"):
            problems.append((f"{where}.contentType", "state the document's contentType (e.g. application/pdf)"))
        url = attachment.get("url") or ""
        if not (url or attachment.get("data")):
            problems.append((where, "give the document as url (Binary/<id>) or data"))
        elif url and "://" not in url and not url.startswith(("Binary/", "urn:")):
            problems.append((f"{where}.url", "a relative document url must be Binary/<id>"))
    return problems


def patient(resource: dict[str, Any]) -> Problems:
    """ACP-Patient: a BSN must pass the 11-proof (elfproef, README §2)."""
    if not claims(resource, "ACP-Patient"):
        return []
    bsns = [str(i.get("value", "")) for i in resource.get("identifier", []) if i.get("system") == codes.BSN]
    return [("Patient.identifier", f"BSN {bsn} fails the 11-proof") for bsn in bsns
            if not is_valid_bsn(normalize_bsn(bsn))]
