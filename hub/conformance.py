"""Publishes profiles/ (CodeSystems, ValueSets, SearchParameters, ...) as ordinary stored resources at start.

So they are served, searched and versioned like everything else; unchanged files leave the store untouched.
"""

from __future__ import annotations

from hub.runtime import Runtime
from hub.security.context import AccessContext


async def publish(runtime: Runtime) -> int:
    ctx = AccessContext.system("publish profiles/ at start-up")
    changed = 0
    async with runtime.uow() as uow:
        for resource in runtime.conformance:
            if "id" not in resource:
                continue
            result = await uow.resources.update(ctx, resource)
            changed += 0 if result.unchanged else 1
    return changed
