"""The daily bed overview as CSV (README 6): Dutch Excel exports, `;` or `,`, UTF-8 (BOM) or Windows-1252.

This module only turns bytes into numbered rows: decoding, picking the delimiter (the one under which a header
row is found with the most known columns, because a title row or decimal commas fool csv.Sniffer) and keeping
physical line numbers for Problem locations. Reading the rows is bed_overview's job, FHIR is bed_reports'.
"""

from __future__ import annotations

import csv
import io

from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bed_overview import Sheet, SheetRow, find_sheet
from adapters.bed_reports import translate_sheet
from adapters.encodings import decode_tolerant

FORMAT = "bed-csv"
MEDIA_TYPES = ("text/csv", "application/csv")
DESCRIPTION = "Daily bed overview (beddenoverzicht) as CSV -> HealthcareService + MeasureReport per product"
MAX_BYTES = 5 * 1024 * 1024
_DELIMITERS = (";", ",", "\t")


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """CSV bytes -> bed-overview Translation; undecodable or header-less input is an AdapterError."""
    if len(source) > MAX_BYTES:
        raise AdapterError(f"CSV larger than {MAX_BYTES} bytes", code="too-costly")
    text, codec = decode_tolerant(source, fallback="cp1252")
    problems: list[Problem] = []
    if codec == "cp1252":
        problems.append(Problem("information", "file is not UTF-8; read as Windows-1252"))
    return translate_sheet(_best_sheet(text), meta, problems)


def read_rows(text: str, delimiter: str) -> list[SheetRow]:
    """Rows with the physical line number they start on (quoted cells may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[SheetRow] = []
    line = 1
    try:
        for cells in reader:
            rows.append(SheetRow(line, tuple(c if c.strip() else None for c in cells)))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise AdapterError(f"CSV cannot be read: {exc}", location=f"line {reader.line_num}") from exc
    return rows


def _best_sheet(text: str) -> Sheet:
    """Try each delimiter; keep the one whose header row maps the most columns."""
    best: Sheet | None = None
    for delimiter in _DELIMITERS:
        try:
            sheet = find_sheet(read_rows(text, delimiter), "line")
        except AdapterError:
            continue
        if best is None or len(sheet.columns) > len(best.columns):
            best = sheet
    if best is None:
        raise AdapterError(
            "no header row found: expected columns such as Product, Capaciteit, Bezet, Vrij",
            location="line 1",
        )
    return best
