"""Unusable input never stores anything and never answers 500; sender configuration is for admins only."""

from __future__ import annotations

from typing import Any

import pytest
from ingest_cases import (
    COORDINATION_POINT,
    CSV,
    GP_MULDER,
    HUNZEHOF,
    HUNZEHOF_CONFIG,
    configure,
    diagnostics,
    hl7,
    ingest,
    sample,
    search,
)
from sqlalchemy import func, select

from hub.ingest.tables import ingest_clock, ingest_hl7_beds
from hub.store.schema import idempotency, resources

A01 = hl7("adt_a01_opname.hl7")
SHEET = sample("beddenoverzicht_drenthe_2026-03-09.csv")


async def _nothing_stored(hub: Any) -> None:
    stored = await hub.scalar(select(func.count()).select_from(resources).where(resources.c.rid > hub.baseline_rid))
    assert stored == 0
    assert await hub.count(idempotency) == 0
    assert await hub.count(ingest_clock) == 0
    assert await hub.count(ingest_hl7_beds) == 0


@pytest.mark.parametrize(
    ("fmt", "body", "status", "code", "where"),
    [
        ("hl7v2", A01.replace(b"999990019", b"999990018"), 422, "invalid", "PID-3[2]"),
        ("hl7v2", A01.replace(b"ADT^A01^ADT_A01", b"SIU^S12"), 422, "not-supported", "MSH-9"),
        ("hl7v2", b"\x00\x01 not hl7 at all", 422, "invalid", "MSH"),
        ("medvri", sample("gp", "medvri_verwijzing_elv.edi")[:300], 422, "invalid", "segment"),
        (
            "iwmo",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
            400,
            "security",
            None,
        ),
        ("bed-csv", SHEET.replace(b"Product;", b"Soort;"), 422, "invalid", "line 1"),
        ("fhir", b'{"resourceType": "Bundle", "type": "document"', 400, "structure", None),
    ],
    ids=["bad-bsn", "unsupported-event", "garbage", "truncated-medvri", "xml-entity", "no-header", "broken-json"],
)
async def test_unusable_input_is_refused_whole_with_its_location(
    hunzehof: Any, fmt: str, body: bytes, status: int, code: str, where: str | None
) -> None:
    hub = hunzehof
    sender = ("vvt-provider", HUNZEHOF) if fmt == "hl7v2" else ("coordinator", COORDINATION_POINT)
    response = await ingest(hub, fmt, body, role=sender[0], org=sender[1])
    assert response.status_code == status, response.text
    issue = response.json()["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", code)
    if where:
        assert where in issue["expression"][0] and where in issue["diagnostics"]
    await _nothing_stored(hub)


async def test_sender_role_that_may_not_write_the_content_is_403_and_nothing_stored(hub: Any) -> None:
    response = await ingest(hub, "bed-csv", SHEET, role="gp", org=GP_MULDER)
    assert response.status_code == 403
    issue = response.json()["issue"][0]
    assert issue["code"] == "forbidden"
    assert "not stored" in issue["diagnostics"] and "may not write" in issue["diagnostics"]
    await _nothing_stored(hub)


async def test_spreadsheet_with_a_bad_row_stores_the_good_rows_and_reports_the_line(hub: Any) -> None:
    body = SHEET.replace(b";ELV laag complex;6;5;1;", b";ELV laag complex;6;7;1;")
    response = await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)
    assert response.status_code == 201
    rejected = [i for i in response.json()["issue"] if "record rejected" in i["diagnostics"]]
    assert len(rejected) == 1
    assert rejected[0]["severity"] == "warning" and rejected[0]["expression"] == ["line 4, column Bezet"]
    assert len(await search(hub, "MeasureReport", {"date": "2026-03-09"})) == 7


async def test_spreadsheet_whose_every_row_is_rejected_is_422(hub: Any) -> None:
    body = (
        b"Datum;Zorgaanbieder;AGB;Locatie;Plaats;Product;Capaciteit;Bezet;Vrij\n"
        b"09-03-2026;X;73730001;L;Assen;ELV hoog;2;5;1\n"
    )
    response = await ingest(hub, "bed-csv", body, role="coordinator", org=COORDINATION_POINT)
    assert response.status_code == 422
    assert "line 2, column Bezet" in diagnostics(response.json())
    await _nothing_stored(hub)


async def test_wrong_content_type_unknown_format_empty_body_and_no_token(hub: Any) -> None:
    wrong = await ingest(hub, "hl7v2", A01, role="vvt-provider", org=HUNZEHOF, content_type="text/plain")
    assert wrong.status_code == 415 and "application/hl7-v2" in wrong.json()["issue"][0]["diagnostics"]
    nope = await hub.client.post(
        "/ingest/edifact-x",
        content=b"x",
        headers={"Authorization": f"Bearer {hub.token('coordinator', COORDINATION_POINT)}", "Content-Type": CSV},
    )
    assert nope.status_code == 404 and "known: hl7v2" in nope.json()["issue"][0]["diagnostics"]
    empty = await ingest(hub, "bed-csv", b"  \n", role="coordinator", org=COORDINATION_POINT)
    assert empty.status_code == 400
    anonymous = await hub.client.post("/ingest/bed-csv", content=SHEET, headers={"Content-Type": CSV})
    assert anonymous.status_code == 401


async def test_sender_configuration_round_trip_and_rules(hub: Any) -> None:
    saved = await configure(hub, HUNZEHOF, HUNZEHOF_CONFIG)
    assert saved.status_code == 200
    read = await hub.client.get(f"/ingest/config/{HUNZEHOF}", headers=hub.headers())
    assert read.status_code == 200
    assert read.json()["config"] == {"ward_products": {"ELV-ZW": "elv-hoog"}}
    assert read.json()["hl7Sources"] == [{"application": "YSIS", "facility": "ZNZ-ASSEN"}]
    listed = await hub.client.get("/ingest/config", headers=hub.headers())
    assert [s["sender"] for s in listed.json()["senders"]] == [HUNZEHOF]
    as_provider = await hub.client.put(
        f"/ingest/config/{HUNZEHOF}", json=HUNZEHOF_CONFIG, headers=hub.headers("vvt-provider", HUNZEHOF)
    )
    assert as_provider.status_code == 403
    bad_product = {**HUNZEHOF_CONFIG, "config": {"ward_products": {"ELV-ZW": "elv-extra"}}}
    refused = await configure(hub, HUNZEHOF, bad_product)
    assert refused.status_code == 422 and "elv-extra" in refused.json()["issue"][0]["diagnostics"]
    typo = await configure(hub, HUNZEHOF, {**HUNZEHOF_CONFIG, "config": {"ward_product": {}}})
    assert typo.status_code == 422
    taken = await configure(hub, "http://fhir.nl/fhir/NamingSystem/agb-z|73730002", HUNZEHOF_CONFIG)
    assert taken.status_code == 409  # YSIS/ZNZ-ASSEN already belongs to De Hunzehof
    missing = await hub.client.get("/ingest/config/x%7Cy", headers=hub.headers())
    assert missing.status_code == 404
