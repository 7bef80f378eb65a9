"""The daily bed overview ("beddenoverzicht", README 6) as rows -> checked bed records, format-independent.

`bed_csv` and `bed_xlsx` only turn bytes into numbered rows of cells; everything a coordinator types into the
sheet is read here: Dutch headers in any order and spelling, title and blank rows above the header, "Totaal"
rows, "n.b."/"-"/empty meaning *unknown* (never 0), "1 (man)" meaning 1 plus a note, d-m-yy dates. A bad row
becomes an error Problem with line and column and is skipped; the rest of the sheet still counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from adapters import care_products
from adapters import identifiers as ids
from adapters.base import AdapterError, Problem, SourceMeta
from adapters.dates import AMSTERDAM, parse_nl_date

Cell = str | int | float | date | None

COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("datum", "peildatum", "datum peiling", "stand per"),
    "provider": ("zorgaanbieder", "organisatie", "aanbieder", "instelling", "zorgorganisatie"),
    "agb": ("agb", "agb code", "agbcode", "agb nummer"),
    "location": ("locatie", "vestiging", "locatienaam"),
    "city": ("plaats", "woonplaats"),
    "ward": ("afdeling",),
    "product": ("product", "zorgvorm", "soort bed", "soort bedden", "bedsoort", "type bed", "zorgproduct"),
    "payer": ("financier", "financiering", "bekostiging", "wet"),
    "capacity": ("capaciteit", "totaal", "aantal bedden", "totaal bedden", "gecontracteerd"),
    "occupied": ("bezet", "bezette bedden", "aantal bezet"),
    "free": ("vrij", "beschikbaar", "vrije bedden", "vrij nu", "aantal vrij"),
    "expected_free": ("verwacht vrij", "vrij per", "verwacht vrij per", "verwachte datum vrij"),
    "sex": ("geslacht", "m v", "man vrouw"),
    "contact": ("contact", "telefoon", "bereikbaar", "telefoonnummer", "tel", "bereikbaarheid"),
    "remark": ("opmerking", "opmerkingen", "toelichting", "bijzonderheden"),
}
_HEADER_INDEX = {alias: key for key, aliases in COLUMNS.items() for alias in aliases}
COUNTS = ("capacity", "occupied", "free")
_UNKNOWN = {"", "-", "--", "?", "nb", "n b", "onbekend", "nvt", "n v t", "unknown"}
_NUMBER = re.compile(r"^(-?\d+(?:[.,]\d+)?)\s*(.*)$")
_HEADER_SCAN_ROWS = 50


@dataclass(frozen=True)
class SheetRow:
    number: int  # line (CSV) or row (XLSX) number as the user sees it
    cells: tuple[Cell, ...]


@dataclass
class BedRecord:
    """One checked line of the overview: provider x location x product with its counts on one day."""

    line: int
    day: date
    owner_system: str
    owner: str  # AGB (or the sender's identifier value) that scopes the hub identifiers
    provider: str | None
    location: str
    city: str | None
    ward: str | None
    product: str
    counts: dict[str, int | None]  # capacity/occupied/free; None = unknown, never written as 0
    expected_free: date | None = None
    sex: str | None = None
    contact: str | None = None
    remark: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def place(self) -> str:
        """Location (+ ward) as an identifier part: "Het Drentse Veld" -> "het-drentse-veld"."""
        return slug(" ".join(p for p in (self.location, self.ward) if p))


def slug(text: str) -> str:
    """ASCII lower-case identifier part; spelling variants of one name give the same slug."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-") or "x"


class Sheet:
    """The header mapping of one sheet and the `where` word ("line"/"row") used in Problem locations."""

    def __init__(self, rows: Sequence[SheetRow], where: str) -> None:
        self.where = where
        for position, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
            columns = _header_columns(row.cells)
            if "product" in columns and any(c in columns for c in COUNTS) and len(columns) >= 3:
                self.columns, self.header_row, self.body = columns, row, rows[position + 1 :]
                return
        raise AdapterError(
            "no header row found: expected columns such as Product, Capaciteit, Bezet, Vrij",
            location=f"{where} 1",
        )

    def cell(self, row: SheetRow, key: str) -> Cell:
        index = self.columns.get(key)
        return row.cells[index] if index is not None and index < len(row.cells) else None

    def text(self, row: SheetRow, key: str) -> str | None:
        return cell_text(self.cell(row, key)) or None

    def header(self, key: str) -> str:
        """The header as the user typed it ("Vrij", "Beschikbaar"), or the key if the column is absent."""
        index = self.columns.get(key)
        return cell_text(self.header_row.cells[index]) if index is not None else key

    def at(self, row: SheetRow, key: str) -> str:
        """Problem location: "line 7, column Vrij"."""
        return f"{self.where} {row.number}, column {self.header(key)}"


def find_sheet(rows: Sequence[SheetRow], where: str) -> Sheet:
    """Locate the header (title and blank rows above it are fine) or raise AdapterError."""
    return Sheet(rows, where)


def _header_columns(cells: Sequence[Cell]) -> dict[str, int]:
    """Map known header texts to column indexes; the first column with a given meaning wins."""
    columns: dict[str, int] = {}
    for index, value in enumerate(cells):
        key = _HEADER_INDEX.get(care_products.normalize(cell_text(value)))
        if key and key not in columns:
            columns[key] = index
    return columns


def cell_text(value: Cell) -> str:
    """A cell as trimmed text (numbers without a trailing .0, dates as ISO)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def parse_count(value: Cell) -> tuple[int | None, str | None]:
    """A bed count: (number or None for unknown, qualifier text such as "man" from "1 (man)")."""
    if value is None or isinstance(value, bool):
        return None, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if float(value).is_integer():
            return int(value), None
        raise ValueError(f"{value} is not a whole number of beds")
    if isinstance(value, date):
        raise ValueError("a date is not a number of beds")
    text = " ".join(str(value).split())
    if care_products.normalize(text) in _UNKNOWN or text in _UNKNOWN:
        return None, None
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a number of beds")
    number = float(match.group(1).replace(",", "."))
    if not number.is_integer():
        raise ValueError(f"{text!r} is not a whole number of beds")
    qualifier = match.group(2).strip().strip("()").strip() or None
    return int(number), qualifier


def parse_day(value: Cell) -> date:
    """A date cell: an Excel date or text dd-mm-jjjj / d-m-jj."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return parse_nl_date(cell_text(value))


def read_records(sheet: Sheet, meta: SourceMeta, problems: list[Problem]) -> list[BedRecord]:
    """Every usable body row as a BedRecord; skipped rows leave a Problem saying where and why."""
    records: list[BedRecord] = []
    seen: dict[tuple[str, str, str, date], int] = {}
    for row in sheet.body:
        texts = [cell_text(c) for c in row.cells]
        filled = [t for t in texts if t]
        if not filled:
            continue
        if care_products.normalize(filled[0]).startswith(("totaal", "subtotaal", "total")):
            problems.append(Problem("information", "total row skipped", f"{sheet.where} {row.number}"))
            continue
        if len(filled) < 2:
            problems.append(
                Problem(
                    "information",
                    f"ignored a line that is not a bed line: {filled[0]!r}",
                    f"{sheet.where} {row.number}",
                )
            )
            continue
        record = _record(sheet, row, meta, problems)
        if record is None:
            continue
        key = (record.owner, record.place, record.product, record.day)  # the identifiers bed_reports writes
        if key in seen:
            problems.append(
                Problem(
                    "error",
                    f"duplicate of {sheet.where} {seen[key]} (same provider, location, product and date); row skipped",
                    f"{sheet.where} {row.number}",
                )
            )
            continue
        seen[key] = row.number
        records.append(record)
    return records


class RowRejected(Exception):
    """A row cannot be used; carries the Problem location."""

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


def _record(sheet: Sheet, row: SheetRow, meta: SourceMeta, problems: list[Problem]) -> BedRecord | None:
    try:
        return _checked_record(sheet, row, meta, problems)
    except RowRejected as rejected:
        problems.append(Problem("error", f"{rejected}; row skipped", rejected.location))
        return None


def _checked_record(sheet: Sheet, row: SheetRow, meta: SourceMeta, problems: list[Problem]) -> BedRecord:
    """Read and check one row; any RowRejected skips it."""
    product_text = sheet.text(row, "product")
    if not product_text:
        raise RowRejected("no care product given", sheet.at(row, "product"))
    try:
        product = care_products.product_for_alias(product_text, sheet.text(row, "payer"), meta.sender_kind)
    except care_products.ProductNotResolved as exc:
        raise RowRejected(str(exc), sheet.at(row, "product")) from exc
    owner_system, owner = _owner(sheet, row, meta, problems)
    location = sheet.text(row, "location") or sheet.text(row, "ward") or sheet.text(row, "provider")
    if not location:
        raise RowRejected("no Locatie/Vestiging given", sheet.at(row, "location"))
    record = BedRecord(
        line=row.number,
        day=_day(sheet, row, meta, problems),
        owner_system=owner_system,
        owner=owner,
        provider=sheet.text(row, "provider"),
        location=location,
        city=sheet.text(row, "city"),
        ward=sheet.text(row, "ward"),
        product=product,
        counts=_counts(sheet, row, problems),
        sex=sheet.text(row, "sex"),
        contact=sheet.text(row, "contact"),
        remark=sheet.text(row, "remark"),
    )
    for key, qualifier in _qualifiers(sheet, row):
        record.notes.append(f"{sheet.header(key)}: {qualifier}")
        problems.append(Problem("information", f"read the number and kept {qualifier!r} as a note", sheet.at(row, key)))
    record.expected_free = _expected_free(sheet, row, problems)
    return record


def _owner(sheet: Sheet, row: SheetRow, meta: SourceMeta, problems: list[Problem]) -> tuple[str, str]:
    """The provider's AGB from the row; without one, the sender - but only if the sender is that provider."""
    raw = sheet.text(row, "agb")
    if raw:
        agb = re.sub(r"[\s.]", "", raw)
        if len(agb) == 7 and agb.isdigit():  # Excel ate the leading zero
            problems.append(Problem("warning", f"AGB {raw!r} read as 0{agb}", sheet.at(row, "agb")))
            agb = "0" + agb
        if not ids.is_valid_agb(agb):
            raise RowRejected(f"AGB {raw!r} is not 8 digits", sheet.at(row, "agb"))
        return ids.AGB, agb
    if meta.sender and meta.sender_kind in (None, "vvt-provider"):
        return ids.split_token(meta.sender)
    raise RowRejected("no AGB, and the sender is not the provider itself", sheet.at(row, "agb"))


def _day(sheet: Sheet, row: SheetRow, meta: SourceMeta, problems: list[Problem]) -> date:
    """Datum/Peildatum of the row; a missing date falls back to the delivery day with a warning."""
    value = sheet.cell(row, "date")
    if value is None or not cell_text(value):
        day = meta.received_at.astimezone(AMSTERDAM).date()
        problems.append(Problem("warning", f"no date; used the delivery date {day.isoformat()}", sheet.at(row, "date")))
        return day
    try:
        return parse_day(value)
    except ValueError as exc:
        raise RowRejected(str(exc), sheet.at(row, "date")) from exc


def _counts(sheet: Sheet, row: SheetRow, problems: list[Problem]) -> dict[str, int | None]:
    """Capacity/occupied/free with sanity checks (no negatives, parts not above the whole)."""
    counts: dict[str, int | None] = {}
    for key in COUNTS:
        try:
            counts[key] = parse_count(sheet.cell(row, key))[0]
        except ValueError as exc:
            raise RowRejected(str(exc), sheet.at(row, key)) from exc
        if (counts[key] or 0) < 0:
            raise RowRejected(f"negative number of beds ({counts[key]})", sheet.at(row, key))
    total, occupied, free = counts["capacity"], counts["occupied"], counts["free"]
    if total is not None:
        for key, part in (("occupied", occupied), ("free", free)):
            if part is not None and part > total:
                raise RowRejected(f"{part} {key} beds is more than the capacity of {total}", sheet.at(row, key))
        if occupied is not None and free is not None and occupied + free > total:
            raise RowRejected(
                f"occupied {occupied} + free {free} is more than the capacity of {total}",
                sheet.at(row, "free"),
            )
    return counts


def _qualifiers(sheet: Sheet, row: SheetRow) -> Iterable[tuple[str, str]]:
    """("free", "man") for a cell like "1 (man)": the number counts, the words are kept as a note."""
    for key in COUNTS:
        _, qualifier = parse_count(sheet.cell(row, key))  # already parsed once by _counts, so it is valid
        if qualifier:
            yield key, qualifier


def _expected_free(sheet: Sheet, row: SheetRow, problems: list[Problem]) -> date | None:
    """ "Verwacht vrij": a date, or unknown ("n.b.", "-", empty); other text is kept out with a warning."""
    value = sheet.cell(row, "expected_free")
    text = cell_text(value)
    if not text or care_products.normalize(text) in _UNKNOWN:
        return None
    try:
        return parse_day(value)
    except ValueError:
        problems.append(
            Problem(
                "warning",
                f"expected-free date {text!r} not understood; left out",
                sheet.at(row, "expected_free"),
            )
        )
        return None
