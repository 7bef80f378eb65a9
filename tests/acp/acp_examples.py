"""The IKNL PZP conformance examples, loaded as the IG's systems would send them, and the parties of the tests.

The examples are loaded in one transaction Bundle of `PUT Type/id` entries, in dependency order (who is
referred to comes first). De Brink is made the patients' GP (Patient.generalPractitioner), which is the treatment
relationship the access rules look for; the other organisations below have none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "iknl-pzp-acp-r4"
AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
GP_ORG = f"{AGB}|01000001"  # the patients' GP practice (Huisartsenpraktijk De Brink, demo)
OTHER_GP_ORG = f"{AGB}|01000002"  # a GP practice without a treatment relationship
HAP_ORG = f"{AGB}|01099001"  # the huisartsenpost
VVT_ORG = f"{AGB}|73730001"
COORDINATOR_ORG = "http://fhir.nl/fhir/NamingSystem/ura|90000001"
GEMEENTE = "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode|0106"
PRIVACY_ORG = "http://fhir.nl/fhir/NamingSystem/ura|90000000"
F1 = "F1-ACP-Patient-HendrikHartman"
P2 = "P2-ACP-Patient-SamiraVanDerSluijs"
BSN_F1, BSN_P2 = "999911120", "999998298"
SNOMED = "http://snomed.info/sct"

# Referenced before referring: directory, patients, people, then the clinical statements and the forms.
LOAD_ORDER = ("Organization", "Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Device", "Questionnaire",
              "Procedure", "Encounter", "Consent", "Goal", "Observation", "DeviceUseStatement", "Communication",
              "QuestionnaireResponse")


def examples() -> list[dict[str, Any]]:
    found = [orjson.loads(p.read_bytes()) for p in sorted(EXAMPLES_DIR.glob("*.json"))]
    return sorted(found, key=lambda r: LOAD_ORDER.index(r["resourceType"]))


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r,
                       "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


def gp_organization() -> dict[str, Any]:
    return {"resourceType": "Organization", "id": "gp-de-brink", "name": "Huisartsenpraktijk De Brink (demo)",
            "identifier": [{"system": AGB, "value": GP_ORG.split("|")[1]}], "active": True}


async def load_examples(hub: Any, *, with_gp: bool = True) -> dict[str, Any]:
    """PUT every example in one transaction; optionally make De Brink the patients' GP (the treatment relation)."""
    resources = examples()
    if with_gp:
        resources = [gp_organization(), *[_with_gp(r) for r in resources]]
    r = await hub.client.post("/fhir", json=transaction(resources), headers=hub.headers("admin"))
    assert r.status_code == 200, r.text
    return r.json()


def _with_gp(resource: dict[str, Any]) -> dict[str, Any]:
    if resource["resourceType"] != "Patient":
        return resource
    return {**resource, "generalPractitioner": [{"reference": "Organization/gp-de-brink"}]}


def purpose(value: str) -> dict[str, str]:
    return {"X-Purpose-Of-Use": value}
