"""FHIR R4 JSON in, transaction Bundle out: partners that already speak FHIR use the same ingest path.

A single resource becomes a one-entry transaction (PUT Type/id when it has an id, else POST). A transaction
passes through; a batch is turned into a transaction (all-or-nothing, reported as information); collection and
searchset entries become PUT (with id) or POST (without). Validation against the profiles is the hub's job.
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import datetime
from typing import Any

import orjson

from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bundle import NAMESPACE, TransactionBuilder

FORMAT = "fhir"
MEDIA_TYPES = ("application/fhir+json", "application/json+fhir", "application/json")
DESCRIPTION = "FHIR R4 JSON resource or Bundle (transaction/batch/collection/searchset) -> transaction Bundle"
MAX_BYTES = 20 * 1024 * 1024
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """JSON bytes -> transaction Bundle; anything that is not a FHIR resource is an AdapterError."""
    if len(source) > MAX_BYTES:
        raise AdapterError(f"FHIR payload larger than {MAX_BYTES} bytes", code="too-costly")
    try:
        document = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        raise AdapterError(f"not JSON: {exc}", location=f"position {exc.pos}", code="structure") from exc
    resource_type = _resource_type(document, "$")
    problems: list[Problem] = []
    if resource_type != "Bundle":
        builder = TransactionBuilder()
        _add_resource(builder, document, None, 0)
        return Translation(builder.bundle(), problems, None, None, resource_type)
    bundle_type = document.get("type")
    if bundle_type == "transaction":
        bundle = _checked_transaction(document, "transaction")
    elif bundle_type == "batch":
        problems.append(
            Problem("information", "batch converted to a transaction: all entries succeed or none", "Bundle.type")
        )
        bundle = _checked_transaction(document, "batch")
    elif bundle_type in ("collection", "searchset"):
        bundle = _from_collection(document)
    else:
        raise AdapterError(
            f"Bundle type {bundle_type!r} is not accepted (transaction, batch, collection)",
            location="Bundle.type",
            code="not-supported",
        )
    return Translation(bundle, problems, _message_id(document), _timestamp(document, problems), f"Bundle/{bundle_type}")


def _resource_type(value: Any, where: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise AdapterError(
            "not a FHIR resource: an object with resourceType is expected", location=where, code="structure"
        )
    resource_type: str = value["resourceType"]
    if not _RESOURCE_TYPE.match(resource_type):
        raise AdapterError(f"invalid resourceType {resource_type!r}", location=f"{where}.resourceType")
    return resource_type


def _add_resource(builder: TransactionBuilder, resource: dict[str, Any], full_url: str | None, index: int) -> None:
    """PUT Type/id keeps the sender's id; without one, POST with a urn:uuid from position and content."""
    rtype = resource["resourceType"]
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        request = {"method": "PUT", "url": f"{rtype}/{rid}"}
        key = f"{rtype}/{rid}"
    else:
        request = {"method": "POST", "url": rtype}
        key = f"{index}|" + orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    builder.add_raw(full_url or f"urn:uuid:{uuid.uuid5(NAMESPACE, 'fhir|' + key)}", resource, request)


def _checked_transaction(document: dict[str, Any], source_type: str) -> dict[str, Any]:
    """A transaction/batch with every entry's request present; batch is relabelled transaction."""
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        raise AdapterError("Bundle.entry must be a list", location="Bundle.entry", code="structure")
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") not in _METHODS or not request.get("url"):
            raise AdapterError(f"{source_type} entry needs request.method and request.url", location=where)
        if "resource" in entry:
            _resource_type(entry["resource"], f"{where}.resource")
    bundle = copy.deepcopy(document)
    bundle["type"] = "transaction"
    return bundle


def _from_collection(document: dict[str, Any]) -> dict[str, Any]:
    """Collection/searchset entries -> transaction entries, keeping fullUrls so references still resolve."""
    builder = TransactionBuilder()
    for index, entry in enumerate(document.get("entry", []) or []):
        where = f"Bundle.entry[{index}]"
        if not isinstance(entry, dict) or "resource" not in entry:
            raise AdapterError("collection entry without a resource", location=where, code="structure")
        _resource_type(entry["resource"], f"{where}.resource")
        _add_resource(builder, entry["resource"], entry.get("fullUrl"), index)
    return builder.bundle()


def _message_id(document: dict[str, Any]) -> str | None:
    identifier = document.get("identifier")
    value = identifier.get("value") if isinstance(identifier, dict) else None
    return value if isinstance(value, str) and value else None


def _timestamp(document: dict[str, Any], problems: list[Problem]) -> datetime | None:
    value = document.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        problems.append(Problem("warning", f"Bundle.timestamp {value!r} unreadable; ignored", "Bundle.timestamp"))
        return None
