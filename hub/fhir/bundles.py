"""Bundles: search/history bundles assembled from stored bytes, and batch/transaction processing.

A transaction is one unit of work: entries run in the spec's order (DELETE, POST, PUT/PATCH, GET), `urn:uuid:`
references are rewritten to the ids the hub assigns, conditional entries are honoured, and any failing entry
rolls back everything (the error names the entry).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson

from hub.errors import HubError, Invalid, NotFound, TooLarge
from hub.fhir import interactions
from hub.fhir.outcome import error_outcome
from hub.fhir.search.query import SearchQuery
from hub.fhir.validation import validate
from hub.security.context import AccessContext
from hub.store.repository import StoredResource, WriteResult
from hub.store.search_sql import SearchResult
from hub.store.sql import instant, utcnow
from hub.store.uow import UnitOfWork

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


# ------------------------------------------------------------------------------------------ search / history
def search_bundle(base: str, query: SearchQuery, result: SearchResult, *, shape: Any = None) -> bytes:
    """Searchset Bundle as bytes: stored resource JSON is spliced in, not re-serialized (unless _elements)."""
    rt = query.resource_type
    links = [{"relation": "self", "url": f"{base}/{rt}?{query.canonical}"}]
    if result.snapshot_id:
        page = f"{base}/{rt}?_getpages={result.snapshot_id}&_count={query.count}"
        if result.has_next:
            links.append({"relation": "next", "url": f"{page}&_getpagesoffset={result.offset + query.count}"})
        if result.offset > 0:
            links.append(
                {"relation": "previous", "url": f"{page}&_getpagesoffset={max(0, result.offset - query.count)}"}
            )
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(utcnow())},
        "type": "searchset",
    }
    if result.total is not None and query.total != "none":
        head["total"] = result.total
    head["link"] = links
    parts = [orjson.dumps(head)[:-1]]
    entries = [_entry(base, s, "match", shape) for s in result.matches]
    entries += [_entry(base, s, "include", shape) for s in result.includes]
    if query.unknown:
        oo = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "warning", "code": "not-supported", "diagnostics": f"{msg} (ignored)"}
                for msg in query.unknown
            ],
        }
        entries.append(b'{"resource":' + orjson.dumps(oo) + b',"search":{"mode":"outcome"}}')
    if entries:
        parts.append(b',"entry":[' + b",".join(entries) + b"]")
    parts.append(b"}")
    return b"".join(parts)


def _entry(base: str, stored: StoredResource, mode: str, shape: Any) -> bytes:
    content = stored.content if shape is None else orjson.dumps(shape(orjson.loads(stored.content)))
    full_url = f"{base}/{stored.res_type}/{stored.res_id}".encode()
    return b'{"fullUrl":"' + full_url + b'","resource":' + content + b',"search":{"mode":"' + mode.encode() + b'"}}'


def history_bundle(base: str, self_url: str, rows: list[Any], next_url: str | None) -> bytes:
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(utcnow())},
        "type": "history",
        "link": [{"relation": "self", "url": self_url}],
    }
    if next_url:
        head["link"].append({"relation": "next", "url": next_url})
    entries = []
    for r in rows:
        method = "DELETE" if r.deleted else ("POST" if r.version == 1 else "PUT")
        url = r.res_type if method == "POST" else f"{r.res_type}/{r.res_id}"
        status = "201 Created" if method == "POST" else ("204 No Content" if r.deleted else "200 OK")
        meta = orjson.dumps(
            {
                "request": {"method": method, "url": url},
                "response": {"status": status, "etag": f'W/"{r.version}"', "lastModified": instant(r.last_updated)},
            }
        )[1:-1]
        full_url = f"{base}/{r.res_type}/{r.res_id}".encode()
        body = b'{"fullUrl":"' + full_url + b'",'
        if not r.deleted:
            body += b'"resource":' + r.content + b","
        entries.append(body + meta + b"}")
    out = orjson.dumps(head)[:-1]
    if entries:
        out += b',"entry":[' + b",".join(entries) + b"]"
    return out + b"}"


# ------------------------------------------------------------------------------------------ batch / transaction
class EntryFailed(HubError):
    """Wraps the error of one transaction entry, pointing at it."""

    def __init__(self, index: int, err: HubError) -> None:
        super().__init__(
            f"Bundle.entry[{index}]: {err.diagnostics}",
            expression=[f"Bundle.entry[{index}]", *err.expression],
            issues=err.extra_issues,
        )
        self.status, self.code = err.status, err.code


async def process(
    uow: UnitOfWork, ctx: AccessContext, bundle: Any, base: str, *, prefer_return: str, max_entries: int | None = None
) -> dict[str, Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Invalid("POST to the base must be a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise Invalid(f"Bundle.type must be batch or transaction, not '{kind}'", expression=["Bundle.type"])
    entries = bundle.get("entry", [])
    limit = max_entries or uow.runtime.settings.max_bundle_entries
    if len(entries) > limit:
        raise TooLarge(f"Bundle has {len(entries)} entries; the limit is {limit}")
    for i, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") not in ORDER or not request.get("url"):
            raise Invalid(f"Bundle.entry[{i}].request needs method and url", expression=[f"Bundle.entry[{i}].request"])
    if kind == "transaction":
        responses = await _transaction(uow, ctx, entries, base, prefer_return)
    else:
        responses = await _batch(uow, ctx, entries, base, prefer_return)
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": f"{kind}-response", "entry": responses}


async def _transaction(
    uow: UnitOfWork, ctx: AccessContext, entries: list[dict[str, Any]], base: str, prefer_return: str
) -> list[dict[str, Any]]:
    ids: dict[str, str] = {}  # fullUrl -> "Type/id"
    preset: dict[int, WriteResult] = {}
    order = sorted(range(len(entries)), key=lambda i: ORDER[entries[i]["request"]["method"]])
    # 1. decide the id of every POST/conditional PUT so references can be rewritten before anything is stored
    for i in order:
        entry, request = entries[i], entries[i]["request"]
        method, url = request["method"], request["url"]
        try:
            if method == "POST":
                rt = url.split("?")[0].strip("/")
                if request.get("ifNoneExist"):
                    matches = await interactions.conditional_matches(uow, ctx, rt, request["ifNoneExist"])
                    if len(matches) > 1:
                        raise Invalid(f"ifNoneExist '{request['ifNoneExist']}' matched {len(matches)} resources")
                    if matches:
                        preset[i] = WriteResult(matches[0], created=False, unchanged=True)
                        _remember(ids, entry, f"{rt}/{matches[0].res_id}")
                        continue
                _remember(ids, entry, f"{rt}/{uuid.uuid4()}")
            elif method == "PUT" and "?" in url:
                rt, criteria = url.split("?", 1)
                matches = await interactions.conditional_matches(uow, ctx, rt.strip("/"), criteria)
                if len(matches) > 1:
                    raise Invalid(f"conditional update '{url}' matched {len(matches)} resources")
                own_id = (entry.get("resource") or {}).get("id")
                _remember(ids, entry, f"{rt.strip('/')}/{matches[0].res_id if matches else own_id or uuid.uuid4()}")
            elif method == "PUT":
                _remember(ids, entry, url.strip("/").split("?")[0])
        except HubError as err:
            raise EntryFailed(i, err) from None
    # 2. run the entries in order; any failure aborts the whole unit of work
    results: dict[int, dict[str, Any]] = {}
    for i in order:
        entry = _rewrite(entries[i], ids)
        try:
            if i in preset:
                results[i] = _write_response(preset[i], base, prefer_return, status="200 OK")
                continue
            results[i] = await _run_entry(uow, ctx, entry, base, prefer_return, ids, entries[i])
        except HubError as err:
            raise EntryFailed(i, err) from None
    return [results[i] for i in range(len(entries))]


async def _batch(
    uow: UnitOfWork, ctx: AccessContext, entries: list[dict[str, Any]], base: str, prefer_return: str
) -> list[dict[str, Any]]:
    """Batch: entries are independent; each runs in a savepoint so one failure leaves the others standing."""
    results: dict[int, dict[str, Any]] = {}
    for i in sorted(range(len(entries)), key=lambda i: ORDER[entries[i]["request"]["method"]]):
        savepoint = await uow.conn.begin_nested()
        try:
            results[i] = await _run_entry(uow, ctx, entries[i], base, prefer_return, {}, entries[i])
            await savepoint.commit()
        except HubError as err:
            await savepoint.rollback()
            results[i] = {"response": {"status": f"{err.status}", "outcome": error_outcome(err)}}
    return [results[i] for i in range(len(entries))]


def _remember(ids: dict[str, str], entry: dict[str, Any], ref: str) -> None:
    full_url = entry.get("fullUrl")
    if full_url:
        ids[full_url] = ref
    entry.setdefault("_assigned", ref)


def _rewrite(entry: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """Replace urn:uuid / fullUrl references with the assigned Type/id, everywhere in the resource."""
    if not ids or "resource" not in entry:
        return entry

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            ref = out.get("reference")
            if isinstance(ref, str) and ref in ids:
                out["reference"] = ids[ref]
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return {**entry, "resource": walk(entry["resource"])}


async def _run_entry(
    uow: UnitOfWork,
    ctx: AccessContext,
    entry: dict[str, Any],
    base: str,
    prefer_return: str,
    ids: dict[str, str],
    original: dict[str, Any],
) -> dict[str, Any]:
    request = entry["request"]
    method, url = request["method"], request["url"].strip("/")
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    if_match = interactions.parse_etag(request.get("ifMatch"))
    if method == "POST":
        rt = parts[0]
        interactions.check_type(rt)
        resource = validate(entry.get("resource"), uow.runtime.rules, expected_type=rt)
        assigned = original.get("_assigned")
        if assigned:
            result = await uow.resources.create(
                ctx, {**resource, "id": assigned.split("/")[1]}, res_id=assigned.split("/")[1], validated=True
            )
        else:
            result = await interactions.create(uow, ctx, rt, resource, if_none_exist=request.get("ifNoneExist"))
        return _write_response(result, base, prefer_return, status="201 Created" if result.created else "200 OK")
    if method == "PUT":
        rt = parts[0]
        interactions.check_type(rt)
        body: Any = entry.get("resource")
        assigned = original.get("_assigned")
        if query and assigned:
            body = {**(body or {}), "id": assigned.split("/")[1]}
            result = await interactions.update(uow, ctx, rt, assigned.split("/")[1], body, if_match=if_match)
        elif query:
            result = await interactions.conditional_update(uow, ctx, rt, query, body, if_match=if_match)
        else:
            if len(parts) != 2:
                raise Invalid(f"PUT url must be Type/id or Type?criteria, not '{url}'")
            result = await interactions.update(uow, ctx, rt, parts[1], body, if_match=if_match)
        return _write_response(result, base, prefer_return, status="201 Created" if result.created else "200 OK")
    if method == "PATCH":
        if len(parts) != 2:
            raise Invalid(f"PATCH url must be Type/id, not '{url}'")
        body = entry.get("resource")
        ops = _patch_ops(body)
        result = await interactions.patch(uow, ctx, parts[0], parts[1], ops, if_match=if_match)
        return _write_response(result, base, prefer_return, status="200 OK")
    if method == "DELETE":
        if len(parts) == 2:
            await uow.resources.delete(ctx, parts[0], parts[1], if_match=if_match)
        elif query:
            matches = await interactions.conditional_matches(uow, ctx, parts[0], query)
            if len(matches) > 1:
                raise Invalid(f"conditional delete '{url}' matched {len(matches)} resources")
            for m in matches:
                await uow.resources.delete(ctx, m.res_type, m.res_id)
        else:
            raise Invalid(f"DELETE url must be Type/id or Type?criteria, not '{url}'")
        return {"response": {"status": "204 No Content"}}
    # GET / HEAD
    if len(parts) == 2:
        stored = await uow.resources.read_raw(ctx, parts[0], parts[1])
        return {
            "resource": orjson.loads(stored.content),
            "response": {"status": "200 OK", "etag": stored.etag, "lastModified": instant(stored.last_updated)},
        }
    if len(parts) == 1:
        outcome = await interactions.search(uow, ctx, parts[0], parse_qsl(query, keep_blank_values=True), strict=False)
        return {
            "resource": orjson.loads(search_bundle(base, outcome.query, outcome.result)),
            "response": {"status": "200 OK"},
        }
    raise NotFound(f"Cannot GET '{url}' inside a Bundle")


def _patch_ops(body: Any) -> Any:
    """Bundle PATCH entries carry a Binary (base64 JSON Patch) or a Parameters resource; accept both."""
    import base64

    if isinstance(body, dict) and body.get("resourceType") == "Binary":
        return orjson.loads(base64.b64decode(body.get("data", "")))
    if isinstance(body, list):
        return body
    raise Invalid("PATCH entries must carry a Binary with a JSON Patch document")


def _write_response(result: WriteResult, base: str, prefer_return: str, *, status: str) -> dict[str, Any]:
    stored = result.stored
    response: dict[str, Any] = {
        "status": status,
        "location": f"{base}/{stored.location}",
        "etag": stored.etag,
        "lastModified": instant(stored.last_updated),
    }
    entry: dict[str, Any] = {"fullUrl": f"{base}/{stored.res_type}/{stored.res_id}", "response": response}
    if prefer_return == "representation":
        entry["resource"] = orjson.loads(stored.content)
    elif prefer_return == "OperationOutcome":
        response["outcome"] = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": status}],
        }
    return entry
