"""Wiring of the referrals package into the core: the ServiceRequest profile rule, the write hook that starts
(or withdraws) routing in the writing transaction, the Task guard, and the operations the CapabilityStatement
lists. Listed in hub/domains.py INSTALL_MODULES."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.fhir.operations import OperationInfo, register
from hub.referrals import guard, intake, ledger, offers, routing
from hub.referrals.errors import ManagedByReferrals
from hub.referrals.policy import RoutingPolicy, configure, policy_of
from hub.referrals.vocabulary import CARE_PRODUCT, HUB, SERVICE_CHARACTERISTIC, is_referral_task
from hub.runtime import Runtime
from hub.security.context import AccessContext
from hub.store.schema import resources
from hub.worker import utcnow

ENDED = ("revoked", "entered-in-error", "completed")
OPERATIONS = (
    ("accept", ("Task",), "Provider accepts a bed offer: Parameters admission (dateTime), optional location "
                          "(Reference(Location), default the reserved bed). Owner only; If-Match honoured."),
    ("decline", ("Task",), "Provider declines a bed offer: Parameters reason (string). Owner only; the referral "
                           "cascades to the next provider."),
    ("cancel", ("Task",), "Requester or coordination point cancels the referral (referral or offer Task); "
                          "everything held is released."),
    ("route", ("ServiceRequest",), "Coordination point restarts routing of a referral that needs a person."),
    ("set-secret", ("Subscription",), "Set the HMAC-SHA256 secret that signs this Subscription's notifications "
                                      "(X-Hub-Signature-256). Owner only; write-only."),
)


def install(runtime: Runtime) -> None:
    """Register the referral rule, the write hook and the operations; load the region's routing policy."""
    policy_file = getattr(runtime.settings, "referral_policy_file", None)  # Settings field proposed in README
    if policy_file:
        configure(runtime, RoutingPolicy.from_json(Path(policy_file)))
    policy_of(runtime)
    bed, home, traits = _vocabulary(runtime.conformance)
    runtime.rules.register("ServiceRequest", intake.make_rule(bed, home, traits))
    runtime.hooks.add(on_write)
    for name, types, doc in OPERATIONS:
        register(OperationInfo(name, f"{HUB}/OperationDefinition/{types[0]}-{name}", types, doc))


def _vocabulary(conformance: list[dict[str, Any]]) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Bed and home care products (care-product property `setting`) and the known service characteristics."""
    bed: set[str] = set()
    home: set[str] = set()
    traits: set[str] = set()
    for resource in conformance:
        if resource.get("resourceType") != "CodeSystem":
            continue
        if resource.get("url") == CARE_PRODUCT:
            for concept in resource.get("concept") or []:
                setting = next((p.get("valueCode") or p.get("valueString") for p in concept.get("property") or []
                                if p.get("code") == "setting"), "bed")
                (home if setting == "home" else bed).add(concept["code"])
        elif resource.get("url") == SERVICE_CHARACTERISTIC:
            traits |= {c["code"] for c in resource.get("concept") or []}
    return frozenset(bed), frozenset(home), frozenset(traits)


async def on_write(uow: Any, ctx: AccessContext, res_type: str, before: dict[str, Any] | None,
                   after: dict[str, Any] | None) -> None:
    """In the writing transaction: start routing an activated referral, withdraw an ended one, guard Tasks."""
    if res_type == "Task":
        if (is_referral_task(before or {}) or is_referral_task(after or {})) and not guard.task_writes_allowed(uow):
            raise ManagedByReferrals("Referral and offer Tasks change only through $accept, $decline and $cancel")
        return
    if res_type != "ServiceRequest" or after is None or not intake.is_referral(after):
        return
    was_active = (before or {}).get("status") == "active"
    if after.get("status") == "active" and not was_active:
        await routing.start(uow, after, await _owner(uow, str(after["id"])), utcnow())
    elif after.get("status") in ENDED and was_active:
        referral = await ledger.load(uow.conn, str(after["id"]))
        if referral is not None and referral.state in offers.OPEN_STATES:
            await offers.withdraw(uow, referral.sr_id, f"The ServiceRequest was {after['status']}", utcnow(),
                                  revoke_request=False)


async def _owner(uow: Any, sr_id: str) -> str | None:
    """The organisation that stored the ServiceRequest (it may cancel the referral)."""
    stmt = select(resources.c.owner_org).where(resources.c.res_type == "ServiceRequest", resources.c.res_id == sr_id)
    owner: str | None = (await uow.conn.execute(stmt)).scalar()
    return owner
