"""The overview in a real browser (headless Debian Chromium driven by Playwright): a bed status changed through
the API shows up on the open page without a reload. A screenshot goes to artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from availability_factories import add_provider, live_server, set_status

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
pytestmark = pytest.mark.browser


async def test_bed_status_change_updates_the_open_overview_without_reload(hub):
    if hub.backend != "sqlite":
        pytest.skip("one browser run is enough: the page does not depend on the backend")
    if shutil.which(CHROMIUM) is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{CHROMIUM} missing (Debian package chromium)")
    from playwright.async_api import async_playwright, expect

    provider = await add_provider(hub, "73600001", "Zorg Browser", {"elv-hoog": "UUUO", "grz": "U"})
    cell = f'[data-cell="{provider.org_id}|Drenthe|elv-hoog"]'
    async with live_server(hub.app) as base, async_playwright() as playwright:  # type: ignore[attr-defined]
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/overzicht?token={hub.token('coordinator')}")
            assert page.url == f"{base}/overzicht"  # the token left the address bar
            await expect(page.locator("#live-status")).to_have_attribute("data-status", "verbonden", timeout=10_000)
            await expect(page.locator(cell)).to_have_text("3/4")
            page_id = await page.evaluate("window.__marker = Math.random()")
            r = await set_status(hub, provider, provider.beds["73600001/elv-hoog/1"], "O")
            assert r.status_code == 200
            await expect(page.locator(cell)).to_have_text("2/4", timeout=5_000)
            await expect(page.locator('[data-total="Drenthe|elv-hoog"]')).to_have_text("2/4", timeout=5_000)
            assert await page.evaluate("window.__marker") == page_id  # same page: no reload happened
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "overzicht.png"), full_page=True)
            await page.click(f'a[href="/overzicht/aanbieder/{provider.org_id}"]')
            await expect(page.locator("h1")).to_have_text("Zorg Browser")
            await expect(page.locator("#live-status")).to_have_attribute("data-status", "verbonden", timeout=10_000)
            await set_status(hub, provider, provider.beds["73600001/elv-hoog/2"], "C")
            detail = page.locator(f'[data-detail="{provider.org_id}|Drenthe|elv-hoog"] [data-field="free"]')
            await expect(detail).to_have_text("1", timeout=5_000)
        finally:
            await browser.close()
