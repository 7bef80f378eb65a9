"""Thin task shells for issue 7: seal the NEN 7513 audit chain regularly, so a change is caught early."""

from __future__ import annotations

from hub.runtime import Runtime
from hub.security import audit
from hub.worker import task

SEAL_EVERY_SECONDS = 30.0
BATCH = 5000


@task("audit.seal_chain", every=SEAL_EVERY_SECONDS)
async def seal_chain(runtime: Runtime) -> None:
    """Link new audit entries into the hash chain; idempotent, and safe when two sealers race (see audit.seal)."""
    async with runtime.engine.begin() as conn:
        while await audit.seal(conn, limit=BATCH) == BATCH:  # a backlog: keep going in this transaction
            pass
