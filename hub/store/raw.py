"""The write path's fixed-shape statements through the database driver, inside the unit of work's transaction.

Why: every FHIR create/update writes the same shapes (a resource row, a version row, index rows in up to six
tables). Through SQLAlchemy Core each statement costs ~0.1 ms of Python, and on PostgreSQL one round trip
each, so the statements alone were most of a create. Here:
- PostgreSQL: one prepared statement per create/update — data-modifying CTEs insert the resource, its version
  and all index rows (passed as arrays and `unnest`ed) in a single round trip; an update also deletes the old
  index rows in that statement (CTEs share one snapshot, so the delete never sees the rows being inserted).
- SQLite: the statements run straight on the `sqlite3` connection of the in-loop dialect (microseconds each).
Both run on the unit of work's own connection, inside its transaction, so hooks that write through SQLAlchemy
(availability, referrals) commit or roll back together with these rows. Values are converted with the bind
processors of the SQLAlchemy column types, so a row written here reads back exactly as one written by Core.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Table, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.util import await_only

from hub.store.fast import STORED_SELECT, stored_from_row
from hub.store.repository import StoredResource
from hub.store.schema import INDEX_TABLES, resource_versions, resources

Row = dict[str, Any]
# rid, expected version, row, method, index rows, the search parameters those rows replace (comma-separated;
# None: all of the resource's index rows are replaced), and the index kinds those parameters live in (None: all)
Update = tuple[int, int, Row, str, dict[str, list[Row]], str | None, frozenset[str] | None]
KINDS = ("string", "token", "reference", "date", "number", "uri")
_RESOURCE_COLUMNS = ("res_type", "res_id", "version", "last_updated", "deleted", "content", "owner_org",
                     "patient_id", "medical")
_VERSION_COLUMNS = ("rid", "res_type", "res_id", "version", "last_updated", "method", "deleted", "content")


# The value columns of each index table (after rid, res_type): param, then its own.
INDEX_COLUMNS = {kind: tuple(c.name for c in INDEX_TABLES[kind].columns if c.name not in ("rid", "res_type"))
                 for kind in KINDS}


class RawWrites(Protocol):
    async def create(self, row: Row, method: str, index: dict[str, list[Row]]) -> int:
        """Insert resource + version + index rows; the new rid."""

    async def update(self, rid: int, expected_version: int, row: Row, method: str,
                     index: dict[str, list[Row]]) -> bool:
        """Compare-and-set the resource row, add the version, replace the index rows; False if the version moved.
        A deletion is an update with `deleted` set and no index rows (its version row keeps no content)."""

    async def update_many(self, updates: list[Update], also: Also | None = None, *,
                          alone: bool = False) -> tuple[int, list[Any]]:
        """Several updates (not deletions) of distinct resources, each as `update` does it: compare-and-set,
        version row, index rows replaced — only those of the named search parameters where an update names them
        (a bed status change replaces its `operational-status` rows and leaves the others alone). How many matched
        their expected version (the rest wrote nothing; with `also`, all or none), and the rows `also` answered
        (PostgreSQL: in the same statement; SQLite: not supported, the caller writes those itself).
        `alone`: nothing else will be written in this unit of work — if nothing ran in it yet either, the
        statement is sent without BEGIN and COMMIT (PostgreSQL: atomic on its own)."""

    async def flush(self, *, final: bool = False) -> None:
        """Send what is buffered (PostgreSQL: creates after the first of a unit of work). `final`: right before
        COMMIT."""

    def discard(self) -> None:
        """The unit of work is over: drop anything buffered."""


# ------------------------------------------------------------------------------------------------ SQLite
class SqliteWrites:
    """Plain statements on the sqlite3 connection (the in-loop dialect: no thread hop, no await)."""

    def __init__(self, connection: Any, statements: SqliteStatements) -> None:
        self.conn = connection
        self.resource, self.version, self.index = statements.resource, statements.version, statements.index
        self._update_sql, self._update_procs = statements.update_sql, statements.update_processors

    async def flush(self, *, final: bool = False) -> None:
        return None  # every statement runs at once (in-process, microseconds)

    def discard(self) -> None:
        return None

    async def create(self, row: Row, method: str, index: dict[str, list[Row]]) -> int:
        try:
            rid = int(self.conn.execute(self.resource.sql, self.resource.values(row)).lastrowid)
            self._version_and_index(rid, row, method, index)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(self.resource.sql, None, exc, sqlite3.Error) from exc
        return rid

    async def update(self, rid: int, expected_version: int, row: Row, method: str,
                     index: dict[str, list[Row]], reindexed: str | None = None) -> bool:
        values = [_apply(p, row[c]) for p, c in zip(self._update_procs, _RESOURCE_COLUMNS[2:], strict=True)]
        params = reindexed.split(",") if reindexed is not None else []
        only = f" AND param IN ({', '.join('?' for _ in params)})" if reindexed is not None else ""
        try:
            if self.conn.execute(self._update_sql, (*values, rid, expected_version)).rowcount != 1:
                return False
            for kind in KINDS:
                self.conn.execute(f"DELETE FROM {INDEX_TABLES[kind].name} WHERE rid = ?{only}", (rid, *params))
            self._version_and_index(rid, row, method, index)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(self._update_sql, None, exc, sqlite3.Error) from exc
        return True

    async def update_many(self, updates: list[Update], also: Also | None = None, *,
                          alone: bool = False) -> tuple[int, list[Any]]:
        if also is not None:
            raise NotImplementedError("SQLite writes run in-process: the caller writes its own rows")
        return sum([await self.update(*u[:6]) for u in updates]), []  # in-process statements: nothing to merge

    def _version_and_index(self, rid: int, row: Row, method: str, index: dict[str, list[Row]]) -> None:
        version = {**row, "rid": rid, "method": method, "content": None if row["deleted"] else row["content"]}
        self.conn.execute(self.version.sql, self.version.values(version))
        for kind in KINDS:
            rows = index.get(kind)
            if rows:
                statement, res_type = self.index[kind], row["res_type"]
                self.conn.executemany(statement.sql, [(rid, res_type, *statement.values(r, skip=2)) for r in rows])


class SqliteStatements:
    """SQL text and bind processors, built once per dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.resource = _Insert(resources, _RESOURCE_COLUMNS, dialect)
        self.version = _Insert(resource_versions, _VERSION_COLUMNS, dialect)
        self.index = {k: _Insert(INDEX_TABLES[k], ("rid", "res_type", *INDEX_COLUMNS[k]), dialect) for k in KINDS}
        names = ", ".join(f"{c} = ?" for c in _RESOURCE_COLUMNS[2:])
        self.update_sql = f"UPDATE resources SET {names} WHERE rid = ? AND version = ?"
        self.update_processors = self.resource.processors[2:]


_sqlite_statements: dict[str, SqliteStatements] = {}


class _Insert:
    def __init__(self, table: Table, columns: tuple[str, ...], dialect: Dialect) -> None:
        self.columns = columns
        self.sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        self.processors = [_processor(table, c, dialect) for c in columns]
        # Most columns need no conversion: values are picked with one C-level map, then the few that do
        # (dates, booleans) are converted in place — a write has ~40 of these values.
        self._converted = {skip: [(i - skip, p) for i, p in enumerate(self.processors) if p is not None and i >= skip]
                           for skip in (0, 2)}

    def values(self, row: Row, *, skip: int = 0) -> list[Any]:
        """The row's values in column order, each through its column type's bind processor; `skip`: leave out
        the first columns (rid, res_type of an index row, filled in by the caller)."""
        out = list(map(row.get, self.columns[skip:] if skip else self.columns))
        for i, processor in self._converted[skip]:
            if out[i] is not None:
                out[i] = processor(out[i])
        return out


def _processor(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    col_type = table.c[column].type
    return col_type.dialect_impl(dialect).bind_processor(dialect)


def _apply(processor: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if processor is None or value is None else processor(value)


# ------------------------------------------------------------------------------------------------ PostgreSQL
_PG_ARRAY_TYPES = {"string": ("text", "text", "text"), "token": ("text", "text", "text", "text"),
                   "reference": ("text", "text", "text", "text"), "date": ("text", "timestamp", "timestamp"),
                   "number": ("text", "float8", "text", "text"), "uri": ("text", "text")}


def _pg_index_ctes(first_param: int, source: str) -> tuple[list[str], int]:
    """One `INSERT ... SELECT FROM <source>, unnest($n::type[], ...)` CTE per index table."""
    ctes, n = [], first_param
    for kind in KINDS:
        cols = INDEX_COLUMNS[kind]
        arrays = ", ".join(f"${n + i}::{t}[]" for i, t in enumerate(_PG_ARRAY_TYPES[kind]))
        n += len(cols)
        alias = ", ".join(f"u{i}" for i in range(len(cols)))
        ctes.append(f"i_{kind} AS (INSERT INTO {INDEX_TABLES[kind].name} (rid, res_type, {', '.join(cols)}) "
                    f"SELECT s.rid, s.res_type, {alias} FROM {source} s, unnest({arrays}) AS u({alias}))")
    return ctes, n


def _pg_create_sql() -> str:
    index, _ = _pg_index_ctes(11, "r")
    return (
        "WITH r AS (INSERT INTO resources (res_type, res_id, version, last_updated, deleted, content, owner_org, "
        "patient_id, medical) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING rid, res_type), "
        "v AS (INSERT INTO resource_versions (rid, res_type, res_id, version, last_updated, method, deleted, "
        "content) SELECT rid, $1, $2, $3, $4, $10, $5, $6 FROM r), "
        + ", ".join(index) + " SELECT rid FROM r"
    )


def _pg_update_sql() -> str:
    # The old index rows go only when the compare-and-set matched (`USING r`): a losing writer must neither
    # delete the winner's rows nor lock them (it would wait on the winner and could close a deadlock cycle).
    deletes = [f"d_{kind} AS (DELETE FROM {INDEX_TABLES[kind].name} x USING r WHERE x.rid = r.rid)" for kind in KINDS]
    return (
        "WITH r AS (UPDATE resources SET version = $3, last_updated = $4, deleted = $5, content = $6, "
        "owner_org = $7, patient_id = $8, medical = $9 WHERE rid = $10 AND version = $11 "
        "AND res_type = $1 AND res_id = $2 RETURNING rid, res_type), "
        "v AS (INSERT INTO resource_versions (rid, res_type, res_id, version, last_updated, method, deleted, "
        "content) SELECT rid, $1, $2, $3, $4, $12, $5, CASE WHEN $5 THEN NULL ELSE $6 END FROM r), "
        + ", ".join(deletes + _pg_index_ctes(13, "r")[0]) + " SELECT count(*) FROM r"
    )


def _pg_create_many_sql() -> str:
    """Many creates with their rids already allocated: every table filled from `unnest`ed arrays, one statement
    (foreign keys are checked at its end, when the resource rows exist)."""
    res = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_PG_RESOURCE_TYPES))
    ctes = [f"r AS (INSERT INTO resources (rid, {', '.join(_RESOURCE_COLUMNS)}) SELECT * FROM unnest({res}))",
            "v AS (INSERT INTO resource_versions (rid, res_type, res_id, version, last_updated, method, deleted, "
            "content) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int4[], $5::timestamp[], "
            "$11::text[], $6::bool[], $7::bytea[]))"]
    n = 12
    for kind in KINDS:
        cols = INDEX_COLUMNS[kind]
        arrays = ", ".join(f"${n + i}::{t}[]" for i, t in enumerate(("int8", "text", *_PG_ARRAY_TYPES[kind])))
        n += len(cols) + 2
        ctes.append(f"i_{kind} AS (INSERT INTO {INDEX_TABLES[kind].name} (rid, res_type, {', '.join(cols)}) "
                    f"SELECT * FROM unnest({arrays}))")
    return "WITH " + ", ".join(ctes) + " SELECT 1"


def _pg_update_many_sql(kinds: tuple[str, ...] = KINDS, also: Also | None = None, *, partial: bool = False) -> str:
    """Many updates in one statement: the compare-and-set UPDATE joins the new rows; version and index rows follow
    only for the rows it matched (`JOIN r`), so a resource whose version moved keeps everything. `kinds`: the
    index tables the updates touch (a bed status change: token only) — the others are left out of the statement
    rather than visited with nothing to do. `partial`: every update names the parameters it reindexes
    (`_pg_replace_rows`). `also`: more data-modifying CTEs in the same statement (see `Also`); every row of its
    query comes back, each led by the count of updates (one row with nulls when its query answers none).

    The rows come as one JSON array per table (`json_to_recordset`), not as an array per column: asyncpg checks
    every element of an array parameter in Python (two abstract-class isinstance calls each), which cost a batch
    of 16 bed changes ~0.4 ms of the API process; the JSON text is one orjson call (measured with 30 columns of
    16 values: 0.46 -> 0.11 ms CPU, 0.74 -> 0.35 ms per statement)."""
    new = ("u AS (SELECT rid, expected, version, last_updated, convert_to(content, 'UTF8') AS content, owner_org, "
           "patient_id, medical, method, reindexed FROM json_to_recordset($1::json) AS j(rid int8, expected int4, "
           "version int4, last_updated timestamp, content text, owner_org text, patient_id text, medical bool, "
           "method text, reindexed text))")
    n = 3 + len(kinds)  # $1 the rows, $2 their rids, then one per index table; `also` numbers its own from here
    ctes = [new]
    gate = ""
    if also is not None:
        # Nothing is changed unless every resource is still at its expected version and `also.guard` holds: the
        # rows are locked first (one-time filter of `r`), in id order as `current_many` locks them, so the
        # statement writes all or nothing and batches that lock the same rows cannot deadlock.
        ctes.append("ok AS (SELECT (SELECT count(*) FROM (SELECT 1 FROM resources x JOIN u ON x.rid = u.rid AND "
                    "x.version = u.expected WHERE x.rid = ANY($2::int8[]) ORDER BY x.res_id FOR UPDATE OF x) b) "
                    f"= cardinality($2::int8[]) AND {also.guard(n)} AS ok)")
        gate = " AND (SELECT ok FROM ok)"
    # `x.rid = ANY($2)`: the planner takes json_to_recordset for 100 rows and would rather scan the table than
    # probe its key that often; the rids as an array (its one column) keep the update on the primary key.
    ctes += ["r AS (UPDATE resources x SET version = u.version, last_updated = u.last_updated, deleted = false, "
             "content = u.content, owner_org = u.owner_org, patient_id = u.patient_id, medical = u.medical "
             f"FROM u WHERE x.rid = ANY($2::int8[]) AND x.rid = u.rid AND x.version = u.expected{gate} "
             "RETURNING x.rid, x.res_type, x.res_id, u.version, u.last_updated, u.method, u.content, u.reindexed)",
             "v AS (INSERT INTO resource_versions (rid, res_type, res_id, version, last_updated, method, deleted, "
             "content) SELECT rid, res_type, res_id, version, last_updated, method, false, content FROM r RETURNING 1)"]
    for i, kind in enumerate(kinds):
        ctes += _pg_replace_rows(kind, 3 + i) if partial else _pg_rewrite_rows(kind, 3 + i)
    if also is None:
        return "WITH " + ", ".join(ctes) + " SELECT count(*) FROM r"
    # `written` reads every data-modifying CTE above (each returns a row per row it wrote): `also` gating its
    # CTEs on it runs them after all of those — shared rows (the aggregate's) are then locked last, for the
    # shortest time, so batches written side by side overlap until there (docs/scaling.md).
    mods = [c.split(" AS (", 1)[0] for c in ctes if c.split(" AS (", 1)[1].startswith(("INSERT", "UPDATE", "DELETE"))]
    ctes.append("written AS (SELECT " + " + ".join(f"(SELECT count(*) FROM {m})" for m in mods) + " AS n)")
    ctes += also.ctes(n)
    return ("WITH " + ", ".join(ctes) + " SELECT (SELECT count(*) FROM r) AS updated, a.* FROM (SELECT 1) AS one "
            f"LEFT JOIN ({also.query}) AS a ON true")


def _pg_index_rows(kind: str, param: int) -> str:
    """The new index rows of one table: objects with `rid`, `o` (their order) and the table's value columns."""
    columns = ", ".join(f"{c} {t}" for c, t in zip(INDEX_COLUMNS[kind], _PG_ARRAY_TYPES[kind], strict=True))
    return f"json_to_recordset(${param}::json) AS k(rid int8, o int4, {columns})"


def _pg_rewrite_rows(kind: str, param: int) -> list[str]:
    """A full reindex (or a mix): the updated resources' rows go — only those of the named parameters where an
    update names them — and the new ones come in."""
    table, cols = INDEX_TABLES[kind].name, INDEX_COLUMNS[kind]
    return [f"d_{kind} AS (DELETE FROM {table} x USING r WHERE x.rid = r.rid AND "
            "(r.reindexed IS NULL OR x.param = ANY(string_to_array(r.reindexed, ','))) RETURNING 1)",
            f"i_{kind} AS (INSERT INTO {table} (rid, res_type, {', '.join(cols)}) "
            f"SELECT r.rid, r.res_type, {', '.join(f'k.{c}' for c in cols)} FROM {_pg_index_rows(kind, param)} "
            "JOIN r ON r.rid = k.rid RETURNING 1)"]


def _pg_replace_rows(kind: str, param: int) -> list[str]:
    """A partial reindex (a bed status change: its `operational-status` row): the n-th old row of a resource and
    parameter is UPDATEd to the n-th new one, surplus old rows deleted, missing ones inserted.

    Why not delete and insert: every change then left a dead row whose index entries stay until VACUUM — a bitmap
    scan never marks them dead — and the next change of the same bed stepped over all of them. Measured on a
    PostgreSQL without autovacuum after ~140,000 status changes: 400 index entries read per bed and change, the
    database's CPU per change 0.3 -> 1.2 ms, req/s 760 -> 440 (VACUUM brought it back). An UPDATE that leaves `rid`
    as it was lets the btree remove such versions itself (bottom-up deletion), and it needs no foreign-key check.
    """
    table, cols = INDEX_TABLES[kind].name, INDEX_COLUMNS[kind]
    values = cols[1:]  # param first, then the table's own value columns
    same = "USING (rid, param, n)"
    return [
        f"o_{kind} AS (SELECT x.ctid AS tid, x.rid, x.param, row_number() OVER (PARTITION BY x.rid, x.param "
        f"ORDER BY x.ctid) AS n FROM {table} x JOIN r ON x.rid = r.rid "
        "WHERE x.param = ANY(string_to_array(r.reindexed, ',')))",
        f"n_{kind} AS (SELECT k.rid, r.res_type, {', '.join(f'k.{c}' for c in cols)}, row_number() OVER "
        f"(PARTITION BY k.rid, k.param ORDER BY k.o) AS n FROM {_pg_index_rows(kind, param)} "
        "JOIN r ON r.rid = k.rid)",
        f"s_{kind} AS (UPDATE {table} x SET {', '.join(f'{c} = m.{c}' for c in values)} FROM "
        f"(SELECT o.tid, w.* FROM o_{kind} o JOIN n_{kind} w {same}) m WHERE x.ctid = m.tid RETURNING 1)",
        f"d_{kind} AS (DELETE FROM {table} x USING o_{kind} o LEFT JOIN n_{kind} w {same} "
        "WHERE x.ctid = o.tid AND w.rid IS NULL RETURNING 1)",
        f"i_{kind} AS (INSERT INTO {table} (rid, res_type, {', '.join(cols)}) SELECT w.rid, w.res_type, w.param, "
        f"{', '.join(f'w.{c}' for c in values)} FROM n_{kind} w LEFT JOIN o_{kind} o {same} WHERE o.tid IS NULL "
        "RETURNING 1)",
    ]


@dataclass(frozen=True)
class Also:
    """Data-modifying CTEs written in the same round trip as `update_many` (the availability source rows and
    aggregate of beds whose status changes, bed_status.py). `guard(n)`: an SQL condition that must hold for
    anything to be written (with the updates' own versions: the statement writes all or nothing); `ctes(n)`: the
    CTEs' text (`name AS (...)` each), which should do nothing unless `(SELECT n FROM written) > 0` — that also
    runs them after the updates' own writes; `query`: a SELECT over them whose rows come back; `args`: the
    parameters' values, which both number from `$n`. The statement is built once per `name`."""

    name: str
    guard: Callable[[int], str]
    ctes: Callable[[int], list[str]]
    query: str
    args: list[Any]


_update_many_sql: dict[tuple[tuple[str, ...], str | None, bool], str] = {}


def pg_update_many_sql(kinds: tuple[str, ...], also: Also | None, partial: bool) -> str:
    key = (kinds, also.name if also else None, partial)
    found = _update_many_sql.get(key)
    if found is None:
        found = _update_many_sql[key] = _pg_update_many_sql(kinds, also, partial=partial)
    return found


_pg_writers: dict[int, PgWrites] = {}  # id(asyncpg adapter) -> its unit of work's writer, while the unit runs
_PG_RESOURCE_TYPES = ("int8", "text", "text", "int4", "timestamp", "bool", "bytea", "text", "text", "bool")
PG_CREATE, PG_UPDATE, PG_CREATE_MANY = _pg_create_sql(), _pg_update_sql(), _pg_create_many_sql()
PG_ALLOCATE_RIDS = "SELECT nextval(pg_get_serial_sequence('resources', 'rid')) FROM generate_series(1, $1)"


def _pg_arrays(index: dict[str, list[Row]]) -> list[list[Any]]:
    arrays: list[list[Any]] = []
    for kind in KINDS:
        rows = index.get(kind) or []
        arrays += [[r.get(c) for r in rows] for c in INDEX_COLUMNS[kind]]
    return arrays


async def _pg_connection(adapted: Any) -> Any:
    """The asyncpg connection under SQLAlchemy's adapter, with the unit of work's transaction open: the adapter
    begins it lazily on its first statement, so a driver-level statement first must open it (a no-op in
    autocommit, the read-only units of work)."""
    if adapted._transaction is None:
        await adapted._start_transaction()
    return adapted._connection


class RidPool:
    """rids taken from the sequence ahead of use, shared by the units of work of one engine. `nextval` is not
    transactional: a block is fetched on the connection without opening its transaction, and the rids of a unit
    that rolls back are merely skipped (a sequence has gaps anyway)."""

    BLOCK = 256

    def __init__(self) -> None:
        self.rids: deque[int] = deque()

    async def take(self, adapted: Any) -> int:
        if not self.rids:
            try:
                rows = await adapted._connection.fetch(PG_ALLOCATE_RIDS, self.BLOCK)
            except Exception as exc:
                _raise_translated(adapted, PG_ALLOCATE_RIDS, exc)
                raise
            self.rids.extend(int(r[0]) for r in rows)
        return self.rids.popleft()


_rid_pools: WeakKeyDictionary[Any, RidPool] = WeakKeyDictionary()  # by SQLAlchemy (sync) engine


class PgWrites:
    """Creates and updates on the asyncpg connection under SQLAlchemy's adapter.

    The first create of a unit of work is one statement, as a lone POST needs. Further creates of the same unit
    (a transaction Bundle, a group-commit batch) take rids from the engine's RidPool and are buffered; they go to
    the database as one multi-row statement (measured: 2.2-2.5x less database time per create than one statement
    each) before anything else runs on the connection — every SQLAlchemy statement (`flush_before_statement`),
    every driver-level statement here or in UnitOfWork.rows, and COMMIT — so no read in the transaction can miss
    them. A unit that ends any other way drops the buffer (`discard`).

    With `buffer_first` (units of work of HTTP writes, hub/store/group_commit.py) the first create is buffered as
    well; and when nothing else ran on the connection before COMMIT, the buffered creates are the unit's only
    statement: sent without BEGIN and COMMIT, atomic on its own. A lone POST is then one round trip instead of
    three, a batch of creates one instead of five.
    """

    def __init__(self, adapted: Any, pool: RidPool, *, buffer_first: bool = False) -> None:
        self.adapted = adapted  # SQLAlchemy's AsyncAdapt_asyncpg_connection: owns the transaction
        self.pool = pool
        self.buffer_first = buffer_first
        self._buffer: list[tuple[int, Row, str, dict[str, list[Row]]]] = []
        self._creates = 0
        _pg_writers[id(adapted)] = self  # the adapter has __slots__: the statement hook finds us here

    async def create(self, row: Row, method: str, index: dict[str, list[Row]]) -> int:
        self._creates += 1
        if self._creates == 1 and not self.buffer_first:
            values = [row[c] for c in _RESOURCE_COLUMNS]
            return int(await self._fetchval(PG_CREATE, *values, method, *_pg_arrays(index)))
        rid = await self.pool.take(self.adapted)
        self._buffer.append((rid, row, method, index))
        return rid

    async def update(self, rid: int, expected_version: int, row: Row, method: str,
                     index: dict[str, list[Row]]) -> bool:
        await self.flush()
        values = [row[c] for c in _RESOURCE_COLUMNS]
        count = await self._fetchval(PG_UPDATE, *values, rid, expected_version, method, *_pg_arrays(index))
        return bool(count == 1)

    async def update_many(self, updates: list[Update], also: Also | None = None, *,
                          alone: bool = False) -> tuple[int, list[Any]]:
        if len(updates) == 1 and updates[0][5] is None and also is None:
            return int(await self.update(*updates[0][:5])), []
        await self.flush()
        touched = [u[6] for u in updates]  # None exactly where the update reindexes everything
        partial = None not in touched
        kinds = tuple(k for k in KINDS if any(k in t for t in touched if t)) if partial else KINDS
        rows = [{"rid": rid, "expected": expected, "version": row["version"], "last_updated": row["last_updated"],
                 "content": row["content"].decode(), "owner_org": row["owner_org"], "patient_id": row["patient_id"],
                 "medical": row["medical"], "method": method, "reindexed": reindexed}
                for rid, expected, row, method, _, reindexed, _ in updates]
        arrays: list[Any] = [orjson.dumps(rows).decode(), [u[0] for u in updates]]
        for kind in kinds:
            arrays.append(orjson.dumps([{**r, "rid": u[0], "o": o} for u in updates
                                        for o, r in enumerate(u[4].get(kind) or ())]).decode())
        sql = pg_update_many_sql(kinds, also, partial)
        if also is None:
            return int(await self._fetchval(sql, *arrays)), []
        if alone and self.adapted._transaction is None:  # the unit's only statement: it commits by itself
            answered = await self._run("fetch", sql, *arrays, *also.args, alone=True)
        else:
            answered = await self._fetch(sql, *arrays, *also.args)
        return int(answered[0][0]), answered

    async def flush(self, *, final: bool = False) -> None:
        """Write the buffered creates (one statement)."""
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, []
        if final and self.adapted._transaction is None:  # the unit's only statement: no BEGIN/COMMIT needed
            await self._run("fetchval", PG_CREATE_MANY, *_pg_many_arrays(buffer), alone=True)
            return
        await self._fetchval(PG_CREATE_MANY, *_pg_many_arrays(buffer))

    def discard(self) -> None:
        """The unit of work ended (committed after a flush, or rolled back): nothing may outlive it."""
        self._buffer.clear()
        if _pg_writers.get(id(self.adapted)) is self:
            del _pg_writers[id(self.adapted)]

    async def _fetch(self, sql: str, *args: Any) -> Any:
        return await self._run("fetch", sql, *args)

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, *args)

    async def _run(self, method: str, sql: str, *args: Any, alone: bool = False) -> Any:
        """Driver errors come out as the SQLAlchemy exceptions Core would raise (IntegrityError for a duplicate
        id, ...), so callers and the app's error mapping treat both paths alike. `alone`: outside any transaction
        (autocommit), as the unit of work's only statement; otherwise in its transaction (opened if need be)."""
        try:
            conn = self.adapted._connection if alone else await _pg_connection(self.adapted)
            return await getattr(conn, method)(sql, *args)
        except Exception as exc:
            _raise_translated(self.adapted, sql, exc)
            raise


def _raise_translated(adapted: Any, sql: str, exc: Exception) -> None:
    try:
        adapted._handle_exception(exc)
    except Exception as translated:
        raise DBAPIError.instance(sql, None, translated, adapted.dbapi.Error) from exc


def _pg_many_arrays(buffer: list[tuple[int, Row, str, dict[str, list[Row]]]]) -> list[list[Any]]:
    """The arrays of PG_CREATE_MANY: resource columns (rid first), the methods, then per index kind rid, res_type
    and its value columns."""
    arrays: list[list[Any]] = [[rid for rid, _, _, _ in buffer]]
    arrays += [[row[c] for _, row, _, _ in buffer] for c in _RESOURCE_COLUMNS]
    arrays.append([method for _, _, method, _ in buffer])
    for kind in KINDS:
        rows = [(rid, row["res_type"], r) for rid, row, _, index in buffer for r in index.get(kind) or []]
        arrays.append([rid for rid, _, _ in rows])
        arrays.append([res_type for _, res_type, _ in rows])
        arrays += [[r.get(c) for _, _, r in rows] for c in INDEX_COLUMNS[kind]]
    return arrays


@event.listens_for(Engine, "before_cursor_execute")
def flush_before_statement(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any,
                           executemany: bool) -> None:
    """Buffered creates reach the database before any SQLAlchemy statement on the same connection (this runs in
    SQLAlchemy's greenlet, where awaiting the driver is allowed)."""
    if not _pg_writers:
        return
    writes = _pg_writers.get(id(getattr(conn.connection, "dbapi_connection", None)))
    if writes is not None and writes._buffer and writes.adapted is conn.connection.dbapi_connection:
        await_only(writes.flush())


# ------------------------------------------------------------------------------------------------ reads
# The columns of a loaded search result row (`loaded` reads them); the text-path search selects them too.
LOAD_COLUMNS = f"rid, res_type, res_id, {STORED_SELECT}"
_LOAD = f"SELECT {LOAD_COLUMNS} FROM resources WHERE rid {{}}"


RowsFn = Callable[[str, list[Any]], Awaitable[list[Any]]]


async def load_by_rids(rows_of: RowsFn, dialect: str, rids: list[int]) -> list[StoredResource]:
    """Current rows for a page of search results, in `rids` order (missing rids left out): the one fixed-shape
    read every search ends with, through the driver (`rows_of`: the unit of work's UnitOfWork.rows)."""
    if not rids:
        return []
    if dialect == "sqlite":
        rows = await rows_of(_LOAD.format(f"IN ({', '.join('?' for _ in rids)})"), list(rids))
    else:
        rows = await rows_of(_LOAD.format("= ANY($1::bigint[])"), [rids])
    by_rid = {int(r[0]): loaded(r) for r in rows}
    return [by_rid[r] for r in rids if r in by_rid]


def loaded(row: Any) -> StoredResource:
    """A StoredResource from a row of LOAD_COLUMNS."""
    return stored_from_row(row[1], row[2], tuple(row)[3:])


async def driver_rows(sa_connection: Any, sql: str, params: list[Any]) -> list[Any]:
    """Rows of a driver-level query (`?` placeholders on SQLite, `$n` on PostgreSQL) on the unit of work's own
    connection, inside its transaction when it has one."""
    pooled = await sa_connection.get_raw_connection()
    if sa_connection.dialect.name == "sqlite":
        return list(pooled.driver_connection.execute(sql, params).fetchall())
    writes = _pg_writers.get(id(pooled.dbapi_connection))
    if writes is not None:  # buffered creates go first, as before any other statement
        await writes.flush()
    return list(await (await _pg_connection(pooled.dbapi_connection)).fetch(sql, *params))


async def raw_writes(sa_connection: Any, *, defer_creates: bool = False) -> RawWrites:
    """The driver-level writer for a SQLAlchemy AsyncConnection (in a transaction) of either backend.
    `defer_creates`: PostgreSQL buffers every create, the first included (PgWrites)."""
    pooled = await sa_connection.get_raw_connection()
    dialect = sa_connection.dialect
    if dialect.name == "sqlite":
        statements = _sqlite_statements.get(dialect.name)
        if statements is None:
            statements = _sqlite_statements[dialect.name] = SqliteStatements(dialect)
        return SqliteWrites(pooled.driver_connection, statements)
    engine = sa_connection.engine.sync_engine
    pool = _rid_pools.get(engine)
    if pool is None:
        pool = _rid_pools[engine] = RidPool()
    return PgWrites(pooled.dbapi_connection, pool, buffer_first=defer_creates)
