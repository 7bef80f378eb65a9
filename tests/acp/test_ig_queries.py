"""Each PZP retrieval query of the IG (data-exchange.md; shared/domain/README.md §7) through GET /fhir/...,
with the conformance examples loaded once per backend, asked by the patients' GP.

Query texts are the IG's, with two corrections of obvious typos on the IG page (`_include:Procedure:encounter`
-> `_include=Procedure:encounter`, `DeviceUseSatement` -> `DeviceUseStatement`) and the ValueSet canonicals of
the IG (https://fhir.iknl.nl/fhir/ValueSet/...), which are the ones the hub serves.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from acp_examples import F1, GP_ORG, P2, examples, load_examples, transaction

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

QUERIES: list[tuple[str, str, set[str], set[str]]] = [
    ("1a", f"Procedure?patient={F1}&code=http://snomed.info/sct|713603004&_include=Procedure:encounter",
     {"Procedure/F1-ACP-Procedure-01-10-2020"}, {"Encounter/F1-ACP-Encounter-01-10-2020"}),
    ("1b", f"Encounter?patient={F1}&reason-reference:Procedure.code=http://snomed.info/sct|713603004"
           "&_include=Encounter:reason-reference",
     {"Encounter/F1-ACP-Encounter-01-10-2020"}, {"Procedure/F1-ACP-Procedure-01-10-2020"}),
    ("2", f"Consent?patient={F1}&scope={CONSENT_SCOPE}|treatment&category=http://snomed.info/sct|129125009"
          "&_include=Consent:actor",
     {f"Consent/F1-ACP-TreatmentDirective-{c}" for c in
      ("89666000", "305351004", "40617009", "32485007", "281789004", "116762002", "400231000146108")}
     | {"Consent/F2-ACP-TreatmentDirective-305351004"},
     {f"Patient/{F1}", "PractitionerRole/F1-ACP-HealthProfessional-PractitionerRole-DrVanHuissen",
      "RelatedPerson/F1-ACP-ContactPerson-MichielHartman"}),
    ("3", f"Consent?patient={P2}&scope={CONSENT_SCOPE}|adr"
          "&category=http://terminology.hl7.org/CodeSystem/consentcategorycodes|acd&_include=Consent:actor",
     {"Consent/P2-ACP-AdvanceDirective"}, {"RelatedPerson/P2-ACP-ContactPerson-GertJanDeJong"}),
    ("4", f"Goal?patient={F1}&description:in=https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalPolicyGoal",
     {"Goal/F1-ACP-Medical-Policy-Goal"}, set()),
    ("5", f"Observation?patient={P2}&code=http://snomed.info/sct|153851000146100,395091006,340171000146104,247751003",
     {f"Observation/P2-ACP-{name}-20250807" for name in
      ("SpecificCareWishes", "PreferredPlaceOfDeath", "PositionRegardingEuthanasia", "OtherImportantInformation")},
     set()),
    ("6", f"DeviceUseStatement?patient={P2}"
          "&device.type:in=https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalDeviceProductType-ICD"
          "&_include=DeviceUseStatement:device",
     {"DeviceUseStatement/P2-ACP-MedicalDevice-ICD"}, {"Device/P2-ACP-MedicalDevice.Product-ICD"}),
    ("7", f"Communication?patient={F1}&reason-code=http://snomed.info/sct|713603004",
     {"Communication/F1-ACP-Communication-01-10-2020"}, set()),
    # README §7 forms of the same queries (without the _include the IG page adds)
    ("1b-readme", f"Encounter?patient={P2}&reason-reference:Procedure.code=http://snomed.info/sct|713603004",
     {"Encounter/P2-ACP-Encounter-07-08-2025"}, set()),
    ("6-readme", f"DeviceUseStatement?patient={F1}"
                 "&device.type:in=https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalDeviceProductType-ICD",
     {"DeviceUseStatement/F1-ACP-MedicalDevice-ICD"}, set()),
    ("method-2", f"QuestionnaireResponse?subject=Patient/{F1}"
                 "&questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020",
     {"QuestionnaireResponse/F1-ACP-form"}, set()),
    ("method-2-any-patient", "QuestionnaireResponse?questionnaire=https://fhir.iknl.nl/fhir/Questionnaire/ACP-zib2020",
     {"QuestionnaireResponse/F1-ACP-form", "QuestionnaireResponse/HendrikHartman-20201001",
      "QuestionnaireResponse/HendrikHartman-20221108"}, set()),
]


def _form_for_f1() -> dict[str, Any]:
    """The IG's example forms carry no subject (SOURCES.md); the IG's Method 2 query needs one, so add a copy."""
    form = copy.deepcopy(next(r for r in examples() if r["id"] == "HendrikHartman-20221108"))
    return {**form, "id": "F1-ACP-form", "subject": {"reference": f"Patient/{F1}"}}


@pytest_asyncio.fixture(scope="module")
async def loaded(hub_session: Any) -> AsyncIterator[Any]:
    await load_examples(hub_session)
    r = await hub_session.client.post("/fhir", json=transaction([_form_for_f1()]), headers=hub_session.headers())
    assert r.status_code == 200, r.text
    yield hub_session
    await hub_session.clean()


@pytest.mark.parametrize(("name", "query", "matches", "includes"), [pytest.param(*q, id=q[0]) for q in QUERIES])
async def test_ig_retrieval_query(loaded: Any, name: str, query: str, matches: set[str], includes: set[str]) -> None:
    r = await loaded.client.get(f"/fhir/{query}", headers=loaded.headers("gp", GP_ORG, **{"Prefer": "handling=strict"}))
    assert r.status_code == 200, r.text
    bundle = r.json()
    found = {mode: {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
                    if e["search"]["mode"] == mode} for mode in ("match", "include")}
    assert found["match"] == matches
    assert found["include"] == includes
    assert bundle["total"] == len(matches)
