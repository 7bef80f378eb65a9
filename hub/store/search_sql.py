"""Search as indexed SQL: one EXISTS per clause over the index tables, access filter in the WHERE, stable paging.

Paging: when the result is larger than one page, the ordered rid list is stored once as a snapshot row and
later pages slice it (as HAPI FHIR does), so next/previous links give the same result set even while other
clients write. Contents are always the current stored bytes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    false,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Invalid, NotFound
from hub.fhir.indexing import date_range, normalize
from hub.fhir.search.query import Clause, Include, SearchQuery, split_prefix
from hub.fhir.searchparams import SearchRegistry
from hub.security import policy
from hub.security.context import AccessContext
from hub.store import search_text
from hub.store.raw import LOAD_COLUMNS, RowsFn, load_by_rids, loaded
from hub.store.repository import StoredResource
from hub.store.schema import (
    idx_date,
    idx_number,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
    resources,
    search_snapshots,
)
from hub.store.sql import STORED_COLUMNS, row_to_stored, utcnow

SNAPSHOT_TTL = timedelta(hours=1)


@dataclass
class SearchResult:
    matches: list[StoredResource]
    includes: list[StoredResource] = field(default_factory=list)
    total: int | None = None
    offset: int = 0
    snapshot_id: str | None = None
    has_next: bool = False


TerminologyExpander = Any  # callable(url) -> frozenset[(system, code)]


class SqlSearch:
    def __init__(
        self,
        conn: AsyncConnection,
        registry: SearchRegistry,
        *,
        expand_valueset: TerminologyExpander | None = None,
        max_snapshot: int = 50_000,
        max_include: int = 1000,
        write: Any = None,
        rows: RowsFn,
    ) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.rows = rows  # driver-level queries: UnitOfWork.rows (read-only units: the fast reader)
        self.registry = registry
        self.write = write  # the unit of work's writer (deferred in read-only units); None: write directly
        self.expand_valueset = expand_valueset
        self.max_snapshot = max_snapshot
        self.max_include = max_include

    # ------------------------------------------------------------------ entry points
    async def run(self, ctx: AccessContext, query: SearchQuery) -> SearchResult:
        scope = policy.read_scope(ctx, query.resource_type)
        if not scope.allowed:
            return SearchResult([], total=0)
        # A positive index clause already selects rows of this type (index rows carry res_type); leaving the
        # type predicate out then lets SQLite drive the query from the index instead of scanning the type.
        page: list[StoredResource] | None = None
        first = search_text.rid_query(query, scope, self.dialect, query.count + 1, columns=LOAD_COLUMNS)
        if first is not None:  # the common simple shapes: SQL text through the driver (hub/store/search_text.py)
            # The first page comes with the match itself: a result that fits on it is one round trip. A longer
            # one also needs every rid (the paging snapshot): page 1 as read, then the matches after it.
            rows = await self.rows(*first)
            page = [loaded(r) for r in rows[: query.count]]
            rids = [int(r[0]) for r in rows[: query.count]]
            if len(rows) > query.count:
                text = search_text.rid_query(query, scope, self.dialect, self.max_snapshot + 1)
                assert text is not None  # the same shape as `first`
                rids += [r for r in (int(row[0]) for row in await self.rows(*text)) if r > rids[-1]]
        else:
            narrowed = any(c.chain is not None or (c.param is not None and c.modifier not in ("not", "not-in",
                                                                                            "missing"))
                           for c in query.clauses)
            where = [
                *([] if narrowed else [resources.c.res_type == query.resource_type]),
                resources.c.deleted.is_(False),
                *self._access(scope),
                *[self._clause(query.resource_type, c) for c in query.clauses],
            ]
            if query.summary == "count" or query.count == 0:
                count = select(func.count()).select_from(resources).where(*where)
                return SearchResult([], total=(await self.conn.execute(count)).scalar_one())
            stmt = select(resources.c.rid).where(*where).order_by(*self._order(query)).limit(self.max_snapshot + 1)
            rids = [r for (r,) in (await self.conn.execute(stmt)).all()]
        truncated = len(rids) > self.max_snapshot
        rids = rids[: self.max_snapshot]
        snapshot_id = None
        if len(rids) > query.count:
            snapshot_id = await self._save_snapshot(ctx, query, rids)
        page_rids = rids[: query.count]
        result = SearchResult(
            page if page is not None else await self._load(page_rids),
            total=None if truncated else len(rids),
            snapshot_id=snapshot_id,
            has_next=len(rids) > query.count,
        )
        result.includes = await self._includes(ctx, query, result.matches)
        return result

    async def page(self, ctx: AccessContext, query: SearchQuery, snapshot_id: str, offset: int) -> SearchResult:
        row = (await self.conn.execute(select(search_snapshots).where(search_snapshots.c.id == snapshot_id))).first()
        if row is None or row.created < utcnow() - SNAPSHOT_TTL:
            raise NotFound(f"Search result page set '{snapshot_id}' has expired; run the search again")
        if row.requester != ctx.requester_key:
            raise NotFound(f"Search result page set '{snapshot_id}' is not known")
        rids: list[int] = orjson.loads(row.rids)
        page_rids = rids[offset : offset + query.count]
        scope = policy.read_scope(ctx, query.resource_type)
        matches = [
            m
            for m in await self._load(page_rids)
            if not m.deleted
            and policy.may_read_row(ctx, m.res_type, medical=m.medical, owner_org=m.owner_org)
            and scope.allowed
        ]
        result = SearchResult(
            matches, total=row.total, offset=offset, snapshot_id=snapshot_id, has_next=offset + query.count < len(rids)
        )
        result.includes = await self._includes(ctx, query, matches)
        return result

    async def snapshot_query(self, snapshot_id: str) -> str | None:
        row = (
            await self.conn.execute(select(search_snapshots.c.query).where(search_snapshots.c.id == snapshot_id))
        ).first()
        return None if row is None else str(row.query)

    # ------------------------------------------------------------------ pieces
    def _access(self, scope: policy.ReadScope) -> list[ColumnElement[bool]]:
        if scope.non_medical_only:
            return [resources.c.medical.is_(False)]
        if scope.own_org_only_for_medical:
            return [or_(resources.c.medical.is_(False), resources.c.owner_org == scope.own_org_only_for_medical)]
        return []

    def _order(self, query: SearchQuery) -> list[Any]:
        order: list[Any] = []
        for code, desc in query.sort:
            if code == "_id":
                col: Any = resources.c.res_id
            elif code == "_lastUpdated":
                col = resources.c.last_updated
            else:
                col = self._sort_value(query.resource_type, code, desc)
            order.append(col.desc() if desc else col.asc())
        order.append(resources.c.rid)
        return order

    def _sort_value(self, resource_type: str, code: str, desc: bool) -> Any:
        table, column = {
            "string": (idx_string, "value"),
            "token": (idx_token, "code"),
            "date": (idx_date, "low"),
            "number": (idx_number, "value"),
            "quantity": (idx_number, "value"),
            "uri": (idx_uri, "value"),
            "reference": (idx_reference, "target_id"),
        }[self._param_type(resource_type, code)]
        agg = func.max if desc else func.min
        return (
            select(agg(table.c[column])).where(table.c.rid == resources.c.rid, table.c.param == code).scalar_subquery()
        )

    def _param_type(self, resource_type: str, code: str) -> str:
        param = self.registry.get(resource_type, code)
        return param.type if param else "string"

    def _clause(self, resource_type: str, clause: Clause) -> ColumnElement[bool]:
        if clause.chain is not None:
            return self._chain(resource_type, clause)
        if clause.code == "_id":
            cond = resources.c.res_id.in_(clause.values)
            return not_(cond) if clause.modifier == "not" else cond
        if clause.code == "_lastUpdated":
            return or_(*[self._date_cond(resources.c.last_updated, resources.c.last_updated, v) for v in clause.values])
        assert clause.param is not None
        param = clause.param
        table = self._table(param.type)
        # Semi-joins on the index table, led by its (res_type, param, value) index: the planner starts from the
        # few matching index rows instead of probing every resource of the type.
        rows = select(table.c.rid).where(table.c.res_type == resource_type, table.c.param == param.code)
        if clause.modifier == "missing":
            present = resources.c.rid.in_(rows)
            return not_(present) if clause.values[0] == "true" else present
        if param.type == "token" and clause.modifier in ("not", "not-in"):
            conds = [self._token_cond(v, "in" if clause.modifier == "not-in" else None) for v in clause.values]
            return not_(resources.c.rid.in_(rows.where(or_(*conds))))
        conds = [self._value_cond(param.type, clause.modifier, v) for v in clause.values]
        return resources.c.rid.in_(rows.where(or_(*conds)))

    def _chain(self, resource_type: str, clause: Clause) -> ColumnElement[bool]:
        assert clause.chain is not None
        chain = clause.chain
        target = resources.alias("target")
        inner_clause = chain.inner
        inner = self._clause_on(target, chain.target_type, inner_clause)
        target_ids = select(target.c.res_id).where(
            target.c.res_type == chain.target_type, target.c.deleted.is_(False), inner
        )
        return resources.c.rid.in_(
            select(idx_reference.c.rid).where(
                idx_reference.c.res_type == resource_type,
                idx_reference.c.param == chain.reference.code,
                idx_reference.c.target_type == chain.target_type,
                idx_reference.c.target_id.in_(target_ids),
            )
        )

    def _clause_on(self, alias: Any, resource_type: str, clause: Clause) -> ColumnElement[bool]:
        """Same as _clause but correlated to an aliased resources table (chained search)."""
        if clause.code == "_id":
            return alias.c.res_id.in_(clause.values)  # type: ignore[no-any-return]
        assert clause.param is not None
        table = self._table(clause.param.type).alias()
        conds = [self._value_cond(clause.param.type, clause.modifier, v, table) for v in clause.values]
        rows = select(table.c.rid).where(table.c.res_type == resource_type, table.c.param == clause.param.code)
        return alias.c.rid.in_(rows.where(or_(*conds)))  # type: ignore[no-any-return]

    @staticmethod
    def _table(param_type: str) -> Any:
        return {
            "string": idx_string,
            "token": idx_token,
            "reference": idx_reference,
            "date": idx_date,
            "number": idx_number,
            "quantity": idx_number,
            "uri": idx_uri,
        }[param_type]

    def _value_cond(self, param_type: str, modifier: str | None, value: str, table: Any = None) -> ColumnElement[bool]:
        if param_type == "string":
            return self._string_cond(value, modifier, table if table is not None else idx_string)
        if param_type == "token":
            return self._token_cond(value, modifier, table if table is not None else idx_token)
        if param_type == "reference":
            return self._reference_cond(value, modifier, table if table is not None else idx_reference)
        if param_type == "date":
            t = table if table is not None else idx_date
            return self._date_cond(t.c.low, t.c.high, value)
        if param_type in ("number", "quantity"):
            return self._number_cond(value, table if table is not None else idx_number)
        t = table if table is not None else idx_uri
        if modifier == "below":
            return t.c.value.startswith(value)
        return t.c.value == value

    @staticmethod
    def _string_cond(value: str, modifier: str | None, t: Any) -> ColumnElement[bool]:
        if modifier == "exact":
            return t.c.exact == value  # type: ignore[no-any-return]
        norm = normalize(value)
        if modifier == "contains":
            escaped = norm.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return t.c.value.like(f"%{escaped}%", escape="\\")  # type: ignore[no-any-return]
        # prefix match as a range so a plain btree index serves it on both backends
        return and_(t.c.value >= norm, t.c.value < norm + "\U0010ffff")

    def _token_cond(self, value: str, modifier: str | None, t: Any = idx_token) -> ColumnElement[bool]:
        if modifier == "text":
            return t.c.text.like(f"{normalize(value)}%")  # type: ignore[no-any-return]
        if modifier in ("in", "not-in"):
            if self.expand_valueset is None:
                raise Invalid("The :in modifier needs the terminology service")
            codes = self.expand_valueset(value)
            if not codes:
                return false()
            return tuple_(t.c.system, t.c.code).in_(sorted(codes))
        if "|" not in value:
            return t.c.code == value  # type: ignore[no-any-return]
        system, code = value.split("|", 1)
        if system == "":
            return and_(t.c.code == code, t.c.system.is_(None))
        if code == "":
            return t.c.system == system  # type: ignore[no-any-return]
        return and_(t.c.system == system, t.c.code == code)

    @staticmethod
    def _reference_cond(value: str, modifier: str | None, t: Any) -> ColumnElement[bool]:
        if modifier and modifier[:1].isupper():
            return and_(t.c.target_type == modifier, t.c.target_id == value.split("/")[-1])
        if value.startswith(("http://", "https://", "urn:")):
            return t.c.url == value  # type: ignore[no-any-return]  # indexed with and without |version
        if "/" in value:
            rtype, rid = value.split("/")[-2:]
            return and_(t.c.target_type == rtype, t.c.target_id == rid)
        return t.c.target_id == value  # type: ignore[no-any-return]

    @staticmethod
    def _date_cond(low_col: Any, high_col: Any, value: str) -> ColumnElement[bool]:
        prefix, text = split_prefix(value)
        try:
            p_low, p_high = date_range(text)
        except ValueError:
            raise Invalid(f"'{text}' is not a valid date/dateTime search value") from None
        low = func.coalesce(low_col, datetime(1, 1, 1))
        high = func.coalesce(high_col, datetime(9999, 12, 31))
        match prefix:
            case "eq":
                return and_(low >= p_low, high <= p_high)
            case "ne":
                return not_(and_(low >= p_low, high <= p_high))
            case "gt":
                return high > p_high
            case "lt":
                return low < p_low
            case "ge":
                return high >= p_low
            case "le":
                return low <= p_high
            case "sa":
                return low > p_high
            case "eb":
                return high < p_low
            case _:  # ap: overlaps the range widened by 10% of the distance to now (approximation)
                return and_(low <= p_high + timedelta(days=1), high >= p_low - timedelta(days=1))

    @staticmethod
    def _number_cond(value: str, t: Any) -> ColumnElement[bool]:
        prefix, text = split_prefix(value)
        number_text, _, rest = text.partition("|")
        try:
            number = float(number_text)
        except ValueError:
            raise Invalid(f"'{text}' is not a number") from None
        decimals = len(number_text.split(".")[1]) if "." in number_text else 0
        half = 0.5 * 10 ** (-decimals)
        col = t.c.value
        conds: list[Any] = []
        match prefix:
            case "eq":
                conds.append(and_(col >= number - half, col < number + half))
            case "ne":
                conds.append(not_(and_(col >= number - half, col < number + half)))
            case "gt" | "sa":
                conds.append(col > number)
            case "lt" | "eb":
                conds.append(col < number)
            case "ge":
                conds.append(col >= number)
            case "le":
                conds.append(col <= number)
            case _:
                conds.append(and_(col >= number * 0.9, col <= number * 1.1))
        if rest:
            system, _, unit = rest.partition("|")
            if system:
                conds.append(t.c.system == system)
            if unit:
                conds.append(t.c.unit == unit)
        return and_(*conds) if len(conds) > 1 else conds[0]

    # ------------------------------------------------------------------ loading
    async def _load(self, rids: list[int]) -> list[StoredResource]:
        return await load_by_rids(self.rows, self.dialect, rids)

    async def _save_snapshot(self, ctx: AccessContext, query: SearchQuery, rids: list[int]) -> str:
        snapshot_id = str(uuid.uuid4())
        now = utcnow()
        row = {"id": snapshot_id, "created": now, "requester": ctx.requester_key, "query": query.canonical,
               "rids": orjson.dumps(rids), "total": len(rids)}

        async def store(conn: AsyncConnection) -> None:
            await conn.execute(insert(search_snapshots).values(**row))
            await conn.execute(delete(search_snapshots).where(search_snapshots.c.created < now - SNAPSHOT_TTL))

        await (self.write(store) if self.write else store(self.conn))
        return snapshot_id

    async def _includes(
        self, ctx: AccessContext, query: SearchQuery, matches: list[StoredResource]
    ) -> list[StoredResource]:
        if not query.includes or not matches:
            return []
        seen = {(m.res_type, m.res_id) for m in matches}
        found: list[StoredResource] = []
        frontier = matches
        for depth in range(3):
            new: list[StoredResource] = []
            for inc in query.includes:
                if depth > 0 and not inc.iterate:
                    continue
                batch = await (self._reverse(inc, frontier) if inc.reverse else self._forward(inc, frontier))
                for s in batch:
                    if (s.res_type, s.res_id) in seen or s.deleted:
                        continue
                    if not policy.may_read_row(ctx, s.res_type, medical=s.medical, owner_org=s.owner_org):
                        continue
                    seen.add((s.res_type, s.res_id))
                    new.append(s)
            if len(found) + len(new) > self.max_include:
                raise Invalid(
                    f"_include/_revinclude would add more than {self.max_include} resources; narrow the search"
                )
            found.extend(new)
            if not new or not any(i.iterate for i in query.includes):
                break
            frontier = new
        return found

    async def _forward(self, inc: Include, frontier: list[StoredResource]) -> list[StoredResource]:
        rids = [s.rid for s in frontier if s.res_type == inc.source_type and s.rid is not None]
        if not rids:
            return []
        cond = [
            idx_reference.c.rid.in_(rids),
            idx_reference.c.param == inc.param.code,
            idx_reference.c.target_id.is_not(None),
        ]
        if inc.target_type:
            cond.append(idx_reference.c.target_type == inc.target_type)
        pairs = {
            (t, i)
            for t, i in (
                await self.conn.execute(select(idx_reference.c.target_type, idx_reference.c.target_id).where(*cond))
            ).all()
            if t
        }
        if not pairs:
            return []
        rows = (
            await self.conn.execute(
                select(*STORED_COLUMNS).where(tuple_(resources.c.res_type, resources.c.res_id).in_(sorted(pairs)))
            )
        ).all()
        return [row_to_stored(r) for r in rows]

    async def _reverse(self, inc: Include, frontier: list[StoredResource]) -> list[StoredResource]:
        by_type: dict[str, list[str]] = {}
        for s in frontier:
            by_type.setdefault(s.res_type, []).append(s.res_id)
        conds = [
            and_(idx_reference.c.target_type == t, idx_reference.c.target_id.in_(ids)) for t, ids in by_type.items()
        ]
        stmt = (
            select(*STORED_COLUMNS)
            .where(
                resources.c.res_type == inc.source_type,
                resources.c.rid.in_(
                    select(idx_reference.c.rid).where(
                        idx_reference.c.res_type == inc.source_type,
                        idx_reference.c.param == inc.param.code,
                        or_(*conds) if conds else true(),
                    )
                ),
            )
            .limit(self.max_include + 1)
        )
        return [row_to_stored(r) for r in (await self.conn.execute(stmt)).all()]
