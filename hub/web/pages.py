"""Coordination-point pages (Dutch): the live bed overview and a provider view. No FHIR logic: they call the
availability domain functions and render jinja2 templates; a little JS follows /api/availability/stream.

Signing in: open `/overzicht?token=<bearer token>` once (the link `hub serve --demo` prints, or a token from the
hub's token endpoint). The page stores the token in an HttpOnly, SameSite=Strict cookie and redirects to the same
address without it, so the token does not stay in the address bar or the history; the overview's data and its live
stream are then read with that cookie. `/overzicht/afmelden` removes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import FileResponse, RedirectResponse, Response

from hub.availability import reports, service
from hub.availability import vocabulary as v
from hub.availability.access import TOKEN_COOKIE, reader_context
from hub.availability.errors import BadAvailabilityQuery
from hub.availability.live import live_of
from hub.errors import Unauthorized
from hub.fhir.http import runtime_of
from hub.fhir.indexing import date_range

HERE = Path(__file__).resolve().parent
STATIC = {"overzicht.js": "text/javascript", "overzicht.css": "text/css"}
router = APIRouter(tags=["web"], include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
try:
    LOCAL = ZoneInfo("Europe/Amsterdam")
except ZoneInfoNotFoundError:  # no tz database: show UTC rather than fail
    LOCAL = ZoneInfo("UTC")


def local_time(stamp: str | None) -> str:
    """'2026-11-23T13:05:00.000Z' -> '23-11-2026 14:05' (Dutch local time)."""
    if not stamp:
        return "–"
    moment = date_range(stamp)[0].replace(tzinfo=ZoneInfo("UTC")).astimezone(LOCAL)
    return moment.strftime("%d-%m-%Y %H:%M")


templates.env.filters["lokale_tijd"] = local_time


@dataclass
class OverviewRow:
    """One provider in one region: a cell per product."""

    org_id: str
    name: str
    region: str
    city: str | None
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_update: str = ""

    @property
    def key(self) -> str:
        return f"{self.org_id}|{self.region}"


def _signed_in(request: Request) -> Response | None:
    """A ?token= is moved into the cookie (redirect); no valid token at all -> the sign-in page."""
    token = request.query_params.get("token")
    if token:
        rest = urlencode([(k, val) for k, val in request.query_params.multi_items() if k != "token"])
        target = request.url.path + (f"?{rest}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response
    try:
        reader_context(request)
    except Unauthorized as exc:
        return templates.TemplateResponse(request, "inloggen.html", {"reason": exc.diagnostics}, status_code=401)
    return None


@router.get("/overzicht")
async def overview(request: Request) -> Response:
    """Products × providers: free/total per cell, freshness, regional totals; filters product and region."""
    if (early := _signed_in(request)) is not None:
        return early
    runtime = runtime_of(request)
    live = live_of(runtime)
    try:
        q = service.parse_query(live.products, request.query_params)
    except BadAvailabilityQuery as exc:
        return templates.TemplateResponse(request, "fout.html", {"message": exc.diagnostics}, status_code=400)
    picture = await service.query(runtime, replace(q, region=None))  # every region: the filter's choices
    regions = _regions(picture)
    picture.rows = [r for r in picture.rows if q.region is None or r["region"] == q.region]
    picture.totals = [t for t in picture.totals if q.region is None or t["region"] == q.region]
    products = {c: live.products[c] for c in (q.products or tuple(live.products))}
    return templates.TemplateResponse(request, "overzicht.html", {
        "products": products, "all_products": live.products, "rows": _overview_rows(picture),
        "totals": _totals(picture), "regions": regions,
        "chosen_product": ",".join(q.products), "chosen_region": q.region or "",
        "stale_after_minutes": runtime.settings.stale_after_minutes,
        "stream_query": urlencode([(k, val) for k, val in (("product", ",".join(q.products)),
                                                           ("region", q.region or "")) if val]),
        "generated": picture.now, "status_nl": v.STATUS_NL,
    })


def _overview_rows(picture: service.Picture) -> list[OverviewRow]:
    rows: dict[tuple[str, str], OverviewRow] = {}
    for raw in picture.rows:
        cell = reports.dashboard_row(raw, products=picture.products, now=picture.now, stale_after=picture.stale_after)
        row = rows.setdefault((raw["org_id"], raw["region"]), OverviewRow(
            raw["org_id"], raw.get("org_name") or f"Organization/{raw['org_id']}", raw["region"], raw.get("city")))
        row.cells[raw["product"]] = cell
        row.last_update = max(row.last_update, cell["last_update"])
    for row in rows.values():
        row.cells["_stale"] = {"stale": reports.is_stale({"last_update": row.last_update}, picture.now,
                                                         picture.stale_after)}
    return sorted(rows.values(), key=lambda r: (r.region, r.name.lower()))


def _totals(picture: service.Picture) -> dict[str, dict[str, dict[str, Any]]]:
    """region -> product -> total figures."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for total in picture.totals:
        out.setdefault(total["region"], {})[total["product"]] = total
    return dict(sorted(out.items()))


def _regions(picture: service.Picture) -> list[str]:
    return sorted({t["region"] for t in picture.totals} | {r["region"] for r in picture.rows})


@router.get("/overzicht/aanbieder/{org_id}")
async def provider(request: Request, org_id: str) -> Response:
    """One provider: figures per product with freshness, its beds and their status, its reporting services."""
    if (early := _signed_in(request)) is not None:
        return early
    runtime = runtime_of(request)
    detail = await service.provider_detail(runtime, org_id)
    if detail.provider is None and not detail.picture.rows:
        return templates.TemplateResponse(request, "fout.html", {"message": f"Aanbieder {org_id} is onbekend."},
                                          status_code=404)
    picture = detail.picture
    cells = [reports.dashboard_row(r, products=picture.products, now=picture.now, stale_after=picture.stale_after)
             for r in picture.rows]
    return templates.TemplateResponse(request, "aanbieder.html", {
        "org_id": org_id, "provider": detail.provider, "cells": cells, "products": picture.products,
        "beds": [s for s in detail.sources if s.kind == "bed"],
        "services": [s for s in detail.sources if s.kind == "service"], "status_nl": v.STATUS_NL,
        "stale_after_minutes": runtime.settings.stale_after_minutes,
        "stream_query": urlencode({"organization": f"Organization/{org_id}"}), "generated": picture.now,
        "reported": lambda moment: local_time(moment.isoformat() + "Z") if isinstance(moment, datetime) else "–",
    })


@router.get("/overzicht/afmelden")
async def sign_out() -> Response:
    response = RedirectResponse("/overzicht", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.get("/overzicht/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache"})
