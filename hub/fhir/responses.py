"""FhirResponse: application/fhir+json with ETag/Last-Modified/Location from the stored version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from hub.store.repository import StoredResource

FHIR_JSON = "application/fhir+json"
_CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class FhirResponse(Response):
    media_type = FHIR_JSON

    def __init__(self, content: Any = None, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        body = content if isinstance(content, bytes) else (b"" if content is None else orjson.dumps(content))
        super().__init__(body, status_code=status_code, headers=headers, media_type=_CONTENT_TYPE if body else None)


def http_date(ts: datetime) -> str:
    """RFC 7231 IMF-fixdate of a naive-UTC timestamp (locale-independent, cheaper than email.utils)."""
    return (
        f"{_DAYS[ts.weekday()]}, {ts.day:02d} {_MONTHS[ts.month - 1]} {ts.year} "
        f"{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d} GMT"
    )


def resource_headers(stored: StoredResource, base: str, *, location: bool = False) -> dict[str, str]:
    headers = {"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)}
    if location:
        headers["Location"] = f"{base}/{stored.location}"
    return headers


def stored_response(stored: StoredResource, base: str, *, status: int = 200, location: bool = False) -> FhirResponse:
    """The hot read path: stored JSON bytes go out as they are, never re-serialized."""
    return FhirResponse(stored.content, status, resource_headers(stored, base, location=location))
