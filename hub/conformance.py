"""Publishes profiles/ (CodeSystems, ValueSets, SearchParameters, ...) as ordinary stored resources at start.

So they are served, searched and versioned like everything else. One query finds what changed since the last
start; unchanged files cost nothing more (warm start stays well under the 3 s budget).

Several processes may start at the same moment against a fresh or upgraded database (`hub serve --workers N`,
API hosts behind a load balancer). The loser of a race on one row gets a unique-key or compare-and-set failure;
it rolls back and publishes again, and then finds what the winner wrote.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError

from hub.errors import Conflict, PreconditionFailed
from hub.runtime import Runtime
from hub.security.context import AccessContext
from hub.store.schema import resources


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in resource.items() if k != "meta"}, "meta": meta}


async def publish(runtime: Runtime, attempts: int = 5) -> int:
    for attempt in range(attempts):
        try:
            return await _publish_once(runtime)
        except (IntegrityError, Conflict, PreconditionFailed):
            if attempt == attempts - 1:
                raise
    return 0


async def _publish_once(runtime: Runtime) -> int:
    ctx = AccessContext.system("publish profiles/ at start-up")
    wanted = {(r["resourceType"], r["id"]): r for r in runtime.conformance if "id" in r}
    changed = 0
    async with runtime.uow() as uow:
        keys = sorted(wanted)
        stored: dict[tuple[str, str], bytes] = {}
        for start in range(0, len(keys), 500):
            rows = await uow.conn.execute(
                select(resources.c.res_type, resources.c.res_id, resources.c.content).where(
                    tuple_(resources.c.res_type, resources.c.res_id).in_(keys[start : start + 500]),
                    resources.c.deleted.is_(False),
                )
            )
            stored.update({(t, i): c for t, i, c in rows.all()})
        for key, resource in wanted.items():
            current = stored.get(key)
            if current is not None and _comparable(orjson.loads(current)) == _comparable(resource):
                continue
            result = await uow.resources.update(ctx, resource)
            changed += 0 if result.unchanged else 1
    return changed
