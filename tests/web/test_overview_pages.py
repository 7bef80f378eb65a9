"""The coordination-point pages as served HTML: sign-in, the overview with filters, the provider view."""

from __future__ import annotations

from availability_factories import add_provider, count_report, set_status

from hub.availability.access import TOKEN_COOKIE


async def test_without_a_token_the_page_asks_to_sign_in_in_dutch(hub):
    r = await hub.client.get("/overzicht")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "Aanmelden" in r.text and "Toegangstoken" in r.text and 'lang="nl"' in r.text


async def test_token_in_the_address_moves_into_a_cookie_and_out_of_the_address(hub):
    token = hub.token("coordinator")
    r = await hub.client.get(f"/overzicht?token={token}&product=grz")
    assert r.status_code == 303 and r.headers["location"] == "/overzicht?product=grz"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{TOKEN_COOKIE}={token}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = await hub.client.get("/overzicht?product=grz", cookies={TOKEN_COOKIE: token})
    assert page.status_code == 200 and "Beschikbare bedden per zorgproduct" in page.text
    bad = await hub.client.get("/overzicht", cookies={TOKEN_COOKIE: "not-a-token"})
    assert bad.status_code == 401


async def test_overview_shows_free_of_total_per_provider_and_product_with_filters(hub):
    assen = await add_provider(hub, "73500001", "Zorg Assen", {"elv-hoog": "UUO", "grz": "O"})
    zwolle = await add_provider(hub, "73500002", "Zorg Zwolle", {"elv-hoog": "U"}, postcode="8011 AA", city="Zwolle")
    cookies = {TOKEN_COOKIE: hub.token("coordinator")}
    page = (await hub.client.get("/overzicht", cookies=cookies)).text
    assert "Zorg Assen" in page and "Zorg Zwolle" in page
    cell = page.split(f'data-cell="{assen.org_id}|Drenthe|elv-hoog"')[1].split("</td>")[0]
    assert '<span class="free">2</span>/<span class="total">3</span>' in cell
    total = page.split('data-total="Drenthe|elv-hoog"')[1].split("</td>")[0]
    assert '<span class="free">2</span>/<span class="total">3</span>' in total
    assert 'data-stream="/api/availability/stream"' in page
    only_grz = (await hub.client.get("/overzicht?product=grz", cookies=cookies)).text
    assert "ELV hoog complex</th>" not in only_grz and f'data-cell="{assen.org_id}|Drenthe|grz"' in only_grz
    assert "Zorg Zwolle" not in only_grz and 'data-stream="/api/availability/stream?product=grz"' in only_grz
    overijssel = (await hub.client.get("/overzicht?region=Overijssel", cookies=cookies)).text
    assert "Zorg Zwolle" in overijssel and "Zorg Assen" not in overijssel
    assert '<option value="Drenthe" >Drenthe</option>' in overijssel  # every region stays choosable
    assert f'href="/overzicht/aanbieder/{zwolle.org_id}"' in overijssel
    unknown = await hub.client.get("/overzicht?product=pizza", cookies=cookies)
    assert unknown.status_code == 400 and "pizza" in unknown.text


async def test_provider_view_lists_products_beds_and_counts(hub):
    provider = await add_provider(hub, "73500003", "Zorg Detail", {"elv-laag": "UO"}, count_products=("wlz-crisis",))
    await set_status(hub, provider, provider.beds["73500003/elv-laag/1"], "H")
    await hub.client.post("/fhir/MeasureReport", headers=provider.headers, json=count_report(
        f"HealthcareService/{provider.services['wlz-crisis']}", provider.ref, total=4, occupied=1, free=3))
    cookies = {TOKEN_COOKIE: hub.token("coordinator")}
    page = await hub.client.get(f"/overzicht/aanbieder/{provider.org_id}", cookies=cookies)
    assert page.status_code == 200
    text = page.text
    assert "<h1>Zorg Detail</h1>" in text and "http://fhir.nl/fhir/NamingSystem/agb-z|73500003" in text
    assert "ELV laag complex" in text and "Wlz crisisopname (VV)" in text
    assert "73500003/elv-laag/1" in text and "schoonmaak" in text and "bezet" in text
    assert "Tellingen (zonder losse bedden)" in text and "3 / 4" in text
    missing = await hub.client.get("/overzicht/aanbieder/unknown", cookies=cookies)
    assert missing.status_code == 404 and "onbekend" in missing.text
