"""Region of a provider location, and the postcode distance used by `near=`.

Region, first that applies: `Address.district` (a region the data names explicitly, e.g. a zorgkantoor region),
`Address.state` (province), else the province of the postcode's first two digits (PC2) from the table below,
else "Onbekend". The PC2 table follows the usual postcode map; a few PC2 areas straddle a provincial border and
are given to the province that holds most of them (unverified — set Address.state where it matters).

Distance (`near=9401AB`): Dutch postcodes are numbered geographically from Amsterdam (10xx) round the country to
Groningen (99xx), so the difference of the four-digit numbers is a coarse proxy for distance. Ranking uses
(same PC3? 0 : same PC2? 1 : 2, |PC4 difference|), which keeps same-town providers first. It is not a road
distance; a geocoder can replace `postcode_distance` without touching its callers.
"""

from __future__ import annotations

import re

from hub.availability import vocabulary as v
from hub.availability.figures import Address

_PC = re.compile(r"^\s*(\d{4})\s*([A-Za-z]{2})?\s*$")

# PC2 (first two digits) -> province. Ranges are inclusive.
_PROVINCES: list[tuple[int, int, str]] = [
    (10, 12, "Noord-Holland"), (13, 13, "Flevoland"), (14, 21, "Noord-Holland"), (22, 33, "Zuid-Holland"),
    (34, 39, "Utrecht"), (40, 41, "Gelderland"), (42, 42, "Zuid-Holland"), (43, 45, "Zeeland"),
    (46, 57, "Noord-Brabant"), (58, 64, "Limburg"), (65, 73, "Gelderland"), (74, 77, "Overijssel"),
    (78, 79, "Drenthe"), (80, 81, "Overijssel"), (82, 83, "Flevoland"), (84, 92, "Friesland"),
    (93, 94, "Drenthe"), (95, 99, "Groningen"),
]


def pc4(postcode: str | None) -> int | None:
    """'9401 AB' -> 9401; None when it is not a Dutch postcode."""
    match = _PC.match(postcode or "")
    return int(match.group(1)) if match else None


def normalise_postcode(postcode: str | None) -> str | None:
    """'9401ab' -> '9401 AB' (PC4 alone stays PC4)."""
    match = _PC.match(postcode or "")
    if not match:
        return None
    return f"{match.group(1)} {match.group(2).upper()}" if match.group(2) else match.group(1)


def province_of(postcode: str | None) -> str | None:
    number = pc4(postcode)
    if number is None:
        return None
    pc2 = number // 100
    return next((name for low, high, name in _PROVINCES if low <= pc2 <= high), None)


def region_of(address: Address) -> str:
    """The region an address belongs to (see the module docstring for the order)."""
    return address.district or address.state or province_of(address.postcode) or v.UNKNOWN_REGION


def postcode_distance(origin: str | None, target: str | None) -> tuple[int, int]:
    """Sort key: smaller is nearer; unknown postcodes sort last."""
    a, b = pc4(origin), pc4(target)
    if a is None or b is None:
        return (3, 10_000)
    tier = 0 if a // 10 == b // 10 else 1 if a // 100 == b // 100 else 2
    return (tier, abs(a - b))
