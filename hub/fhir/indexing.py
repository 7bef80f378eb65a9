"""Turn a resource into index rows, one per search-parameter value (string, token, reference, date, ...)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.fhir.fhirpath import reference_type
from hub.fhir.searchparams import SearchParam, SearchRegistry, top_level_names

Row = dict[str, Any]


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used for string search (FHIR: 'Zoë' matches 'zoe')."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower().strip()[:400]


def index_rows(registry: SearchRegistry, resource: dict[str, Any],
               only: frozenset[str] | None = None) -> dict[str, list[Row]]:
    """All index rows for one resource, grouped by index kind; `only`: just the rows of these parameters (every
    path of each), for an update that replaces only theirs."""
    rows: dict[str, list[Row]] = {"string": [], "token": [], "reference": [], "date": [], "number": [], "uri": []}
    if only is not None:
        for param, path in registry.paths_of(resource["resourceType"], only):
            for value in path.evaluate(resource):
                _emit(rows, param, value)
        return rows
    plan = registry.index_plan(resource["resourceType"])
    for name in top_level_names(resource):
        for param, path in plan.rooted.get(name, ()):
            for value in path.evaluate(resource):
                _emit(rows, param, value)
    for param, path in plan.unrooted:
        for value in path.evaluate(resource):
            _emit(rows, param, value)
    return rows


def _emit(rows: dict[str, list[Row]], param: SearchParam, value: Any) -> None:
    kind = param.kind
    if param.code == "deceased" and isinstance(value, str):
        value = True  # Patient.deceasedDateTime means deceased=true (R4 search semantics)
    extractor = _EXTRACTORS[param.type]
    for row in extractor(value):
        row["param"] = param.code
        rows[kind].append(row)


def _strings(value: Any) -> list[Row]:
    texts: list[str] = []
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, dict):
        for key in ("family", "text", "city", "district", "state", "postalCode", "country"):
            if isinstance(value.get(key), str):
                texts.append(value[key])
        for key in ("given", "prefix", "suffix", "line"):
            texts.extend(v for v in value.get(key, []) if isinstance(v, str))
        if "value" in value and isinstance(value["value"], str):
            texts.append(value["value"])
    out = []
    for t in texts:
        out.append({"value": normalize(t), "exact": t[:400]})
        if isinstance(value, dict) and value.get("postalCode") == t:
            compact = t.replace(" ", "")  # Dutch postcodes: "9401 AB" == "9401AB"
            if compact != t:
                out.append({"value": normalize(compact), "exact": compact})
    return out


def _tokens(value: Any) -> list[Row]:
    if isinstance(value, bool):
        return [{"system": None, "code": "true" if value else "false", "text": None}]
    if isinstance(value, str | int | float):
        return [{"system": None, "code": str(value)[:300], "text": None}]
    if not isinstance(value, dict):
        return []
    if "coding" in value or ("text" in value and "code" not in value and "value" not in value):
        rows = [r for c in value.get("coding", []) for r in _tokens(c)]
        if value.get("text"):
            rows.append({"system": None, "code": None, "text": normalize(value["text"])})
        return rows
    if "value" in value and "code" not in value:  # Identifier or ContactPoint
        rows = [{"system": value.get("system"), "code": str(value["value"])[:300], "text": None}]
        type_text = (value.get("type") or {}).get("text") if isinstance(value.get("type"), dict) else None
        if type_text:
            rows[0]["text"] = normalize(type_text)
        return rows
    if "code" in value or "system" in value:  # Coding
        return [{"system": value.get("system"), "code": value.get("code"), "text": _text(value.get("display"))}]
    return []


def _text(display: Any) -> str | None:
    return normalize(display) if isinstance(display, str) else None


def _references(value: Any) -> list[Row]:
    if isinstance(value, str):  # canonical: searchable with and without its |version
        base = value.split("|", 1)[0]
        rows = [{"target_type": None, "target_id": None, "url": base[:400]}]
        if base != value:
            rows.append({"target_type": None, "target_id": None, "url": value[:400]})
        return rows
    if not isinstance(value, dict):
        return []
    ref = value.get("reference")
    if not isinstance(ref, str):
        return []  # identifier-only references are not searchable (no :identifier modifier)
    ref = ref.split("/_history/")[0]
    target_type = reference_type(value)
    if ref.startswith(("http://", "https://")):
        return [{"target_type": target_type, "target_id": ref.rstrip("/").split("/")[-1], "url": ref[:400]}]
    parts = ref.split("/")
    if len(parts) == 2:
        return [{"target_type": parts[0], "target_id": parts[1], "url": None}]
    return [{"target_type": None, "target_id": None, "url": ref[:400]}]


def date_range(text: str) -> tuple[datetime, datetime]:
    """The instant range a FHIR date/dateTime/instant covers, as naive UTC (precision decides the width)."""
    text = text.strip()
    if len(text) == 4:
        low = datetime(int(text), 1, 1)
        return low, datetime(low.year + 1, 1, 1) - timedelta(microseconds=1)
    if len(text) == 7:
        y, m = int(text[:4]), int(text[5:7])
        low = datetime(y, m, 1)
        nxt = datetime(y + (m == 12), m % 12 + 1, 1)
        return low, nxt - timedelta(microseconds=1)
    if len(text) == 10:
        low = datetime.fromisoformat(text)
        return low, low + timedelta(days=1) - timedelta(microseconds=1)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    clock = re.split(r"[Z+-]", text.split("T", 1)[1])[0] if "T" in text else ""
    if "." in clock:
        return parsed, parsed
    width = timedelta(minutes=1) if clock.count(":") == 1 else timedelta(seconds=1)
    return parsed, parsed + width - timedelta(microseconds=1)


def _dates(value: Any) -> list[Row]:
    try:
        if isinstance(value, str):
            return [dict(zip(("low", "high"), date_range(value), strict=True))]
        if isinstance(value, dict) and ("start" in value or "end" in value):
            start = date_range(value["start"])[0] if value.get("start") else None
            end = date_range(value["end"])[1] if value.get("end") else None
            return [{"low": start, "high": end}]
    except ValueError:
        return []
    return []


def _numbers(value: Any) -> list[Row]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [{"value": float(value), "system": None, "unit": None}]
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        return [
            {
                "value": float(value["value"]),
                "system": value.get("system"),
                "unit": value.get("code") or value.get("unit"),
            }
        ]
    return []


def _uris(value: Any) -> list[Row]:
    return [{"value": value[:400]}] if isinstance(value, str) else []


_EXTRACTORS = {
    "string": _strings,
    "token": _tokens,
    "reference": _references,
    "date": _dates,
    "number": _numbers,
    "quantity": _numbers,
    "uri": _uris,
}
