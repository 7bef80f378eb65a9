"""Thin task shells (registered through hub/domains.py TASK_MODULES). Ids only; idempotent."""

from __future__ import annotations

import logging

from hub.availability import history, subscriptions
from hub.runtime import Runtime
from hub.worker import task, utcnow

log = logging.getLogger("hub.availability.tasks")


@task("availability.take_snapshots", every=300)
async def take_snapshots(runtime: Runtime) -> None:
    """Every 5 minutes: snapshot the aggregate rows that changed (occupancy over time)."""
    taken = await history.take_snapshots(runtime, utcnow())
    if taken:
        log.info("availability: %d snapshot rows", taken)


@task(subscriptions.DELIVER)
async def deliver_change(runtime: Runtime, subscription_id: str, org_id: str, product: str, region: str,
                         attempt: str) -> None:
    """POST the current figure of one provider × product × region to one availability Subscription."""
    await subscriptions.deliver(runtime, subscription_id, org_id, product, region, int(attempt))
