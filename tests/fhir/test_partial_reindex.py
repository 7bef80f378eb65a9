"""An update that names the elements it changes (`prepare_update(changed_elements=...)`) replaces only the index
rows of the parameters reading them. On PostgreSQL those rows are replaced in place (the n-th old row of a
resource and parameter becomes the n-th new one; surplus rows go, missing ones come): whatever the counts before
and after, what is stored must equal a from-scratch index of the new version, and the other parameters' rows must
stay physically where they were."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import literal_column, select

from hub.fhir.indexing import index_rows
from hub.security.context import AccessContext
from hub.store.raw import INDEX_COLUMNS, KINDS
from hub.store.schema import INDEX_TABLES, resources

TYPES = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
CTX = AccessContext.system("tests: partial reindex")


def coding(code: str) -> dict[str, Any]:
    return {"coding": [{"system": TYPES, "code": code}]}


async def stored_rows(hub: Any, res_id: str, *, physical: bool = False) -> dict[str, list[tuple[str, ...]]]:
    """The resource's index rows per table, sorted (`physical`: their storage addresses instead)."""
    address = literal_column("rowid" if hub.backend == "sqlite" else "ctid::text")
    async with hub.runtime.engine.connect() as conn:
        rid = (await conn.execute(select(resources.c.rid).where(resources.c.res_type == "Location",
                                                                resources.c.res_id == res_id))).scalar_one()
        found = {}
        for kind in KINDS:
            table = INDEX_TABLES[kind]
            columns = [address] if physical else [table.c[c] for c in INDEX_COLUMNS[kind]]
            rows = (await conn.execute(select(*columns).where(table.c.rid == rid))).all()
            found[kind] = sorted(tuple(str(v) for v in r) for r in rows)
        return found


def expected_rows(hub: Any, resource: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    full = index_rows(hub.runtime.registry, resource)
    return {kind: sorted(tuple(str(r.get(c)) for c in INDEX_COLUMNS[kind]) for r in full.get(kind, []))
            for kind in KINDS}


async def change_types(hub: Any, types: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Set Location.type of several resources in one update_many, naming `type` as the only changed element."""
    async with hub.runtime.uow() as uow:
        current = await uow.resources.current_many("Location", list(types))
        prepared = []
        for res_id, codes in types.items():
            resource = {k: v for k, v in orjson.loads(current[res_id].content).items() if k != "type"}
            if codes:
                resource["type"] = [coding(c) for c in codes]
            update = uow.resources.prepare_update(CTX, resource, current[res_id], method="PATCH", changed=True,
                                                  changed_elements=frozenset({"type"}))
            assert update is not None and update.reindexed is not None and "type" in update.reindexed
            prepared.append(update)
        await uow.resources.update_many(prepared)
    return {p.stored.res_id: p.resource for p in prepared}


async def test_a_partial_reindex_equals_a_full_one_whatever_the_row_counts(hub, location_factory):
    ids = []
    for name, codes in (("Kamer A", ["HOSP", "NURS"]), ("Kamer B", []), ("Kamer C", ["HOSP"])):
        body = location_factory(name, **({"type": [coding(c) for c in codes]} if codes else {}))
        created = await hub.client.post("/fhir/Location", json=body, headers=hub.headers())
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    before = {i: await stored_rows(hub, i) for i in ids}
    addresses = {i: await stored_rows(hub, i, physical=True) for i in ids}
    assert [len([r for r in before[i]["token"] if r[0] == "type"]) for i in ids] == [2, 0, 1]
    # grow, appear and vanish in one statement; then shrink, grow from nothing, and keep the same count
    for step in ({ids[0]: ["HOSP", "NURS", "ER"], ids[1]: ["NURS", "HOSP"], ids[2]: []},
                 {ids[0]: ["ER"], ids[1]: ["NURS", "HOSP", "PEDU"], ids[2]: ["HOSP", "NURS"]},
                 {ids[0]: ["NURS"], ids[1]: [], ids[2]: ["ER", "PEDU"]}):
        written = await change_types(hub, step)
        for res_id, codes in step.items():
            rows = await stored_rows(hub, res_id)
            assert rows == expected_rows(hub, written[res_id]), res_id
            assert sorted(r[2] for r in rows["token"] if r[0] == "type") == sorted(codes)
            physical = await stored_rows(hub, res_id, physical=True)
            for kind in ("string", "reference", "date", "number", "uri"):
                assert physical[kind] == addresses[res_id][kind], f"{kind} rows of Location/{res_id} were rewritten"
    found = await hub.client.get(f"/fhir/Location?type={TYPES}|PEDU&_id={','.join(ids)}", headers=hub.headers())
    assert [e["resource"]["id"] for e in found.json().get("entry", [])] == [ids[2]]
