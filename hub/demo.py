"""The demo region (Drenthe, fictional): providers, sites, wards, beds, care products, a GP practice, a HAP
and a municipality — loaded through the normal transaction path, idempotently (conditional creates/updates)."""

from __future__ import annotations

from typing import Any

from hub.fhir import bundles
from hub.runtime import Runtime
from hub.security.context import AccessContext

AGB = "http://fhir.nl/fhir/NamingSystem/agb-z"
URA = "http://fhir.nl/fhir/NamingSystem/ura"
GEMEENTE = "https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode"
BED = "https://zorgnet-hub.nl/fhir/NamingSystem/bed"
HCS = "https://zorgnet-hub.nl/fhir/NamingSystem/healthcareservice"
CARE_PRODUCT = "https://zorgnet-hub.nl/fhir/CodeSystem/care-product"
V2_0116 = "http://terminology.hl7.org/CodeSystem/v2-0116"
PRODUCT_EXT = "https://zorgnet-hub.nl/fhir/StructureDefinition/care-product"

PROVIDERS = [
    # agb, name, site, city, postcode, {product: [bed statuses]}
    (
        "73730001",
        "Zorggroep Noorderboog (demo)",
        "Het Anker",
        "Assen",
        "9401 AB",
        {"elv-laag": "UUOO", "elv-hoog": "UOOO", "elv-pall": "UO"},
    ),
    (
        "73730002",
        "Icare Verpleeghuizen (demo)",
        "De Boerhoorn",
        "Emmen",
        "7811 CD",
        {"elv-hoog": "UUUO", "wlz-crisis": "UO", "grz": "OOOU"},
    ),
    (
        "73730003",
        "Zorgcentrum Meppel (demo)",
        "Reggersoord",
        "Meppel",
        "7941 EF",
        {"elv-laag": "OOOC", "wmo-kv": "UU", "elv-pall": "H"},
    ),
]
PRODUCT_NAMES = {
    "elv-laag": "ELV laag complex",
    "elv-hoog": "ELV hoog complex",
    "elv-pall": "ELV palliatief",
    "wlz-crisis": "Wlz crisisopname",
    "grz": "Geriatrische revalidatie",
    "wmo-kv": "Wmo kortdurend verblijf",
}
STATUS_DISPLAY = {
    "U": "Unoccupied",
    "O": "Occupied",
    "C": "Closed",
    "H": "Housekeeping",
    "I": "Isolated",
    "K": "Contaminated",
}


def _org(urn: str, system: str, value: str, name: str, type_code: str, type_display: str) -> dict[str, Any]:
    return {
        "fullUrl": urn,
        "request": {"method": "POST", "url": "Organization", "ifNoneExist": f"identifier={system}|{value}"},
        "resource": {
            "resourceType": "Organization",
            "identifier": [{"system": system, "value": value}],
            "active": True,
            "name": name,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://nictiz.nl/fhir/NamingSystem/organization-type",
                            "code": type_code,
                            "display": type_display,
                        }
                    ]
                }
            ],
        },
    }


def demo_bundle() -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for agb, name, site, city, postcode, products in PROVIDERS:
        org_urn = f"urn:uuid:org-{agb}"
        entries.append(_org(org_urn, AGB, agb, name, "X3", "Verplegings- of verzorgingsinstelling"))
        site_urn = f"urn:uuid:site-{agb}"
        address = {"line": [f"{site}laan 1"], "city": city, "postalCode": postcode, "country": "NL"}
        entries.append(
            {
                "fullUrl": site_urn,
                "request": {"method": "PUT", "url": f"Location?identifier={BED}|{agb}/site"},
                "resource": {
                    "resourceType": "Location",
                    "status": "active",
                    "name": f"{site} ({city})",
                    "identifier": [{"system": BED, "value": f"{agb}/site"}],
                    "physicalType": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bu"}
                        ]
                    },
                    "managingOrganization": {"reference": org_urn},
                    "address": address,
                },
            }
        )
        for product, statuses in products.items():
            ward = f"{agb}/{product}"
            ward_urn = f"urn:uuid:ward-{agb}-{product}"
            entries.append(
                {
                    "fullUrl": ward_urn,
                    "request": {"method": "PUT", "url": f"Location?identifier={BED}|{ward}"},
                    "resource": {
                        "resourceType": "Location",
                        "status": "active",
                        "name": f"{site} afdeling {PRODUCT_NAMES[product]}",
                        "identifier": [{"system": BED, "value": ward}],
                        "physicalType": {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa"}
                            ]
                        },
                        "managingOrganization": {"reference": org_urn},
                        "partOf": {"reference": site_urn},
                        "address": address,
                    },
                }
            )
            entries.append(
                {
                    "request": {"method": "PUT", "url": f"HealthcareService?identifier={HCS}|{ward}"},
                    "resource": {
                        "resourceType": "HealthcareService",
                        "active": True,
                        "identifier": [{"system": HCS, "value": ward}],
                        "name": f"{PRODUCT_NAMES[product]} — {site}",
                        "providedBy": {"reference": org_urn},
                        "location": [{"reference": ward_urn}],
                        "type": [
                            {"coding": [{"system": CARE_PRODUCT, "code": product, "display": PRODUCT_NAMES[product]}]}
                        ],
                        "telecom": [{"system": "phone", "value": "0592-000000", "use": "work"}],
                    },
                }
            )
            for n, status in enumerate(statuses, start=1):
                bed = f"{ward}/{n}"
                entries.append(
                    {
                        "request": {"method": "PUT", "url": f"Location?identifier={BED}|{bed}"},
                        "resource": {
                            "resourceType": "Location",
                            "status": "active",
                            "name": f"Bed {n} {PRODUCT_NAMES[product]}",
                            "identifier": [{"system": BED, "value": bed}],
                            "operationalStatus": {"system": V2_0116, "code": status, "display": STATUS_DISPLAY[status]},
                            "physicalType": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                                        "code": "bd",
                                    }
                                ]
                            },
                            "extension": [
                                {"url": PRODUCT_EXT, "valueCoding": {"system": CARE_PRODUCT, "code": product}}
                            ],
                            "managingOrganization": {"reference": org_urn},
                            "partOf": {"reference": ward_urn},
                            "address": address,
                        },
                    }
                )
    entries.append(_org("urn:uuid:gp", AGB, "01000001", "Huisartsenpraktijk De Brink (demo)", "Z3", "Huisartspraktijk"))
    entries.append(_org("urn:uuid:hap", AGB, "01099001", "Huisartsenpost Assen (demo)", "N6", "Huisartsenpost"))
    entries.append(_org("urn:uuid:gemeente", GEMEENTE, "0106", "Gemeente Assen (demo)", "GEM", "Gemeente"))
    entries.append(_org("urn:uuid:cp", URA, "90000001", "Coördinatiepunt Drenthe (demo)", "CP", "Coördinatiepunt"))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def load_demo_region(runtime: Runtime) -> int:
    ctx = AccessContext.system("load the demo region")
    async with runtime.uow() as uow:
        response = await bundles.process(
            uow, ctx, demo_bundle(), f"{runtime.settings.base_url}/fhir", prefer_return="minimal"
        )
    return len(response["entry"])
