"""Shapes of the picture going out: SANER-style MeasureReports (FHIR), the dashboard JSON, staleness. Pure.

Each aggregate row (provider × care product × region) becomes one MeasureReport (profile HubBedAvailabilityReport):
subject a contained HealthcareService (type = the care product, providedBy = the provider), reporter the
Organization, date = the row's last update (its freshness), one `Beds` group with numTotBeds, numTotBedsOcc
(occupied) and numTotBedsAvail (free: not occupied, not reserved, not closed/being cleaned); reserved and
unavailable beds ride along as group extensions, and a stale figure carries the availability-stale extension.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from hub.availability import vocabulary as v
from hub.fhir.indexing import date_range
from hub.store.sql import instant

Row = dict[str, Any]


def last_update(row: Row) -> datetime:
    return date_range(str(row["last_update"]))[0]


def is_stale(row: Row, now: datetime, stale_after: timedelta) -> bool:
    """Silent for longer than the staleness period (settings.stale_after_minutes)."""
    return now - last_update(row) > stale_after


def report_id(row: Row) -> str:
    key = f"{row['org_id']}|{row['product']}|{row['region']}"
    return "avail-" + hashlib.sha1(key.encode()).hexdigest()[:24]


def _population(code: str, count: int) -> dict[str, Any]:
    return {"code": {"coding": [{"system": v.SANER_VALUES, "code": code}]}, "count": count}


def measure_report(row: Row, *, products: dict[str, str], now: datetime, stale_after: timedelta) -> dict[str, Any]:
    product, org_ref = row["product"], f"Organization/{row['org_id']}"
    service: dict[str, Any] = {
        "resourceType": "HealthcareService", "id": "service", "active": True, "providedBy": {"reference": org_ref},
        "type": [{"coding": [{"system": v.CARE_PRODUCT, "code": product, "display": products.get(product, product)}]}],
        "name": f"{products.get(product, product)} — {row.get('org_name') or org_ref}",
    }
    if row.get("region") and row["region"] != v.UNKNOWN_REGION:
        service["extraDetails"] = f"Regio {row['region']}"
    reporter: dict[str, Any] = {"reference": org_ref}
    if row.get("org_name"):
        reporter["display"] = row["org_name"]
    stamp = str(row["last_update"])
    return {
        "resourceType": "MeasureReport", "id": report_id(row),
        "meta": {"profile": [v.REPORT_PROFILE], "lastUpdated": stamp},
        "contained": [service],
        "extension": [{"url": v.STALE_EXT, "valueBoolean": is_stale(row, now, stale_after)}],
        "status": "complete", "type": "summary", "measure": v.AVAILABILITY_MEASURE,
        "subject": {"reference": "#service", "display": service["name"]},
        "date": stamp, "reporter": reporter, "period": {"start": stamp, "end": stamp},
        "group": [{
            "extension": [{"url": v.RESERVED_EXT, "valueInteger": row["reserved"]},
                          {"url": v.UNAVAILABLE_EXT, "valueInteger": row["unavailable"]}],
            "code": {"coding": [{"system": v.SANER_GROUPS, "code": "Beds"}]},
            "population": [_population("numTotBeds", row["total"]), _population("numTotBedsOcc", row["occupied"]),
                           _population("numTotBedsAvail", row["free"])],
        }],
    }


def availability_bundle(rows: list[Row], *, self_url: str, products: dict[str, str], now: datetime,
                        stale_after: timedelta) -> dict[str, Any]:
    """A searchset Bundle of generated MeasureReports (not stored: fullUrl is a urn:uuid)."""
    entries = []
    for row in rows:
        report = measure_report(row, products=products, now=now, stale_after=stale_after)
        full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, report['id'] + '/' + str(row['seq']))}"
        entries.append({"fullUrl": full_url, "resource": report, "search": {"mode": "match"}})
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant(now)},
            "type": "searchset", "total": len(entries), "link": [{"relation": "self", "url": self_url}],
            "entry": entries}


def dashboard_row(row: Row, *, products: dict[str, str], now: datetime, stale_after: timedelta) -> dict[str, Any]:
    """One provider × product × region for dashboards (also the SSE `availability` event data)."""
    return {
        "organization": f"Organization/{row['org_id']}", "org_id": row["org_id"], "name": row.get("org_name"),
        "product": row["product"], "product_display": products.get(row["product"], row["product"]),
        "region": row["region"], "postcode": row.get("postcode"), "city": row.get("city"),
        "total": row["total"], "free": row["free"], "occupied": row["occupied"], "reserved": row["reserved"],
        "unavailable": row["unavailable"], "last_update": row["last_update"],
        "stale": is_stale(row, now, stale_after), "seq": row["seq"],
    }


def dashboard_total(total: Row, *, products: dict[str, str]) -> dict[str, Any]:
    return {"region": total["region"], "product": total["product"],
            "product_display": products.get(total["product"], total["product"]),
            "total": total["total"], "free": total["free"], "occupied": total["occupied"],
            "reserved": total["reserved"], "unavailable": total["unavailable"], "last_update": total["last_update"],
            "seq": total["seq"]}
