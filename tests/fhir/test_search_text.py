"""The common search shapes run as SQL text through the driver (hub/store/search_text.py); everything else as
SQLAlchemy Core (hub/store/search_sql.py). Both must return the same rows, in the same order, for the same query
and the same reader — checked here query by query on SQLite and PostgreSQL, with an unrestricted reader, a
reader limited to non-medical rows (municipality) and one limited to its own medical rows (vvt-provider)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.store import search_text
from tests.conftest import AGB

URA = "http://fhir.nl/fhir/NamingSystem/ura"
ORG_A, ORG_B = f"{URA}|11110001", f"{URA}|11110002"
SOCIAL = {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/data-domain", "code": "social"}
QUERIES = [
    ("Location", "name=Zorg"), ("Location", "name=zorghuis%20de%20es"), ("Location", "name:exact=Zorghuis De Es"),
    ("Location", "name:exact=zorghuis de es"), ("Location", "name:contains=de"), ("Location", "name:contains=_"),
    ("Location", "name=Zoë"), ("Location", "name=Zorg,Thuis"), ("Location", "name=Zorg&status=active"),
    ("Location", "identifier=http://example.org/bed|B-1"), ("Location", "identifier=B-2"),
    ("Location", "identifier=http://example.org/bed|"), ("Location", "identifier=|B-3"),
    ("Location", "status=suspended"), ("Location", "partof=Location/ward-1"), ("Location", "partof=ward-1"),
    ("Location", "partof:Location=ward-1"), ("Location", "organization=Organization/org-a"),
    ("Location", "_id=ward-1,bed-2"), ("Location", "_id=ward-1&name=Afdeling"),
    ("Location", "name=Zorg&_sort=-name"), ("Location", "name:missing=true"), ("Location", "status:not=active"),
    ("Location", "partof.name=Afdeling"), ("Location", "_count=2&name=Zorg"),
    ("ServiceRequest", "status=active"), ("ServiceRequest", "intent=order&status=active"),
    ("ServiceRequest", "subject=Patient/p-1"), ("ServiceRequest", "_id=sr-med,sr-social"),
]


def resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"resourceType": "Organization", "id": "org-a", "name": "Zorg A"},
                                 {"resourceType": "Patient", "id": "p-1"},
                                 {"resourceType": "Location", "id": "ward-1", "name": "Afdeling Noord",
                                  "status": "active", "managingOrganization": {"reference": "Organization/org-a"}}]
    names = ["Zorghuis De Es", "zorghuis de es", "Zoë Thuis", "Zorg_centrum", "Thuis 100%", "Zorg"]
    for i, name in enumerate(names):
        out.append({"resourceType": "Location", "id": f"bed-{i}", "name": name,
                    "status": "active" if i % 2 == 0 else "suspended",
                    "identifier": [{"system": "http://example.org/bed", "value": f"B-{i}"}] if i != 3 else
                    [{"value": "B-3"}],
                    "partOf": {"reference": "Location/ward-1"},
                    "managingOrganization": {"reference": "Organization/org-a"}})
    base = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p-1"}}
    out += [{**base, "id": "sr-med"}, {**base, "id": "sr-social", "meta": {"tag": [SOCIAL]}},
            {**base, "id": "sr-draft", "status": "draft"}]
    return out


async def ids(hub: Any, path: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    r = await hub.client.get(f"/fhir/{path}", headers=headers)
    assert r.status_code == 200, r.text
    bundle = r.json()
    matches = [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    return bundle.get("total", -1), matches


@pytest.mark.parametrize("reader", ["admin", "municipality", "vvt-provider"])
async def test_text_and_core_paths_return_the_same_rows(hub: Any, reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    writers = {"Location": hub.headers("vvt-provider", ORG_A), "ServiceRequest": hub.headers("gp", ORG_A)}
    for resource in resources():
        writer = hub.headers() if resource.get("meta") else writers.get(resource["resourceType"], hub.headers())
        r = await hub.client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=writer)
        assert r.status_code in (200, 201), r.text
    assert (await hub.client.delete("/fhir/Location/bed-5", headers=hub.headers())).status_code == 204
    headers = {"admin": hub.headers(), "municipality": hub.headers("municipality", f"{AGB}|0363"),
               "vvt-provider": hub.headers("vvt-provider", ORG_B)}[reader]

    taken: list[str] = []
    real = search_text.rid_query

    def spy(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if found is not None:
            taken.append(found[0])
        return found

    monkeypatch.setattr(search_text, "rid_query", spy)
    text_results = [await ids(hub, f"{t}?{q}", headers) for t, q in QUERIES]
    assert len(taken) >= 15  # most of the queries above take the text path
    monkeypatch.setattr(search_text, "rid_query", lambda *a, **k: None)
    core_results = [await ids(hub, f"{t}?{q}", headers) for t, q in QUERIES]
    for (t, q), text, core in zip(QUERIES, text_results, core_results, strict=True):
        assert text == core, f"{t}?{q}: text path {text} != Core path {core}"
    if reader == "admin":  # the fixture is meaningful: the queries do find rows
        assert sum(1 for _, found in text_results if found) >= 20


async def test_a_text_path_result_longer_than_a_page_pages_through_every_match_once(hub: Any) -> None:
    """The first page is read with the match (one round trip when the result fits on it); a longer result also
    keeps every rid for paging: page 1 as read, then the matches after it."""
    headers = hub.headers()
    for i in range(7):
        r = await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": f"Pagina {i}"},
                                  headers=headers)
        assert r.status_code == 201
    whole = await hub.client.get("/fhir/Location?name=Pagina&_count=100", headers=headers)
    everything = [e["resource"]["name"] for e in whole.json()["entry"]]
    assert len(everything) == 7 and whole.json()["total"] == 7 and not any(
        link["relation"] == "next" for link in whole.json()["link"])
    seen: list[str] = []
    url: str | None = "/fhir/Location?name=Pagina&_count=3"
    first = True
    while url:
        page = (await hub.client.get(url, headers=headers)).json()
        assert page["total"] == 7
        seen += [e["resource"]["name"] for e in page.get("entry", [])]
        if first:  # a match deleted and one added after page 1: the pages already fixed do not shift
            await hub.client.delete(f"/fhir/Location/{page['entry'][0]['resource']['id']}", headers=headers)
            await hub.client.post("/fhir/Location", json={"resourceType": "Location", "name": "Pagina 9"},
                                  headers=headers)
            first = False
        url = next((link["url"].replace("http://hub.test", "") for link in page["link"]
                    if link["relation"] == "next"), None)
    assert seen == everything
