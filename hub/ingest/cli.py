"""`hub ingest` and `hub mllp`: the same ingest service from the command line, without HTTP.

`hub ingest --format FMT [--sender SYSTEM|VALUE] [--role ROLE] FILE...` stores each file in its own unit of
work and prints its outcome. The files are stored *as the sender*: with `--role` (or the role configured for
the sender) the CLI acts as that organisation in that role (its access rules apply, the resources are owned by
it, the audit names `hub-cli`); without any role it uses an explicit system context (`AccessContext.system`)
that writes on the sender's behalf. The exit status is 1 when any file was refused, 2 on bad arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hub.config import Settings
from hub.errors import HubError
from hub.ingest import hooks, senders, service
from hub.ingest.mllp import MllpListener
from hub.security.context import ROLES, AccessContext

if TYPE_CHECKING:
    from hub.runtime import Runtime


def ingest_files(
    settings: Settings,
    fmt: str,
    files: Sequence[str],
    *,
    sender: str | None,
    role: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Entry point of `hub ingest`: 0 when every file was stored (or was a duplicate), 1 otherwise."""
    if role is not None and role not in ROLES:
        print(f"unknown role '{role}'; roles: {', '.join(ROLES)}", file=sys.stderr)
        return 2
    if sender is not None and "|" not in sender:
        print(f"--sender must be SYSTEM|VALUE, not '{sender}'", file=sys.stderr)
        return 2
    return asyncio.run(_ingest_files(settings, fmt, files, sender, role, out))


async def _ingest_files(
    settings: Settings, fmt: str, files: Sequence[str], sender: str | None, role: str | None, out: TextIO
) -> int:
    from hub.app import startup
    from hub.runtime import Runtime

    runtime = Runtime.build(settings)
    runtime.extras[hooks.NO_LISTENER] = True
    failed = 0
    try:
        if settings.is_sqlite:
            await startup(runtime)  # embedded: create / migrate the database file
        async with runtime.engine.connect() as conn:
            configured = await senders.load(conn, sender)
        ctx = _context(sender, role or (configured.role if configured else None))
        for name in files:
            failed += not await _one(runtime, fmt, Path(name), ctx, sender, configured, out)
        drain = getattr(runtime.dispatcher, "drain", None)
        if drain is not None:  # in-process tasks the writes enqueued (the outbox keeps them otherwise)
            await drain(10)
    finally:
        await runtime.close()
    return 1 if failed else 0


def _context(sender: str | None, role: str | None) -> AccessContext:
    if role is None:
        return AccessContext.system(f"hub ingest on behalf of {sender or 'an unnamed sender'}")
    return AccessContext(role=role, org=sender, subject="hub-cli", reason="hub ingest (command line)")


async def _one(
    runtime: Runtime,
    fmt: str,
    path: Path,
    ctx: AccessContext,
    sender: str | None,
    configured: senders.Sender | None,
    out: TextIO,
) -> bool:
    try:
        body = path.read_bytes()
    except OSError as exc:
        print(f"{path}: ERROR cannot read: {exc.strerror or exc}", file=out)
        return False
    delivery = service.Delivery(fmt, body, ctx, "cli", datetime.now(UTC), sender=sender, settings=configured)
    try:
        result = await service.ingest(runtime, delivery)
    except HubError as err:
        print(f"{path}: ERROR {err.status} {err.code}: {err.diagnostics}", file=out)
        for extra in err.extra_issues:
            print(f"  {extra.get('severity')}: {extra.get('diagnostics')}", file=out)
        return False
    label = "DUPLICATE" if result.duplicate else "OK"
    print(f"{path}: {label} {result.status} {result.summary}", file=out)
    for item in result.outcome["issue"][1:]:
        if item.get("severity") != "information" or item.get("code") != "informational":
            print(f"  {item.get('severity')}: {item.get('diagnostics')}", file=out)
    return True


def serve_mllp(settings: Settings, host: str, port: int) -> int:
    """Entry point of `hub mllp`: run only the MLLP listener (no HTTP) until interrupted."""

    async def run() -> None:
        from hub.app import startup
        from hub.runtime import Runtime

        runtime = Runtime.build(settings)
        runtime.extras[hooks.NO_LISTENER] = True
        try:
            if settings.is_sqlite:
                await startup(runtime)
            listener = await MllpListener(runtime, host, port).start()
            print(f"MLLP listener on {host}:{listener.port} (Ctrl-C to stop)", flush=True)
            await runtime.dispatcher.start()
            try:
                await asyncio.Event().wait()
            finally:
                await listener.close()
        finally:
            await runtime.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
