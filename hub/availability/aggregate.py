"""The incremental aggregate: apply one source's new contribution inside the writing transaction.

Correctness under concurrency (PostgreSQL READ COMMITTED, SQLite serialised by BEGIN IMMEDIATE):
- The delta is new contribution minus the *stored* contribution of the same source (availability_sources), never a
  recomputation, so the aggregate is always the sum of the source rows.
- The source row is written with compare-and-set on its `version` (`UPDATE ... WHERE version = :v`; an INSERT that
  hits the primary key): of two transactions that read the same old contribution, one writes, the other gets
  SourceChanged (409) and rolls back. (A bed's own resource row is compare-and-set by the repository first.)
- Aggregate rows and regional totals change only by atomic upserts
  `INSERT ... ON CONFLICT DO UPDATE SET free = free + excluded.free, seq = seq + 1`, never read-modify-write, so
  concurrent writers of one provider × product add up. Rows are touched in key order (rows, then totals), which
  keeps two single-source transactions from deadlocking.
- `RETURNING` gives the row as this transaction leaves it (the row stays locked until commit), with its `seq`;
  the cache applies it after commit only if its `seq` is newer than what it holds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hub.availability.bed_rows import SourceRow
from hub.availability.figures import ZERO, Figures
from hub.availability.sources import Contribution, Key
from hub.availability.tables import availability_rows, availability_sources, availability_totals
from hub.store.sql import instant, utcnow

COUNTS = ("total", "free", "occupied", "reserved", "unavailable")
_ROW_KEYS, _ROW_PLACES = ("org_id", "product", "region"), ("org_name", "postcode", "city")
_ROW_FIELDS = (*_ROW_KEYS, *_ROW_PLACES, *COUNTS, "last_update", "seq")  # as row_json gives an aggregate row
_TOTAL_FIELDS = ("region", "product", *COUNTS, "last_update", "seq")  # ... and a regional total


@dataclass
class Changes:
    """Aggregate rows and totals as the transaction left them (for the cache, events and subscriptions)."""

    rows: dict[Key, dict[str, Any]] = field(default_factory=dict)
    totals: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def merge(self, other: Changes) -> None:
        for key, row in other.rows.items():
            if key not in self.rows or self.rows[key]["seq"] < row["seq"]:
                self.rows[key] = row
        for tkey, total in other.totals.items():
            if tkey not in self.totals or self.totals[tkey]["seq"] < total["seq"]:
                self.totals[tkey] = total

    def __bool__(self) -> bool:
        return bool(self.rows or self.totals)


def insert_for(conn: Any, table: Table) -> Any:
    """The dialect's INSERT (both have ON CONFLICT DO UPDATE ... RETURNING)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def row_json(row: Any) -> dict[str, Any]:
    """An aggregate row (or total) as the cache, the JSON endpoint and the events carry it."""
    items = row._asdict().items() if hasattr(row, "_asdict") else dict(row).items()  # SQLAlchemy row | driver record
    out = {str(name): value for name, value in items}  # PG: quoted_name keys
    out.pop("snapshot_seq", None)
    out["last_update"] = instant(out["last_update"])
    out["seq"] = int(out["seq"])
    return out


async def stored_source(conn: Any, source: str) -> Any:
    return (await conn.execute(select(availability_sources).where(availability_sources.c.source == source))).first()


async def stored_sources(conn: Any, sources: list[str]) -> dict[str, Any]:
    """Several source rows in one statement (missing ones left out)."""
    if not sources:
        return {}
    stmt = select(availability_sources).where(availability_sources.c.source.in_(sources))
    return {row.source: row for row in (await conn.execute(stmt)).all()}


def _same(old: Any, new: Contribution | None) -> bool:
    if old is None or new is None:
        return old is None and new is None
    return all(getattr(old, name) == value for name, value in new.columns().items() if name != "source")


def _replacing(old: Any, new: Contribution | None) -> dict[Key, Figures]:
    """The increments that replace the stored contribution `old` (a source row or None) by `new`."""
    deltas: dict[Key, Figures] = {}
    if old is not None and old.counted:
        deltas[Key(old.org_id, old.product, old.region)] = -Figures.of(old)
    new_key = new.key if new is not None else None
    if new_key is not None:
        assert new is not None
        earlier = deltas.get(new_key)
        deltas[new_key] = new.figures if earlier is None else earlier + new.figures
    return deltas


Publish = Callable[[Any, Changes, set[Key]], Awaitable[None]]


_UNREAD: Any = object()


async def apply(uow: Any, new: Contribution | None, source: str, *, touch: bool, publish: Publish,
                old: Any = _UNREAD) -> None:
    """Replace the stored contribution of `source` by `new` (None: remove it). `touch`: a write of the source
    itself, which refreshes the freshness of its row even when no figure changed. `old`: the stored row, when the
    caller has just read it in this transaction. The source row is written now; the aggregate increments right
    before COMMIT, with those of every other write of the unit of work."""
    conn, now = uow.conn, utcnow()
    if old is _UNREAD:
        old = await stored_source(conn, source)
    if _same(old, new):
        if touch and new is not None and new.key is not None:
            _defer(uow, {new.key: ZERO}, new, now, publish, notify=True)
        return
    await _write_source(conn, source, old, new, now)
    _defer(uow, _replacing(old, new), new, now, publish, notify=True)


async def touch(uow: Any, source: str, publish: Publish, *, old: Any = _UNREAD) -> None:
    """A write that changed nothing (same status again): refresh the freshness of the source's row. `old`: the
    stored row, when the caller has read it in this transaction (None: there is none)."""
    if old is _UNREAD:
        old = await stored_source(uow.conn, source)
    if old is not None and old.counted:
        _defer(uow, {Key(old.org_id, old.product, old.region): ZERO}, None, utcnow(), publish, notify=False)


@dataclass
class _Increments:
    """The aggregate increments of one unit of work, applied together right before COMMIT: each row once, all in
    key order — so writers that share rows (a transaction Bundle, a group-commit batch, the snapshot task) always
    lock them in the same order and cannot deadlock, and the rows stay locked only for the commit."""

    publish: Publish
    now: datetime
    deltas: dict[Key, Figures] = field(default_factory=dict)
    places: dict[Key, Contribution | Place] = field(default_factory=dict)
    notify: set[Key] = field(default_factory=set)


_increments: WeakKeyDictionary[Any, _Increments] = WeakKeyDictionary()


def _defer(uow: Any, deltas: dict[Key, Figures], place: Contribution | None, now: datetime, publish: Publish, *,
           notify: bool) -> None:
    pending = _increments.get(uow)
    if pending is None:
        pending = _increments[uow] = _Increments(publish, now)

        async def flush() -> None:
            del _increments[uow]
            changes = await add(uow.conn, pending.deltas, pending.places, pending.now)
            await pending.publish(uow, changes, pending.notify)

        uow.before_commit(flush)
    for key, delta in deltas.items():
        pending.deltas[key] = pending.deltas.get(key, ZERO) + delta
        if notify:
            pending.notify.add(key)
    if place is not None and place.key is not None:
        pending.places[place.key] = place
    pending.now = max(pending.now, now)


class Place(NamedTuple):
    """What an aggregate row takes from its latest source besides figures (as a Contribution gives it)."""

    key: Key
    org_name: str | None
    postcode: str | None
    city: str | None


_SOURCE_UPDATE = (update(availability_sources)
                  .where(availability_sources.c.source == bindparam("b_source"),
                         availability_sources.c.version == bindparam("b_version")))
_SOURCE_DELETE = (delete(availability_sources)
                  .where(availability_sources.c.source == bindparam("b_source"),
                         availability_sources.c.version == bindparam("b_version")))


async def _write_source(conn: Any, source: str, old: Any, new: Contribution | None, now: datetime) -> None:
    """Compare-and-set of the source row on its version; losing the race -> SourceChanged (409)."""
    from hub.availability.errors import SourceChanged

    lost = f"{source} was changed by another request at the same time; retry"
    if old is None:
        assert new is not None
        try:
            await conn.execute(insert(availability_sources), {**new.columns(), "updated": now, "version": 1})
        except IntegrityError:
            raise SourceChanged(lost) from None
        return
    where = {"b_source": source, "b_version": old.version}
    if new is None:
        result = await conn.execute(_SOURCE_DELETE, where)
    else:
        result = await conn.execute(_SOURCE_UPDATE, {**new.columns(), "updated": now, "version": old.version + 1,
                                                     **where})
    if result.rowcount != 1:
        raise SourceChanged(lost)


def _pg_status_update(first: int) -> str:
    """The source rows' compare-and-set for many status changes: `$first` the rows as JSON (raw.py: one JSON
    parameter instead of an array per column), `$first + 1` the time, `$first + 2` their keys (so the update
    probes the primary key: the planner takes json_to_recordset for 100 rows and would rather scan the table)."""
    columns = ", ".join(f"{c} int4" for c in COUNTS)
    return ("UPDATE availability_sources s SET status = w.status, total = w.total, free = w.free, "
            "occupied = w.occupied, reserved = w.reserved, unavailable = w.unavailable, "
            f"updated = ${first + 1}, version = s.version + 1 FROM json_to_recordset(${first}::json) "
            f"AS w(source text, version int4, status text, {columns}) "
            f"WHERE s.source = ANY(${first + 2}::text[]) AND s.source = w.source AND s.version = w.version "
            f"AND {_AFTER_BEDS} RETURNING s.source")


_AFTER_BEDS = "(SELECT n FROM written) > 0"  # raw.Also: the beds were written (all of them), and before this


def _pg_status_guard(first: int) -> str:
    """What the decisions of a status batch rest on besides the beds' versions (raw.Also.guard): every source row
    still at the version and time it was read at (locked in key order: nobody moves it before the compare-and-set),
    and every provider row (whose identifiers decided who may write) still as read. `$first` the source rows,
    `$first + 1` their keys, `$first + 2` the provider rows, as JSON."""
    return (f"(SELECT count(*) FROM (SELECT 1 FROM availability_sources s JOIN json_to_recordset(${first}::json) "
            "AS g(source text, version int4, updated timestamp) ON s.source = g.source AND s.version = g.version "
            f"AND s.updated = g.updated WHERE s.source = ANY(${first + 1}::text[]) ORDER BY s.source "
            f"FOR UPDATE OF s) c) = cardinality(${first + 1}::text[]) AND (SELECT count(*) FROM "
            f"availability_providers p JOIN json_to_recordset(${first + 2}::json) AS h(org_id text, updated timestamp) "
            f"ON p.org_id = h.org_id AND p.updated = h.updated) = json_array_length(${first + 2}::json)")


@dataclass
class StatusWrites:
    """The source rows and aggregate increments of many beds whose status alone changed, planned before the beds
    are written. On PostgreSQL all of it (`also`) goes in the beds' own update statement: the source rows'
    compare-and-set, then the aggregate rows' and totals' upserts in key order — two round trips less per batch;
    `finish_status_changes` then checks the compare-and-set and publishes what the upserts returned.

    Why not `apply` per bed: product, provider and placement are those of the stored source row (writes of the
    ward, service or provider keep it current), so a status change only moves one bed between two counts of one
    aggregate row; building a Contribution and comparing all its columns cost more than the rest of the change."""

    changes: list[tuple[Any, str, Figures]]  # (stored source row, new status, new figures), distinct sources
    moved: list[bool]  # the figure or status differs from the stored row (else only freshness is refreshed)
    now: datetime
    deltas: dict[Key, Figures]  # per aggregate row; ZERO: freshness only
    places: dict[Key, Place]
    also: Any = None  # raw.Also, or None: `finish_status_changes` writes the source rows and increments itself

    @property
    def moving(self) -> int:
        return sum(self.moved)


def status_figures(stored: Any, status: str, active: bool) -> Figures:
    """What a bed with this status adds, placed as its stored source row places it (`with_new_status`)."""
    if not (stored.org_id and stored.product) or not active:
        return ZERO
    return _BY_STATUS.get(status, _UNAVAILABLE)


_BY_STATUS = {"O": Figures(total=1, occupied=1), "reserved": Figures(total=1, reserved=1),
              "U": Figures(total=1, free=1)}
_UNAVAILABLE = Figures(total=1, unavailable=1)


def plan_status_changes(dialect: str, changes: list[tuple[Any, str, Figures]],
                        providers: Iterable[Any] = ()) -> StatusWrites:
    """`providers`: the provider rows the changes were decided with (PostgreSQL: nothing is written unless they,
    and the source rows, are still as read — `_pg_status_guard`)."""
    from hub.store.raw import Also

    moved = [old.status != status or Figures.of(old) != figures for old, status, figures in changes]
    deltas: dict[Key, Figures] = {}
    places: dict[Key, Place] = {}
    for (old, _, figures), m in zip(changes, moved, strict=True):
        if not (old.counted and old.org_id and old.product and old.region):
            continue
        key = Key(old.org_id, old.product, old.region)
        # as `apply` with touch: an unchanged figure still refreshes its row's freshness
        delta = figures - Figures.of(old) if m else ZERO
        deltas[key] = delta if key not in deltas else deltas[key] + delta
        places[key] = Place(key, None, old.postcode, old.city)
    plan = StatusWrites(changes, moved, utcnow(), deltas, places)
    if dialect == "postgresql":
        moving = [(old, status, figures) for (old, status, figures), m in zip(changes, moved, strict=True) if m]
        sources = orjson.dumps([{"source": old.source, "version": old.version, "status": status,
                                 **figures.as_dict()} for old, status, figures in moving]).decode()
        rows, totals = _pg_add_args(deltas, places)
        read = orjson.dumps([{"source": old.source, "version": old.version, "updated": old.updated}
                             for old, _, _ in changes]).decode()
        providers_read = orjson.dumps([{"org_id": p.org_id, "updated": p.updated} for p in providers]).decode()
        plan.also = Also("availability_status", _pg_status_guard, _pg_status_ctes, _PG_STATUS_QUERY,
                         [read, [old.source for old, _, _ in changes], providers_read,
                          sources, plan.now, [old.source for old, _, _ in moving], rows, plan.now, totals, plan.now])
    return plan


def _pg_status_ctes(first: int) -> list[str]:
    """Source rows (compare-and-set), then aggregate rows and totals (upserts in key order), after the guard's three
    parameters from `$first`, each once the beds are written."""
    sources_from, rows_from, totals_from = first + 3, first + 6, first + 8
    totals = _pg_upsert_many(availability_totals, ("region", "product"), (), totals_from, _AFTER_BEDS)
    return [f"a_src AS ({_pg_status_update(sources_from)})",
            f"a_rows AS ({_pg_upsert_many(availability_rows, _ROW_KEYS, _ROW_PLACES, rows_from, _AFTER_BEDS)})",
            f"a_totals AS ({totals})"]


# What the status CTEs answer: the number of source rows written, then every aggregate row and total as left (rows
# before totals: the Append reads them in this order, so rows are locked before totals as in `add`).
_PG_STATUS_QUERY = (f"SELECT 'c' AS kind, count(*) AS n, {', '.join(f'NULL AS {c}' for c in _ROW_FIELDS)} FROM a_src "
                    f"UNION ALL SELECT 'r', 0, {', '.join(_ROW_FIELDS)} FROM a_rows UNION ALL "
                    f"SELECT 't', 0, NULL, product, region, NULL, NULL, NULL, {', '.join(COUNTS)}, last_update, seq "
                    "FROM a_totals")


async def finish_status_changes(uow: Any, plan: StatusWrites, also_rows: list[Any], publish: Publish) -> dict[str, Any]:
    """After the beds' update: PostgreSQL — check the source rows' compare-and-set and publish the aggregate as
    the statement left it; SQLite — write the source rows and defer the increments as `apply` defers them. The
    source rows as now written, by source (for a later round of the same batch)."""
    from hub.availability.errors import SourceChanged

    if plan.also is not None:
        changes = Changes()
        written_sources = 0
        for record in also_rows:
            kind = record[1]
            if kind == "c":
                written_sources = int(record[2])
            elif kind is not None:
                _returned(changes, kind == "r", tuple(record)[3:])
        if written_sources != plan.moving:
            raise SourceChanged("a bed's availability was changed by another request at the same time; retry")
        if changes:
            await publish(uow, changes, set(changes.rows))
    else:
        for (old, status, figures), m in zip(plan.changes, plan.moved, strict=True):
            if m:
                await _write_source(uow.conn, old.source, old, _status_contribution(old, status, figures), plan.now)
        if plan.deltas:
            _defer(uow, plan.deltas, None, plan.now, publish, notify=True)
            _increments[uow].places.update(plan.places)
    written: dict[str, Any] = {}
    for (old, status, figures), m in zip(plan.changes, plan.moved, strict=True):
        if m:
            columns = {"status": status, **figures.as_dict(), "updated": plan.now, "version": old.version + 1}
            written[old.source] = _source_with(old, columns)
    return written


def _source_with(old: Any, columns: dict[str, Any]) -> SourceRow:
    """The stored source row with these columns changed, as the batch's own row type whatever it was read as (the
    write hook's path leaves a database row): it is remembered and changed again by later batches."""
    if isinstance(old, SourceRow):
        return old._replace(**columns)
    return SourceRow(**{**old._asdict(), **columns})


def _status_contribution(old: Any, status: str, figures: Figures) -> Contribution:
    """The stored source row with a new status and figures (for `_write_source`, SQLite)."""
    return Contribution(
        source=old.source, kind="bed", counted=old.counted, figures=figures, org_id=old.org_id, product=old.product,
        region=old.region, postcode=old.postcode, city=old.city, parent_id=old.parent_id, via_service=old.via_service,
        address_via_org=old.address_via_org, status=status, name=old.name)


async def add(conn: Any, deltas: dict[Key, Figures], places: dict[Key, Contribution | Place], now: datetime) -> Changes:
    """Atomic increments of the aggregate rows, then of the regional totals, in key order. `places`: the name and
    address a row takes when it is created."""
    try:
        if conn.dialect.name == "postgresql" and deltas:
            return await _add_pg(conn, deltas, places, now)
        return await _add_each(conn, deltas, places, now)
    except Exception as exc:  # a SQLAlchemy DBAPIError, or on the driver path asyncpg's DeadlockDetectedError
        if "deadlock" in str(exc).lower():
            from hub.availability.errors import SourceChanged

            raise SourceChanged("Concurrent availability updates collided; retry") from None
        raise


async def _add_each(conn: Any, deltas: dict[Key, Figures], places: dict[Key, Contribution | Place],
                    now: datetime) -> Changes:
    """One upsert statement per row and per total (SQLite)."""
    changes = Changes()
    totals: dict[tuple[str, str], Figures] = defaultdict(lambda: ZERO)
    for key in sorted(deltas, key=lambda k: (k.org_id, k.product, k.region)):
        row = await _upsert_row(conn, key, deltas[key], places.get(key), now)
        changes.rows[key] = row_json(row)
        totals[(key.region, key.product)] = totals[(key.region, key.product)] + deltas[key]
    for region, product in sorted(totals):
        total = await _upsert_total(conn, region, product, totals[(region, product)], now)
        changes.totals[(region, product)] = row_json(total)
    return changes


def _pg_upsert_many(table: Table, keys: tuple[str, ...], places: tuple[str, ...], first: int = 1,
                    when: str = "true") -> str:
    """The upsert of `_upsert` for many rows in one statement: `$first` the rows as JSON objects in key order (`o`,
    `ORDER BY o`: locked in the same order as one statement each would), `$first + 1` the time; only `when`."""
    columns = [*keys, *places, *COUNTS]
    types = ", ".join(f"{c} {'int4' if c in COUNTS else 'text'}" for c in columns)
    name = table.name
    sets = [f"{c} = {name}.{c} + excluded.{c}" for c in COUNTS]
    sets += [f"seq = {name}.seq + 1",
             f"last_update = GREATEST({name}.last_update, excluded.last_update)"]
    if "org_name" in places:
        sets += [f"org_name = COALESCE({name}.org_name, excluded.org_name)",
                 f"postcode = COALESCE(excluded.postcode, {name}.postcode)",
                 f"city = COALESCE(excluded.city, {name}.city)"]
    extra = ", snapshot_seq" if table is availability_rows else ""
    extra_values = ", 0" if table is availability_rows else ""
    return (f"INSERT INTO {name} ({', '.join(columns)}, last_update, seq{extra}) "
            f"SELECT {', '.join(columns)}, ${first + 1}::timestamp, 1{extra_values} "
            f"FROM json_to_recordset(${first}::json) AS u({types}, o int4) WHERE {when} ORDER BY o "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)} RETURNING {name}.*")


def _pg_add_sql() -> str:
    """The rows' upserts, then the totals' (an Append reads `r` to its end before `t`: rows lock before totals,
    as with two statements), in one round trip; both come back in one column list, totals with `is_row` false."""
    rows = _pg_upsert_many(availability_rows, _ROW_KEYS, _ROW_PLACES)
    totals = _pg_upsert_many(availability_totals, ("region", "product"), (), first=3)
    counts = ", ".join(COUNTS)
    return (f"WITH r AS ({rows}), t AS ({totals}) "
            f"SELECT true AS is_row, {', '.join(_ROW_FIELDS)} FROM r UNION ALL "
            f"SELECT false, NULL, product, region, NULL, NULL, NULL, {counts}, last_update, seq FROM t")


_PG_ADD = _pg_add_sql()


def _pg_add_args(deltas: dict[Key, Figures], places: Mapping[Key, Contribution | Place]) -> tuple[str, str]:
    """The rows of the rows' upsert and of the totals' upsert as JSON, each in key order."""
    keys = sorted(deltas, key=lambda k: (k.org_id, k.product, k.region))
    totals: dict[tuple[str, str], Figures] = {}
    for key in keys:
        total_key = (key.region, key.product)
        totals[total_key] = deltas[key] if total_key not in totals else totals[total_key] + deltas[key]
    rows = []
    for o, key in enumerate(keys):
        place = places.get(key)
        rows.append({"org_id": key.org_id, "product": key.product, "region": key.region,
                     "org_name": place.org_name if place else None, "postcode": place.postcode if place else None,
                     "city": place.city if place else None, **deltas[key].as_dict(), "o": o})
    total_rows = [{"region": region, "product": product, **totals[(region, product)].as_dict(), "o": o}
                  for o, (region, product) in enumerate(sorted(totals))]
    return orjson.dumps(rows).decode(), orjson.dumps(total_rows).decode()


async def _add_pg(conn: Any, deltas: dict[Key, Figures], places: dict[Key, Contribution | Place],
                  now: datetime) -> Changes:
    """`add` on PostgreSQL: all rows and all totals in one statement."""
    from hub.store.raw import driver_rows

    rows, totals = _pg_add_args(deltas, places)
    changes = Changes()
    for record in await driver_rows(conn, _PG_ADD, [rows, now, totals, now]):
        values = tuple(record)
        _returned(changes, values[0], values[1:])
    return changes


def _returned(changes: Changes, is_row: bool, values: tuple[Any, ...]) -> None:
    """An aggregate row or total as an upsert returned it (in `_ROW_FIELDS` order; a total's provider fields
    null), added to `changes` as `row_json` gives it."""
    found = dict(zip(_ROW_FIELDS, values, strict=True))
    found["last_update"] = instant(found["last_update"])
    found["seq"] = int(found["seq"])
    if is_row:
        changes.rows[Key(found["org_id"], found["product"], found["region"])] = found
    else:
        total = {name: found[name] for name in _TOTAL_FIELDS}
        changes.totals[(total["region"], total["product"])] = total


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Any, table: Table) -> Any:
    """`INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n, seq = seq + 1 ... RETURNING *`, built once
    per dialect and executed with parameters (no per-call statement construction)."""
    cache_key = (conn.dialect.name, table.name)
    if cache_key not in _UPSERTS:
        stmt = insert_for(conn, table)
        excluded = stmt.excluded
        values: dict[str, Any] = {name: table.c[name] + excluded[name] for name in COUNTS}
        values["seq"] = table.c.seq + 1
        values["last_update"] = case((table.c.last_update < excluded.last_update, excluded.last_update),
                                     else_=table.c.last_update)
        if table is availability_rows:
            values["org_name"] = func.coalesce(table.c.org_name, excluded.org_name)  # renames: rename_provider
            values["postcode"] = func.coalesce(excluded.postcode, table.c.postcode)
            values["city"] = func.coalesce(excluded.city, table.c.city)
        keys = [c for c in table.primary_key.columns]
        _UPSERTS[cache_key] = stmt.on_conflict_do_update(index_elements=keys, set_=values).returning(*table.c)
    return _UPSERTS[cache_key]


async def _upsert_row(conn: Any, key: Key, delta: Figures, place: Contribution | Place | None,
                      now: datetime) -> Any:
    params = {"org_id": key.org_id, "product": key.product, "region": key.region,
              "org_name": place.org_name if place else None, "postcode": place.postcode if place else None,
              "city": place.city if place else None, **delta.as_dict(), "last_update": now, "seq": 1,
              "snapshot_seq": 0}
    return (await conn.execute(_upsert(conn, availability_rows), params)).one()


async def _upsert_total(conn: Any, region: str, product: str, delta: Figures, now: datetime) -> Any:
    params = {"region": region, "product": product, **delta.as_dict(), "last_update": now, "seq": 1}
    return (await conn.execute(_upsert(conn, availability_totals), params)).one()


async def rename_provider(conn: Any, org_id: str, name: str | None) -> Changes:
    """Organization renamed: its rows carry the new name (and a new seq, so caches take it)."""
    t = availability_rows
    result = await conn.execute(update(t).where(t.c.org_id == org_id, func.coalesce(t.c.org_name, "") != (name or ""))
                                .values(org_name=name, seq=t.c.seq + 1).returning(*t.c))
    changes = Changes()
    for row in result.all():
        changes.rows[Key(row.org_id, row.product, row.region)] = row_json(row)
    return changes


# ------------------------------------------------------------------------------------------------ reading
async def table_rows(conn: Any, *, org_id: str | None = None, product: str | None = None) -> list[dict[str, Any]]:
    """The fallback read when the cache is cold or unreachable (indexed by org_id / product)."""
    t = availability_rows
    stmt = select(t)
    if org_id:
        stmt = stmt.where(t.c.org_id == org_id)
    if product:
        stmt = stmt.where(t.c.product == product)
    return [row_json(r) for r in (await conn.execute(stmt)).all()]


async def table_totals(conn: Any) -> list[dict[str, Any]]:
    return [row_json(r) for r in (await conn.execute(select(availability_totals))).all()]


async def sources_of(conn: Any, *, org_id: str) -> list[Any]:
    """The bed and service sources of one provider (the provider detail view)."""
    t = availability_sources
    stmt = select(t).where(t.c.org_id == org_id).order_by(t.c.product, t.c.kind, t.c.name)
    return list((await conn.execute(stmt)).all())
