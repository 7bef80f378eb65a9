"""Ingest bookkeeping beside the FHIR resources (receipts live in the core table `ingest_receipts`).

- `ingest_senders`: per-sender configuration an admin sets (`PUT /ingest/config/{sender}`): the role a sender
  acts in over MLLP and the CLI, its kind for the adapters, and the adapter settings (e.g. HL7 ward -> care
  product). `ingest_hl7_sources` maps MSH-3/MSH-4 of an MLLP connection to such a sender.
- `ingest_clock`: the event time of the last applied update per source-owned object (the conditional PUT url,
  e.g. one bed Location or one Encounter), so an older HL7 event never overwrites newer state.
- `ingest_hl7_beds`: the beds an HL7 feed reports (owner AGB, care product, last status), so a spreadsheet
  count for a provider x care product with a live HL7 feed is recognised and not applied (HL7 wins).
- `ingest_conflicts`: one row per overridden spreadsheet count (what the sheet said, what HL7 says).

All writes are compare-and-set UPDATEs or plain INSERTs (no SELECT ... FOR UPDATE), so PostgreSQL and SQLite
behave alike.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table, Text

from hub.store.schema import RID, metadata

ingest_senders = Table(
    "ingest_senders",
    metadata,
    Column("sender", String(200), primary_key=True),  # "system|value" of the sending organisation
    Column("role", String(40), nullable=False),  # role it acts in over MLLP / CLI (HTTP: the token's role)
    Column("kind", String(40), nullable=True),  # SourceMeta.sender_kind (default: the role)
    Column("name", String(200), nullable=True),
    Column("config", LargeBinary, nullable=False),  # orjson object: SourceMeta.config
    Column("updated", DateTime(timezone=False), nullable=False),
)

ingest_hl7_sources = Table(
    "ingest_hl7_sources",
    metadata,
    Column("application", String(100), primary_key=True),  # MSH-3 namespace id, "*" = any
    Column("facility", String(100), primary_key=True),  # MSH-4 namespace id, "*" = any
    Column("sender", String(200), nullable=False),
    Index("ix_ingest_hl7_sources_sender", "sender"),
)

ingest_clock = Table(
    "ingest_clock",
    metadata,
    Column("key_hash", String(64), primary_key=True),  # sha256 of object_key
    Column("object_key", Text, nullable=False),  # the PUT url, e.g. "Location?identifier=<bed system>|<value>"
    Column("event_time", DateTime(timezone=False), nullable=False),  # UTC, of the last applied update
    Column("source", String(200), nullable=False),  # receipt key of the message that applied it
    Column("updated", DateTime(timezone=False), nullable=False),
)

ingest_hl7_beds = Table(
    "ingest_hl7_beds",
    metadata,
    Column("bed", String(200), primary_key=True),  # bed identifier value "<owner AGB>/<ward>/<room>-<bed>"
    Column("owner", String(40), nullable=False),  # the provider's AGB
    Column("care_product", String(40), nullable=True),  # from the sender's ward_products; None: unmapped
    Column("status", String(4), nullable=False),  # v2-0116 code
    Column("event_time", DateTime(timezone=False), nullable=False),
    Column("received", DateTime(timezone=False), nullable=False),
    Index("ix_ingest_hl7_beds_owner", "owner", "care_product"),
)

ingest_conflicts = Table(
    "ingest_conflicts",
    metadata,
    Column("id", RID, primary_key=True, autoincrement=True),
    Column("received", DateTime(timezone=False), nullable=False),
    Column("source", String(200), nullable=False),  # receipt key of the overridden delivery
    Column("sender", String(200), nullable=True),
    Column("object_key", Text, nullable=False),  # the MeasureReport identifier that was not applied
    Column("owner", String(40), nullable=False),
    Column("care_product", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Column("beds", Integer, nullable=False),  # HL7-fed beds of that provider x product at the time
    Index("ix_ingest_conflicts_received", "received"),
)
