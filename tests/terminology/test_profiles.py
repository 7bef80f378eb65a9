"""profiles/: every file is a valid R4 resource, uniquely identified, cross-references resolve, and every
SearchParameter expression stays inside the FHIRPath subset the hub's indexer evaluates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from hub.fhir.fhirpath import compile_expression
from hub.terminology.loader import ProfileSet

PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
FILES = sorted(PROFILES_DIR.rglob("*.json"))
HUB = "https://zorgnet-hub.nl/fhir/"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def _all() -> list[dict[str, Any]]:
    return [_load(p) for p in FILES]


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [r for r in _all() if r["resourceType"] == kind]


# ------------------------------------------------------------------ FHIRPath subset grammar
_RTYPE = r"[A-Z][A-Za-z]+"
_TYPE = r"[A-Za-z][A-Za-z0-9]*"
_STEP = (
    r"(?:[a-z][A-Za-z0-9]*"  # element
    rf"|where\(resolve\(\) is {_RTYPE}\)"  # reference filter
    r"|where\([a-z][A-Za-z0-9]*='[^']*'\)"  # literal filter, e.g. where(system='...')
    r"|extension\('[^']+'\)"  # extension by url
    rf"|(?:as|ofType)\({_TYPE}\))"  # choice type
)
_PATH = rf"{_RTYPE}(?:\.{_STEP})*"
_ALTERNATIVE = re.compile(rf"{_PATH}|\({_PATH} as {_TYPE}\)")


def split_alternatives(expression: str) -> list[str]:
    """Split on ' | ' outside quotes and parentheses."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        elif not quoted and depth == 0 and expression.startswith(" | ", i):
            parts.append(expression[start:i])
            start = i + 3
    parts.append(expression[start:])
    return parts


def in_subset(expression: str) -> bool:
    return all(_ALTERNATIVE.fullmatch(alt) for alt in split_alternatives(expression))


def root_type(alternative: str) -> str:
    match = re.match(r"\(?([A-Za-z]+)", alternative)
    assert match
    return match.group(1)


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.name",
        "Location.name | Location.alias",
        "(Observation.value as CodeableConcept)",
        "Observation.value.ofType(CodeableConcept).text",
        "Observation.value.as(Quantity)",
        "Task.for.where(resolve() is Patient)",
        "Patient.telecom.where(system='phone')",
        "Location.extension('https://x/y').value.ofType(Coding)",
        "Location.extension.where(url='https://x/y').value",
    ],
)
def test_subset_grammar_accepts_the_supported_forms(expression: str) -> None:
    assert in_subset(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "Patient.deceased.exists() and Patient.deceased != false",
        "iif(Patient.active, Patient.name, Patient.alias)",
        "Patient.name.first()",
        "(Observation.value as CodeableConcept).text",
        "Patient.name | ",
        "name.family",
    ],
)
def test_subset_grammar_rejects_everything_else(expression: str) -> None:
    assert not in_subset(expression)


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PROFILES_DIR)))
def test_every_profile_file_is_a_valid_r4_resource_named_after_its_id(path: Path) -> None:
    data = _load(path)
    get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert path.name == f"{data['id']}.json"


def test_resource_ids_and_canonical_urls_are_unique() -> None:
    keys = [(r["resourceType"], r["id"]) for r in _all()]
    assert len(keys) == len(set(keys))
    urls = [r["url"] for r in _all() if "url" in r]
    assert len(urls) == len(set(urls))


def test_loader_sees_every_file(profiles: ProfileSet) -> None:
    assert sum(len(v) for v in profiles.by_type.values()) == len(FILES)


# ------------------------------------------------------------------ SearchParameters
SEARCH_PARAMETERS = _of_type("SearchParameter")


@pytest.mark.parametrize("sp", SEARCH_PARAMETERS, ids=lambda sp: sp["id"])
def test_search_parameter_expression_is_inside_the_indexer_subset(sp: dict[str, Any]) -> None:
    expression = sp["expression"]
    assert in_subset(expression), expression
    roots = {root_type(alt) for alt in split_alternatives(expression)}
    assert roots == set(sp["base"]), f"{sp['id']}: expression covers {roots}, base is {sp['base']}"


@pytest.mark.parametrize("sp", SEARCH_PARAMETERS, ids=lambda sp: sp["id"])
def test_search_parameter_compiles_with_the_hub_indexer(sp: dict[str, Any]) -> None:
    compiled = compile_expression(sp["expression"])
    assert {c.resource_type for c in compiled} == set(sp["base"])


WANTED_SEARCH = {
    "Resource": "_tag _profile _security _source",
    "Patient": "identifier name family given birthdate gender active address-postalcode address-city telecom "
    "deceased death-date general-practitioner organization",
    "Practitioner": "identifier name family given active",
    "PractitionerRole": "practitioner organization role specialty identifier active location service",
    "Organization": "identifier name type active partof address-postalcode address-city endpoint",
    "Location": "identifier name type status operational-status organization partof address-postalcode "
    "address-city endpoint care-product bed-reserved-by expected-free-date",
    "HealthcareService": "identifier name organization location service-type service-category active "
    "characteristic endpoint specialty expected-free-date",
    "Endpoint": "identifier name organization status connection-type",
    "MeasureReport": "measure subject date status reporter period identifier patient",
    "ServiceRequest": "identifier patient subject requester code status intent authored performer priority "
    "category occurrence based-on",
    "Task": "identifier status business-status focus owner requester patient subject code intent authored-on "
    "modified period based-on",
    "Encounter": "patient subject status date location identifier reason-reference reason-code class type",
    "Consent": "patient scope category status action actor date identifier period source-reference",
    "Procedure": "patient subject code date encounter status identifier",
    "Observation": "patient subject code date status category value-concept value-string encounter "
    "identifier",
    "Goal": "patient subject lifecycle-status category identifier description",
    "DeviceUseStatement": "patient subject device identifier",
    "Device": "type patient identifier status",
    "Communication": "patient subject category sent status encounter identifier reason-code",
    "RelatedPerson": "patient identifier name relationship",
    "QuestionnaireResponse": "subject patient questionnaire status authored identifier",
    "Questionnaire": "url name status identifier",
    "DocumentReference": "patient subject type category status date identifier relatesto",
    "Provenance": "target patient agent recorded",
    "Subscription": "status criteria type url",
    "CodeSystem": "url name status version code",
    "ValueSet": "url name status version code",
    "StructureDefinition": "url name status version",
    "SearchParameter": "url name status version code base",
    "ConceptMap": "url name status version",
    "NamingSystem": "name status value",
}


@pytest.mark.parametrize("resource_type", sorted(WANTED_SEARCH))
def test_every_search_parameter_the_hub_needs_is_defined_once(resource_type: str) -> None:
    for code in WANTED_SEARCH[resource_type].split():
        hits = [sp for sp in SEARCH_PARAMETERS if sp["code"] == code and resource_type in sp["base"]]
        assert len(hits) == 1, f"{resource_type}.{code}: {[h['id'] for h in hits]}"


def test_core_search_parameters_keep_their_official_r4_urls() -> None:
    by_id = {sp["id"]: sp for sp in SEARCH_PARAMETERS}
    assert by_id["clinical-patient"]["url"] == "http://hl7.org/fhir/SearchParameter/clinical-patient"
    assert by_id["Patient-name"]["expression"] == "Patient.name"
    assert by_id["Location-organization"]["expression"] == "Location.managingOrganization"
    assert "Procedure.subject.where(resolve() is Patient)" in by_id["clinical-patient"]["expression"]
    assert "AllergyIntolerance" not in by_id["clinical-patient"]["expression"]
    comm = by_id["Communication-reason-code"]
    assert comm["url"] == "https://fhir.iknl.nl/fhir/SearchParameter/Communication-reason-code"
    assert comm["expression"] == "Communication.reasonCode"


def test_hub_care_product_search_parameter_reads_the_care_product_extension() -> None:
    sp = next(sp for sp in SEARCH_PARAMETERS if sp["id"] == "zorgnet-Location-care-product")
    coding = {"system": f"{HUB}CodeSystem/care-product", "code": "elv-hoog"}
    bed = {
        "resourceType": "Location",
        "extension": [{"url": f"{HUB}StructureDefinition/care-product", "valueCoding": coding}],
    }
    (path,) = compile_expression(sp["expression"])
    assert path.evaluate(bed) == [coding]


# ------------------------------------------------------------------ cross references
def test_hub_canonicals_referenced_by_profiles_resolve(profiles: ProfileSet) -> None:
    referenced: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("valueSet", "profile", "targetProfile", "sourceCanonical", "targetCanonical"):
                    referenced.extend(value if isinstance(value, list) else [value])
                elif key in ("system", "source", "target") and isinstance(value, str):
                    referenced.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    for kind in ("StructureDefinition", "ValueSet", "ConceptMap", "CodeSystem"):
        for res in profiles.of_type(kind):
            collect({k: v for k, v in res.items() if k != "url"})
    hub_refs = {r for r in referenced if r.startswith(HUB) and "/NamingSystem/" not in r}
    assert hub_refs, "expected references to hub canonicals"
    missing = sorted(r for r in hub_refs if profiles.canonical(r) is None)
    assert not missing


def test_explicit_concepts_from_hub_code_systems_exist_there(profiles: ProfileSet) -> None:
    for value_set in profiles.of_type("ValueSet"):
        for include in value_set["compose"]["include"]:
            code_system = profiles.code_system(include.get("system", ""))
            if code_system is None:
                continue
            codes = {c["code"] for c in code_system["concept"]}
            for concept in include.get("concept", []):
                assert concept["code"] in codes, (value_set["id"], concept["code"])


README_ALIASES = {
    "elv-laag": ["ELV laag", "ELV-LC", "laag complex", "ELV L"],
    "elv-hoog": ["ELV hoog", "ELV-HC", "hoog complex", "ELV H"],
    "elv-pall": ["ELV palliatief", "palliatief", "PTZ", "ELV-PTZ", "hospice"],
    "wlz-crisis": ["crisis", "Wlz crisis", "crisisbed", "spoed Wlz"],
    "wlz-logeer": ["logeer Wlz", "logeren"],
    "wmo-kv": ["respijt", "logeeropvang", "KV", "kortdurend verblijf"],
    "grz": ["GRZ", "revalidatie", "geriatrische revalidatie"],
    "wlz-10vv": ["10VV"],
}


def test_care_product_code_system_carries_every_readme_alias_and_a_payer(profiles: ProfileSet) -> None:
    code_system = profiles.code_system(f"{HUB}CodeSystem/care-product")
    assert code_system is not None and code_system["caseSensitive"] is True
    concepts = {c["code"]: c for c in code_system["concept"]}
    assert set(README_ALIASES) | {"wijkverpleging", "spoedzorg-thuis"} == set(concepts)
    for code, aliases in README_ALIASES.items():
        values = {d["value"] for d in concepts[code].get("designation", [])}
        assert set(aliases) <= values, code
        assert all(d["language"] == "nl" for d in concepts[code]["designation"])
        payers = [p["valueCode"] for p in concepts[code]["property"] if p["code"] == "payer"]
        assert payers and payers[0] in {"Zvw", "Wlz", "Wmo"}
