"""The care manager's cockpit in a real browser (Debian's Chromium driven by Playwright).

One served twin with a few weeks of nightly scores, tonight's tasks, one resident whose id and
reason text hold markup, and live alerts on (a sensor map, no events yet). The test signs in (a
wrong key first), works through every view, checks each with axe-core at 1280 and 390 px (nothing
scrolls sideways at 390), follows a task through claim and completion made through the API, and
signs out. A second test sets a home's away time and quiet hours on the resident page. Screenshots
of every view at both widths go to tests/e2e/artifacts/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.conftest import Server, fresh_home, start_server, stop_server
from tests.serving.test_api import V, serving_home  # noqa: F401  (session fixture: trained workdir)

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "vendor" / "axe.min.js"
ARTIFACTS = HERE / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
WIDTHS = {1280: 900, 390: 844}
MARKUP_ID = '<img src=x onerror="window.__xss=1">'
MARKUP_REASON = '<script>window.__xss=2</script><b>bold</b> reason'


def prepare_home(home: Path, past_weeks: int = 3) -> None:
    """Nightly scores for the past weeks and tonight (tasks opened), plus a resident whose id
    and reason text hold markup, ranked first."""
    from serving.batch import score_all, score_past
    from serving.config import ServingConfig
    from serving.runtime import build_runtime
    from serving.store import ScoreRecord

    rt = build_runtime(ServingConfig.from_env({"TWINCARE_HOME": str(home)}), need_keys=False)
    try:
        score_past(rt, past_weeks)
        score_all(rt)
        model = rt.risk_models[0]
        rt.store.record_scores([ScoreRecord(
            MARKUP_ID, model, rt.champions[model].version, rt.online.as_of.date(), 0.999, "high",
            reasons=[{"feature": "falls_365d", "contribution": 1.0, "value": 1.0, "text": MARKUP_REASON}],
        )])
    finally:
        rt.close()


@pytest.fixture(scope="module")
def cockpit_server(serving_home, tmp_path_factory) -> Iterator[tuple[Server, dict[str, str]]]:  # noqa: F811
    from twin.events import SENSOR_MAP

    trained, keys = serving_home
    tmp = tmp_path_factory.mktemp("cockpit")
    home = fresh_home(trained, tmp / "home")
    prepare_home(home)
    (home / "sensor_map.json").write_text(json.dumps(SENSOR_MAP))  # live alerts on
    server = start_server(home, tmp)
    if server.failed():
        stop_server(server)
        raise RuntimeError(f"the server exited at start-up:\n{server.output()[-3000:]}")
    try:
        yield server, keys
    finally:
        stop_server(server)


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


def wait_drawn(page, view: str, since: float = 0.0) -> None:
    page.wait_for_function(
        "([v, t]) => window.twincareDrawn && window.twincareDrawn[v] > t", arg=[view, since], timeout=60_000
    )


def drawn_at(page, view: str) -> float:
    return page.evaluate("(v) => (window.twincareDrawn && window.twincareDrawn[v]) || 0", view)


def open_resident(browser, server: Server, key: str, rid: str, view: str):
    """A fresh page (axe served) signed in with `key` and on the resident's view, once its part
    `view` is drawn; (context, page)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    serve_axe(page)
    page.goto(server.url + "/")
    page.fill("#api-key", key)
    page.click("#sign-in")
    wait_drawn(page, "at-risk")
    page.evaluate("(h) => { location.hash = h; }", f"#/resident/{rid}")
    wait_drawn(page, view)
    return context, page


def serve_axe(page) -> None:
    """axe-core as a script of the page's own origin: the page's CSP refuses inline scripts, so
    the test loads it the way the page loads its own files."""
    page.route("**/__axe__/axe.min.js", lambda route: route.fulfill(path=AXE, content_type="text/javascript"))


def axe_violations(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url="/__axe__/axe.min.js")
    found = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def check_view(page, name: str) -> None:
    """Screenshot at both widths; at 390 px nothing scrolls sideways; no serious axe finding."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(350)  # charts redraw after a resize
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        if width == 390:
            overflow = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
                " [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
                "document.documentElement.clientWidth + 1 && e.offsetParent !== null).slice(0, 5).map(e => e.tagName + '.' + e.className)]"
            )
            assert overflow[0] <= overflow[1], f"{name} scrolls sideways at 390 px: {overflow}"
        bad = axe_violations(page)
        assert bad == [], f"{name} at {width} px: {bad}"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_cockpit_in_a_real_browser(cockpit_server, browser):
    server, keys = cockpit_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    outside: list[str] = []

    def only_this_server(route):
        if urlparse(route.request.url).hostname not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", only_this_server)
    serve_axe(page)
    page.goto(server.url + "/")

    # sign in: a wrong key is refused with a message
    page.locator("#view-sign-in").wait_for()
    check_view(page, "sign-in")
    page.fill("#api-key", "tc_wrong")
    page.click("#sign-in")
    page.locator("#sign-in-error").filter(has_text="not valid").wait_for()
    assert page.locator("#nav").is_hidden()

    page.fill("#api-key", keys["care_manager"])
    page.click("#sign-in")
    wait_drawn(page, "at-risk")
    cookie = next(c for c in context.cookies() if c["name"] == "twincare_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
    assert page.evaluate("[document.cookie.includes('twincare_session'), localStorage.length, sessionStorage.length]") == [False, 0, 0]
    assert keys["care_manager"] not in page.content()

    # the ranked list: highest first, markup shown as text, trends and newly-high marks drawn
    items = page.locator("#risk-list li.risk-item")
    assert items.count() > 10
    probs = [float(t.rstrip("%")) for t in page.locator("#risk-list .prob").all_inner_texts()]
    assert probs == sorted(probs, reverse=True)
    first = items.first
    assert first.locator(".resident-link").inner_text() == MARKUP_ID
    assert MARKUP_REASON in first.locator("ul.reasons").inner_text()
    assert page.locator("#risk-list img, #risk-list script, #risk-list b").count() == 0
    assert page.evaluate("window.__xss") is None
    assert page.locator("#risk-list .spark svg").count() >= 10
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": keys["care_manager"]}, timeout=30)
    listed = api.get("/cockpit/at-risk", params={"limit": 50}).json()["items"]
    assert page.locator("#risk-list .new").count() == sum(i["newly_high"] for i in listed)
    assert "Served: v" in page.inner_text("#at-risk-summary")  # which version, and of what kind
    assert "trained on this community" in page.inner_text("#at-risk-summary")
    check_view(page, "at-risk")

    # filters: band, grid and search
    def redraw(action) -> None:
        since = drawn_at(page, "at-risk")
        action()
        wait_drawn(page, "at-risk", since)

    redraw(lambda: page.select_option("#f-band", "high"))
    assert {t.lower() for t in page.locator("#risk-list .band").all_inner_texts()} == {"high"}
    redraw(lambda: page.select_option("#f-band", ""))
    grid = listed[1]["grid_id"]
    redraw(lambda: page.select_option("#f-grid", grid))
    assert {t.strip() for t in page.locator("#risk-list .who .muted").all_inner_texts()} == {f"grid {grid}"}
    redraw(lambda: page.select_option("#f-grid", ""))
    target = listed[1]["resident_id"]
    redraw(lambda: page.fill("#f-q", target))
    assert page.locator("#risk-list .resident-link").all_inner_texts() == [target]

    # a resident: reasons chart, sensor trends, timeline, data gaps apart from reasons
    since = drawn_at(page, "resident")
    page.locator("#risk-list .resident-link").first.click()
    wait_drawn(page, "resident", since)
    assert page.inner_text("#resident-id") == target
    cards = page.locator("#risk-cards .card")
    assert cards.count() == len(api.get("/cockpit/meta").json()["models"])
    # each card says what kind of model scored it (here: trained on this community)
    assert page.locator("#risk-cards .model-kind").all_inner_texts() == ["trained on this community"] * cards.count()
    assert page.locator("#risk-cards .reasons-chart svg path").count() > 3
    assert page.locator("#risk-cards ul.signed li").count() >= 2
    # each card names the cause that raises the risk most, as the resident's route does
    risks = api.get(f"/cockpit/residents/{target}").json()["risks"]
    page_causes = {r["model"]: r["causes"] for r in risks}
    for model, causes in page_causes.items():
        line = page.locator(f"#risk-cards .card[data-model={model}] p.causes").inner_text()
        assert line.startswith(f"Mostly {causes[0]['text']}") if causes else line.startswith("No cause")
    assert any(page_causes.values())
    # and the likely cause the version's cause reader names, with its probability and source
    for r in risks:
        likely = r["likely_cause"]
        line = page.locator(f"#risk-cards .card[data-model={r['model']}] p.likely-cause").inner_text()
        assert line.startswith(f"Likely cause: {likely['text']} ({100 * likely['probability']:.1f}%")
        assert "learned from the planted causes of simulated community small-twin)" in line
    assert page.locator("#sensor-charts .sensor-chart svg").count() >= 2
    assert page.locator("#timeline li").count() >= 1
    assert page.locator("#data-gaps").is_visible()
    check_view(page, "resident")

    # grids: the heat map against volunteer supply and the per-grid table
    page.click("#nav a[data-view=grids]")
    wait_drawn(page, "grids")
    assert page.locator("#heatmap svg").count() == 1 and page.locator("#heatmap svg path").count() > 14
    assert page.locator("#grid-table tbody tr").count() >= 1
    check_view(page, "grids")

    # the live alerts feed (no home has sent events yet); the what-if panel says it has not landed
    page.click("#nav a[data-view=alerts]")
    wait_drawn(page, "alerts")
    assert page.inner_text("#alert-list") == "No alerts."
    check_view(page, "alerts")
    page.click("#nav a[data-view=what-if]")
    wait_drawn(page, "what-if")
    assert "not available yet" in page.inner_text("#view-what-if")
    check_view(page, "what-if")

    # tasks: the board follows a claim and a completion made through the API
    page.click("#nav a[data-view=tasks]")
    wait_drawn(page, "tasks")
    check_view(page, "tasks")
    bank = httpx.Client(base_url=server.url, headers={"X-API-Key": keys["timebank"]}, timeout=30)
    as_volunteer = V(server.home, "V-e2e")  # the platform key acts for the volunteer its token names
    task = bank.get("/timebank/tasks", params={"limit": 1}).json()["items"][0]
    tid = task["task_id"]
    assert page.locator(f"#board [data-status=open] [data-task='{tid}']").count() == 1

    def through_api(step: str, status: str):
        """Claim or complete the task through the API; the board shows it in its new column."""
        r = bank.post(f"/timebank/tasks/{tid}/{step}", json={"volunteer_id": "V-e2e"}, headers={"Idempotency-Key": f"{step}-{tid}", **as_volunteer})
        assert r.status_code == 200, r.text
        since = drawn_at(page, "tasks")
        page.click("#tasks-refresh")
        wait_drawn(page, "tasks", since)
        card = page.locator(f"#board [data-status={status}] [data-task='{tid}']")
        assert card.count() == 1 and "V-e2e" in card.inner_text()
        return card

    through_api("claim", "claimed")
    assert page.locator(f"#board [data-status=open] [data-task='{tid}']").count() == 0
    through_api("complete", "completed")
    assert page.locator(f"#board [data-status=claimed] [data-task='{tid}']").count() == 0

    # sign out: the session ends on the server too
    page.click("#sign-out")
    page.locator("#view-sign-in").wait_for()
    assert page.evaluate("fetch('/cockpit/meta').then(r => r.status)") == 401
    replay = httpx.get(server.url + "/cockpit/meta", cookies={"twincare_session": cookie["value"]})
    assert replay.status_code == 401
    assert outside == [], f"the page tried to reach the network: {outside}"
    context.close()


def test_a_care_manager_sets_a_homes_away_time_and_quiet_hours_on_the_resident_page(cockpit_server, browser):
    """Beside the resident's alerts: an away time refused by name, added, listed and cancelled;
    quiet hours refused by name, set and cleared; each as the settings route then answers."""
    server, keys = cockpit_server
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": keys["care_manager"]}, timeout=30)
    ranked = api.get("/cockpit/at-risk", params={"limit": 5}).json()["items"]
    rid = next(i["resident_id"] for i in ranked if i["resident_id"] != MARKUP_ID)

    def settings() -> dict:
        return api.get(f"/residents/{rid}/alert_settings").json()

    context, page = open_resident(browser, server, keys["care_manager"], rid, "resident")
    assert page.inner_text("#resident-id") == rid and page.locator("#home-alerts").is_visible()
    assert page.inner_text("#resident-alerts") == "No alerts."
    assert page.inner_text("#away-list") == "No away time set."
    assert page.inner_text("#quiet-now") == "22:00 to 07:00, the service's default."

    # an end before the start: the server's 422 stands under "Until", which is marked and focused
    away = page.locator("#away-form")
    away.get_by_label("From (home's clock)").fill("2030-03-02T09:00")
    away.get_by_label("Until").fill("2030-03-01T09:00")
    away.get_by_role("button", name="Add away time").click()
    page.locator("#away-end-error").filter(has_text="end must come after start").wait_for()
    assert page.get_attribute("#away-end", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "away-end"
    assert settings()["away"] == []
    assert axe_violations(page) == []

    # corrected and sent from the keyboard: listed, the error gone, and the route answers it
    away.get_by_label("Until").fill("2030-03-05T18:00")
    away.get_by_label("Why (optional)").fill("at her daughter's")
    away.get_by_role("button", name="Add away time").press("Enter")
    span = "2030-03-02 09:00 until 2030-03-05 18:00"
    page.locator("#away-list li[data-away]").filter(has_text=span).wait_for()
    assert "at her daughter's" in page.inner_text("#away-list")
    assert page.inner_text("#away-end-error") == "" and page.get_attribute("#away-end", "aria-invalid") is None
    assert [(s["start"], s["end"], s["note"]) for s in settings()["away"]] == [
        ("2030-03-02T09:00:00", "2030-03-05T18:00:00", "at her daughter's")]

    # cancelled from the keyboard: gone from the page and from the route
    page.get_by_role("button", name=f"Cancel away time {span}").press("Enter")
    page.locator("#away-list").filter(has_text="No away time set.").wait_for()
    assert settings()["away"] == []

    # quiet hours: the same start and end refused under "Until", then set, then cleared
    quiet = page.locator("#quiet-form")
    quiet.get_by_label("From").fill("21:30")
    quiet.get_by_label("Until").fill("21:30")
    quiet.get_by_role("button", name="Set quiet hours").click()
    page.locator("#quiet-end-error").filter(has_text="end at another time than they start").wait_for()
    assert settings()["quiet_hours"]["default"] is True
    quiet.get_by_label("Until").fill("06:00")
    quiet.get_by_role("button", name="Set quiet hours").click()
    page.locator("#quiet-now").filter(has_text="21:30 to 06:00, set for this home.").wait_for()
    assert settings()["quiet_hours"] == {"start": "21:30", "end": "06:00", "default": False}
    page.click("#quiet-clear")
    page.locator("#quiet-now").filter(has_text="22:00 to 07:00, the service's default.").wait_for()
    assert settings()["quiet_hours"]["default"] is True and page.locator("#quiet-clear").is_hidden()

    # the settings route failing (here its answer replaced by a 503 on the way to the page) leaves
    # the rest of the resident page drawn, and says what failed in the section
    page.route("**/alert_settings", lambda r: r.fulfill(
        status=503, content_type="application/json", body='{"error": "the time-bank store is unavailable; retry later"}'))
    page.evaluate("(h) => { location.hash = h; }", "#/at-risk")
    wait_drawn(page, "at-risk")
    page.evaluate("(h) => { location.hash = h; }", f"#/resident/{rid}")
    page.locator("#home-alerts-error").filter(has_text="the time-bank store is unavailable").wait_for()
    assert page.inner_text("#resident-id") == rid and page.locator("#risk-cards").is_visible()
    assert page.locator("#home-alerts-body").is_hidden()
    assert "Could not load" not in page.inner_text("#status")
    context.close()


def test_a_false_alarm_rated_on_the_resident_page_says_which_wait_it_lengthened(cockpit_server, browser):
    """A no-movement alert rated a false alarm from the resident's page: the page then says which
    wait the rating lengthened (that place by day, no other), as the settings route does."""
    from datetime import datetime

    from serving.store import TimeBankStore
    from serving.store.live import LiveStore

    server, keys = cockpit_server
    api = httpx.Client(base_url=server.url, headers={"X-API-Key": keys["care_manager"]}, timeout=30)
    ranked = [i["resident_id"] for i in api.get("/cockpit/at-risk", params={"limit": 5}).json()["items"]]
    rid = [r for r in ranked if r != MARKUP_ID][1]  # not the resident the settings test uses
    store = TimeBankStore(f"sqlite:///{server.home / 'timebank.db'}")  # as the home's gateway raised it
    try:
        LiveStore(store).add_alert(rid, "no_movement", datetime(2030, 3, 2, 10, 0), datetime(2030, 3, 2, 10, 40),
                                   datetime(2030, 3, 2, 10, 41), "no movement since 10:00 (last in the living room)",
                                   True, "living/day")
        LiveStore(store).add_alert(rid, "no_movement", datetime(2030, 3, 3, 9, 0), datetime(2030, 3, 3, 10, 10),
                                   datetime(2030, 3, 3, 10, 11), "no movement since 09:00 (last in the hall)",
                                   True, "motion/day")
    finally:
        store.close()

    context, page = open_resident(browser, server, keys["care_manager"], rid, "home-alerts")
    assert page.inner_text("#tuning-list") == "Nothing yet: every wait is as learned from the home's own days."
    card = page.locator("#resident-alerts li[data-alert]").filter(has_text="no movement since 10:00")
    card.get_by_role("button", name="False alarm").click()
    tuned = page.locator("#tuning-list li[data-tuned='living/day']")
    tuned.wait_for()
    assert tuned.inner_text() == "No movement after the living room during the day: waits 1.25× as long as learned"
    assert page.locator("#tuning-list li").count() == 1
    card.filter(has_text="rated a false alarm").wait_for()
    settings = api.get(f"/residents/{rid}/alert_settings").json()
    assert settings["cell_tuning"] == {"living/day": 1.25} and set(settings["tuning"].values()) == {1.0}

    # the hall's alert: the resident was out and the door's sensor missed it; no wait lengthens
    hall = page.locator("#resident-alerts li[data-alert]").filter(has_text="no movement since 09:00")
    hall.get_by_role("button", name="False: was out").click()
    page.locator("#tuning-list li[data-tuned='door']").filter(has_text="missed 1 outing").wait_for()
    hall.filter(has_text="rated a false alarm (was out)").wait_for()
    settings = api.get(f"/residents/{rid}/alert_settings").json()
    assert settings["cell_tuning"] == {"living/day": 1.25} and settings["door_missed"] == 1
    assert axe_violations(page) == []
    context.close()
