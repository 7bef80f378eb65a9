"""FHIR RESTful interactions as plain functions over a unit of work: the rules live here, routers stay thin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch
import orjson
from sqlalchemy import select

from hub.errors import Invalid, NotFound, PreconditionFailed, Unprocessable
from hub.fhir.search import query as search_query
from hub.fhir.search.query import SearchQuery
from hub.fhir.validation import is_resource_type, validate
from hub.security.context import AccessContext
from hub.store.repository import StoredResource, WriteResult
from hub.store.schema import resource_versions, resources
from hub.store.search_sql import SearchResult, SqlSearch
from hub.store.uow import UnitOfWork


def check_type(res_type: str) -> None:
    if not is_resource_type(res_type):
        raise NotFound(f"Unknown resource type '{res_type}'")


def parse_etag(value: str | None) -> int | None:
    """`W/"3"` or `"3"` -> 3 (If-Match)."""
    if not value:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Invalid(f"If-Match '{value}' is not a version ETag like W/\"3\"")
    return int(text)


async def create(
    uow: UnitOfWork,
    ctx: AccessContext,
    res_type: str,
    body: Any,
    *,
    if_none_exist: str | None = None,
    validated: bool = False,
) -> WriteResult:
    """POST: validate and store with a new id; with If-None-Exist, return the single match instead (200).
    `validated`: the caller ran `validate` on the body for this type already."""
    resource = body if validated else validate(body, uow.runtime.rules, expected_type=res_type)
    if if_none_exist:
        matches = await conditional_matches(uow, ctx, res_type, if_none_exist)
        if len(matches) == 1:
            return WriteResult(matches[0], created=False, unchanged=True)
        if len(matches) > 1:
            raise PreconditionFailed(f"If-None-Exist '{if_none_exist}' matched {len(matches)} resources")
    resource = {k: v for k, v in resource.items() if k != "id"}
    return await uow.resources.create(ctx, resource, validated=True)


async def update(
    uow: UnitOfWork,
    ctx: AccessContext,
    res_type: str,
    res_id: str,
    body: Any,
    *,
    if_match: int | None,
    validated: bool = False,
) -> WriteResult:
    resource = body if validated else validate(body, uow.runtime.rules, expected_type=res_type)
    if resource.get("id") != res_id:
        raise Invalid(f"Resource id '{resource.get('id')}' must equal the URL id '{res_id}'", expression=["id"])
    return await uow.resources.update(ctx, resource, if_match=if_match, validated=True)


async def conditional_update(
    uow: UnitOfWork, ctx: AccessContext, res_type: str, criteria: str, body: Any, *, if_match: int | None
) -> WriteResult:
    """PUT Type?criteria: no match -> create, one -> update it, several -> 412."""
    resource = validate(body, uow.runtime.rules, expected_type=res_type)
    matches = await conditional_matches(uow, ctx, res_type, criteria)
    if len(matches) > 1:
        raise PreconditionFailed(f"Conditional update '{criteria}' matched {len(matches)} resources")
    if not matches:
        if "id" in resource:
            return await uow.resources.update(ctx, resource, validated=True)
        return await uow.resources.create(ctx, resource, validated=True)
    target = matches[0]
    if resource.get("id") not in (None, target.res_id):
        raise Invalid(f"Resource id '{resource['id']}' differs from the matched {res_type}/{target.res_id}")
    resource = {**resource, "id": target.res_id}
    return await uow.resources.update(ctx, resource, if_match=if_match, validated=True)


async def patch(
    uow: UnitOfWork, ctx: AccessContext, res_type: str, res_id: str, operations: Any, *, if_match: int | None
) -> WriteResult:
    """JSON Patch (RFC 6902) applied to the current version, then validated like any write."""
    if not isinstance(operations, list):
        raise Invalid("A JSON Patch body is an array of operations")
    current = await uow.resources.read_raw(ctx, res_type, res_id, audit_read=False)
    if if_match is not None and if_match != current.version:
        raise PreconditionFailed(f"{res_type}/{res_id} is at version {current.version}, not {if_match}")
    try:
        patched = jsonpatch.apply_patch(orjson.loads(current.content), operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise Unprocessable(f"JSON Patch could not be applied: {exc}") from None
    if patched.get("id") != res_id or patched.get("resourceType") != res_type:
        raise Unprocessable("JSON Patch may not change resourceType or id")
    validate(patched, uow.runtime.rules)
    return await uow.resources.update(ctx, patched, if_match=current.version, method="PATCH", validated=True)


async def conditional_matches(
    uow: UnitOfWork, ctx: AccessContext, res_type: str, criteria: str
) -> list[StoredResource]:
    items = parse_qsl(criteria.split("?", 1)[-1], keep_blank_values=True)
    if not items:
        raise Invalid("Conditional criteria are empty")
    query = search_query.parse(uow.runtime.registry, res_type, items, default_count=2, max_count=2, strict=True)
    query.count = 2
    result = await searcher(uow).run(ctx, query)
    return result.matches


def searcher(uow: UnitOfWork) -> SqlSearch:
    settings = uow.runtime.settings
    expand = uow.runtime.extras.get("expand_valueset")
    return SqlSearch(
        uow.conn,
        uow.runtime.registry,
        expand_valueset=expand,
        max_snapshot=settings.max_snapshot,
        max_include=settings.max_include,
        write=uow.write,
        rows=uow.rows,
    )


@dataclass
class SearchOutcome:
    query: SearchQuery
    result: SearchResult


async def search(
    uow: UnitOfWork, ctx: AccessContext, res_type: str, items: list[tuple[str, str]], *, strict: bool
) -> SearchOutcome:
    settings = uow.runtime.settings
    query = search_query.parse(
        uow.runtime.registry,
        res_type,
        items,
        default_count=settings.default_count,
        max_count=settings.max_count,
        strict=strict,
    )
    params = dict(items)
    engine = searcher(uow)
    if "_getpages" in params:
        offset = int(params.get("_getpagesoffset", "0") or 0)
        result = await engine.page(ctx, query, params["_getpages"], offset)
    else:
        result = await engine.run(ctx, query)
    await uow.resources.audit_access(
        ctx, "search-type", result.matches + result.includes, query=f"{res_type}?{query.canonical}"
    )
    return SearchOutcome(query, result)


@dataclass
class HistoryPage:
    rows: list[Any]
    has_next: bool
    last_seq: int | None


async def history(
    uow: UnitOfWork,
    ctx: AccessContext,
    *,
    res_type: str | None,
    res_id: str | None,
    since: datetime | None,
    count: int,
    before_seq: int | None,
) -> HistoryPage:
    """Versions newest first; paged by the immutable change sequence, so pages never shift (ITI-91 sync)."""
    from hub.security import policy

    stmt = select(resource_versions, resources.c.medical, resources.c.owner_org, resources.c.patient_id).join(
        resources, resources.c.rid == resource_versions.c.rid
    )
    if res_type:
        stmt = stmt.where(resource_versions.c.res_type == res_type)
    if res_id:
        stmt = stmt.where(resource_versions.c.res_id == res_id)
        if (
            await uow.conn.execute(
                select(resources.c.rid).where(resources.c.res_type == res_type, resources.c.res_id == res_id)
            )
        ).first() is None:
            raise NotFound(f"{res_type}/{res_id} is not known")
    if since:
        stmt = stmt.where(resource_versions.c.last_updated >= since)
    if before_seq:
        stmt = stmt.where(resource_versions.c.seq < before_seq)
    stmt = stmt.order_by(resource_versions.c.seq.desc()).limit(count * 4 + 1)
    rows: list[Any] = []
    has_more = False
    for row in (await uow.conn.execute(stmt)).all():
        if len(rows) == count:
            has_more = True
            break
        if policy.may_read_row(ctx, row.res_type, medical=row.medical, owner_org=row.owner_org):
            rows.append(row)
    stored = [
        StoredResource(
            r.res_type,
            r.res_id,
            r.version,
            r.last_updated,
            r.content or b"",
            r.deleted,
            r.owner_org,
            r.patient_id,
            r.medical,
            r.rid,
        )
        for r in rows
        if not r.deleted
    ]
    await uow.resources.audit_access(ctx, "history-type" if not res_id else "history-instance", stored)
    return HistoryPage(rows, has_more, rows[-1].seq if rows else None)
