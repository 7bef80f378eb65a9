"""The NEN 7513 trail: the privacy officer's per-patient AuditEvent search and read (reading the log is logged),
nobody else may read it or write it, and the hash chain catches a changed, a removed and a truncated entry."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from acp_examples import F1, GEMEENTE, GP_ORG, HAP_ORG, P2, PRIVACY_ORG, purpose
from sqlalchemy import delete, select, update

from hub import cli
from hub.config import get_settings
from hub.security import audit
from hub.store.schema import audit_log

SUMMARY = f"/fhir/Patient/{P2}/$acp-summary"


def officer(hub: Any) -> dict[str, str]:
    return hub.headers("privacy-officer", PRIVACY_ORG)


async def trail(hub: Any, query: str) -> dict[str, Any]:
    r = await hub.client.get(f"/fhir/AuditEvent?{query}", headers=officer(hub))
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def who(event: dict[str, Any]) -> tuple[str, str]:
    return event["agent"][0]["role"][0]["coding"][0]["code"], event["outcome"]


async def test_privacy_officer_sees_every_access_to_one_patient_including_refusals(pzp):
    await pzp.client.get(SUMMARY, headers=pzp.headers("hap-doctor", HAP_ORG, **purpose("ETREAT")))
    await pzp.client.get(SUMMARY, headers=pzp.headers("municipality", GEMEENTE))
    await pzp.client.get(f"/fhir/Patient/{F1}/$acp-summary", headers=pzp.headers("gp", GP_ORG))
    await pzp.client.get("/fhir/Consent?category=http://snomed.info/sct|129125009", headers=pzp.headers("gp", GP_ORG))
    bundle = await trail(pzp, f"patient=Patient/{P2}")
    events = [e["resource"] for e in bundle["entry"]]
    assert bundle["type"] == "searchset"
    assert [who(e) for e in events] == [("gp", "0"), ("municipality", "4"), ("hap-doctor", "0")]  # newest first
    assert "ETREAT" in orjson.dumps(events[2]).decode()
    assert events[0]["subtype"][0]["code"] == "search-type"  # a search over both patients is found per patient
    assert [who(e["resource"]) for e in (await trail(pzp, "patient=" + F1))["entry"]][-1] == ("gp", "0")
    refusals = await trail(pzp, f"patient={P2}&outcome=4")
    assert [who(e["resource"]) for e in refusals["entry"]] == [("municipality", "4")]


async def test_reading_the_log_is_itself_logged(pzp):
    await pzp.client.get(SUMMARY, headers=pzp.headers("gp", GP_ORG))
    first = await trail(pzp, f"patient={P2}")
    event = first["entry"][0]["resource"]
    again = await trail(pzp, f"patient={P2}")
    officer_reads = [e["resource"] for e in again["entry"] if who(e["resource"])[0] == "privacy-officer"]
    assert len(officer_reads) == 1 and officer_reads[0]["subtype"][0]["code"] == "search-type"
    assert event["id"] not in {e["id"] for e in officer_reads}


async def test_privacy_officer_reads_one_audit_event_by_id(pzp):
    await pzp.client.get(SUMMARY, headers=pzp.headers("gp", GP_ORG))
    event = (await trail(pzp, f"patient={P2}"))["entry"][0]["resource"]
    one = await pzp.client.get(f"/fhir/AuditEvent/{event['id']}", headers=officer(pzp))
    assert one.status_code == 200 and one.json() == event
    assert (await pzp.client.get("/fhir/AuditEvent/nope", headers=officer(pzp))).status_code == 404
    gp = await pzp.client.get(f"/fhir/AuditEvent/{event['id']}", headers=pzp.headers("gp", GP_ORG))
    assert gp.status_code == 403


async def test_date_filter_paging_and_unknown_parameters(pzp):
    for _ in range(3):
        await pzp.client.get(SUMMARY, headers=pzp.headers("gp", GP_ORG))
    page = await trail(pzp, f"patient={P2}&_count=2&date=ge2020-01-01")
    assert len(page["entry"]) == 2
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = (await pzp.client.get(following.replace("http://hub.test", ""), headers=officer(pzp))).json()
    assert {e["resource"]["id"] for e in rest["entry"]}.isdisjoint({e["resource"]["id"] for e in page["entry"]})
    assert "entry" not in await trail(pzp, f"patient={P2}&date=lt2020-01-01")
    bad = await pzp.client.get("/fhir/AuditEvent?who=x", headers=officer(pzp))
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["who"]


@pytest.mark.parametrize("role", ["gp", "hap-doctor", "admin", "municipality", "coordinator"])
async def test_only_the_privacy_officer_reads_the_trail_and_nobody_writes_it(hub, role):
    r = await hub.client.get(f"/fhir/AuditEvent?patient={P2}", headers=hub.headers(role, GP_ORG))
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    assert await hub.count(audit_log, audit_log.c.outcome == "4") == 1  # the attempt is logged
    forged = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2026-01-01T00:00:00Z",
              "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    for method, url in (("POST", "/fhir/AuditEvent"), ("PUT", "/fhir/AuditEvent/x"), ("DELETE", "/fhir/AuditEvent/x")):
        w = await hub.client.request(method, url, json=forged, headers=hub.headers("admin"))
        assert w.status_code == 405, (method, w.text)


async def seal_and_verify(hub: Any) -> audit.ChainReport:
    async with hub.runtime.engine.begin() as conn:
        await audit.seal(conn)
    async with hub.runtime.engine.connect() as conn:
        return await audit.verify_chain(conn)


async def accesses(hub: Any, n: int) -> list[int]:
    for _ in range(n):
        await hub.client.get(SUMMARY, headers=hub.headers("gp", GP_ORG))
    return [s for (s,) in (await _rows(hub, select(audit_log.c.seq).order_by(audit_log.c.seq)))]


async def _rows(hub: Any, stmt: Any) -> list[Any]:
    async with hub.runtime.engine.connect() as conn:
        return list((await conn.execute(stmt)).all())


async def _change(hub: Any, stmt: Any) -> None:
    async with hub.runtime.engine.begin() as conn:
        await conn.execute(stmt)


async def test_hash_chain_verifies_and_catches_a_changed_entry(pzp):
    seqs = await accesses(pzp, 4)
    report = await seal_and_verify(pzp)
    assert report.ok and report.checked == len(seqs)
    content = (await _rows(pzp, select(audit_log.c.content).where(audit_log.c.seq == seqs[1])))[0][0]
    forged = content.replace(b'"outcome":"0"', b'"outcome":"4"')
    await _change(pzp, update(audit_log).where(audit_log.c.seq == seqs[1]).values(content=forged))
    report = await seal_and_verify(pzp)
    assert not report.ok and report.broken_at == seqs[1] and "changed" in (report.reason or "")


async def test_hash_chain_catches_a_rehashed_entry_a_removed_entry_and_a_removed_tail(pzp):
    seqs = await accesses(pzp, 5)
    assert (await seal_and_verify(pzp)).ok
    # changed and re-hashed to hide it: its successor no longer links to it
    row = (await _rows(pzp, select(audit_log.c.prev_hash, audit_log.c.content).where(audit_log.c.seq == seqs[1])))[0]
    forged = row.content.replace(b'"gp"', b'"admin"')
    await _change(pzp, update(audit_log).where(audit_log.c.seq == seqs[1])
                  .values(content=forged, hash=audit.chain_hash(row.prev_hash, forged)))
    report = await seal_and_verify(pzp)
    assert not report.ok and report.broken_at == seqs[2] and "removed" in (report.reason or "")
    await _change(pzp, update(audit_log).where(audit_log.c.seq == seqs[1]).values(
        content=row.content, hash=audit.chain_hash(row.prev_hash, row.content)))
    assert (await seal_and_verify(pzp)).ok
    await _change(pzp, delete(audit_log).where(audit_log.c.seq == seqs[2]))
    report = await seal_and_verify(pzp)
    assert not report.ok and report.broken_at == seqs[3]
    await _change(pzp, delete(audit_log).where(audit_log.c.seq >= seqs[2]))  # drop everything from there on
    report = await seal_and_verify(pzp)
    assert not report.ok and "at the end" in (report.reason or "")


async def test_concurrent_sealers_never_fork_the_chain(pzp):
    await accesses(pzp, 6)

    async def sealer() -> int:
        async with pzp.runtime.engine.begin() as conn:
            return await audit.seal(conn)

    sealed = await asyncio.gather(*(sealer() for _ in range(4)))
    assert sum(sealed) == await pzp.count(audit_log, audit_log.c.hash.is_not(None))
    async with pzp.runtime.engine.connect() as conn:
        assert (await audit.verify_chain(conn)).ok
    unsealed = await pzp.count(audit_log, audit_log.c.hash.is_(None))
    assert unsealed == 0 or (await seal_and_verify(pzp)).ok


async def test_hub_audit_verify_command_reports_a_tampered_row(pzp, monkeypatch):
    seqs = await accesses(pzp, 3)
    monkeypatch.setenv("HUB_DATABASE_URL", pzp.settings.database_url)
    if pzp.settings.database_schema:
        monkeypatch.setenv("HUB_DATABASE_SCHEMA", pzp.settings.database_schema)
    get_settings.cache_clear()
    try:
        assert await asyncio.to_thread(cli.main, ["audit-verify"]) == 0
        content = (await _rows(pzp, select(audit_log.c.content).where(audit_log.c.seq == seqs[0])))[0][0]
        await _change(pzp, update(audit_log).where(audit_log.c.seq == seqs[0]).values(content=content + b" "))
        assert await asyncio.to_thread(cli.main, ["audit-verify"]) == 1
    finally:
        get_settings.cache_clear()
