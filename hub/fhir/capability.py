"""CapabilityStatement generated from what is really wired: search registry, interactions, operations."""

from __future__ import annotations

from typing import Any

from hub import __version__
from hub.fhir.operations import OPERATIONS
from hub.fhir.searchparams import SearchRegistry

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
READ_ONLY = {"AuditEvent"}


def capability_statement(registry: SearchRegistry, base: str, supported_types: list[str]) -> dict[str, Any]:
    resources = []
    for rt in supported_types:
        params = registry.params_for(rt)
        entry: dict[str, Any] = {
            "type": rt,
            "interaction": [{"code": c} for c in (["read", "search-type"] if rt in READ_ONLY else INTERACTIONS)],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchInclude": sorted(f"{rt}:{p.code}" for p in params.values() if p.type == "reference"),
            "searchRevInclude": sorted(
                {
                    f"{o}:{p.code}"
                    for o in supported_types
                    for p in registry.params_for(o).values()
                    if p.type == "reference" and (not p.targets or rt in p.targets)
                }
            ),
            "searchParam": [{"name": "_id", "type": "token"}, {"name": "_lastUpdated", "type": "date"}]
            + [
                {"name": p.code, "definition": p.url, "type": p.type}
                for p in sorted(params.values(), key=lambda p: p.code)
            ],
        }
        ops = [o for o in OPERATIONS if rt in o.resource_types or "*" in o.resource_types]
        if ops:
            entry["operation"] = [{"name": o.name, "definition": o.definition} for o in ops]
        resources.append(entry)
    system_ops = [o for o in OPERATIONS if not o.resource_types]
    rest: dict[str, Any] = {
        "mode": "server",
        "security": {
            "cors": False,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "SMART-on-FHIR",
                        }
                    ]
                }
            ],
            "description": "OAuth2 bearer tokens (JWT) with role and organisation; SMART Backend Services "
            "(client_credentials + private_key_jwt) at /auth/token.",
            "extension": [
                {
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": f"{base.rsplit('/fhir', 1)[0]}/auth/token"}],
                }
            ],
        },
        "resource": resources,
        "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
    }
    if system_ops:
        rest["operation"] = [{"name": o.name, "definition": o.definition} for o in system_ops]
    return {
        "resourceType": "CapabilityStatement",
        "id": "zorgnet-hub",
        "status": "active",
        "date": "2026-11-23",
        "publisher": "Zorgnet Hub",
        "kind": "instance",
        "software": {"name": "Zorgnet Hub", "version": __version__},
        "implementation": {"description": "Zorgnet Hub FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
