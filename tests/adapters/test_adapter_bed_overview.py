"""Bed overview (CSV and XLSX): the spreadsheet quirks of README 6 and the per-row problem reporting."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import openpyxl
import pytest
from adapter_cases import COORDINATION_POINT, ESDORP, SAMPLES, entry_for, meta_with, resource_of, resources

from adapters import bed_csv, bed_xlsx
from adapters.base import AdapterError, Problem, SourceMeta, Translation

SAMPLE = (SAMPLES / "beddenoverzicht_drenthe_2026-03-09.csv").read_bytes()
HEADER = "Datum;Zorgaanbieder;AGB;Locatie;Plaats;Product;Capaciteit;Bezet;Vrij;Verwacht vrij;Contact;Opmerking"


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return ("\r\n".join(["Beddenoverzicht test", "", header, *rows]) + "\r\n").encode(encoding)


def run(data: bytes, meta: SourceMeta = COORDINATION_POINT) -> Translation:
    return bed_csv.translate(data, meta)


def report(result: Translation, service: str) -> dict[str, Any]:
    return resource_of(result.bundle, "MeasureReport", f"{service}/2026-03-09")


def counts(measure_report: dict[str, Any]) -> dict[str, int | None]:
    return {p["code"]["coding"][0]["code"]: p.get("count") for p in measure_report["group"][0]["population"]}


def errors(result: Translation) -> list[Problem]:
    return [p for p in result.problems if p.severity == "error"]


# --- the shared sample -----------------------------------------------------------------------------------
def test_sample_gives_one_service_and_report_per_provider_location_product() -> None:
    result = run(SAMPLE)
    assert len(resources(result.bundle, "HealthcareService")) == 8
    assert len(resources(result.bundle, "MeasureReport")) == 8
    assert counts(report(result, "73730001/de-hunzehof/elv-laag")) == {
        "numTotBeds": 6,
        "numTotBedsOcc": 5,
        "numTotBedsAvail": 1,
    }
    assert not errors(result)


def test_empty_counts_are_unknown_not_zero() -> None:
    respite = report(run(SAMPLE), "73730002/esdorp/wmo-kv")
    assert counts(respite) == {"numTotBeds": 2, "numTotBedsOcc": None, "numTotBedsAvail": None}


def test_nb_expected_free_date_is_left_out_and_a_real_one_becomes_the_extension() -> None:
    result = run(SAMPLE)
    assert (
        "extension" not in entry_for(result.bundle, "HealthcareService", "73730003/de-akkerwinde/elv-hoog")["resource"]
    )
    hoog = entry_for(result.bundle, "HealthcareService", "73730001/de-hunzehof/elv-hoog")["resource"]
    assert hoog["extension"] == [
        {"url": "https://zorgnet-hub.nl/fhir/StructureDefinition/expected-free-date", "valueDate": "2026-03-11"}
    ]


def test_totaal_row_is_skipped() -> None:
    result = run(SAMPLE)
    assert Problem("information", "total row skipped", "line 12") in result.problems
    assert all(counts(r)["numTotBeds"] != 30 for r in resources(result.bundle, "MeasureReport"))


def test_short_date_and_remarks_are_read() -> None:
    result = run(SAMPLE)
    grz = report(result, "73730003/de-akkerwinde/grz")
    assert grz["date"] == "2026-03-09" and grz["period"] == {"start": "2026-03-09", "end": "2026-03-09"}
    pall = entry_for(result.bundle, "HealthcareService", "73730001/het-drentse-veld/elv-pall")["resource"]
    assert pall["characteristic"][0]["coding"][0]["code"] == "women-only"
    assert pall["comment"] == "alleen dames (2-pers kamer)"


def test_reimporting_the_same_file_targets_the_same_reports() -> None:
    urls = [e["request"]["url"] for e in run(SAMPLE).bundle["entry"] if e["request"]["method"] == "PUT"]
    assert urls == [e["request"]["url"] for e in run(SAMPLE).bundle["entry"] if e["request"]["method"] == "PUT"]
    assert len(urls) == len(set(urls))


# --- encodings, separators, header variants -------------------------------------------------------------
def test_windows_1252_comma_separated_with_other_headers_and_order() -> None:
    header = "Peildatum,Vestiging,Organisatie,AGB-code,Soort bed,Totaal,Beschikbaar,Bezet,Vrij per,Telefoon,M/V"
    data = csv_bytes(
        '9-3-26,Hûs ter Aa,Zorggroep Coöperatie,73730004,ELV-HC,"4,0",1,3,-,0592-1,V', header=header, encoding="cp1252"
    )
    result = run(data)
    organization = resources(result.bundle, "Organization")[0]
    assert organization["name"] == "Zorggroep Coöperatie"
    service = entry_for(result.bundle, "HealthcareService", "73730004/hus-ter-aa/elv-hoog")["resource"]
    assert service["name"] == "ELV hoog complex - Hûs ter Aa"
    assert service["characteristic"][0]["coding"][0]["code"] == "women-only"
    assert counts(report(result, "73730004/hus-ter-aa/elv-hoog")) == {
        "numTotBeds": 4,
        "numTotBedsOcc": 3,
        "numTotBedsAvail": 1,
    }
    assert Problem("information", "file is not UTF-8; read as Windows-1252") in result.problems


def test_number_with_a_remark_counts_and_keeps_the_remark_as_a_note() -> None:
    result = run(csv_bytes("09-03-2026;Zorggroep Noorderzand;73730001;De Hunzehof;Assen;ELV laag;6;5;1 (man);;;"))
    assert counts(report(result, "73730001/de-hunzehof/elv-laag"))["numTotBedsAvail"] == 1
    service = entry_for(result.bundle, "HealthcareService", "73730001/de-hunzehof/elv-laag")["resource"]
    assert service["comment"] == "Vrij: man"
    assert any(p.location == "line 4, column Vrij" and p.severity == "information" for p in result.problems)


@pytest.mark.parametrize("unknown", ["n.b.", "-", "", "onbekend", "?"])
def test_unknown_markers_omit_the_count(unknown: str) -> None:
    result = run(csv_bytes(f"09-03-2026;Zorggroep Noorderzand;73730001;De Hunzehof;Assen;ELV laag;6;{unknown};;;;"))
    assert counts(report(result, "73730001/de-hunzehof/elv-laag")) == {
        "numTotBeds": 6,
        "numTotBedsOcc": None,
        "numTotBedsAvail": None,
    }


# --- rows that are rejected, with line and column --------------------------------------------------------
def test_ambiguous_respijt_is_rejected_with_its_line_and_the_rest_still_translates() -> None:
    result = run(
        csv_bytes(
            "09-03-2026;Stichting Esdorp Zorg;73730002;Esdorp;Beilen;Respijt;2;1;1;;;",
            "09-03-2026;Stichting Esdorp Zorg;73730002;Esdorp;Beilen;elv laag;3;3;0;;;",
        )
    )
    [problem] = errors(result)
    assert problem.location == "line 4, column Product"
    assert "Wmo kortdurend verblijf or Wlz logeeropvang" in problem.message
    assert [s["type"][0]["coding"][0]["code"] for s in resources(result.bundle, "HealthcareService")] == ["elv-laag"]


def test_respijt_from_a_municipality_is_wmo_kortdurend_verblijf() -> None:
    municipality = meta_with(ESDORP, sender_kind="municipality")
    result = run(csv_bytes("09-03-2026;Stichting Esdorp Zorg;73730002;Esdorp;Beilen;Respijt;2;1;1;;;"), municipality)
    assert resources(result.bundle, "HealthcareService")[0]["type"][0]["coding"][0]["code"] == "wmo-kv"


@pytest.mark.parametrize(
    ("counts_cells", "column", "message"),
    [
        ("4;5;0", "Bezet", "more than the capacity"),
        ("4;-1;3", "Bezet", "negative"),
        ("4;3;2", "Vrij", "occupied 3 + free 2"),
        ("4;veel;0", "Bezet", "not a number"),
        ("4;1,5;0", "Bezet", "whole number"),
    ],
)
def test_numbers_that_do_not_add_up_reject_the_row(counts_cells: str, column: str, message: str) -> None:
    result = run(csv_bytes(f"09-03-2026;Zorggroep Noorderzand;73730001;De Hunzehof;Assen;ELV laag;{counts_cells};;;"))
    [problem] = errors(result)
    assert problem.location == f"line 4, column {column}" and message in problem.message
    assert not resources(result.bundle, "MeasureReport")


def test_unknown_product_and_bad_agb_and_duplicates_are_row_errors() -> None:
    result = run(
        csv_bytes(
            "09-03-2026;Zorggroep Noorderzand;73730001;De Hunzehof;Assen;Dagbesteding;6;5;1;;;",
            "09-03-2026;Zorggroep Noorderzand;7373;De Hunzehof;Assen;ELV laag;6;5;1;;;",
            "09-03-2026;Zorggroep Noorderzand;73730001;De Hunzehof;Assen;ELV hoog;4;4;0;;;",
            "09-03-2026;Zorggroep Noorderzand;73730001;de hunzehof ;Assen;ELV-HC;4;4;0;;;",
        )
    )
    assert [p.location for p in errors(result)] == ["line 4, column Product", "line 5, column AGB", "line 7"]
    assert len(resources(result.bundle, "MeasureReport")) == 1


def test_row_without_agb_uses_the_sender_only_when_the_sender_is_the_provider() -> None:
    row = "09-03-2026;Stichting Esdorp Zorg;;Esdorp;Beilen;ELV laag;3;3;0;;;"
    assert resources(run(csv_bytes(row), ESDORP).bundle, "HealthcareService")
    result = run(csv_bytes(row), COORDINATION_POINT)
    assert [p.location for p in errors(result)] == ["line 4, column AGB"]


def test_a_file_without_a_recognisable_header_is_an_adapter_error() -> None:
    with pytest.raises(AdapterError):
        run(b"naam;adres\r\nx;y\r\n")


# --- XLSX ----------------------------------------------------------------------------------------------------
def sample_workbook() -> bytes:
    """The CSV sample as a workbook the way Excel stores it: real dates and numbers, text where text was typed."""
    text = SAMPLE.decode("utf-8-sig")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Bedden"
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=";"), start=1):
        sheet.append([_excel_value(cell, number) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _excel_value(cell: str, row_number: int) -> object:
    if row_number <= 3 or not cell:
        return cell or None
    if cell.replace("-", "").isdigit() and cell.count("-") == 2:
        day, month, year = (int(p) for p in cell.split("-"))
        return datetime(year, month, day)
    return int(cell) if cell.isdigit() else cell


def test_xlsx_mirror_of_the_sample_gives_the_same_bundle_as_the_csv() -> None:
    from_xlsx = bed_xlsx.translate(sample_workbook(), COORDINATION_POINT)
    assert from_xlsx.bundle == run(SAMPLE).bundle
    assert Problem("information", "total row skipped", "sheet 'Bedden' row 12") in from_xlsx.problems


def test_xlsx_row_problems_name_the_sheet_row_and_column() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Blad1"
    sheet.append(HEADER.split(";"))
    sheet.append([datetime(2026, 3, 9), "Zorggroep Noorderzand", 73730001, "De Hunzehof", "Assen", "ELV laag", 4, 5, 0])
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = bed_xlsx.translate(buffer.getvalue(), COORDINATION_POINT)
    assert [p.location for p in errors(result)] == ["sheet 'Blad1' row 2, column Bezet"]


def test_xlsx_that_is_not_a_workbook_is_an_adapter_error() -> None:
    with pytest.raises(AdapterError):
        bed_xlsx.translate(b"PK\x03\x04 not really a zip", COORDINATION_POINT)
