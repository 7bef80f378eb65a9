"""FhirResponse: application/fhir+json with ETag/Last-Modified/Location from the stored version."""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from typing import Any

import orjson
from starlette.responses import Response

from hub.store.repository import StoredResource

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def __init__(self, content: Any = None, status_code: int = 200, headers: dict[str, str] | None = None) -> None:
        body = content if isinstance(content, bytes) else (b"" if content is None else orjson.dumps(content))
        super().__init__(
            body, status_code=status_code, headers=headers, media_type=f"{FHIR_JSON}; charset=utf-8" if body else None
        )


def resource_headers(stored: StoredResource, base: str, *, location: bool = False) -> dict[str, str]:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated.replace(tzinfo=UTC), usegmt=True),
    }
    if location:
        headers["Location"] = f"{base}/{stored.location}"
    return headers


def stored_response(stored: StoredResource, base: str, *, status: int = 200, location: bool = False) -> FhirResponse:
    """The hot read path: stored JSON bytes go out as they are, never re-serialized."""
    return FhirResponse(stored.content, status, resource_headers(stored, base, location=location))
