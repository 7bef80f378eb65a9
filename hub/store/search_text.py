"""The common searches as SQL text, run through the driver.

Why: for a plain `Location?name=...` the SQL itself runs in ~0.1 ms, but building it as SQLAlchemy Core
expressions and executing those cost ~1 ms of Python per request. Most searches in this hub are of a few
simple shapes — string (default, `:exact`, `:contains`), token (`code`, `system|code`, `|code`, `system|`),
reference, uri, `_id` — AND-ed, default sort. Those are written here as SQL text with bound parameters (the
same semi-joins on the index tables as hub/store/search_sql.py, so the same indexes lead); anything else
(chains, dates, numbers, `:missing`, `:not`, `:in`, `_sort`, `_lastUpdated`) returns None and takes the Core
path. tests/fhir/test_search_text.py checks both paths return the same rows for the same queries.
"""

from __future__ import annotations

from typing import Any

from hub.fhir.indexing import normalize
from hub.fhir.search.query import Clause, SearchQuery
from hub.security.policy import ReadScope

_TABLES = {"string": "idx_string", "token": "idx_token", "reference": "idx_reference", "uri": "idx_uri"}


class _Params:
    """Collects bound values; renders `?` (sqlite3) or `$n` (asyncpg)."""

    def __init__(self, numbered: bool) -> None:
        self.values: list[Any] = []
        self.numbered = numbered

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.numbered else "?"


def rid_query(query: SearchQuery, scope: ReadScope, dialect: str, limit: int, *,
              columns: str = "resources.rid") -> tuple[str, list[Any]] | None:
    """(SQL, parameters) selecting the matching rids in result order, or None when the query needs the Core path.
    `columns`: hub/store/raw.py LOAD_COLUMNS reads the stored rows themselves (a first page, in the same round
    trip)."""
    if query.sort or query.summary == "count" or query.count == 0 or not scope.allowed:
        return None
    p = _Params(numbered=dialect != "sqlite")
    conds: list[str] = []
    narrowed = any(c.param is not None and c.modifier not in ("not", "not-in", "missing") for c in query.clauses)
    if not narrowed:
        conds.append(f"resources.res_type = {p(query.resource_type)}")
    conds.append(f"resources.deleted = {p(False)}")
    if scope.non_medical_only:
        conds.append(f"resources.medical = {p(False)}")
    elif scope.own_org_only_for_medical:
        conds.append(f"(resources.medical = {p(False)} OR resources.owner_org = {p(scope.own_org_only_for_medical)})")
    for clause in query.clauses:
        cond = _clause(query.resource_type, clause, p)
        if cond is None:
            return None
        conds.append(cond)
    sql = f"SELECT {columns} FROM resources WHERE {' AND '.join(conds)} ORDER BY resources.rid LIMIT {p(limit)}"
    return sql, p.values


def _clause(resource_type: str, clause: Clause, p: _Params) -> str | None:
    if clause.chain is not None or not clause.values:
        return None
    if clause.code == "_id":
        if clause.modifier is not None:
            return None
        return f"resources.res_id IN ({', '.join(p(v) for v in clause.values)})"
    param = clause.param
    if param is None or param.type not in _TABLES:
        return None
    # placeholders in text order (`?` is positional): the index table's type and param first, then the values
    head = (f"resources.rid IN (SELECT t.rid FROM {_TABLES[param.type]} t WHERE t.res_type = {p(resource_type)} "
            f"AND t.param = {p(param.code)}")
    ors: list[str] = []
    for value in clause.values:
        cond = _value(param.type, clause.modifier, value, p)
        if cond is None:
            return None
        ors.append(cond)
    return f"{head} AND ({' OR '.join(ors)}))"


def _value(param_type: str, modifier: str | None, value: str, p: _Params) -> str | None:
    if param_type == "string":
        if modifier == "exact":
            return f"t.exact = {p(value)}"
        norm = normalize(value)
        if modifier == "contains":
            escaped = norm.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            return f"t.value LIKE {p(f'%{escaped}%')} ESCAPE '\\'"
        if modifier is None:
            return f"(t.value >= {p(norm)} AND t.value < {p(norm + chr(0x10FFFF))})"
        return None
    if param_type == "token":
        if modifier is not None:
            return None
        if "|" not in value:
            return f"t.code = {p(value)}"
        system, code = value.split("|", 1)
        if system == "":
            return f"(t.code = {p(code)} AND t.system IS NULL)"
        if code == "":
            return f"t.system = {p(system)}"
        return f"(t.system = {p(system)} AND t.code = {p(code)})"
    if param_type == "reference":
        if modifier and modifier[:1].isupper():
            return f"(t.target_type = {p(modifier)} AND t.target_id = {p(value.split('/')[-1])})"
        if modifier is not None:
            return None
        if value.startswith(("http://", "https://", "urn:")):
            return f"t.url = {p(value)}"
        if "/" in value:
            rtype, rid = value.split("/")[-2:]
            return f"(t.target_type = {p(rtype)} AND t.target_id = {p(rid)})"
        return f"t.target_id = {p(value)}"
    if param_type == "uri" and modifier is None:
        return f"t.value = {p(value)}"
    return None
