"""The registry is an explicit table: each format by name and by media type."""

from __future__ import annotations

import pytest

from adapters import registry


def test_all_formats_are_registered() -> None:
    assert list(registry.ADAPTERS) == ["hl7v2", "bed-csv", "bed-xlsx", "medvri", "iwmo", "fhir"]
    assert all(spec.description and spec.media_types for spec in registry.ADAPTERS.values())


def test_unknown_format_is_a_lookup_error() -> None:
    with pytest.raises(registry.UnknownFormat):
        registry.get("hl7v3")


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("text/csv; charset=windows-1252", "bed-csv"),
        ("Application/FHIR+JSON", "fhir"),
        ("application/edifact", "medvri"),
        ("x-application/hl7-v2+er7", "hl7v2"),
        ("text/xml", "iwmo"),
        ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "bed-xlsx"),
        ("image/png", None),
    ],
)
def test_for_media_type(media_type: str, expected: str | None) -> None:
    found = registry.for_media_type(media_type)
    assert (found[0] if found else None) == expected


def test_each_media_type_belongs_to_one_format() -> None:
    media_types = [mt for spec in registry.ADAPTERS.values() for mt in spec.media_types]
    assert len(media_types) == len(set(media_types))
