"""Availability bookkeeping beside the FHIR resources.

- `availability_sources`: what each source (one bed Location, or one HealthcareService reporting counts) adds to
  the aggregate right now, with the key it was counted under. A write compares the new contribution with this row
  (not with a recomputation), so the aggregate is always the sum of these rows; `version` is the compare-and-set
  anchor that serialises two writers of one source.
- `availability_rows`: the aggregate per provider (Organization id) × care product × region. Changed only by
  atomic increments (`SET free = free + :d`) in the writing transaction; `seq` grows with every change and orders
  cache updates and events.
- `availability_totals`: the same per region × care product (regional totals), maintained the same way.
- `availability_providers`: name, identifiers and address of each Organization (for display, ownership checks
  and the region of sources without an address of their own).
- `availability_snapshots`: aggregate rows over time (periodic, for changed rows only) for the occupancy report.
- `availability_subscriptions`: R4 Subscriptions whose criteria select availability changes.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, String, Table, Text

from hub.store.schema import RID, metadata

SEQ = BigInteger().with_variant(Integer(), "sqlite")


def _counts() -> list[Column]:  # type: ignore[type-arg]
    return [Column(name, Integer, nullable=False, default=0)
            for name in ("total", "free", "occupied", "reserved", "unavailable")]


availability_sources = Table(
    "availability_sources",
    metadata,
    Column("source", String(100), primary_key=True),  # "Location/<id>" (a bed) | "HealthcareService/<id>"
    Column("kind", String(8), nullable=False),  # bed | service
    Column("counted", Boolean, nullable=False),  # False: known, but not in the aggregate (no product/org yet)
    Column("org_id", String(64), nullable=True),
    Column("product", String(40), nullable=True),
    Column("region", String(80), nullable=True),
    Column("postcode", String(10), nullable=True),
    Column("city", String(80), nullable=True),
    Column("parent_id", String(64), nullable=True),  # bed: Location.partOf (ward or room)
    Column("via_service", String(64), nullable=True),  # HealthcareService the product (or the counts) came from
    Column("address_via_org", Boolean, nullable=False, default=False),  # no own address: placed by the Organization
    Column("status", String(16), nullable=True),  # bed: v2-0116 code or "reserved"
    Column("name", String(200), nullable=True),
    Column("report_id", String(64), nullable=True),  # service: the MeasureReport counted
    Column("reported_at", DateTime(timezone=False), nullable=True),
    *_counts(),
    Column("updated", DateTime(timezone=False), nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_availability_sources_via_service", "via_service"),
    Index("ix_availability_sources_parent_id", "parent_id"),
    Index("ix_availability_sources_org_product", "org_id", "product"),
)

availability_rows = Table(
    "availability_rows",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("product", String(40), primary_key=True),
    Column("region", String(80), primary_key=True),
    Column("org_name", String(200), nullable=True),
    Column("postcode", String(10), nullable=True),
    Column("city", String(80), nullable=True),
    *_counts(),
    Column("last_update", DateTime(timezone=False), nullable=False),  # freshness: last write of any source
    Column("seq", SEQ, nullable=False),
    Column("snapshot_seq", SEQ, nullable=False, default=0),  # seq of the last snapshot taken
    Index("ix_availability_rows_product", "product"),
)

availability_totals = Table(
    "availability_totals",
    metadata,
    Column("region", String(80), primary_key=True),
    Column("product", String(40), primary_key=True),
    *_counts(),
    Column("last_update", DateTime(timezone=False), nullable=False),
    Column("seq", SEQ, nullable=False),
)

availability_providers = Table(
    "availability_providers",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("name", String(200), nullable=True),
    Column("identifiers", Text, nullable=False),  # "system|value" lines (URA, AGB)
    Column("postcode", String(10), nullable=True),
    Column("city", String(80), nullable=True),
    Column("region", String(80), nullable=True),
    Column("updated", DateTime(timezone=False), nullable=False),
)

availability_snapshots = Table(
    "availability_snapshots",
    metadata,
    Column("id", RID, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("product", String(40), nullable=False),
    Column("region", String(80), nullable=False),
    Column("taken_at", DateTime(timezone=False), nullable=False),
    Column("last_update", DateTime(timezone=False), nullable=False),
    *_counts(),
    Column("seq", SEQ, nullable=False),
    Index("ix_availability_snapshots_product_taken", "product", "taken_at"),
    Index("ix_availability_snapshots_org_taken", "org_id", "taken_at"),
)

availability_subscriptions = Table(
    "availability_subscriptions",
    metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("product", String(200), nullable=True),  # comma-separated codes, None = all
    Column("org_id", String(64), nullable=True),
    Column("region", String(80), nullable=True),
    Column("endpoint", String(400), nullable=False),
    Column("payload", String(60), nullable=True),  # channel.payload mime type; None = empty notification
    Column("headers", Text, nullable=False),  # channel.header lines
    Column("active", Boolean, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("delivered", DateTime(timezone=False), nullable=True),
)
