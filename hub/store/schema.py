"""SQLAlchemy table definitions: one schema for SQLite and PostgreSQL, no dialect JSON operators.

Resources are stored as their JSON bytes (meta included) so the read path serves bytes without re-serializing.
Every search parameter value is an index row keyed by the resource's integer `rid`, so a search is an indexed
SQL query. Alembic revisions under migrations/ must agree with this module (a test checks it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

RID = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "resources",
    metadata,
    Column("rid", RID, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=False),
    Column("owner_org", String(200), nullable=True),  # "system|value" of the organisation that owns it
    Column("patient_id", String(64), nullable=True),  # Patient compartment (for access and audit)
    Column("medical", Boolean, nullable=False, default=False),  # never shown to the social domain
    UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    Column("seq", RID, primary_key=True, autoincrement=True),  # global change order (ITI-91 sync)
    Column("rid", RID, ForeignKey("resources.rid", ondelete="CASCADE"), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("method", String(8), nullable=False),  # POST | PUT | PATCH | DELETE
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", LargeBinary, nullable=True),
    UniqueConstraint("res_type", "res_id", "version", name="uq_resource_versions_tid"),
    Index("ix_versions_type_seq", "res_type", "seq"),
    Index("ix_versions_updated", "last_updated"),
)


def _index_table(name: str, *value_columns: Column[Any], indexes: list[tuple[str, ...]]) -> Table:
    """Index tables share (rid, res_type, param) and add their own value columns."""
    cols: list[Column[Any]] = [
        Column("rid", RID, ForeignKey("resources.rid", ondelete="CASCADE"), nullable=False),
        Column("res_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *value_columns,
    ]
    table_indexes = [Index(f"ix_{name}_rid", "rid")]
    table_indexes += [Index(f"ix_{name}_{'_'.join(cols_)}", *cols_) for cols_ in indexes]
    return Table(name, metadata, *cols, *table_indexes)


idx_string = _index_table(
    "idx_string",
    Column("value", String(400), nullable=False),  # lower-cased, accents stripped
    Column("exact", String(400), nullable=False),
    indexes=[("res_type", "param", "value")],
)
idx_token = _index_table(
    "idx_token",
    Column("system", String(300), nullable=True),
    Column("code", String(300), nullable=True),
    Column("text", String(400), nullable=True),
    indexes=[("res_type", "param", "code", "system")],
)
idx_reference = _index_table(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(64), nullable=True),
    Column("url", String(400), nullable=True),  # absolute / canonical references
    indexes=[("res_type", "param", "target_id", "target_type"), ("target_type", "target_id")],
)
idx_date = _index_table(
    "idx_date",
    Column("low", DateTime(timezone=False), nullable=True),
    Column("high", DateTime(timezone=False), nullable=True),
    indexes=[("res_type", "param", "low"), ("res_type", "param", "high")],
)
idx_number = _index_table(
    "idx_number",
    Column("value", Float, nullable=False),
    Column("system", String(300), nullable=True),
    Column("unit", String(100), nullable=True),
    indexes=[("res_type", "param", "value")],
)
idx_uri = _index_table(
    "idx_uri",
    Column("value", String(400), nullable=False),
    indexes=[("res_type", "param", "value")],
)

INDEX_TABLES = {
    "string": idx_string,
    "token": idx_token,
    "reference": idx_reference,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_number,
    "uri": idx_uri,
}

search_snapshots = Table(
    "search_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("requester", String(300), nullable=False),  # who may page through it
    Column("query", Text, nullable=False),  # the canonical query string, for the self link
    Column("rids", LargeBinary, nullable=False),  # orjson list of ints, in result order
    Column("total", Integer, nullable=False),
    Index("ix_search_snapshots_created", "created"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", RID, primary_key=True, autoincrement=True),
    Column("task", String(100), nullable=False),
    Column("args", LargeBinary, nullable=False),  # orjson list of strings
    Column("created", DateTime(timezone=False), nullable=False),
    Column("due", DateTime(timezone=False), nullable=False),  # deadlines survive restarts
    Column("dispatched", DateTime(timezone=False), nullable=True),
    Column("completed", DateTime(timezone=False), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("request_id", String(64), nullable=True),
    Index("ix_outbox_pending", "completed", "due"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", RID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("recorded", DateTime(timezone=False), nullable=False),
    Column("patient_id", String(64), nullable=True),
    Column("agent", String(300), nullable=True),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("content", LargeBinary, nullable=False),  # the AuditEvent JSON
    Column("prev_hash", String(64), nullable=True),  # hash chain, sealed in order (tamper evidence)
    Column("hash", String(64), nullable=True),
    Index("ix_audit_patient", "patient_id", "seq"),
    Index("ix_audit_unsealed", "hash", "seq"),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(200), primary_key=True),
    Column("org", String(200), nullable=False),
    Column("role", String(40), nullable=False),
    Column("jwks", LargeBinary, nullable=False),
    Column("name", String(200), nullable=True),
    Column("active", Boolean, nullable=False, default=True),
)

idempotency = Table(
    "ingest_receipts",
    metadata,
    Column("key", String(200), primary_key=True),  # format + message id or content hash
    Column("received", DateTime(timezone=False), nullable=False),
    Column("event_time", DateTime(timezone=False), nullable=True),
    Column("response", LargeBinary, nullable=True),
)
