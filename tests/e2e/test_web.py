"""The care manager's cockpit in a real browser (Debian's Chromium driven by Playwright).

One served twin with a few weeks of nightly scores, tonight's tasks and one resident whose id and
reason text hold markup. The test signs in (a wrong key first), works through every view, checks
each with axe-core at 1280 and 390 px (nothing scrolls sideways at 390), follows a task through
claim and completion made through the API, and signs out. Screenshots of every view at both widths
go to tests/e2e/artifacts/.
"""

from __future__ import annotations

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
    trained, keys = serving_home
    tmp = tmp_path_factory.mktemp("cockpit")
    home = fresh_home(trained, tmp / "home")
    prepare_home(home)
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

    # panels whose work has not landed say so
    for view in ("alerts", "what-if"):
        page.click(f"#nav a[data-view={view}]")
        wait_drawn(page, view)
        assert "not available yet" in page.inner_text(f"#view-{view}")
        check_view(page, view)

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
