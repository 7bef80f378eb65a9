"""load_profiles: one immutable ProfileSet, reachable by type and by canonical url; bad input fails loudly."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from hub.terminology.loader import ProfileSet, load_profiles


def _write(directory: Path, name: str, data: object) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(orjson.dumps(data))


def test_profiles_are_indexed_by_type_and_canonical_url(profiles: ProfileSet) -> None:
    code_system = profiles.code_system("https://zorgnet-hub.nl/fhir/CodeSystem/care-product")
    assert code_system is not None and code_system["id"] == "care-product"
    assert profiles.value_set("https://zorgnet-hub.nl/fhir/CodeSystem/care-product") is None  # wrong type
    assert profiles.canonical("https://zorgnet-hub.nl/fhir/ValueSet/care-product|0.1.0") is not None
    assert profiles.canonical("https://zorgnet-hub.nl/fhir/ValueSet/care-product|2.0") is None
    assert len(profiles.of_type("StructureDefinition")) == 6
    assert profiles.of_type("Patient") == ()


def test_naming_systems_are_found_by_their_unique_id(profiles: ProfileSet) -> None:
    found = profiles.canonical("https://zorgnet-hub.nl/fhir/NamingSystem/gemeentecode", "NamingSystem")
    assert found is not None and found["kind"] == "identifier"


def test_profile_set_is_read_only(profiles: ProfileSet) -> None:
    with pytest.raises(TypeError):
        profiles.by_url["x"] = {}  # type: ignore[index]


def test_load_reads_nested_folders_and_ignores_other_files(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "b", "cs.json", {"resourceType": "CodeSystem", "id": "x", "url": "urn:x"})
    (tmp_path / "README.md").write_text("not json")
    loaded = load_profiles(tmp_path)
    assert loaded.code_system("urn:x") is not None


def test_load_rejects_duplicate_canonical_urls(tmp_path: Path) -> None:
    _write(tmp_path, "one.json", {"resourceType": "ValueSet", "id": "one", "url": "urn:same"})
    _write(tmp_path, "two.json", {"resourceType": "ValueSet", "id": "two", "url": "urn:same"})
    with pytest.raises(ValueError, match="urn:same"):
        load_profiles(tmp_path)


def test_load_rejects_duplicate_ids_and_non_resources(tmp_path: Path) -> None:
    _write(tmp_path / "1", "a.json", {"resourceType": "ValueSet", "id": "a", "url": "urn:a"})
    _write(tmp_path / "2", "a.json", {"resourceType": "ValueSet", "id": "a", "url": "urn:b"})
    with pytest.raises(ValueError, match="duplicate ValueSet/a"):
        load_profiles(tmp_path)
    _write(tmp_path / "other", "list.json", [1, 2])
    with pytest.raises(ValueError, match="not a FHIR resource"):
        load_profiles(tmp_path / "other")
