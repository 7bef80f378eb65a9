"""Idempotency: one receipt per delivered message or file, written in the unit of work that stores it.

The key is format + sender + message id (HL7 MSH-10, iWmo Identificatie, Edifact reference, Bundle.identifier),
else format + sender + the SHA-256 of the bytes (bed overviews). The receipt is inserted *before* the
resources are written: a concurrent second delivery of the same message blocks on the primary key (PostgreSQL)
or on the write lock (SQLite) and then fails with an integrity error, so the caller retries once and finds the
committed receipt. The receipt holds the first answer, which a re-delivery gets back, marked as a duplicate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.store.schema import idempotency as ingest_receipts

MAX_KEY = 200


@dataclass(frozen=True)
class Receipt:
    key: str
    received: datetime
    event_time: datetime | None
    answer: dict[str, Any]  # {"status", "outcome", "sha256", "kind", "messageId"}


def key_for(fmt: str, sender: str | None, message_id: str | None, digest: str) -> str:
    """`format|sender|message id` (or `|sha256:<hex>`); hashed as a whole when longer than the column."""
    key = f"{fmt}|{sender or '-'}|{message_id if message_id else 'sha256:' + digest}"
    if len(key) <= MAX_KEY:
        return key
    return f"{fmt}|sha256:{hashlib.sha256(key.encode()).hexdigest()}"


async def find(conn: AsyncConnection, key: str) -> Receipt | None:
    row = (await conn.execute(select(ingest_receipts).where(ingest_receipts.c.key == key))).first()
    if row is None:
        return None
    return Receipt(row.key, row.received, row.event_time, orjson.loads(row.response) if row.response else {})


async def claim(conn: AsyncConnection, key: str, received: datetime, event_time: datetime | None) -> None:
    """Insert the receipt (no answer yet); a concurrent claim of the same key raises IntegrityError."""
    await conn.execute(insert(ingest_receipts).values(key=key, received=received, event_time=event_time))


async def settle(conn: AsyncConnection, key: str, answer: dict[str, Any]) -> None:
    """Store the answer the first delivery got, in the same transaction as its writes."""
    stmt = update(ingest_receipts).where(ingest_receipts.c.key == key)
    await conn.execute(stmt.values(response=orjson.dumps(answer)))
