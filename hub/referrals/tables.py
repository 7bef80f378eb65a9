"""Referral bookkeeping beside the FHIR resources: one row per referral (the compare-and-set anchor that
serialises every transition of one referral), one row per offer, count holds, notification deliveries.

The FHIR ServiceRequest/Task/Location resources stay the record a person reads; these rows exist so that the
rules "one transition at a time", "a count is never over-held" and "a delivery is retried, then dead-lettered"
are enforced by the database, on SQLite and PostgreSQL alike (conditional UPDATEs, no SELECT ... FOR UPDATE).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

from hub.store.schema import RID, metadata

referrals = Table(
    "referrals",
    metadata,
    Column("sr_id", String(64), primary_key=True),  # the ServiceRequest being routed
    Column("task_id", String(64), nullable=False),  # the referral Task the requester follows
    Column("state", String(20), nullable=False),  # routing | offered | accepted | needs-person | cancelled
    Column("step", Integer, nullable=False),  # bumped by every transition (compare-and-set)
    Column("offer_id", String(64), nullable=True),  # the open or accepted offer Task
    Column("deadline", DateTime(timezone=False), nullable=True),  # response deadline of the open offer
    Column("offers", Integer, nullable=False),  # offers made so far (cascade length)
    Column("tried", LargeBinary, nullable=False),  # orjson list of provider keys already offered
    Column("requester_org", String(200), nullable=True),  # owner_org of the ServiceRequest
    Column("created", DateTime(timezone=False), nullable=False),
    Column("updated", DateTime(timezone=False), nullable=False),
    Index("ix_referrals_state_deadline", "state", "deadline"),
)

referral_offers = Table(
    "referral_offers",
    metadata,
    Column("offer_id", String(64), primary_key=True),  # the offer Task id
    Column("sr_id", String(64), nullable=False),
    Column("provider", String(100), nullable=False),  # "Organization/<id>"
    Column("kind", String(10), nullable=False),  # bed | count
    Column("bed_id", String(64), nullable=True),  # the reserved bed Location (kind bed)
    Column("service_id", String(64), nullable=True),  # the HealthcareService held (kind count)
    Column("state", String(20), nullable=False),  # open | accepted | declined | expired | cancelled
    Column("created", DateTime(timezone=False), nullable=False),
    Column("deadline", DateTime(timezone=False), nullable=False),
    Index("ix_referral_offers_provider_created", "provider", "created"),
    Index("ix_referral_offers_state_deadline", "state", "deadline"),
    Index("ix_referral_offers_sr_id", "sr_id"),
)

referral_capacity = Table(
    "referral_capacity",
    metadata,
    Column("service_id", String(64), primary_key=True),  # HealthcareService that publishes counts only
    Column("report", String(100), nullable=False),  # "MeasureReport/<id>/_history/<v>" the count came from
    Column("free", Integer, nullable=False),  # numTotBedsAvail of that report
    Column("held", Integer, nullable=False),  # open count offers; `UPDATE ... WHERE held < free`
    Column("updated", DateTime(timezone=False), nullable=False),
)

referral_deliveries = Table(
    "referral_deliveries",
    metadata,
    Column("id", RID, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("task_version", Integer, nullable=False),
    Column("status", String(12), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", DateTime(timezone=False), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("delivered", DateTime(timezone=False), nullable=True),
    UniqueConstraint("subscription_id", "task_id", "task_version", name="uq_referral_deliveries_event"),
    Index("ix_referral_deliveries_status", "status", "next_attempt"),
)

webhook_secrets = Table(
    "referral_webhook_secrets",
    metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("secret", String(200), nullable=False),  # HMAC-SHA256 key; write-only through $set-secret
    Column("updated", DateTime(timezone=False), nullable=False),
)
