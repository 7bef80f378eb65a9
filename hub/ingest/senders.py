"""Per-sender configuration: who a delivery comes from, which role it acts in, and the adapter settings.

HTTP deliveries are identified by the bearer token (org + role); MLLP connections by MSH-3/MSH-4, mapped here
to a configured organisation (unknown systems are refused); the CLI names the sender on the command line. In
every case the configured adapter settings (e.g. `ward_products`) go into `SourceMeta.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, Forbidden, NotFound
from hub.ingest.errors import SenderConfigInvalid
from hub.ingest.schemas import SenderSettings
from hub.ingest.tables import ingest_hl7_sources, ingest_senders
from hub.security.context import AccessContext
from hub.store.uow import UnitOfWork

CARE_PRODUCT = "https://zorgnet-hub.nl/fhir/CodeSystem/care-product"
ANY = "*"


@dataclass(frozen=True)
class Sender:
    """A configured sending organisation ("system|value") and what the adapters need to know about it."""

    sender: str
    role: str
    kind: str | None = None
    name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    hl7_sources: tuple[tuple[str, str], ...] = ()

    def context(self, *, subject: str, reason: str, client_address: str | None = None) -> AccessContext:
        """The sender acting through a channel without a token (MLLP, CLI): its own org and role, audited."""
        return AccessContext(
            role=self.role,
            org=self.sender,
            subject=subject,
            name=self.name,
            client_address=client_address,
            reason=reason,
        )

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"sender": self.sender, "role": self.role}
        body |= {"kind": self.kind} if self.kind else {}
        body |= {"name": self.name} if self.name else {}
        body["hl7Sources"] = [{"application": a, "facility": f} for a, f in self.hl7_sources]
        body["config"] = self.config
        return body


def from_settings(sender: str, body: SenderSettings, care_products: frozenset[str]) -> Sender:
    """Checked configuration -> Sender; care-product codes must exist in the hub's CodeSystem."""
    system, _, value = sender.partition("|")
    if not system or not value:
        raise SenderConfigInvalid(f"sender '{sender}' must be 'system|value' (e.g. an AGB or URA identifier)")
    config = body.config.as_meta_config()
    for key in ("ward_products", "zorgdomein_products"):
        unknown = sorted({code for code in config.get(key, {}).values() if code not in care_products})
        if care_products and unknown:
            raise SenderConfigInvalid(
                f"config.{key}: unknown care product(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(care_products))}",
                expression=[f"config.{key}"],
            )
    sources = tuple(dict.fromkeys((s.application, s.facility) for s in body.hl7_sources))
    return Sender(sender, body.role, body.kind, body.name, config, sources)


def known_care_products(conformance: list[dict[str, Any]]) -> frozenset[str]:
    """Codes of the hub's care-product CodeSystem (profiles/), to check ward/product maps against."""
    for resource in conformance:
        if resource.get("resourceType") == "CodeSystem" and resource.get("url") == CARE_PRODUCT:
            return frozenset(c["code"] for c in resource.get("concept") or [] if "code" in c)
    return frozenset()


async def load(conn: AsyncConnection, sender: str | None) -> Sender | None:
    if not sender:
        return None
    row = (await conn.execute(select(ingest_senders).where(ingest_senders.c.sender == sender))).first()
    if row is None:
        return None
    stmt = select(ingest_hl7_sources.c.application, ingest_hl7_sources.c.facility).where(
        ingest_hl7_sources.c.sender == sender
    )
    sources = tuple(sorted((r.application, r.facility) for r in (await conn.execute(stmt)).all()))
    return Sender(row.sender, row.role, row.kind, row.name, orjson.loads(row.config), sources)


async def load_all(conn: AsyncConnection) -> list[Sender]:
    names = (await conn.execute(select(ingest_senders.c.sender).order_by(ingest_senders.c.sender))).scalars()
    found = [await load(conn, name) for name in list(names)]
    return [s for s in found if s is not None]


async def save(conn: AsyncConnection, sender: Sender, now: datetime) -> None:
    """Replace the sender's configuration; an MSH-3/MSH-4 pair already mapped to another sender is a 409."""
    for application, facility in sender.hl7_sources:
        stmt = select(ingest_hl7_sources.c.sender).where(
            ingest_hl7_sources.c.application == application, ingest_hl7_sources.c.facility == facility
        )
        owner = (await conn.execute(stmt)).scalar()
        if owner is not None and owner != sender.sender:
            raise Conflict(f"HL7 source {application}/{facility} is already mapped to {owner}")
    values = {
        "role": sender.role,
        "kind": sender.kind,
        "name": sender.name,
        "config": orjson.dumps(sender.config),
        "updated": now,
    }
    changed = await conn.execute(update(ingest_senders).where(ingest_senders.c.sender == sender.sender).values(values))
    if changed.rowcount == 0:
        await conn.execute(insert(ingest_senders).values(sender=sender.sender, **values))
    await conn.execute(delete(ingest_hl7_sources).where(ingest_hl7_sources.c.sender == sender.sender))
    if sender.hl7_sources:
        await conn.execute(
            insert(ingest_hl7_sources),
            [{"application": a, "facility": f, "sender": sender.sender} for a, f in sender.hl7_sources],
        )


async def for_hl7_source(conn: AsyncConnection, application: str, facility: str) -> Sender | None:
    """The sender of an MLLP message by MSH-3/MSH-4: exact pair first, then a configured wildcard."""
    for app, fac in ((application, facility), (application, ANY), (ANY, facility)):
        if not app or not fac or (app == ANY and fac == ANY):
            continue
        stmt = select(ingest_hl7_sources.c.sender).where(
            ingest_hl7_sources.c.application == app, ingest_hl7_sources.c.facility == fac
        )
        name = (await conn.execute(stmt)).scalar()
        if name is not None:
            return await load(conn, name)
    return None


def require_admin(ctx: AccessContext) -> None:
    """Sender configuration decides who may feed the hub over MLLP: hub administrators only."""
    if not (ctx.is_system or ctx.role == "admin"):
        raise Forbidden("only a hub administrator may read or change ingest sender configuration")


async def configure(uow: UnitOfWork, ctx: AccessContext, sender: str, body: SenderSettings, now: datetime) -> Sender:
    """PUT /ingest/config/{sender}: check and replace one sender's configuration."""
    require_admin(ctx)
    configured = from_settings(sender, body, known_care_products(uow.runtime.conformance))
    await save(uow.conn, configured, now)
    return configured


async def describe(uow: UnitOfWork, ctx: AccessContext, sender: str | None) -> list[Sender]:
    """GET /ingest/config[/{sender}]: one sender (404 when not configured) or all of them."""
    require_admin(ctx)
    if sender is None:
        return await load_all(uow.conn)
    found = await load(uow.conn, sender)
    if found is None:
        raise NotFound(f"no ingest configuration for sender '{sender}'")
    return [found]
