"""Everything a batch of bed status changes reads before it decides, in one statement.

Why: a batch read the beds (locked), then their source rows, then their providers — three round trips, two of
them through SQLAlchemy Core with an IN list compiled afresh for every batch size (~1.2 ms of a 16-bed batch each
on PostgreSQL). Here one driver-level query joins them: the bed rows are locked as `current_many` locks them (in
id order, `FOR UPDATE OF` the resource rows only), and the source and provider rows come back typed exactly as
Core returns them (the column types' result processors), so the aggregate code cannot tell the difference.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect

from hub.availability.tables import availability_providers, availability_sources
from hub.store.fast import STORED_SELECT, stored_from_row
from hub.store.repository import StoredResource

SOURCE_COLUMNS: list[str] = [column.name for column in availability_sources.c]
PROVIDER_COLUMNS: list[str] = [column.name for column in availability_providers.c]
SourceRow = namedtuple("SourceRow", SOURCE_COLUMNS)  # type: ignore[misc]
ProviderRow = namedtuple("ProviderRow", PROVIDER_COLUMNS)  # type: ignore[misc]
_STORED = [f"r.{name.strip()}" for name in STORED_SELECT.split(",")]
_SQL = (f"SELECT r.res_id, {', '.join(_STORED)}, "
        + ", ".join(f"s.{c}" for c in SOURCE_COLUMNS) + ", " + ", ".join(f"p.{c}" for c in PROVIDER_COLUMNS)
        + " FROM resources r LEFT JOIN availability_sources s ON s.source = 'Location/' || r.res_id"
          " LEFT JOIN availability_providers p ON p.org_id = s.org_id"
          " WHERE r.res_type = 'Location' AND r.res_id {0} ORDER BY r.res_id{1}")


@dataclass
class BedRows:
    beds: dict[str, StoredResource]  # by bed id (found ones only)
    sources: dict[str, Any]  # by source ("Location/<id>"): the stored availability source rows
    providers: list[Any]  # the provider rows of those sources' organisations


async def read_beds(uow: Any, bed_ids: list[str]) -> BedRows:
    """The beds (locked for this transaction on PostgreSQL), their source rows and their providers."""
    ids = sorted(set(bed_ids))
    conn = uow.conn
    if conn.dialect.name == "sqlite":
        rows = await uow.rows(_SQL.format(f"IN ({', '.join('?' for _ in ids)})", ""), ids)
    else:
        rows = await uow.rows(_SQL.format("= ANY($1::text[])", " FOR UPDATE OF r"), [ids])
    source_of, provider_of = _converter(availability_sources, conn.dialect), _converter(availability_providers,
                                                                                        conn.dialect)
    found = BedRows({}, {}, [])
    stored_end, source_end = 1 + len(_STORED), 1 + len(_STORED) + len(SOURCE_COLUMNS)
    providers: set[Any] = set()
    for row in rows:
        values = tuple(row)
        bed_id = str(values[0])
        found.beds[bed_id] = stored_from_row("Location", bed_id, values[1:stored_end])
        source = values[stored_end:source_end]
        if source[0] is not None:
            found.sources[source[0]] = SourceRow(*source_of(source))
            provider = values[source_end:]
            if provider[0] is not None and provider[0] not in providers:  # beds of one provider: its row once
                providers.add(provider[0])
                found.providers.append(ProviderRow(*provider_of(provider)))
    return found


_converters: dict[tuple[str, str], Callable[[tuple[Any, ...]], list[Any]]] = {}


def _converter(table: Table, dialect: Dialect) -> Callable[[tuple[Any, ...]], list[Any]]:
    """Driver values -> the values Core would return (e.g. SQLite's text timestamps and 0/1 booleans)."""
    key = (table.name, dialect.name)
    found = _converters.get(key)
    if found is None:
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in table.c]

        def convert(values: tuple[Any, ...]) -> list[Any]:
            return [v if p is None or v is None else p(v) for p, v in zip(processors, values, strict=True)]

        found = _converters[key] = convert
    return found
