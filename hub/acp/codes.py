"""Codes and canonical URLs of the IKNL PZP (proactieve zorgplanning) IG, with the Dutch labels the HAP sees.

Source: shared/domain/README.md §7 (IKNL/PZP-FHIR-R4 0.1.3-beta3 on nl-core zib2020). Dutch terms glossed once:
behandelafspraak = treatment directive (zib TreatmentDirective2), wilsverklaring = advance directive,
wettelijk vertegenwoordiger = legal representative, niet besproken = not discussed (absence is not a "Nee").
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
LIST_EMPTY = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
CONTACT_ROLE = "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"  # zib ContactPerson role codes (rolcodes)
BSN = "http://fhir.nl/fhir/NamingSystem/bsn"

IKNL = "https://fhir.iknl.nl/fhir"
PROFILE = f"{IKNL}/StructureDefinition/"
VALUESET = f"{IKNL}/ValueSet/"
QUESTIONNAIRE = f"{IKNL}/Questionnaire/ACP-zib2020"
EXT_SPECIFICATION_OTHER = "http://nictiz.nl/fhir/StructureDefinition/ext-TreatmentDirective2.SpecificationOther"
EXT_COMMENT = "http://nictiz.nl/fhir/StructureDefinition/ext-Comment"
EXT_ENCOUNTER = f"{PROFILE}ext-EncounterReference"
EXT_RELATED_PERSON = "http://hl7.org/fhir/StructureDefinition/patient-relatedPerson"

HUB_SD = "https://zorgnet-hub.nl/fhir/StructureDefinition/"
HUB_CS = "https://zorgnet-hub.nl/fhir/CodeSystem/"
EXT_SUPERSEDED_BY = f"{HUB_SD}acp-superseded-by"  # on a Bundle entry: this directive was replaced by a newer one
EXT_STATUS = f"{HUB_SD}acp-directive-status"  # on a Bundle entry: current | superseded | inactive | conflict
ACCESS_POLICY = "https://zorgnet-hub.nl/fhir/policy/acp-access-v1"

ACP_PROCEDURE = "713603004"  # Advance care planning (procedure)
TREATMENT_CATEGORY = "129125009"  # Procedure with explicit context: the category of a treatment directive
INFORM_RELATIVES_TOPIC = "223449006"
LEGAL_REPRESENTATIVE = "24"  # wettelijk vertegenwoordiger
FIRST_CONTACT = "01"  # eerste relatie/contactpersoon


@dataclass(frozen=True)
class TreatmentLimit:
    """One of the treatment limits the HAP view always lists, in this order (README §7, 3 a.m. view)."""

    key: str
    code: str
    label: str


TREATMENT_LIMITS = (
    TreatmentLimit("reanimatie", "89666000", "Reanimatie"),
    TreatmentLimit("ic-opname", "305351004", "IC-opname"),
    TreatmentLimit("beademing", "40617009", "Beademing"),
    TreatmentLimit("ziekenhuisopname", "32485007", "Ziekenhuisopname"),
    TreatmentLimit("antibiotica", "281789004", "Antibiotica"),
    TreatmentLimit("bloedproducten", "116762002", "Bloedproducten"),
    TreatmentLimit("icd-uitzetten", "400231000146108", "ICD uitzetten"),
)
LIMIT_BY_CODE = {limit.code: limit for limit in TREATMENT_LIMITS}
ICD_DEACTIVATION = "400231000146108"  # sent as NullFlavor OTH + text naming this code in the IG's examples

# Observation codes of the PZP wishes (README §7) -> Dutch heading.
CARE_WISHES = "153851000146100"
PLACE_OF_DEATH = "395091006"
EUTHANASIA_POSITION = "340171000146104"
DONOR_REGISTRATION = "570801000146104"
OTHER_INFORMATION = "247751003"
WISH_LABELS = {
    CARE_WISHES: "Specifieke zorgwensen",
    PLACE_OF_DEATH: "Voorkeursplek van overlijden",
    EUTHANASIA_POSITION: "Standpunt euthanasie",
    DONOR_REGISTRATION: "Donorregistratie",
    OTHER_INFORMATION: "Overige belangrijke informatie",
}

# Treatment permitted (zib TreatmentDirective2.TreatmentPermitted) as the HAP reads it.
YES, NO, LIMITED, UNKNOWN, NOT_DISCUSSED = "Ja", "Nee", "Ja, met beperkingen", "Onbekend", "Niet besproken"

VALUESETS = {
    "goal": f"{VALUESET}ACP-MedicalPolicyGoal",
    "place-of-death": f"{VALUESET}ACP-PreferredPlaceOfDeath",
    "euthanasia": f"{VALUESET}ACP-EuthanasiaStatement",
    "yes-no-unknown": f"{VALUESET}ACP-YesNoUnknownVS",
    "icd": f"{VALUESET}ACP-MedicalDeviceProductType-ICD",
}

DATA_ABSENT_LABELS = {"asked-unknown": "Gevraagd, onbekend", "not-asked": "Niet gevraagd", "unknown": "Onbekend",
                      "asked-declined": "Wil het niet zeggen"}
CONTACT_ROLE_LABELS = {"24": "Wettelijk vertegenwoordiger", "01": "Eerste contactpersoon",
                       "02": "Tweede contactpersoon", "23": "Contactpersoon"}
# v3 RoleCode family relations, in Dutch (for the contact list).
RELATION_LABELS = {"BRO": "broer", "SIS": "zus", "HUSB": "echtgenoot", "WIFE": "echtgenote", "SPS": "partner",
                   "DOMPART": "partner", "SON": "zoon", "SONC": "zoon", "DAU": "dochter", "DAUC": "dochter",
                   "CHILD": "kind", "MTH": "moeder", "FTH": "vader", "PRN": "ouder", "FRND": "vriend(in)",
                   "NBOR": "buurman/buurvrouw", "GRNDCHILD": "kleinkind", "NIECE": "nicht", "NEPHEW": "neef"}
