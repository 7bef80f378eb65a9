"""Where a unit of work's aggregate changes go once they are made (right before COMMIT): to this process's cache
and live stream after the commit, and — for changed figures — to the matching Subscriptions' delivery queue in the
same transaction."""

from __future__ import annotations

from typing import Any

from hub.availability import subscriptions
from hub.availability.aggregate import Changes
from hub.availability.live import live_of
from hub.availability.sources import Key


async def publish(uow: Any, changes: Changes, notify: set[Key]) -> None:
    """`notify`: the rows whose change Subscriptions hear of (a mere confirmation of the same status is not one)."""
    live_of(uow.runtime).schedule(uow, changes)
    await subscriptions.notify(uow, Changes(rows={k: row for k, row in changes.rows.items() if k in notify}))
