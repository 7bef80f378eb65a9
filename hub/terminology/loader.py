"""Read the conformance resources under profiles/ once, at start-up, into an immutable ProfileSet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

Resource = dict[str, Any]


@dataclass(frozen=True, eq=False)
class ProfileSet:
    """All conformance resources by type and by canonical url (a NamingSystem by its uniqueId uris)."""

    by_type: Mapping[str, tuple[Resource, ...]]
    by_url: Mapping[str, Resource]

    def of_type(self, resource_type: str) -> tuple[Resource, ...]:
        """Every loaded resource of one type, in file order."""
        return self.by_type.get(resource_type, ())

    def canonical(self, url: str, resource_type: str | None = None) -> Resource | None:
        """Resolve `url` or `url|version`; None when unknown, of another type or of another version."""
        base, _, version = url.partition("|")
        found = self.by_url.get(base)
        if found is None or (resource_type and found["resourceType"] != resource_type):
            return None
        if version and found.get("version") != version:
            return None
        return found

    def code_system(self, url: str) -> Resource | None:
        return self.canonical(url, "CodeSystem")

    def value_set(self, url: str) -> Resource | None:
        return self.canonical(url, "ValueSet")


def load_profiles(directory: Path) -> ProfileSet:
    """Load every *.json under `directory`, recursively; fail loudly on a non-resource or a duplicate."""
    resources: list[Resource] = []
    for path in sorted(directory.rglob("*.json")):
        data = orjson.loads(path.read_bytes())
        if not isinstance(data, dict) or "resourceType" not in data:
            raise ValueError(f"{path}: not a FHIR resource")
        resources.append(data)
    return profile_set(resources)


def profile_set(resources: Iterable[Resource]) -> ProfileSet:
    """Index resources already in memory (tests, or resources added at run time)."""
    by_type: dict[str, list[Resource]] = {}
    by_url: dict[str, Resource] = {}
    ids: set[tuple[str, str]] = set()
    for res in resources:
        kind = res["resourceType"]
        key = (kind, str(res.get("id", "")))
        if res.get("id") and key in ids:
            raise ValueError(f"duplicate {kind}/{key[1]}")
        ids.add(key)
        by_type.setdefault(kind, []).append(res)
        for url in _canonical_urls(res):
            if url in by_url:
                raise ValueError(f"duplicate canonical url {url} ({kind}/{res.get('id')})")
            by_url[url] = res
    return ProfileSet(
        by_type=MappingProxyType({k: tuple(v) for k, v in by_type.items()}),
        by_url=MappingProxyType(by_url),
    )


def _canonical_urls(res: Resource) -> list[str]:
    if res["resourceType"] == "NamingSystem":
        return [u["value"] for u in res.get("uniqueId", []) if u.get("type") == "uri" and u.get("value")]
    url = res.get("url")
    return [url] if isinstance(url, str) else []
