"""The app's pages fit the portal's frame with BX24.fitWindow, in headless Chromium.

The shared app config points BX24_JS_URL at the emulator's BX24 stub, whose
resize commands change the emulated portal's iframe (900 px high at first).
Without a loadable BX24 library the pages must work the same, only with the
frame at its first height.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.conftest import free_port

MANAGER = 4
TIMEOUT_MS = 15000
FIRST_HEIGHT = 900
KPI_PAGE = "/_emulator/ui/placement/CRM_ANALYTICS_MENU"


def _frame_size(page) -> dict:
    return page.locator("#app-frame").evaluate(
        "f => ({style: f.style.height, resized: Number(f.dataset.resized || 0),"
        " height: f.getBoundingClientRect().height})"
    )


def _content_height(frame) -> int:
    return frame.locator("body").evaluate(
        "() => Math.max(document.documentElement.offsetHeight,"
        " document.body.scrollHeight)"
    )


def _wait_fitted(page, frame) -> dict:
    """Wait until the iframe's CSS height equals the content height of its page.

    The portal page cannot read the app's cross-origin document, so the test
    compares the two sides from Python.
    """
    frame.locator("html[data-bx24='ready']").wait_for(timeout=TIMEOUT_MS)
    size = _frame_size(page)
    for _ in range(TIMEOUT_MS // 100):
        size = _frame_size(page)
        if size["style"] == f"{_content_height(frame)}px":
            break
        page.wait_for_timeout(100)
    return size


# Chromium's own console line for a load that failed on the network. Page
# code cannot suppress it, so a refused connection is allowed this line only.
REFUSED_LINE = "Failed to load resource: net::ERR_CONNECTION_REFUSED"


@pytest.fixture(params=["not-found", "refused"])
def bx24_missing(request, app, services, emulator, monkeypatch) -> str:
    """Point BX24_JS_URL at a loopback URL that returns 404 or refuses connections.

    The emulator's 404 page is HTML, which Chromium blocks for a script
    without a console line (ORB), so that case must leave the console empty.
    """
    if request.param == "not-found":
        url = f"{emulator.base_url}/_emulator/ui/no-such-bx24.js"
    else:
        url = f"http://127.0.0.1:{free_port()}/bx24.js"
    monkeypatch.setitem(app.config, "BX24_JS_URL", url)
    monkeypatch.setitem(services.config, "BX24_JS_URL", url)
    return url


def _page_errors(page) -> list[str]:
    """Return console errors other than Chromium's line for a refused load."""
    return [text for text in page.console_errors if text != REFUSED_LINE]


@pytest.mark.browser
def test_kpi_tab_frame_grows_to_content(page, emulator, installed):
    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)

    size = _wait_fitted(page, frame)
    content = _content_height(frame)

    assert content > FIRST_HEIGHT
    assert size["style"] == f"{content}px"
    # The frame has a 1 px border on each side.
    assert size["height"] == content + 2
    assert frame.locator("body").evaluate(
        "() => document.documentElement.scrollHeight <= window.innerHeight"
    )
    assert page.console_errors == []


@pytest.mark.browser
def test_kpi_tab_frame_settles(page, emulator, installed):
    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    # Every part of the tab has rendered: figures, forecast, import, spend.
    frame.locator(
        "#kpi[data-loaded='true'][data-forecast][data-import][data-spend-rows]"
    ).wait_for(timeout=TIMEOUT_MS)
    fitted = _wait_fitted(page, frame)

    page.wait_for_timeout(1500)

    # A fitted frame does not change the content height, so no resize follows.
    assert _frame_size(page) == fitted


@pytest.mark.browser
def test_kpi_tab_refits_on_period_reload(page, emulator, installed):
    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)
    before = _wait_fitted(page, frame)

    with page.expect_response(lambda r: "/api/v1/kpi?period=month" in r.url):
        frame.locator("#period").select_option("month")
    page.wait_for_function(
        "n => Number(document.getElementById('app-frame').dataset.resized) > n",
        arg=before["resized"],
        timeout=TIMEOUT_MS,
    )

    after = _wait_fitted(page, frame)
    assert after["resized"] > before["resized"]
    assert after["style"] == f"{_content_height(frame)}px"
    assert page.console_errors == []


@pytest.mark.browser
def test_frame_refits_when_content_grows(page, emulator, installed):
    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)
    before = _wait_fitted(page, frame)

    frame.locator("body").evaluate(
        "body => { const block = document.createElement('div');"
        " block.style.height = '1500px'; body.appendChild(block); }"
    )
    page.wait_for_function(
        "n => Number(document.getElementById('app-frame').dataset.resized) > n",
        arg=before["resized"],
        timeout=TIMEOUT_MS,
    )

    after = _wait_fitted(page, frame)
    assert after["style"] == f"{_content_height(frame)}px"
    assert after["height"] - before["height"] == pytest.approx(1500, abs=2)


@pytest.mark.browser
def test_lead_tab_frame_fits_content(page, emulator, installed):
    lead_id = emulator.portal.create_lead({"ASSIGNED_BY_ID": MANAGER}, kind="form")
    query = urlencode({"options": json.dumps({"ID": str(lead_id)})})
    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_LEAD_DETAIL_TAB?{query}")
    frame = page.frame_locator("#app-frame")
    frame.locator("main.lead-tab").wait_for(timeout=TIMEOUT_MS)

    size = _wait_fitted(page, frame)

    assert size["style"] == f"{_content_height(frame)}px"
    assert size["height"] < FIRST_HEIGHT
    assert page.console_errors == []


@pytest.mark.browser
@pytest.mark.parametrize(
    ("button", "root"),
    [("Настройки SLA", "#settings"), ("Напоминания клиентам", "#reminders")],
)
def test_settings_pages_fit_frame(page, emulator, installed, button, root):
    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)
    frame.get_by_role("button", name=button).click()
    frame.locator(f"{root}[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)

    size = _wait_fitted(page, frame)

    assert size["style"] == f"{_content_height(frame)}px"
    assert page.console_errors == []


# Without BX24


@pytest.mark.browser
def test_pages_work_when_bx24_fails(page, emulator, installed, bx24_missing):
    requested: list[str] = []
    page.on("request", lambda r: r.url == bx24_missing and requested.append(r.url))

    page.goto(f"{emulator.base_url}{KPI_PAGE}")
    frame = page.frame_locator("#app-frame")
    frame.locator("#kpi[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)
    frame.locator("html[data-bx24='failed']").wait_for(timeout=TIMEOUT_MS)
    frame.get_by_role("button", name="Настройки SLA").click()
    frame.locator("#settings[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)
    frame.locator("html[data-bx24='failed']").wait_for(timeout=TIMEOUT_MS)

    # Both pages tried the configured URL, and neither could resize the frame.
    assert len(requested) >= 2
    size = _frame_size(page)
    assert size["style"] == ""
    assert size["resized"] == 0
    assert 895 <= size["height"] <= 905
    assert _page_errors(page) == []
    if bx24_missing.startswith("https://"):
        assert page.console_errors == []


@pytest.mark.browser
def test_lead_tab_works_when_bx24_fails(page, emulator, installed, bx24_missing):
    lead_id = emulator.portal.create_lead({"ASSIGNED_BY_ID": MANAGER}, kind="form")
    query = urlencode({"options": json.dumps({"ID": str(lead_id)})})

    page.goto(f"{emulator.base_url}/_emulator/ui/placement/CRM_LEAD_DETAIL_TAB?{query}")
    frame = page.frame_locator("#app-frame")
    frame.locator("html[data-bx24='failed']").wait_for(timeout=TIMEOUT_MS)

    assert frame.locator("main.lead-tab").is_visible()
    assert _frame_size(page)["style"] == ""
    assert _page_errors(page) == []
    if bx24_missing.startswith("https://"):
        assert page.console_errors == []


@pytest.mark.browser
def test_page_outside_frame_skips_bx24(page, app_server, installed, services):
    from b24app.placement_auth import Viewer, sign_api_token

    viewer = Viewer(
        portal_id=installed.id,
        member_id=installed.member_id,
        user_id=1,
        is_admin=True,
        language="ru",
    )
    requested: list[str] = []
    page.on("request", lambda r: "bx24" in r.url and requested.append(r.url))
    token = sign_api_token(services, viewer)

    page.goto(f"{app_server.url}/settings?{urlencode({'token': token})}")
    page.locator("#settings[data-loaded='true']").wait_for(timeout=TIMEOUT_MS)

    assert page.locator("html").get_attribute("data-bx24") == "absent"
    assert requested == []
    assert page.console_errors == []
