"""Which adapter handles which format: an explicit table, so nothing registers itself as an import side
effect.

`hub/ingest` picks an adapter by format name (`get("hl7v2")`) or by the request's Content-Type
(`for_media_type("text/csv; charset=windows-1252")`) and then calls `spec.translate(source, meta)`.
"""

from __future__ import annotations

from typing import NamedTuple

from adapters import bed_csv, bed_xlsx, fhir_passthrough, hl7v2, iwmo, medvri
from adapters.base import Translate


class AdapterSpec(NamedTuple):
    translate: Translate
    media_types: tuple[str, ...]
    description: str


ADAPTERS: dict[str, AdapterSpec] = {
    hl7v2.FORMAT: AdapterSpec(hl7v2.translate, hl7v2.MEDIA_TYPES, hl7v2.DESCRIPTION),
    bed_csv.FORMAT: AdapterSpec(bed_csv.translate, bed_csv.MEDIA_TYPES, bed_csv.DESCRIPTION),
    bed_xlsx.FORMAT: AdapterSpec(bed_xlsx.translate, bed_xlsx.MEDIA_TYPES, bed_xlsx.DESCRIPTION),
    medvri.FORMAT: AdapterSpec(medvri.translate, medvri.MEDIA_TYPES, medvri.DESCRIPTION),
    iwmo.FORMAT: AdapterSpec(iwmo.translate, iwmo.MEDIA_TYPES, iwmo.DESCRIPTION),
    fhir_passthrough.FORMAT: AdapterSpec(
        fhir_passthrough.translate, fhir_passthrough.MEDIA_TYPES, fhir_passthrough.DESCRIPTION
    ),
}


class UnknownFormat(LookupError):
    """No adapter for this format name."""


def get(format_name: str) -> AdapterSpec:
    """The adapter for a format name; raises UnknownFormat listing the known ones."""
    try:
        return ADAPTERS[format_name]
    except KeyError:
        raise UnknownFormat(f"unknown format {format_name!r}; known: {', '.join(ADAPTERS)}") from None


def for_media_type(media_type: str) -> tuple[str, AdapterSpec] | None:
    """(format name, adapter) for a Content-Type, ignoring parameters and case; None if unsupported (415)."""
    wanted = media_type.split(";", 1)[0].strip().lower()
    return next(((name, spec) for name, spec in ADAPTERS.items() if wanted in spec.media_types), None)
