"""The 3 a.m. HAP view of one patient's ACP record (README §7): pure functions from a PatientRecord to an AcpView.

Ordering rule, everywhere: per subject (one treatment, one wish code, the goal) the newest *valid* statement is
current; older or no-longer-valid ones are kept and marked (`superseded`, `inactive`), never dropped or merged.
Two valid statements of the same date that disagree are both shown, marked `conflict` (README: "never merge
silently"). Treatment limits always list all seven, with "Niet besproken" where nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.acp import codes
from hub.acp.directives import advance_directives, treatment_directives
from hub.acp.records import Loaded, PatientRecord
from hub.acp.statements import (
    Contact,
    Displays,
    Statement,
    concept_text,
    mask_bsn,
    newest_first,
    newest_stored_first,
    person_name,
    source,
)


@dataclass
class AcpView:
    patient_ref: str
    name: str
    birth_date: str
    bsn_masked: str
    last_acp_date: str = ""
    last_acp_by: str = ""
    medical: bool = True
    emergency: bool = False
    limits: list[Statement] = field(default_factory=list)
    other_limits: list[Statement] = field(default_factory=list)
    history: list[Statement] = field(default_factory=list)  # superseded / inactive / conflicting directives
    advance_directives: list[Statement] = field(default_factory=list)
    goals: list[Statement] = field(default_factory=list)
    wishes: list[Statement] = field(default_factory=list)
    place_of_death: Statement | None = None
    devices: list[Statement] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    documents: list[Statement] = field(default_factory=list)
    conversations: list[Statement] = field(default_factory=list)

    def marks(self) -> dict[str, Statement]:
        """Directive resource -> its statement, for the Bundle entry marks (current/superseded/...)."""
        return {s.ref: s for s in [*self.limits, *self.other_limits, *self.history] if s.ref}


def build(record: PatientRecord, displays: Displays, *, medical: bool, emergency: bool = False) -> AcpView:
    patient = record.patient.resource
    view = AcpView(record.patient.ref, person_name(patient.get("name")), patient.get("birthDate", ""),
                   mask_bsn(patient), medical=medical, emergency=emergency)
    view.contacts = contacts(record)
    if not medical:
        return view
    view.limits, view.other_limits, view.history = treatment_directives(record)
    view.advance_directives = advance_directives(record)
    view.goals = _current_and_history(record.of_type("Goal"), lambda g: "goal", _goal_valid, _goal_date,
                                      lambda g: _goal(g, displays))
    wishes = _current_and_history([o for o in record.of_type("Observation") if _wish_code(o)], _wish_code,
                                  _observation_valid, _observation_date, lambda o: _wish(o, displays))
    view.place_of_death = next((w for w in wishes if w.key == codes.PLACE_OF_DEATH and w.status == "current"), None)
    order = list(codes.WISH_LABELS)
    view.wishes = sorted((w for w in wishes if w is not view.place_of_death), key=lambda w: order.index(w.key))
    view.devices = [_device(record, d) for d in record.of_type("DeviceUseStatement")
                    if d.resource.get("status") not in ("entered-in-error",)]
    view.documents = documents(record, displays)
    view.conversations = conversations(record)
    if view.conversations:
        view.last_acp_date, view.last_acp_by = view.conversations[0].date, view.conversations[0].detail
    return view


# ------------------------------------------------------------------------------------------------ goal and wishes
def _current_and_history(items: list[Loaded], key: Callable[[Loaded], str], valid: Callable[[Loaded], bool],
                         date: Callable[[Loaded], str], line: Callable[[Loaded], Statement]) -> list[Statement]:
    """Per key the newest valid item is current; the rest follow it, marked (see the module docstring)."""
    out: list[Statement] = []
    groups: dict[str, list[Loaded]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    for group_key, group in groups.items():
        ordered = sorted(group, key=lambda i: (0 if valid(i) else 1, newest_first(date(i)), newest_stored_first(i)))
        for n, item in enumerate(ordered):
            statement = line(item)
            statement.key = group_key
            if not valid(item):
                statement.status = "inactive"
            elif n > 0:
                statement.status, statement.replaced_by = "superseded", out[-n].ref
            out.append(statement)
    return out


def _goal_valid(goal: Loaded) -> bool:
    return goal.resource.get("lifecycleStatus") in ("active", "accepted", "planned", "proposed", "on-hold")


def _goal_date(goal: Loaded) -> str:
    return str(goal.resource.get("statusDate") or goal.resource.get("startDate") or "")


def _goal(goal: Loaded, displays: Displays) -> Statement:
    return Statement("Belangrijkste doel van het medisch beleid", concept_text(goal.resource.get("description"),
                                                                              displays),
                     date=_goal_date(goal)[:10], source=source(goal), ref=goal.ref)


def _wish_code(observation: Loaded) -> str:
    concept = observation.resource.get("code") or {}
    return next((c["code"] for c in concept.get("coding", [])
                 if c.get("system") == codes.SNOMED and c.get("code") in codes.WISH_LABELS), "")


def _observation_valid(observation: Loaded) -> bool:
    return observation.resource.get("status") in ("final", "amended", "corrected", "preliminary", "registered")


def _observation_date(observation: Loaded) -> str:
    r = observation.resource
    return str(r.get("effectiveDateTime") or (r.get("effectivePeriod") or {}).get("start") or r.get("issued") or "")


def _wish(observation: Loaded, displays: Displays) -> Statement:
    r = observation.resource
    if "valueString" in r:
        value = str(r["valueString"])
    elif "valueCodeableConcept" in r:
        value = concept_text(r["valueCodeableConcept"], displays)
    elif "valueBoolean" in r:
        value = codes.YES if r["valueBoolean"] else codes.NO
    else:
        absent = ((r.get("dataAbsentReason") or {}).get("coding") or [{}])[0].get("code", "")
        value = codes.DATA_ABSENT_LABELS.get(absent, codes.UNKNOWN)
    notes = "; ".join(n.get("text", "") for n in r.get("note", []) if n.get("text"))
    return Statement(codes.WISH_LABELS[_wish_code(observation)], value, notes, _observation_date(observation)[:10],
                     source(observation), observation.ref)


# ------------------------------------------------------------------------------------------------ the rest
def _device(record: PatientRecord, use: Loaded) -> Statement:
    r = use.resource
    device = record.resolve(r.get("device"))
    label = concept_text(device.resource.get("type"), {}) if device else "Medisch hulpmiddel"
    timing = r.get("timingDateTime") or (r.get("timingPeriod") or {}).get("start") or ""
    notes = "; ".join(n.get("text", "") for n in r.get("note", []) if n.get("text"))
    value = "aanwezig" if r.get("status") in ("active", "intended", "on-hold") else r.get("status", "")
    return Statement(label or "ICD", value, notes, str(timing)[:10], source(use), use.ref)


def contacts(record: PatientRecord) -> list[Contact]:
    """RelatedPersons and Patient.contact, the wettelijk vertegenwoordiger first, then the first contact."""
    found = [_contact(p.resource.get("name"), p.resource.get("relationship", []), p.resource.get("telecom", []), p.ref)
             for p in record.of_type("RelatedPerson") if p.resource.get("active", True)]
    linked = {c.ref for c in found}
    for contact in record.patient.resource.get("contact", []):
        link = _extension_ref(contact.get("extension", []))
        if link not in linked:
            found.append(_contact(contact.get("name"), contact.get("relationship", []), contact.get("telecom", []),
                                  link))
    rank = {codes.CONTACT_ROLE_LABELS[codes.LEGAL_REPRESENTATIVE]: 0, codes.CONTACT_ROLE_LABELS[codes.FIRST_CONTACT]: 1}
    return sorted(found, key=lambda c: min([rank.get(r, 2) for r in c.roles] or [2]))


def _contact(name: Any, relationship: list[dict[str, Any]], telecom: list[dict[str, Any]], ref: str) -> Contact:
    roles = [codes.CONTACT_ROLE_LABELS.get(c.get("code", ""), c.get("display") or c.get("code", ""))
             if c.get("system") == codes.CONTACT_ROLE
             else codes.RELATION_LABELS.get(c.get("code", ""), c.get("display") or c.get("code", ""))
             for concept in relationship for c in concept.get("coding", [])]
    phones = [t["value"] for t in telecom if t.get("system") == "phone" and t.get("value")]
    emails = [t["value"] for t in telecom if t.get("system") == "email" and t.get("value")]
    legal = codes.CONTACT_ROLE_LABELS[codes.LEGAL_REPRESENTATIVE] in roles
    return Contact(person_name(name), [r for r in roles if r], phones, emails, legal, ref)


ACP_DOCUMENT_TYPES = frozenset({(codes.LOINC, "42348-3"), (codes.LOINC, "75320-2"), (codes.SNOMED, "371538006")})


def documents(record: PatientRecord, displays: Displays) -> list[Statement]:
    """Wilsverklaringen as documents: ACP-typed DocumentReferences and the filled-in PZP form (QR)."""
    out = []
    for doc in record.of_type("DocumentReference"):
        r = doc.resource
        kinds = {(c.get("system"), c.get("code")) for concept in [r.get("type"), *r.get("category", [])]
                 if isinstance(concept, dict) for c in concept.get("coding", [])}
        if r.get("status") != "current" or not kinds & ACP_DOCUMENT_TYPES:
            continue
        attachment = ((r.get("content") or [{}])[0]).get("attachment") or {}
        out.append(Statement(r.get("description") or concept_text(r.get("type"), displays) or "Document",
                             attachment.get("title", ""), attachment.get("url", ""), str(r.get("date", ""))[:10],
                             source(doc), doc.ref))
    for form in record.of_type("QuestionnaireResponse"):
        if str(form.resource.get("questionnaire", "")).split("|")[0] == codes.QUESTIONNAIRE:
            out.append(Statement("PZP-formulier", form.resource.get("status", ""), "",
                                 str(form.resource.get("authored", ""))[:10], source(form), form.ref))
    return sorted(out, key=lambda s: newest_first(s.date))


def conversations(record: PatientRecord) -> list[Statement]:
    """ACP conversations (Procedure 713603004), newest first, with who held them; then their Encounters."""
    out = []
    for proc in record.of_type("Procedure"):
        r = proc.resource
        if (codes.SNOMED, codes.ACP_PROCEDURE) not in {(c.get("system"), c.get("code"))
                                                        for c in (r.get("code") or {}).get("coding", [])}:
            continue
        date = r.get("performedDateTime") or (r.get("performedPeriod") or {}).get("start") or ""
        by = [_who(record, p.get("actor")) for p in r.get("performer", [])
              if _is_professional(p.get("actor"))]
        out.append(Statement("Proactieve zorgplanning-gesprek", r.get("status", ""), ", ".join(b for b in by if b),
                             str(date)[:10], source(proc), proc.ref))
    return sorted(out, key=lambda s: newest_first(s.date))


def acp_context(record: PatientRecord) -> list[Loaded]:
    """Encounters and Communications of the ACP conversations (shown in the Bundle, not as lines)."""
    procedures = {f"Procedure/{p.stored.res_id}" for p in record.of_type("Procedure")}
    out = [e for e in record.of_type("Encounter")
           if any(r.get("reference") in procedures for r in e.resource.get("reasonReference", []))]
    acp = (codes.SNOMED, codes.ACP_PROCEDURE)
    out += [c for c in record.of_type("Communication")
            if any(acp in {(x.get("system"), x.get("code")) for x in rc.get("coding", [])}
                   for rc in c.resource.get("reasonCode", []))]
    return out


def _who(record: PatientRecord, reference: Any) -> str:
    target = record.resolve(reference)
    if target is not None and target.stored.res_type == "PractitionerRole":
        target = record.resolve(target.resource.get("practitioner")) or target
    if target is not None and target.resource.get("name"):
        return person_name(target.resource.get("name"))
    return str((reference or {}).get("display", ""))


def _is_professional(reference: Any) -> bool:
    ref = str((reference or {}).get("reference", ""))
    return ref.startswith(("Practitioner/", "PractitionerRole/")) or (reference or {}).get("type") in (
        "Practitioner", "PractitionerRole")


def _extension_ref(extensions: list[dict[str, Any]]) -> str:
    return next(((e.get("valueReference") or {}).get("reference", "") for e in extensions
                 if e.get("url") == codes.EXT_RELATED_PERSON), "")
