"""Dates and times as Dutch sources write them, to FHIR date/dateTime/instant strings.

A timestamp without an offset means Europe/Amsterdam local time (README 4.3), so the offset is computed for
that date (+01:00 in winter, +02:00 in summer) rather than assumed. Nothing here reads the clock.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

_HL7_TS = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<frac>\.\d{1,4})?(?P<tz>[+-]\d{4})?$"
)
_NL_DATE = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def local_midnight(day: date) -> datetime:
    """Start of a calendar day in Amsterdam, the event time of a date-only source."""
    return datetime.combine(day, time(0, 0), tzinfo=AMSTERDAM)


def fhir_datetime(moment: datetime) -> str:
    """FHIR dateTime/instant with seconds and offset (naive values are taken as Amsterdam local time)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=AMSTERDAM)
    text = aware.isoformat(timespec="milliseconds" if aware.microsecond else "seconds")
    return text.replace("+00:00", "Z") if aware.utcoffset() == timedelta(0) else text


def parse_hl7_ts(value: str) -> tuple[datetime, str]:
    """HL7 TS/DTM `YYYY[MM[DD[HH[MM[SS[.S]]]]]][+ZZZZ]` -> (aware datetime, FHIR dateTime, same precision)."""
    match = _HL7_TS.match(value.strip())
    if not match:
        raise ValueError(f"not an HL7 timestamp: {value!r}")
    parts = match.groupdict()
    year, month, day = int(parts["y"]), int(parts["mo"] or 1), int(parts["d"] or 1)
    if parts["h"] is None:
        moment = local_midnight(date(year, month, day))
        text = parts["y"] + (f"-{parts['mo']}" if parts["mo"] else "") + (f"-{parts['d']}" if parts["d"] else "")
        return moment, text
    micro = round(float(parts["frac"]) * 1_000_000) if parts["frac"] else 0
    naive = datetime(year, month, day, int(parts["h"]), int(parts["mi"] or 0), int(parts["s"] or 0), micro)
    if parts["tz"]:
        sign = -1 if parts["tz"][0] == "-" else 1
        offset = timedelta(hours=int(parts["tz"][1:3]), minutes=int(parts["tz"][3:5])) * sign
        moment = naive.replace(tzinfo=timezone(offset))
    else:
        moment = naive.replace(tzinfo=AMSTERDAM)
    return moment, fhir_datetime(moment)


def parse_nl_date(value: str) -> date:
    """`dd-mm-yyyy`, `d-m-yy` (also with / or .) or ISO `yyyy-mm-dd`; two-digit years are 20yy."""
    text = value.strip()
    iso = _ISO_DATE.match(text)
    if iso:
        return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    match = _NL_DATE.match(text)
    if not match:
        raise ValueError(f"not a date (expected dd-mm-jjjj): {value!r}")
    day, month, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
    return date(2000 + year if year < 100 else year, month, day)
