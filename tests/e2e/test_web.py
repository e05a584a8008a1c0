"""The care-manager page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium package: `make system-deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_care_manager_sees_ranked_residents_and_opens_one(live_server, browser, tmp_path):
    server, keys = live_server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def only_this_server(route):
        host = urlparse(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", only_this_server)
    page.goto(server.url + "/")
    page.get_by_text("Enter your care-manager API key").wait_for()

    page.fill("#api-key", "tc_wrong")
    page.click("#key-save")
    page.locator("#status.error").wait_for()
    assert "401" in page.inner_text("#status")

    page.fill("#api-key", keys["care_manager"])
    page.click("#key-save")
    rows = page.locator("#risk-table tbody tr.clickable")
    rows.first.wait_for(timeout=60_000)
    assert rows.count() > 3
    probs = [float(t.rstrip("%")) for t in page.locator("#risk-table tbody tr.clickable td:nth-child(2)").all_inner_texts()]
    assert probs == sorted(probs, reverse=True)
    assert page.locator("#risk-table .band").first.inner_text().lower() in ("high", "medium", "low")
    assert page.locator("#risk-table ul.reasons li").count() >= rows.count()
    assert page.evaluate("sessionStorage.getItem('twincare.apiKey')") == keys["care_manager"]

    first_id = rows.first.get_attribute("data-resident")
    rows.first.click()
    page.locator("#resident-cards .card").first.wait_for()
    assert page.inner_text("#resident-id") == first_id
    assert page.locator("#resident-cards .card").count() == 2
    assert page.locator("#resident-cards ul.reasons li").count() >= 2
    page.locator("#task-table").wait_for()

    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "care-manager.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("TWINCARE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    assert outside == [], f"the page tried to reach the network: {outside}"
    page.close()
