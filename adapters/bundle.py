"""Build FHIR transaction Bundles whose entries the hub can apply idempotently.

Every entry is keyed by a business identifier: shared things (Patient, Organization, Practitioner) are
conditional creates (`ifNoneExist`), things the source owns (bed Location, HealthcareService, MeasureReport,
Encounter) are conditional updates (`PUT Type?identifier=...`). fullUrls are uuid5 of the identifier, so the
same input always gives the same Bundle and references inside it stay stable.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any
from urllib.parse import quote

Resource = dict[str, Any]

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://zorgnet-hub.nl/fhir/adapters")
DATA_DOMAIN = "https://zorgnet-hub.nl/fhir/CodeSystem/data-domain"
TRIAGE = "https://zorgnet-hub.nl/fhir/CodeSystem/triage"


def stable_urn(*parts: str) -> str:
    """urn:uuid from the content key, so a Bundle is byte-identical for the same input."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, '|'.join(parts))}"


def search_token(system: str, value: str) -> str:
    """`system|value` for a query string: FHIR search escapes (\\ , | $) then percent-encoding."""
    escaped = value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")
    return f"{quote(system, safe=':/')}|{quote(escaped, safe=':/-._~')}"


def reference(urn: str, display: str | None = None) -> dict[str, str]:
    """A Reference to another entry of the same Bundle (the hub rewrites urn:uuid to the stored id)."""
    return {"reference": urn, "display": display} if display else {"reference": urn}


def add_tag(resource: Resource, system: str, code: str, *, security: bool = False) -> Resource:
    """Add a meta.tag (or meta.security label) once; returns the resource for chaining."""
    bucket = resource.setdefault("meta", {}).setdefault("security" if security else "tag", [])
    if not any(t.get("system") == system and t.get("code") == code for t in bucket):
        bucket.append({"system": system, "code": code})
    return resource


def mark_medical(resource: Resource) -> Resource:
    """Label data under the medical professional secret; social-domain clients never see it (README 8.3)."""
    return add_tag(resource, DATA_DOMAIN, "medical", security=True)


def mark_social(resource: Resource) -> Resource:
    """Tag social-domain (iWmo) origin; hub.security.policy lets municipalities see only these."""
    return add_tag(resource, DATA_DOMAIN, "social")


class TransactionBuilder:
    """Collects entries in insertion order; a second entry with the same key returns the first one's urn."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def create_if_none_exist(self, resource: Resource, system: str, value: str) -> str:
        """POST with ifNoneExist on the identifier: match an existing resource, never duplicate it."""
        rtype = resource["resourceType"]
        request = {"method": "POST", "url": rtype, "ifNoneExist": f"identifier={search_token(system, value)}"}
        return self._add(rtype, system, value, resource, request)

    def update_by_identifier(self, resource: Resource, system: str, value: str) -> str:
        """PUT Type?identifier=...: the source owns this resource and its latest message replaces it."""
        rtype = resource["resourceType"]
        request = {"method": "PUT", "url": f"{rtype}?identifier={search_token(system, value)}"}
        return self._add(rtype, system, value, resource, request)

    def add_raw(self, full_url: str, resource: Resource | None, request: dict[str, Any]) -> str:
        """Add an entry as given (FHIR pass-through), keyed by its fullUrl."""
        entry: dict[str, Any] = {"fullUrl": full_url}
        if resource is not None:
            entry["resource"] = copy.deepcopy(resource)
        entry["request"] = request
        self._entries.setdefault(full_url, entry)
        return full_url

    def contains(self, resource_type: str, system: str, value: str) -> bool:
        """Whether an entry for this business key is already in the Bundle."""
        return stable_urn(resource_type, system, value) in self._entries

    def bundle(self) -> dict[str, Any]:
        """The transaction Bundle (a deep copy); without entries there is no `entry` (FHIR has no empty arrays)."""
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction"}
        if self._entries:
            bundle["entry"] = copy.deepcopy(list(self._entries.values()))
        return bundle

    def _add(self, rtype: str, system: str, value: str, resource: Resource, request: dict[str, str]) -> str:
        urn = stable_urn(rtype, system, value)
        if urn not in self._entries:
            identifiers = list(resource.get("identifier", []))
            if not any(i.get("system") == system and i.get("value") == value for i in identifiers):
                identifiers.insert(0, {"system": system, "value": value})
            head: Resource = {k: resource[k] for k in ("meta", "extension") if k in resource}
            rest = {k: v for k, v in resource.items() if k not in ("resourceType", "meta", "extension", "identifier")}
            body: Resource = {"resourceType": rtype, **head, "identifier": identifiers, **rest}
            self._entries[urn] = {"fullUrl": urn, "resource": body, "request": request}
        return urn
