"""Wiring of hub/ingest into the core (listed in hub/domains.py INSTALL_MODULES): the write hook that tells a
delivery which versions it wrote (for its Provenance), and the MLLP listener, started with the app when the
deployment sets `HUB_MLLP_PORT` (`Settings.mllp_port`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.ingest import provenance
from hub.ingest.mllp import MllpListener, configured_address

if TYPE_CHECKING:
    from hub.runtime import Runtime

LISTENER = "ingest.mllp_listener"
NO_LISTENER = "ingest.no_listener"  # set by commands (hub ingest) that start a runtime but serve nothing


def install(runtime: Runtime) -> None:
    runtime.hooks.add(provenance.note_write)


async def on_startup(runtime: Runtime) -> None:
    """Start the MLLP listener when configured; the process's event loop owns it until it ends."""
    address = configured_address(runtime.settings)
    if address is None or runtime.extras.get(NO_LISTENER) or LISTENER in runtime.extras:
        return
    runtime.extras[LISTENER] = await MllpListener(runtime, *address).start()


async def on_shutdown(runtime: Runtime) -> None:
    """Stop accepting MLLP connections (needs a shutdown call from the app lifespan; see the ingest README)."""
    listener = runtime.extras.pop(LISTENER, None)
    if listener is not None:
        await listener.close()
