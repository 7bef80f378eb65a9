"""The daily bed overview as an Excel workbook (.xlsx), read with openpyxl read-only and data_only.

data_only gives the cached result of formulas (a "=SOM(...)" total row reads as its number), read_only streams
rows without loading the whole workbook. The first sheet with a recognisable header row is used; Excel dates
and numbers arrive typed, text cells go through the same rules as CSV (bed_overview). Problem locations say
"row N".
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, time
from typing import Any

from adapters.base import AdapterError, Problem, SourceMeta, Translation
from adapters.bed_overview import Cell, Sheet, SheetRow, find_sheet
from adapters.bed_reports import translate_sheet

FORMAT = "bed-xlsx"
MEDIA_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
DESCRIPTION = "Daily bed overview (beddenoverzicht) as Excel .xlsx -> HealthcareService + MeasureReport per product"
MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 5000
MAX_UNPACKED = 100 * 1024 * 1024  # a zip bomb is refused before openpyxl inflates it


def translate(source: bytes, meta: SourceMeta) -> Translation:
    """XLSX bytes -> bed-overview Translation; a file that is not a workbook is an AdapterError."""
    if len(source) > MAX_BYTES:
        raise AdapterError(f"workbook larger than {MAX_BYTES} bytes", code="too-costly")
    problems: list[Problem] = []
    return translate_sheet(_first_sheet_with_header(source), meta, problems)


def _first_sheet_with_header(source: bytes) -> Sheet:
    """Open the workbook safely and return the first worksheet that has a header row."""
    try:
        with zipfile.ZipFile(io.BytesIO(source)) as archive:
            if sum(info.file_size for info in archive.infolist()) > MAX_UNPACKED:
                raise AdapterError("workbook unpacks to more than 100 MB", code="too-costly")
        from openpyxl import load_workbook  # imported on first use: ~0.1 s off every hub start

        workbook = load_workbook(io.BytesIO(source), read_only=True, data_only=True)
    except AdapterError:
        raise
    except Exception as exc:  # zipfile/openpyxl raise many types for a damaged or non-xlsx file
        raise AdapterError(f"not a readable .xlsx workbook: {exc}") from exc
    try:
        for worksheet in workbook.worksheets:
            rows = _rows(worksheet)
            try:
                return find_sheet(rows, f"sheet {worksheet.title!r} row")
            except AdapterError:
                continue
    finally:
        workbook.close()
    raise AdapterError("no sheet with a header row: expected columns such as Product, Capaciteit, Bezet, Vrij")


def _rows(worksheet: Any) -> list[SheetRow]:
    """Rows with their Excel row numbers (read-only mode yields missing rows as empty: enumerate is exact)."""
    worksheet.reset_dimensions()  # some writers store a wrong <dimension>; read what is really there
    rows: list[SheetRow] = []
    for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
        if number > MAX_ROWS:
            raise AdapterError(f"more than {MAX_ROWS} rows", code="too-costly")
        rows.append(SheetRow(number, tuple(_cell(v) for v in values)))
    return rows


def _cell(value: Any) -> Cell:
    """openpyxl value -> the cell types bed_overview understands (times and booleans become text)."""
    if isinstance(value, str):
        return value if value.strip() else None
    if value is None:
        return None
    if isinstance(value, bool | time):
        return str(value)
    if isinstance(value, int | float | date):  # datetime is a date
        return value
    return str(value)
